"""musicvid: fitting music under a video. See README.md and docs/ (the Python API: docs/python-api.md).

``from musicvid_core import score`` is the one-call API (:mod:`musicvid_core.scoring`). It is
imported on first use, so ``import musicvid_core`` stays light (no numpy, no media stack).
"""

import logging as _logging

__version__ = "0.1.0"

# A library's loggers stay quiet until its user configures logging (the CLI, serve and the Lambda
# entry points do, through bootstrap.configure_logging): no stray warnings on a notebook's stderr.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())
__all__ = ["ScoreResult", "__version__", "score"]

_LAZY = {"score": "musicvid_core.scoring", "ScoreResult": "musicvid_core.scoring"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'musicvid_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
