"""Benchmark (issue 18): `musicvid run` end to end against the physical limit, per stage, with the peak
RSS of the whole process tree.

    python bench/pipeline_speed.py                       # 60 s 720p and 15 min 320x180 with speech, 3 runs each
    python bench/pipeline_speed.py --inputs 60 --runs 1  # one input, one run
    python bench/pipeline_speed.py --inputs 60 900 3600 --runs 1 --rss-only   # RSS and PSS at 1, 15, 60 min

For each input, measured in the same run (medians of ``--runs``):

- **decode**: one plain ``ffmpeg -i IN -f null -`` pass (video and audio decoded);
- **aac**: one AAC encode of the output's audio (its decoded samples as a float WAV, 256 kbit/s, the
  default coder, ``-f null``: the encode alone);
- the **limit**: decode for the 60 s 720p input (goal: end to end <= 2.0x), decode + aac for the
  15-minute one (goal <= 1.3x);
- **e2e**: ``musicvid run VIDEO -p PROMPT -o OUT`` as a fresh process, launch to exit; the stages are
  taken from its progress lines on stderr (each line's arrival time): start (launch to the first
  stage line: imports, the copy into the store), analyse + plan, compose music, mix + master, exit;
- **first stage**: launch to the first progress line (goal <= 0.3 s); **--help**: launch to exit
  (goal <= 0.25 s);
- **peak RSS**: the largest sum of the resident sets of the CLI process and all its descendants
  (ffmpeg, render children), polled every 20 ms (goal <= 400 MB, flat within 1.2x from 1 to 60 min);
- **CPU**: the CPU seconds (user + system) of the run's whole process tree, per stage (the tree's
  times read at each progress line) and in all (the reaped tree's rusage), and the same of the limit's
  passes; **floor** = the run's CPU over the cores (``os.cpu_count()``): the wall time no
  arrangement of the same work can beat, as a multiple of the limit.

Inputs are generated once into bench/out/ (git-ignored): 1280x720 30 fps x264 veryfast with a quiet
tone; 320x180 25 fps with espeak-ng speech every 10 s over a quiet tone. A benchmark: it prints
figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
ROOT = HERE.parent
_SCRIPT = Path(sys.executable).with_name("musicvid")  # the console script a user launches
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "musicvid_core.cli"]
PROMPT = "warm acoustic, slow build, big finish"
STAGES = {"start": "start", "analyse video + plan": "analyse", "compose music": "compose",
          "mix + master": "mix", "summary": "summary"}


def as_installed(tree: Path) -> None:
    """Byte-compile ``tree``'s musicvid_core, as pip does at install: under PYTHONDONTWRITEBYTECODE
    (set on the project's build machines) a source tree otherwise compiles every module it imports
    again in every launch (docs/speed.md, "Bytecode")."""
    compileall.compile_dir(str(tree / "musicvid_core"), quiet=1)


def make_input(seconds: float) -> Path:
    """The bench input for ``seconds``: 720p tone video up to 2 minutes, 320x180 with speech beyond."""
    from musicvid_core.lab.samples import make_long_video, make_speech_wav
    from musicvid_core.media import run_ffmpeg

    OUT.mkdir(parents=True, exist_ok=True)
    if seconds <= 120:
        video = OUT / f"speed_{int(seconds)}s_720p30.mp4"
        if not video.exists():
            make_long_video(video, seconds, size=(1280, 720), fps=30, audio="tone")
        return video
    video = OUT / f"speed_{int(seconds)}s_180p_speech.mp4"
    if video.exists():
        return video
    with tempfile.TemporaryDirectory() as tmp:
        silent = Path(tmp, "picture.mp4")
        make_long_video(silent, seconds, size=(320, 180), fps=25, audio="none", scene_s=8.0)
        speech = make_speech_wav("Welcome to the harbour. Every morning the boats come in, and the market opens.",
                                 Path(tmp, "speech.wav"))
        # speech, then quiet: a 10 s cycle looped under the whole picture, over a quiet tone bed
        run_ffmpeg(["-y", "-i", str(silent), "-i", str(speech), "-f", "lavfi", "-i",
                    "aevalsrc=0.01*sin(2*PI*110*t):s=48000:c=stereo", "-filter_complex",
                    "[1:a]aresample=48000,aformat=channel_layouts=stereo,apad=whole_dur=10,aloop=loop=-1:size=480000,"
                    f"atrim=duration={seconds:.3f}[sp];[2:a][sp]amix=inputs=2:normalize=0:duration=shortest[a]",
                    "-map", "0:v", "-map", "[a]", "-c:v", "copy", "-c:a", "aac", "-b:a", "128k", "-t", f"{seconds}",
                    str(video)], timeout=3600, what="bench input")
    return video


def decode_s(video: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one plain decode pass of ``video``."""
    from musicvid_core.media import ffmpeg_exe

    cpu0, t0 = children_cpu(), time.perf_counter()
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(video), "-f", "null", "-"],
                   check=True)
    return time.perf_counter() - t0, children_cpu() - cpu0


def aac_s(output: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one AAC encode (256 kbit/s, default coder) of ``output``'s audio,
    from a float WAV of it."""
    from musicvid_core.media import ffmpeg_exe

    ff = ffmpeg_exe()
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp, "a.wav")
        subprocess.run([ff, "-hide_banner", "-nostdin", "-v", "error", "-i", str(output), "-map", "0:a:0",
                        "-c:a", "pcm_f32le", str(wav)], check=True)
        cpu0, t0 = children_cpu(), time.perf_counter()
        subprocess.run([ff, "-hide_banner", "-nostdin", "-v", "error", "-i", str(wav), "-c:a", "aac", "-b:a", "256k",
                        "-f", "null", "-"], check=True)
        return time.perf_counter() - t0, children_cpu() - cpu0


class TreeRSS(threading.Thread):
    """Peak of the summed RSS (MB) of a process and all its descendants, polled every ``every`` s.
    A child caught between fork and exec (same command line as its parent: it shares the parent's
    pages, and would count them twice) is left out. With ``pss``, also the peak of their summed PSS
    (proportional set size: a page shared by two processes counts once, not twice; slower to read)."""

    def __init__(self, pid: int, every: float = 0.02, pss: bool = False) -> None:
        super().__init__(daemon=True)
        import psutil

        self.root, self.every, self.peak, self.done = psutil.Process(pid), every, 0.0, threading.Event()
        self.pss, self.peak_pss = pss, 0.0
        self.stage, self.by_stage = "start", {}  # the stage the reader last saw, and each one's peak

    def run(self) -> None:
        import psutil

        try:
            root_cmd = self.root.cmdline()
        except psutil.Error:
            return
        while not self.done.is_set():
            total = shared = 0
            try:
                for proc in [self.root, *self.root.children(recursive=True)]:
                    try:
                        if proc is not self.root and proc.cmdline() == root_cmd:
                            continue  # forked, not yet exec'd: the parent's own pages
                        if self.pss:
                            info = proc.memory_full_info()
                            shared += info.pss
                        else:
                            info = proc.memory_info()
                        total += info.rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                break
            self.peak = max(self.peak, total / 2**20)
            self.by_stage[self.stage] = max(self.by_stage.get(self.stage, 0.0), total / 2**20)
            self.peak_pss = max(self.peak_pss, shared / 2**20)
            time.sleep(self.every)


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's reaped descendants so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def tree_cpu(pid: int) -> float:
    """CPU seconds of a live process and every descendant it has: each one's own times plus those
    of the children it has reaped (a reaped process's times are in its parent's, once)."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


def run_cli(video: Path, out: Path, home: str, pss: bool = False) -> dict:
    """One ``musicvid run`` in a fresh process: stage times from its progress lines, wall, tree RSS
    and tree CPU (per stage and in all)."""
    env = {**os.environ, "MUSICVID_HOME": home, "COLUMNS": "200"}
    cpu0 = children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.Popen([*CLI, "run", str(video), "-p", PROMPT, "-o", str(out)], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    rss = TreeRSS(proc.pid, every=0.1 if pss else 0.02, pss=pss)
    rss.start()
    marks: list[tuple[str, float]] = []
    cpu_marks: list[float] = []
    lines = []
    for line in proc.stderr:
        lines.append(line)
        for label, name in STAGES.items():
            if line.rstrip().endswith(f"{label} …") and name not in dict(marks):
                marks.append((name, time.perf_counter() - t0))
                cpu_marks.append(tree_cpu(proc.pid))
                rss.stage = name
    proc.wait()
    wall = time.perf_counter() - t0
    cpu_total = children_cpu() - cpu0
    rss.done.set()
    rss.join()
    if proc.returncode != 0:
        raise SystemExit(f"musicvid run failed ({proc.returncode}): {''.join(lines)[-2000:]}")
    # each stage lasts until the next line (the last until exit); "start" is counted from launch
    ends = [at for _, at in marks[1:]] + [wall]
    stages = {name: end - at for (name, at), end in zip(marks, ends)}
    if marks and marks[0][0] == "start":
        stages["start"] = ends[0]
    cpu_ends = cpu_marks[1:] + [cpu_total]
    cpu = {name: end - at for (name, _), at, end in zip(marks, cpu_marks, cpu_ends)}
    if marks and marks[0][0] == "start":
        cpu["start"] = cpu_ends[0]
    return {"wall_s": wall, "first_stage_s": marks[0][1], "stages_s": stages, "peak_rss_mb": rss.peak,
            "peak_pss_mb": rss.peak_pss, "stage_rss_mb": rss.by_stage, "cpu_s": cpu, "cpu_total_s": cpu_total}


def help_s() -> float:
    t0 = time.perf_counter()
    subprocess.run([*CLI, "--help"], cwd=ROOT, capture_output=True, check=True)
    return time.perf_counter() - t0


def bench(seconds: float, runs: int, rss_only: bool) -> dict:
    video = make_input(seconds)
    results = []
    with tempfile.TemporaryDirectory() as home:
        out = Path(home, "out.mp4")
        for _ in range(runs):
            results.append(run_cli(video, out, home, pss=rss_only))
        if rss_only:
            return {"input_s": seconds, "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
                    "peak_pss_mb": max(r["peak_pss_mb"] for r in results),
                    "runs_rss_mb": [r["peak_rss_mb"] for r in results],
                    "stage_rss_mb": {k: max(r["stage_rss_mb"].get(k, 0.0) for r in results)
                                     for k in STAGES.values()}}
        aacs = [aac_s(out) for _ in range(runs)]
    decodes = [decode_s(video) for _ in range(runs)]
    aac, aac_cpu = statistics.median(a for a, _ in aacs), statistics.median(c for _, c in aacs)
    decode, decode_cpu = statistics.median(d for d, _ in decodes), statistics.median(c for _, c in decodes)
    limit = decode if seconds <= 120 else decode + aac
    limit_cpu = decode_cpu if seconds <= 120 else decode_cpu + aac_cpu
    keys = ("start", "analyse", "compose", "mix", "summary")
    med = {k: statistics.median(r["stages_s"].get(k, 0.0) for r in results) for k in keys}
    cpu = {k: statistics.median(r["cpu_s"].get(k, 0.0) for r in results) for k in keys}
    cpu_total = statistics.median(r["cpu_total_s"] for r in results)
    cores = os.cpu_count() or 1
    wall = statistics.median(r["wall_s"] for r in results)
    return {"input_s": seconds, "video": video.name, "decode_s": decode, "aac_s": aac, "limit_s": limit,
            "limit_cpu_s": limit_cpu, "cpu_s": cpu, "cpu_total_s": cpu_total, "cores": cores,
            "floor_s": cpu_total / cores, "floor_ratio": cpu_total / cores / limit,
            "stages_s": med, "e2e_s": wall, "ratio": wall / limit,
            "first_stage_s": statistics.median(r["first_stage_s"] for r in results),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results), "runs": [r["wall_s"] for r in results]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=float, nargs="+", default=[60, 900], help="input durations, seconds")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rss-only", action="store_true", help="peak RSS only (no reference passes)")
    args = ap.parse_args()
    as_installed(ROOT)
    helps = sorted(help_s() for _ in range(3))
    rows = [bench(s, args.runs, args.rss_only) for s in args.inputs]
    print(f"--help: {statistics.median(helps):.2f} s (median of 3)")
    if args.rss_only:
        for r in rows:
            print(f"{r['input_s']:>6.0f} s input: peak of the process tree: RSS {r['peak_rss_mb']:.0f} MB, "
                  f"PSS {r['peak_pss_mb']:.0f} MB; runs {', '.join(f'{x:.0f}' for x in r['runs_rss_mb'])} MB; "
                  "by stage " + ", ".join(f"{k} {v:.0f}" for k, v in r["stage_rss_mb"].items()))
    else:
        print(f"{'input':>7} {'decode':>7} {'aac':>6} {'limit':>6} {'start':>6} {'analyse':>8} {'compose':>8} "
              f"{'mix':>6} {'exit':>5} {'e2e':>7} {'ratio':>6} {'1st stage':>9} {'peak RSS':>9}")
        for r in rows:
            st = r["stages_s"]
            print(f"{r['input_s']:>6.0f}s {r['decode_s']:>6.2f}s {r['aac_s']:>5.2f}s {r['limit_s']:>5.2f}s "
                  f"{st['start']:>5.2f}s {st['analyse']:>7.2f}s {st['compose']:>7.2f}s {st['mix']:>5.2f}s "
                  f"{st['summary']:>4.2f}s {r['e2e_s']:>6.2f}s {r['ratio']:>5.2f}x {r['first_stage_s']:>8.2f}s "
                  f"{r['peak_rss_mb']:>7.0f}MB")
        for r in rows:
            cpu = r["cpu_s"]
            print(f"{r['input_s']:>6.0f}s CPU seconds: start {cpu['start']:.2f}, analyse {cpu['analyse']:.2f}, "
                  f"compose {cpu['compose']:.2f}, mix {cpu['mix']:.2f}, exit {cpu['summary']:.2f}; "
                  f"in all {r['cpu_total_s']:.2f} (the limit's passes {r['limit_cpu_s']:.2f}); floor on "
                  f"{r['cores']} cores {r['floor_s']:.2f} s = {r['floor_ratio']:.2f}x the limit")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "pipeline_speed.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
