"""Structured logs: one job followed across its steps by job_id, stage and attempt on every line."""

from __future__ import annotations

import io
import json
import logging

import pytest

from musicvid_core.logs import JsonFormatter, job_context, setup_logging
from musicvid_core.workflow.tracing import traced


@pytest.fixture
def captured():
    stream = io.StringIO()
    logger = setup_logging("INFO", "json", stream=stream)
    yield stream
    setup_logging("WARNING", "text")
    logger.propagate = True


def _lines(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_traced_step_stamps_every_line_with_the_events_job(captured):
    inner = logging.getLogger("musicvid_core.stages.somewhere")

    @traced("AudioGenerator")
    def step(event, services):
        inner.info("rendering")
        return {"ok": True}

    assert step({"job_id": "j-1", "attempt": 2, "index": 3}, None) == {"ok": True}
    lines = _lines(captured)
    assert [line["message"] for line in lines][:2] == ["step starts", "rendering"]
    assert all(line["job_id"] == "j-1" and line["attempt"] == 2 and line["stage"] == "AudioGenerator"
               and line["segment"] == 3 for line in lines)


def test_failure_is_logged_with_its_type_and_reraised(captured):
    @traced("Coordinator")
    def step(event, services):
        raise ValueError("bad\nthing")

    with pytest.raises(ValueError):
        step({"job_id": "j-2", "attempt": 1, "action": "start"}, None)
    last = _lines(captured)[-1]
    assert last["level"] == "WARNING" and last["stage"] == "Coordinator:start"
    assert "ValueError: bad thing" in last["message"]


def test_context_is_restored_and_outside_lines_carry_no_job(captured):
    log = logging.getLogger("musicvid_core.x")
    with job_context(job_id="a", attempt=1):
        with job_context(stage="Analyzer"):
            log.info("inner")
        log.info("outer")
    log.info("none")
    inner, outer, none = _lines(captured)
    assert inner["stage"] == "Analyzer" and "stage" not in outer and outer["job_id"] == "a"
    assert "job_id" not in none


def test_text_format_names_the_job():
    stream = io.StringIO()
    setup_logging("INFO", "text", stream=stream)
    try:
        with job_context(job_id="j-3", attempt=4, stage="AVOperator"):
            logging.getLogger("musicvid_core.y").info("mixing")
    finally:
        setup_logging("WARNING", "text")
    assert "[job=j-3 stage=AVOperator attempt=4] mixing" in stream.getvalue()


def test_a_whole_run_is_followed_by_job_id(settings, tmp_path):
    """Every step of a real embedded run logs under the job's id and attempt."""
    from musicvid_core.bootstrap import build_services
    from musicvid_core.lab.samples import make_video
    from musicvid_core.workflow import submit

    stream = io.StringIO()
    setup_logging("INFO", "json", stream=stream)
    try:
        services = build_services(settings)
        video = make_video(tmp_path / "in.mp4", (1.5,), size=(160, 90), fps=25, audio="none").path
        job = submit.submit_new(services, submit.upload_file(services, video, settings.user), "calm piano",
                                settings.user)
        submit.run(services, job)
    finally:
        setup_logging("WARNING", "text")
    lines = [line for line in _lines(stream) if line["message"] == "step starts"]
    stages = [line["stage"] for line in lines]
    assert stages[0] == "Coordinator:start" and "Analyzer" in stages and "AVOperator" in stages
    assert stages[-1] == "Coordinator:summary"
    assert all(line["job_id"] == job.job_id and line["attempt"] == 1 for line in lines)


def test_json_formatter_keeps_exceptions():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record = logging.LogRecord("musicvid_core", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "failed" and "RuntimeError: boom" in entry["exception"]
