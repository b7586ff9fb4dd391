"""musicvid: fitting music under a video. See README.md and docs/."""

__version__ = "0.1.0"
