"""Real-world files through ``musicvid run`` and ``score()`` (issue 17): a safe --out, the container it
names, paths people really have, free disk checked first, and the cut detector over every kind of
scene change. Asserted by measurement."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from musicvid_core.domain import BadInput, Status
from musicvid_core.lab.samples import (
    CUT_KINDS,
    espeak_available,
    make_case,
    make_cut_video,
    measure_cuts,
    tricky_name,
)
from musicvid_core.metrics import stream_durations
from musicvid_core.stages.analyse.probe import probe
from musicvid_core.workflow import preflight
from musicvid_core.workflow.preflight import check_run


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def cli(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICVID_")}
    env.update(MUSICVID_HOME=str(tmp_path / "home"), MUSICVID_USER="cli", MUSICVID_RETRY_TIME_SCALE="0")

    def call(*args, cwd=None):
        return subprocess.run([sys.executable, "-m", "musicvid_core.cli", *map(str, args)], capture_output=True,
                              text=True, env=env, timeout=600, cwd=cwd)

    return call


# --- before anything runs: one-line refusals -----------------------------------------------------
def test_out_may_not_be_the_input_or_in_the_store(services, short_video, tmp_path):
    from musicvid_core.domain.options import JobOptions

    options = JobOptions()
    with pytest.raises(BadInput, match="is the input itself"):
        check_run(services, short_video.path, short_video.path, options=options)
    link = tmp_path / "same.mp4"
    link.symlink_to(short_video.path)
    with pytest.raises(BadInput, match="is the input itself"):
        check_run(services, short_video.path, link, options=options)
    with pytest.raises(BadInput, match="inside the job store"):
        check_run(services, short_video.path, services.settings.store_root / "uploads" / "x.mp4", options=options)
    need = check_run(services, short_video.path, tmp_path / "new" / "out.mkv", options=options)
    assert need["input_copy"] == short_video.path.stat().st_size and need["total"] > need["work_wavs"] > 0


def test_a_read_only_folder_needs_an_out_elsewhere(services, short_video, tmp_path, monkeypatch):
    from musicvid_core.domain.options import JobOptions

    folder = tmp_path / "camera"
    folder.mkdir()
    video = folder / "clip.mp4"
    video.write_bytes(short_video.path.read_bytes())
    folder.chmod(0o555)
    try:
        if os.geteuid() == 0:  # root writes anywhere: make the folder read-only as a user would see it
            real = os.access
            monkeypatch.setattr(preflight.os, "access", lambda p, mode: False if str(p) == str(folder) else real(p, mode))
        with pytest.raises(BadInput, match="is not writable; choose where it goes with --out"):
            check_run(services, video, None, options=JobOptions())
        check_run(services, video, tmp_path / "out.mp4", options=JobOptions())  # reading is all it needs
    finally:
        folder.chmod(0o755)


def test_too_little_disk_is_refused_with_what_the_run_needs(services, short_video, tmp_path, monkeypatch):
    from musicvid_core.domain.options import JobOptions

    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 1000})())
    with pytest.raises(BadInput, match=r"not enough free disk space in .*needs about .*MB there \(input copy .*"
                                       r"output .*work wavs .*\) and 0\.0 MB is free"):
        check_run(services, short_video.path, tmp_path / "out.mp4", options=JobOptions())


@pytest.mark.slow
def test_an_existing_out_is_replaced_only_when_the_run_succeeds(services, short_video, tmp_path, monkeypatch):
    import musicvid_core.stages.mix.compose as compose_mod
    from musicvid_core import score
    from musicvid_core.domain import MixError

    out = tmp_path / "keep.mp4"
    out.write_bytes(b"the user's earlier file")

    def broken(*args, **kwargs):
        raise MixError("mixing failed: disk full")

    with monkeypatch.context() as patch:
        patch.setattr(compose_mod, "compose", broken)
        result = score(short_video.path, "calm piano", out=out, services=services, check=False, music_metrics=False)
    assert result.job.status == Status.FAILED and out.read_bytes() == b"the user's earlier file"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".keep.mp4.")]  # no half-written file
    result = score(short_video.path, "calm piano", out=out, services=services, music_metrics=False)
    assert result.ok and stream_durations(out)["video"] == pytest.approx(6.0, abs=1e-3)
    assert result.container == "mp4" and result.as_dict()["container"] == "mp4"


# --- through the command line --------------------------------------------------------------------
@pytest.mark.slow
def test_the_trimmed_file_of_the_issue(cli, tmp_path):
    case = make_case("edit_list", tmp_path / "in")
    before = _sha(case.path)
    proc = cli("run", case.path, "-p", "epic cinematic", "--out", tmp_path / "o.mp4", "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["container"] == "mp4" and result["disk"]["total"] > 0
    assert result["metrics"]["duration_s"] == pytest.approx(case.truth["duration_s"], abs=1e-6)
    assert result["plan"]["duration"] == pytest.approx(case.truth["duration_s"], abs=1e-6)
    durations = stream_durations(tmp_path / "o.mp4")
    assert abs(durations["audio"] - durations["video"]) <= 1 / 30  # the audio ends with the last frame
    assert _sha(case.path) == before  # the input untouched
    for out, words in ((tmp_path / "o.mkv", "edit list"), (case.path, "the input itself"),
                       (tmp_path / "o.avi", "must end in")):
        proc = cli("run", case.path, "-p", "calm", "--out", out, "-q")
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and words in lines[0], proc.stderr
    assert _sha(case.path) == before


@pytest.mark.slow
def test_two_tracks_default_output_keeps_every_stream(cli, tmp_path):
    case = make_case("two_tracks", tmp_path)
    proc = cli("run", case.path, "-p", "warm acoustic", "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["container"] == "mkv" and result["output"].endswith("two_tracks_musicvid.mkv")
    out = probe(result["output"])
    assert [s.kind for s in out.streams] == case.truth["kinds"] and out.chapters == 2
    if espeak_available():  # speech on the main (second) track: heard, and the music ducks under it
        assert result["plan"]["speech"] and result["plan"]["speech"][0]["start"] >= case.truth["speech_from_s"]
        assert "duck_db" in result["metrics"] and result["metrics"]["speech_music"]["speech_music_lu"] >= 10
    assert "--audio-track" in cli("run", "--help").stdout


@pytest.mark.slow
def test_paths_people_have(cli, tmp_path, short_video):
    folder = tmp_path / "Ma vidéo (copie) 'final'"
    video = tricky_name(short_video.path, folder)  # spaces, quotes, accents, kanji, a leading dash
    before = _sha(video)
    folder.chmod(0o555)  # a read-only folder: the input is only read
    try:
        # a relative --out whose name starts with a dash too, the input after "--"
        proc = cli("run", "-p", "calm piano", "--out", "-résultat \"x\".mkv", "--json", "-q", "--",
                   video.relative_to(tmp_path), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        out = tmp_path / "-résultat \"x\".mkv"
        assert json.loads(proc.stdout)["container"] == "mkv" and probe(out).container.startswith("matroska")
        assert stream_durations(out)["video"] == pytest.approx(6.0, abs=1e-3)
        assert _sha(video) == before and sorted(p.name for p in folder.iterdir()) == [video.name]
    finally:
        folder.chmod(0o755)


# --- scene changes of every kind: frames off the truth ------------------------------------------
@pytest.mark.slow
def test_cut_times_are_exact_to_the_frame(tmp_path):
    results = {kind: measure_cuts(make_cut_video(kind, tmp_path)) for kind in CUT_KINDS}
    for kind in ("hard_busy", "similar", "flash_cut"):
        assert results[kind]["frames_off"] == [0] * 5 and results[kind]["extra"] == 0, results[kind]
    assert results["flash_in_shot"]["extra"] == 0  # a flash inside a shot is not a cut
    dissolve = results["dissolve"]
    assert dissolve["missed"] == 0 and all(abs(o) <= 1 for o in dissolve["frames_off"]), dissolve
    fade = results["fade"]
    assert fade["missed"] <= 1 and all(abs(o) <= 1 for o in fade["frames_off"] if o is not None), fade
