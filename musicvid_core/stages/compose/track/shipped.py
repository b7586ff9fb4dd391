"""Analyses shipped with the package for the bundled library's tracks (the ``[library]`` extra).

Analysing the 28 bundled clips takes 1-3 minutes of CPU; every fresh machine, container or Lambda
``/tmp`` would pay it on its first library job. So the analyses are computed once, at release
time, and shipped as ``shipped_analyses.json.gz`` (package data), keyed by the SHA-256 of each
file's bytes: a file whose bytes differ (another version of the package, a user's own track) is
simply not found here and is analysed as before. A record of another ``ANALYSIS_VERSION`` is
ignored, so a change to the analysis can never be masked by stale shipped data
(``tests/test_track_shipped.py`` fails until the file is rebuilt).

Rebuild after changing the analysis: ``make library-index`` (library.ship_analyses). This module
imports nothing of the analysis' own: analysis.py reads through it.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

SHIPPED = Path(__file__).with_name("shipped_analyses.json.gz")


@lru_cache(maxsize=1)
def _records() -> tuple[int, dict]:
    try:
        data = json.loads(gzip.decompress(SHIPPED.read_bytes()))
        return int(data["version"]), dict(data["analyses"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1, {}  # no shipped file (a source tree without it): every track is analysed


def shipped_record(sha256: str, version: int) -> dict | None:
    """The shipped analysis (as JSON values) of the file whose bytes hash to ``sha256``, or None
    when there is none of ``version``."""
    shipped_version, records = _records()
    return records.get(sha256) if shipped_version == version else None
