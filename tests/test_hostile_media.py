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


# --- manifests, playlists and patterns: opened as media, never followed (issue 14) ----------------
class Canary:
    """A named pipe standing where a hostile file points: opening it for reading (what ffmpeg does
    to follow a reference) unblocks a writer thread, so any open is seen, even one that then fails."""

    def __init__(self, path: Path) -> None:
        import os
        import threading

        os.mkfifo(path)
        self.path, self._releasing, self.opened = path, False, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        import os

        fd = os.open(self.path, os.O_WRONLY)  # blocks until a reader opens the pipe
        if not self._releasing:
            self.opened.set()
        os.close(fd)

    def was_opened(self) -> bool:
        """Whether anyone opened the pipe; releases the watcher (by opening it ourselves)."""
        import os

        self._releasing = True
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self._thread.join(5)
        os.close(fd)
        return self.opened.is_set()


class HttpCanary:
    """A loopback HTTP server that records every request it gets."""

    def __init__(self) -> None:
        import http.server
        import threading

        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_error(404)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _mpd(base_url: str) -> bytes:
    return (f'<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" '
            f'mediaPresentationDuration="PT6S" minBufferTime="PT1S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">'
            f'<Period><AdaptationSet mimeType="video/mp4"><Representation id="1" bandwidth="100000" width="320" '
            f'height="180" codecs="avc1.64000d"><BaseURL>{base_url}</BaseURL></Representation></AdaptationSet>'
            f'</Period></MPD>\n').encode()


MANIFEST_KINDS = ("dash_file", "dash_http", "hls", "ffconcat", "sdp")


def _manifest(kind: str, canary: Path, http_url: str) -> bytes:
    """A hostile 'video': a manifest or playlist pointing at ``canary`` (a local file) or ``http_url``."""
    if kind == "dash_file":
        return _mpd(f"file://{canary}")
    if kind == "dash_http":
        return _mpd(f"{http_url}/secret.mp4")
    if kind == "hls":
        return (f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nfile://{canary}\n"
                f"#EXTINF:2.0,\n{http_url}/seg.ts\n#EXT-X-ENDLIST\n").encode()
    if kind == "ffconcat":
        return f"ffconcat version 1.0\nfile '{canary}'\n".encode()
    if kind == "sdp":
        return (b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                b"m=video 5004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n")
    raise ValueError(kind)


@pytest.fixture
def http_canary():
    server = HttpCanary()
    yield server
    server.close()


@pytest.mark.parametrize("kind", MANIFEST_KINDS)
def test_a_manifest_is_refused_before_anything_it_names_is_read(tmp_path, http_canary, kind):
    from musicvid_core.domain.errors import UnsupportedMedia
    from musicvid_core.stages.analyse.probe import probe

    canary = Canary(tmp_path / ("canary.ts" if kind == "hls" else "canary.mp4"))
    # the store names uploads after their declared type; ffmpeg takes HLS only from an .m3u8 name
    # (which `musicvid analyze` would pass on as it is)
    upload = tmp_path / ("upload.m3u8" if kind == "hls" else "upload.mp4")
    upload.write_bytes(_manifest(kind, canary.path, http_canary.url))
    with pytest.raises(UnsupportedMedia) as err:
        probe(upload, label="the video")
    assert str(err.value).startswith("the video is a playlist or manifest"), err.value
    assert "\n" not in str(err.value)
    assert not canary.was_opened() and http_canary.hits == []


def test_an_image_sequence_pattern_is_refused_unread(tmp_path):
    from musicvid_core.domain.errors import UnsupportedMedia
    from musicvid_core.media import run_ffmpeg
    from musicvid_core.stages.analyse.probe import probe

    pattern = tmp_path / "frame%03d.png"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=64x36", "-frames:v", "1", str(tmp_path / "one.png")])
    (tmp_path / "one.png").rename(pattern)  # one picture under the pattern's literal name...
    canary = Canary(tmp_path / "frame001.png")  # ...and the first frame the pattern would read
    with pytest.raises(UnsupportedMedia, match="image sequence"):
        probe(pattern, label="the video")
    assert not canary.was_opened()


@pytest.mark.parametrize("url", ["data:video/mp4;base64,AAAAIGZ0eXBpc29t", "concat:/etc/hostname|/etc/hostname",
                                 "subfile,,start,0,end,64,,:/etc/hostname", "http://127.0.0.1:9/x.mp4"])
def test_only_the_one_file_given_is_opened(url):
    from musicvid_core.domain.errors import UnsupportedMedia
    from musicvid_core.media import run_ffmpeg

    with pytest.raises(UnsupportedMedia, match="names a location other than the file"):
        run_ffmpeg(["-i", url, "-f", "null", "-"], timeout=30)


def test_every_ffmpeg_input_is_opened_with_the_allow_lists():
    from musicvid_core.media import FORMAT_WHITELIST, ffmpeg_command

    cmd = ffmpeg_command(["-y", "-f", "lavfi", "-i", "sine", "-ss", "1", "-i", "/a.mp4", "-i", "b.wav", "out.wav"])
    guard = ["-protocol_whitelist", "file", "-format_whitelist", FORMAT_WHITELIST]
    assert cmd[cmd.index("/a.mp4") - 7:cmd.index("/a.mp4")] == ["-ss", "1", *guard, "-i"]  # input options kept
    assert cmd[cmd.index("b.wav") - 5:cmd.index("b.wav")] == [*guard, "-i"]
    assert cmd[cmd.index("sine") - 3:cmd.index("sine")] == ["-f", "lavfi", "-i"]  # our own generators
    for name in ("dash", "hls", "concat", "image2", "sdp", "data", "rtp"):
        assert name not in FORMAT_WHITELIST.split(",")
    # and no module builds an ffmpeg command line anywhere else
    root = Path(__file__).resolve().parents[1] / "musicvid_core"
    callers = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py")
                     if "ffmpeg_exe()" in p.read_text() and p.name != "media.py")
    assert callers == []


def test_manifest_uploads_through_the_api_fail_the_job_unread(settings, short_video, tmp_path, http_canary):
    """Each kind uploaded through the presigned form and submitted: the job FAILS in analyze with a
    one-line UnsupportedMedia, and nothing it names is read (a real video's picture never reaches an
    output, a canary pipe is never opened, a loopback HTTP server gets no request)."""
    from tests.apihelpers import Live

    live = Live(settings)
    try:
        canaries = {}
        for kind in ("dash_file", "dash_canary", *MANIFEST_KINDS[1:]):
            canary = canaries[kind] = Canary(tmp_path / f"{kind}.canary")
            target = short_video.path if kind == "dash_file" else canary.path  # a video the server can read
            body = _manifest("dash_file" if kind == "dash_canary" else kind, target, http_canary.url)
            (tmp_path / f"{kind}.mp4").write_bytes(body)
            uri = live.upload("alice", tmp_path / f"{kind}.mp4")
            job = live.wait("alice", live.submit("alice", s3_url=uri, prompt="calm")["job_id"])
            assert job["status"] == "FAILED" and job["error"]["type"] == "UnsupportedMedia", (kind, job)
            assert job["error"]["stage"] == "analyze" and job["final_url"] is None
            message = job["error"]["message"]
            assert message.startswith("the video ") and "\n" not in message and str(tmp_path) not in message
            if kind in ("dash_file", "dash_canary", "dash_http", "ffconcat", "sdp"):
                assert "playlist or manifest" in message, (kind, message)
            stored = live.app.services.jobs.get(job["job_id"])
            assert live.app.services.objects.list(stored.prefix) == []  # no output, no proxy, no features
        assert [kind for kind, canary in canaries.items() if canary.was_opened()] == []
        assert http_canary.hits == []
    finally:
        live.close()


@pytest.mark.slow
def test_manifests_and_patterns_through_the_cli_are_one_line_errors(tmp_path, short_video):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICVID_")}
    env.update(MUSICVID_HOME=str(tmp_path / "home"), MUSICVID_USER="cli", MUSICVID_RETRY_TIME_SCALE="0")
    mpd = tmp_path / "movie.mpd"
    mpd.write_bytes(_mpd(f"file://{short_video.path}"))
    pattern = tmp_path / "frame%03d.png"
    from musicvid_core.media import run_ffmpeg

    run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=64x36", "-frames:v", "1", str(tmp_path / "one.png")])
    (tmp_path / "one.png").rename(pattern)
    canary = Canary(tmp_path / "frame001.png")
    for args, words in ((["run", mpd, "--prompt", "calm", "--out", tmp_path / "out.mp4"], "playlist or manifest"),
                        (["analyze", pattern, "--prompt", "calm"], "image sequence")):
        proc = subprocess.run([sys.executable, "-m", "musicvid_core.cli", *map(str, args)], capture_output=True,
                              text=True, env=env, timeout=300)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("job ") and "…" not in ln]
        assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
        assert words in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "out.mp4").exists() and not canary.was_opened()
