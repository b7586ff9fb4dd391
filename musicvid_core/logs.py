"""Structured logs: every line a job writes carries its ``job_id``, ``stage`` and ``attempt``.

One setup (:func:`setup_logging`) for every entry point. Locally it is the standard library's
logging, one line per record (``text``: readable; ``json``: one object per line); on Lambda it is
AWS Lambda Powertools' Logger when installed (the [aws] extra), whose JSON CloudWatch Logs Insights
queries by key, else the same stdlib JSON. The job's fields ride in context variables set by
:func:`job_context` around each step, so they follow the step into every module it calls (and
into Map iterations, which copy the context of the thread that starts them), without threading a
logger through the code: ``logging.getLogger(__name__)`` everywhere, as before.

Follow one job across steps: ``jq 'select(.job_id == "…")'`` locally, or in CloudWatch Logs
Insights ``fields @timestamp, stage, attempt, message | filter job_id = "…"``.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

FIELDS = ("job_id", "stage", "attempt", "segment")
_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("musicvid_log_context", default=None)
ROOT = "musicvid_core"


@contextlib.contextmanager
def job_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (job_id, stage, attempt, segment) to every log record written inside."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    """The job fields in force here (a copy)."""
    return dict(_context.get() or {})


class ContextFilter(logging.Filter):
    """Stamps the job fields on each record (``-`` where a field is not known)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get() or {}
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, context.get(name, "-"))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ms), level, logger, message, the job fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, "-")
            if value != "-":
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [job=%(job_id)s stage=%(stage)s attempt=%(attempt)s] %(message)s"
_configured: list[logging.Handler] = []


def setup_logging(level: str = "WARNING", fmt: str = "text", *, on_lambda: bool = False,
                  stream: Any = None) -> logging.Logger:
    """Configure the ``musicvid_core`` loggers once per process (later calls re-set level and format).

    ``fmt``: ``text`` or ``json``; on Lambda (``on_lambda``) Powertools' Logger is used when it is
    installed, whatever ``fmt`` says. Records go to ``stream`` (default stderr: stdout is the CLI's
    ``--json`` output). Returns the package's root logger."""
    logger = logging.getLogger(ROOT)
    logger.setLevel(level.upper())
    for handler in _configured:
        logger.removeHandler(handler)
    _configured.clear()
    handler: logging.Handler | None = None
    if on_lambda:
        handler = _powertools_handler(level)
    if handler is None:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(JsonFormatter() if fmt == "json" or on_lambda else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    logger.addHandler(handler)
    logger.propagate = False  # one line per record, not a second one from a root handler
    _configured.append(handler)
    return logger


def _powertools_handler(level: str) -> logging.Handler | None:
    """Powertools' handler and formatter (JSON with the Lambda context), or None without the package."""
    try:
        from aws_lambda_powertools import Logger
    except ImportError:
        return None
    powertools = Logger(service="musicvid", level=level.upper())
    return powertools.registered_handler
