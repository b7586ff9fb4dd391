"""The way to `musicvid run`'s first stage (issue 18): no audio stack imported, one header read
where the preflight needs no packet scan, and the refusals that do need it kept."""

from __future__ import annotations

import subprocess
import sys

import pytest

from musicvid_core.domain import BadInput
from musicvid_core.domain.options import JobOptions
from musicvid_core.lab.samples import make_case
from musicvid_core.stages.analyse import probe as probe_mod
from musicvid_core.workflow.preflight import check_run


def test_the_path_to_the_first_stage_imports_no_numpy():
    """What `musicvid run` imports before its first state, and a plain run's recording check."""
    code = ("import sys, musicvid_core.cli, musicvid_core.scoring, musicvid_core.workflow.preflight, "
            "musicvid_core.workflow.runner, musicvid_core.stages.mix.compose, musicvid_core.stages.analyse.probe\n"
            "from musicvid_core.scoring import recording_option\n"
            "assert recording_option(None, None, False) is None\n"
            "print(sorted(m for m in ('numpy', 'scipy', 'soundfile') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def trimmed(tmp_path_factory):
    return make_case("edit_list", tmp_path_factory.mktemp("trim"))


def _ffmpeg_runs(monkeypatch) -> list:
    runs = []
    real = probe_mod.run_ffmpeg
    monkeypatch.setattr(probe_mod, "run_ffmpeg", lambda args, **kw: runs.append(kw.get("what")) or real(args, **kw))
    return runs


def test_no_packet_scan_where_hidden_frames_cannot_matter(services, trimmed, tmp_path, monkeypatch):
    runs = _ffmpeg_runs(monkeypatch)
    need = check_run(services, trimmed.path, tmp_path / "o.mp4", options=JobOptions(container="mp4"))
    assert need["total"] > 0 and runs == ["probe"]  # mp4 keeps the edit list: the header is enough
    header = probe_mod.probe(trimmed.path, scan=False)
    assert header.hidden_frames == 0 and header.duration > 0


def test_a_format_that_would_show_hidden_frames_is_still_refused(services, trimmed, tmp_path, monkeypatch):
    runs = _ffmpeg_runs(monkeypatch)
    with pytest.raises(BadInput, match="edit list"):
        check_run(services, trimmed.path, tmp_path / "o.mkv", options=JobOptions(container="mkv"))
    assert "packet scan" in runs
    assert probe_mod.probe(trimmed.path).hidden_frames > 0
