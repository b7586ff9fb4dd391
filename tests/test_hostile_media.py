"""A hostile corpus through the whole pipeline: each input ends scored or FAILED with a clear reason."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from musicvid_core.bootstrap import build_services
from musicvid_core.domain import Status
from musicvid_core.lab.samples import HOSTILE_KINDS, make_hostile, make_video
from musicvid_core.metrics import stream_durations, video_packet_hashes
from musicvid_core.settings import Settings
from musicvid_core.workflow import submit as service


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    return {kind: make_hostile(kind, folder) for kind in HOSTILE_KINDS}


def _run(services, path):
    uri = service.upload_file(services, path, "tester")
    return service.run(services, service.submit_new(services, uri, "calm piano", "tester"))


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(HOSTILE_KINDS))
def test_hostile_input_is_scored_or_fails_with_a_reason(services, corpus, kind):
    job = _run(services, corpus[kind])
    assert job.status in (Status.COMPLETED, Status.FAILED)  # never left SCHEDULED/PROCESSING
    assert services.objects.exists(services.objects.key_from_uri(job.s3_url))  # the input is kept
    if HOSTILE_KINDS[kind] == "fail":
        assert job.status == Status.FAILED, f"{kind} was scored"
        assert job.error.type == "UnsupportedMedia" and job.error.stage == "analyze"
        message = job.error.message
        assert message.startswith("the video ") and "\n" not in message and len(message) < 300
        assert "Traceback" not in message and str(corpus[kind].parent) not in message  # no paths leak
        assert services.objects.list(job.prefix) == []
        return
    assert job.status == Status.COMPLETED, job.error
    out = service.output_path(services, job)
    src, got = stream_durations(corpus[kind]), stream_durations(out)
    assert abs(got["video"] - src["video"]) < 1e-3
    assert abs(got["audio"] - src["video"]) <= 0.05
    if kind != "decode_errors":  # its damaged packets are copied as they are, too
        assert video_packet_hashes(out) == video_packet_hashes(corpus[kind])
    if kind == "rotated":
        from musicvid_core.stages.analyse.probe import probe

        assert probe(out).rotation == probe(corpus[kind]).rotation != 0


def test_every_media_tool_call_is_bounded_in_time(tmp_path, monkeypatch):
    """A stuck ffmpeg cannot hang a job: with a tiny timeout the job fails, saying so."""
    monkeypatch.setenv("MUSICVID_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUSICVID_FFMPEG_TIMEOUT_S", "0.001")
    services = build_services(Settings())
    video = make_video(tmp_path / "in.mp4", (2,), size=(160, 90), fps=25, audio="tone").path
    job = _run(services, video)
    assert job.status == Status.FAILED and "timed out" in job.error.message, job.error


def test_no_shell_anywhere():
    """ffmpeg (and every other process) runs from an argument list: no shell=True, os.system or popen."""
    root = Path(__file__).resolve().parents[1] / "musicvid_core"
    offenders = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                if name in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"):
                    offenders.append(f"{path.name}:{node.lineno} {name}")
                for kw in node.keywords:
                    if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                        offenders.append(f"{path.name}:{node.lineno} shell=")
    assert offenders == []
