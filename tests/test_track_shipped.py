"""The bundled library's shipped analyses (track/shipped.py): current, complete, and the same as
analysing the file now."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from musicvid_core.stages.compose.track import shipped
from musicvid_core.stages.compose.track.analysis import ANALYSIS_VERSION, analyse_file
from musicvid_core.stages.compose.track.audio import file_sha256
from musicvid_core.stages.compose.track.library import list_tracks

BUNDLED = [t for t in list_tracks([]) if t.bundled] if shipped.SHIPPED.exists() else []
needs_library = pytest.mark.skipif(not BUNDLED, reason="the [library] extra is not installed")


def test_the_shipped_file_is_of_the_current_analysis_version():
    # Fails after a change to the analysis until `make library-index` rebuilds the file.
    version, records = shipped._records()
    assert version == ANALYSIS_VERSION, "run `make library-index`"
    assert records


@needs_library
def test_every_bundled_track_has_a_shipped_analysis():
    for t in BUNDLED:
        assert shipped.shipped_record(file_sha256(t.path), ANALYSIS_VERSION) is not None, t.path.name


@needs_library
def test_a_shipped_analysis_is_what_analysing_the_file_gives(tmp_path):
    track = min(BUNDLED, key=lambda t: t.path.stat().st_size)
    fresh = analyse_file(track.path, cache_dir=tmp_path / "a", shipped=False)
    known = analyse_file(track.path, cache_dir=tmp_path / "b")
    assert known.sha256 == fresh.sha256
    assert len(known.bars) == len(fresh.bars) and len(known.beats) == len(fresh.beats)
    assert np.max(np.abs(np.array(known.beats) - np.array(fresh.beats))) < 0.002  # seconds
    assert known.key == fresh.key and known.bpm == fresh.bpm
    assert (tmp_path / "b" / f"{known.sha256}.json").is_file()  # and it lands in the cache


@needs_library
def test_a_copy_under_another_name_keeps_its_own_name_and_other_bytes_are_analysed(tmp_path):
    track = min(BUNDLED, key=lambda t: t.path.stat().st_size)
    copy = tmp_path / "my song.mp3"
    shutil.copyfile(track.path, copy)
    assert analyse_file(copy).name == "my song.mp3"
    assert shipped.shipped_record("0" * 64, ANALYSIS_VERSION) is None
    assert shipped.shipped_record(file_sha256(track.path), ANALYSIS_VERSION - 1) is None
