"""The way to `musicvid run`'s first stage (issue 18): no audio stack imported, one header read
where the preflight needs no packet scan, and the refusals that do need it kept; the input's copy
into the store is a file of its own (a reflink where the file system has them, else a copy), made
while the checks run and taken back when they refuse."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from musicvid_core.adapters.local import objectstore as objectstore_mod
from musicvid_core.adapters.local.objectstore import FolderObjectStore
from musicvid_core.domain import BadInput
from musicvid_core.domain.options import JobOptions
from musicvid_core.lab.samples import make_case
from musicvid_core.stages.analyse import probe as probe_mod
from musicvid_core.workflow import preflight
from musicvid_core.workflow.preflight import check_and_upload, check_run


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


# What `musicvid run` has imported, and which threads run, when its first progress line is printed.
_AT_FIRST_STAGE = """
import json, os, sys, threading
import musicvid_core.cli as cli
real = cli._Progress.__call__
def call(self, event):
    if event.get("type") == "StateEntered" and event.get("state") == "Start":
        print(json.dumps({"modules": sorted(m for m in sys.modules if m.split(".")[0] in ("numpy", "scipy", "musicvid_core")),
                          "threads": sorted(t.name for t in threading.enumerate())}), flush=True)
        os._exit(0)
    return real(self, event)
cli._Progress.__call__ = call
sys.argv = ["musicvid", "run", *sys.argv[1:]]
cli.main()
"""


def test_what_the_run_has_loaded_at_its_first_stage(trimmed, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICVID_")}
    out = subprocess.run([sys.executable, "-c", _AT_FIRST_STAGE, str(trimmed.path), "-p", "calm", "-o",
                          str(tmp_path / "o.mp4")], capture_output=True, text=True, timeout=120,
                         env={**env, "MUSICVID_HOME": str(tmp_path / "home")})
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    modules = set(seen["modules"])
    assert not {m for m in modules if m.split(".")[0] in ("numpy", "scipy")}
    # the mixer and its meters are the Mix state's (the preflight's disk sums live in mix.sizes)
    assert "musicvid_core.stages.mix.sizes" in modules
    assert not {"musicvid_core.stages.mix.compose", "musicvid_core.metrics"} & modules
    # the backends are warmed once the first state is reported, the input's copy is done
    assert "musicvid-warm" not in seen["threads"] and "musicvid-input-copy" not in seen["threads"]


# --- the input's copy into the store ------------------------------------------------------------
def _stored(store: FolderObjectStore, uri: str) -> Path:
    return store.local_path(store.key_from_uri(uri))


def test_a_stored_input_is_a_file_of_its_own(tmp_path):
    store = FolderObjectStore(tmp_path / "store")
    src = tmp_path / "mine.mp4"
    src.write_bytes(os.urandom(300_000))
    before = src.read_bytes()
    stored = _stored(store, store.put_file("uploads/u/a.mp4", src))
    assert stored.read_bytes() == before and not os.path.samefile(stored, src)
    with open(src, "r+b") as f:  # the user exports again over the same file, in place
        f.write(b"changed")
    assert stored.read_bytes() == before
    assert store.delete("uploads/u/a.mp4") and not store.delete("uploads/u/a.mp4")
    assert src.read_bytes()[:7] == b"changed" and src.stat().st_size == len(before)  # never the user's


def test_a_file_system_without_reflinks_gets_a_copy(tmp_path, monkeypatch):
    tried = []

    def no_clone(fd, request, arg=0):
        tried.append(request)
        raise OSError(errno.EXDEV, "Invalid cross-device link")  # the store on another file system

    monkeypatch.setattr(fcntl, "ioctl", no_clone)
    store = FolderObjectStore(tmp_path / "store")
    src = tmp_path / "mine.mp4"
    src.write_bytes(b"x" * 100_000)
    assert _stored(store, store.put_file("uploads/u/a.mp4", src)).read_bytes() == src.read_bytes()
    assert tried == ([0x40049409] if sys.platform.startswith("linux") else [])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="FICLONE is Linux's")
def test_a_reflink_is_taken_where_the_file_system_has_one(tmp_path, monkeypatch):
    def clone(fd, request, src_fd):  # what FICLONE does, as far as the bytes go
        assert request == 0x40049409
        os.sendfile(fd, src_fd, 0, os.fstat(src_fd).st_size)

    def no_copy(*args, **kwargs):
        raise AssertionError("copied although the file system cloned")

    monkeypatch.setattr(fcntl, "ioctl", clone)
    monkeypatch.setattr(objectstore_mod.shutil, "copyfile", no_copy)
    store = FolderObjectStore(tmp_path / "store")
    src = tmp_path / "mine.mp4"
    src.write_bytes(b"y" * 100_000)
    assert _stored(store, store.put_file("uploads/u/a.mp4", src)).read_bytes() == src.read_bytes()


def test_a_real_reflink_where_this_file_system_has_them(tmp_path):
    src, dest = tmp_path / "a", tmp_path / "b"
    src.write_bytes(b"z" * 65536)
    dest.touch()
    if not objectstore_mod._reflink(src, dest):
        pytest.skip("this file system has no reflinks (ext4, tmpfs ...): the copy above is what runs")
    with open(src, "r+b") as f:
        f.write(b"changed")
    assert dest.read_bytes() == b"z" * 65536


def _uploads(services) -> list[str]:
    return services.objects.list(f"uploads/{services.settings.user}")


def _copy_first(monkeypatch) -> list:
    """The copy made in full before the checks begin (it runs beside them; this makes it certain),
    one entry a copy in the list returned."""
    started = []
    real = preflight._copy_beside

    def copy_beside(*args):
        copy = real(*args)
        copy.exception()  # waits for it
        started.append(copy.result() if copy.exception() is None else None)
        return copy

    monkeypatch.setattr(preflight, "_copy_beside", copy_beside)
    return started


def test_the_copy_runs_beside_the_checks_and_is_taken_back_when_they_refuse(services, trimmed, tmp_path,
                                                                           monkeypatch):
    started = _copy_first(monkeypatch)
    with pytest.raises(BadInput, match="edit list"):
        check_and_upload(services, trimmed.path, tmp_path / "o.mkv", options=JobOptions(container="mkv"),
                         user=services.settings.user)
    assert started[0].startswith("local://") and _uploads(services) == []
    assert not list(services.settings.store_root.rglob(".tmp-*"))
    uri, need = check_and_upload(services, trimmed.path, tmp_path / "o.mp4", options=JobOptions(container="mp4"),
                                 user=services.settings.user)
    assert len(started) == 2 and need["total"] > 0
    assert _stored(services.objects, uri).read_bytes() == trimmed.path.read_bytes()


def test_the_copy_in_flight_is_not_counted_against_the_free_disk(services, trimmed, tmp_path, monkeypatch):
    from musicvid_core.workflow import submit

    size = trimmed.path.stat().st_size
    need = check_run(services, trimmed.path, tmp_path / "o.mp4", options=JobOptions(container="mp4"))["total"]
    free = [round(need * preflight.DISK_MARGIN) + size // 2]  # room for the run, not for its copy twice
    real_upload = submit.upload_file

    def upload(*args):
        free[0] -= size  # the copy takes its share of the disk
        return real_upload(*args)

    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: type("Usage", (), {"free": free[0]})())
    monkeypatch.setattr(submit, "upload_file", upload)
    assert _copy_first(monkeypatch) == []
    uri, _ = check_and_upload(services, trimmed.path, tmp_path / "o.mp4", options=JobOptions(container="mp4"),
                              user=services.settings.user)
    assert free[0] < round(need * preflight.DISK_MARGIN)
    assert services.objects.exists(services.objects.key_from_uri(uri))


def test_what_needs_no_probe_is_refused_before_any_copy(services, trimmed, tmp_path, monkeypatch):
    monkeypatch.setattr(preflight, "_copy_beside", lambda *a: pytest.fail("copied before an instant refusal"))
    with pytest.raises(BadInput, match="is the input itself"):
        check_and_upload(services, trimmed.path, trimmed.path, options=JobOptions(), user=services.settings.user)
    with pytest.raises(BadInput, match="no such file"):
        check_and_upload(services, tmp_path / "nothing.mp4", None, options=JobOptions(), user=services.settings.user)
    monkeypatch.setattr(preflight, "COPY_BESIDE_CHECKS_BYTES", trimmed.path.stat().st_size - 1)
    uri, _ = check_and_upload(services, trimmed.path, tmp_path / "o.mp4", options=JobOptions(container="mp4"),
                              user=services.settings.user)  # a large input: copied after the checks
    assert _stored(services.objects, uri).read_bytes() == trimmed.path.read_bytes()


def test_a_copy_that_would_not_fit_waits_for_the_checks(services, trimmed, tmp_path, monkeypatch):
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 1000})())
    monkeypatch.setattr(preflight, "_copy_beside", lambda *a: pytest.fail("copied before the checks"))
    with pytest.raises(BadInput, match="not enough free disk space"):
        check_and_upload(services, trimmed.path, tmp_path / "o.mp4", options=JobOptions(container="mp4"),
                         user=services.settings.user)
    assert _uploads(services) == []


class _SlowBackend:
    """A backend whose build waits until the test lets it go (a generator's imports)."""

    started = None
    release = None

    def __init__(self, settings) -> None:
        type(self).started.set()
        assert type(self).release.wait(10)


class _QuickBackend:
    def __init__(self, settings) -> None:
        self.settings = settings


def test_a_backend_is_not_held_up_while_another_is_built(services, monkeypatch):
    """Services.warm builds the generator in a thread while the analysis starts; the analyzer's
    planner must not wait for that build (it waited ~0.6 s of the 60 s run's imports)."""
    import threading

    from musicvid_core import services as services_mod

    _SlowBackend.started, _SlowBackend.release = threading.Event(), threading.Event()
    registry = {"slow": f"{__name__}:_SlowBackend", "quick": f"{__name__}:_QuickBackend"}
    monkeypatch.setattr(services_mod, "load_plugin", lambda reg, kind, name: getattr(sys.modules[__name__],
                                                                                       reg[name].split(":")[1]))
    built, quick, again = [], [], []
    slow = threading.Thread(target=lambda: built.append(services._plugin(registry, "generator", "slow")))
    waiter = threading.Thread(target=lambda: again.append(services._plugin(registry, "generator", "slow")))
    slow.start()
    try:
        assert _SlowBackend.started.wait(10)
        asker = threading.Thread(target=lambda: quick.append(services._plugin(registry, "planner", "quick")))
        asker.start()
        asker.join(5)  # returns while the slow build still runs
        assert not asker.is_alive() and isinstance(quick[0], _QuickBackend) and not built
        # Asked again while building, the slow one is built once: the second caller waits for the first.
        waiter.start()
        waiter.join(0.2)
        assert waiter.is_alive()
    finally:
        _SlowBackend.release.set()
        slow.join(10)
        if waiter.ident is not None:
            waiter.join(10)
    assert built[0] is again[0] and services._plugin(registry, "planner", "quick") is quick[0]


def test_the_checked_ffmpeg_is_remembered_while_its_file_is_the_same(settings, tmp_path, monkeypatch):
    """imageio-ffmpeg runs `ffmpeg -version` to check its binary in every process (~35 ms before the
    first stage); the path it found is kept under HOME/cache with the file's size and mtime and used
    unchecked while they hold. Another file there, or imageio-ffmpeg's own setting, is asked again."""
    import shutil as shutil_mod
    import types

    from musicvid_core import media

    binary = tmp_path / "ffmpeg"
    binary.write_bytes(b"#!/bin/sh\n")
    binary.chmod(0o755)
    asked = []

    def get_ffmpeg_exe():
        asked.append(1)
        return str(binary)

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", types.SimpleNamespace(get_ffmpeg_exe=get_ffmpeg_exe))
    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    assert media.find_ffmpeg(settings) == str(binary) and len(asked) == 1
    assert (settings.home / "cache" / "ffmpeg.json").is_file()
    assert media.find_ffmpeg(settings) == str(binary) and len(asked) == 1  # remembered: not asked again
    binary.write_bytes(b"#!/bin/sh\n# another build\n")  # replaced: another size
    assert media.find_ffmpeg(settings) == str(binary) and len(asked) == 2
    binary.unlink()  # gone: asked, and what imageio-ffmpeg then says is what counts
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", types.SimpleNamespace(
        get_ffmpeg_exe=lambda: (_ for _ in ()).throw(RuntimeError("none"))))
    monkeypatch.setattr(shutil_mod, "which", lambda name: None)
    with pytest.raises(media.ConfigurationError, match="ffmpeg not found"):
        media.find_ffmpeg(settings)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", "/opt/ffmpeg")  # explicit: taken as given, never recorded
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", types.SimpleNamespace(get_ffmpeg_exe=lambda: "/opt/ffmpeg"))
    assert media.find_ffmpeg(settings) == "/opt/ffmpeg"
    assert "/opt/ffmpeg" not in (settings.home / "cache" / "ffmpeg.json").read_text()


def test_a_record_that_cannot_be_read_or_written_is_no_error(settings, tmp_path, monkeypatch):
    import types

    from musicvid_core import media

    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", types.SimpleNamespace(get_ffmpeg_exe=lambda: sys.executable))
    record = settings.home / "cache" / "ffmpeg.json"
    record.parent.mkdir(parents=True)
    record.write_text("{not json")
    assert media.find_ffmpeg(settings) == sys.executable  # rewritten
    assert json.loads(record.read_text())[sys.prefix]["path"] == sys.executable
    record.write_text(json.dumps({sys.prefix: {"path": 3}}))
    assert media.find_ffmpeg(settings) == sys.executable
