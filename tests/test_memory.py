"""Issue 18, memory: what keeps the peak of a `musicvid run` down (docs/speed.md, "Memory at 1, 15 and
60 minutes"). The SoundFont's share is tested in test_fontsubset.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from musicvid_core.settings import Settings
from musicvid_core.workflow import runner


def _maps(states: dict) -> dict[str, dict]:
    found = {}
    for name, state in states.items():
        if state.get("Type") == "Map":
            found[name] = state
            found.update(_maps(state.get("ItemProcessor", {}).get("States", {})))
    return found


def test_the_local_runner_renders_map_concurrency_segments_at_once():
    """A Map's iterations are threads of one process here, each holding a segment's stems: the
    definition's MaxConcurrency is capped at settings.map_concurrency (default 2), the file and
    the definition Step Functions runs stay as written."""
    path = str(runner.PACKAGED_DEFINITION)
    written = _maps(runner._definition(path)["States"])["GenerateAudio"]["MaxConcurrency"]
    assert written == 4
    assert Settings().map_concurrency == 2
    assert _maps(runner._definition(path, Settings().map_concurrency)["States"])["GenerateAudio"]["MaxConcurrency"] == 2
    assert _maps(runner._definition(path, 64)["States"])["GenerateAudio"]["MaxConcurrency"] == written
    assert _maps(runner._definition(path)["States"])["GenerateAudio"]["MaxConcurrency"] == written


def test_a_map_without_a_limit_gets_the_cap():
    states = {"M": {"Type": "Map", "ItemProcessor": {"States": {"Inner": {"Type": "Map", "MaxConcurrency": 0}}}},
              "P": {"Type": "Parallel", "Branches": [{"States": {"B": {"Type": "Map"}}}]}}
    runner._cap_maps(states, 3)
    assert states["M"]["MaxConcurrency"] == 3
    assert states["M"]["ItemProcessor"]["States"]["Inner"]["MaxConcurrency"] == 3
    assert states["P"]["Branches"][0]["States"]["B"]["MaxConcurrency"] == 3


_HEAP = """
import sys, numpy as np
from musicvid_core import heap
from musicvid_core.bootstrap import build_services
build_services()
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
big = np.ones(8 << 20, np.uint8); del big   # a freed 8 MB block: glibc's own threshold slides up to it
base = rss()
keep, arrays = [], []
for _ in range(60):
    arrays.append(np.ones(2 << 20, np.uint8))  # 120 MB in 2 MB blocks
    keep.append(np.ones(64 << 10, np.uint8))   # smaller blocks between them pin the heap
arrays.clear()
kept = rss() - base
trimmed = heap.trim()
print(kept, rss() - base, trimmed)
"""


def _heap(tmp_path, threshold_kb: str | None) -> tuple[int, int, bool]:
    env = {**os.environ, "MUSICVID_HOME": str(tmp_path)}
    env.pop("MUSICVID_MMAP_THRESHOLD_KB", None)
    if threshold_kb is not None:
        env["MUSICVID_MMAP_THRESHOLD_KB"] = threshold_kb
    out = subprocess.run([sys.executable, "-c", _HEAP], env=env, capture_output=True, text=True, check=True)
    kept, after_trim, trimmed = out.stdout.split()[-3:]
    return int(kept), int(after_trim), trimmed == "True"


def _glibc() -> bool:
    return sys.platform.startswith("linux") and (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")


@pytest.mark.skipif(not _glibc(), reason="glibc's malloc")
def test_trim_gives_the_freed_heap_back(tmp_path):
    """glibc keeps 120 MB of freed 2 MB buffers in its heap (Settings.mmap_threshold_kb 0, the
    default: reuse without page faults); heap.trim, which the mix step calls, gives them back."""
    kept, after_trim, trimmed = _heap(tmp_path, None)
    assert kept > 100 and trimmed and after_trim < 20, (kept, after_trim)


@pytest.mark.skipif(not _glibc(), reason="glibc's malloc")
def test_a_fixed_mmap_threshold_gives_freed_buffers_back_at_once(tmp_path):
    """Settings.mmap_threshold_kb 256: every block from 256 KiB is its own mapping, gone when freed
    (the composer then takes ~1.6x its CPU: off by default; musicvid_core/heap.py)."""
    kept, _after, _trimmed = _heap(tmp_path, "256")
    assert kept < 20, kept


def test_the_mix_step_lets_the_composer_s_soundfont_go(services, short_video, monkeypatch):
    """The segments are rendered before the mix: the mix step asks the generators to release what
    they keep (MusicGenerator.release), so the mixer and ffmpeg do not run beside ~90 MB of parsed
    samples (issue 18: the 60-minute peak was the mix stage's)."""
    from musicvid_core.domain import Status
    from musicvid_core.stages.compose import render
    from musicvid_core.workflow import submit as service

    released = []
    real = render.release_fonts

    def release():
        released.append(len([entry for entry in render._subsets.values() if entry is not None]))
        real()

    monkeypatch.setattr("musicvid_core.stages.compose.procedural.release_fonts", release)
    uri = service.upload_file(services, short_video.path, "tester")
    job = service.run(services, service.submit_new(services, uri, "warm acoustic", "tester"))
    assert job.status == Status.COMPLETED, job.error
    if render.renderer() == "tinysoundfont":
        assert released and released[0] >= 1 and not render._subsets  # a subset was held, and let go
    else:
        assert released


def test_only_synchronous_generators_are_released(services):
    calls = []

    class Sync:
        is_async = False

        def release(self):
            calls.append("sync")

    class Async:
        is_async = True

    services._cache[("generator", "a")] = Sync()
    services._cache[("generator", "b")] = Async()
    services._cache[("planner", "c")] = Sync()
    services.release_generators()
    assert calls == ["sync"]
