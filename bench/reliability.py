"""Reliability scenarios, run many times, counted: the figures of docs/RELIABILITY.md.

    python bench/reliability.py kill [--runs 3]        # SIGKILL in every stage, then the next process
    python bench/reliability.py hostile [--runs 1]     # the hostile media corpus through the pipeline
    python bench/reliability.py long [--minutes 30]    # a very long input: time and peak memory
    python bench/reliability.py load [--jobs 50]       # 50 concurrent jobs through `musicvid serve`
    python bench/reliability.py all

Each scenario prints one Markdown table row: runs, completed, failed with a reason, lost (the job
or its input gone), stuck (SCHEDULED/PROCESSING after the dust settled). A benchmark: it asserts
nothing; the tests (tests/test_recovery.py, test_hostile_media.py, test_load.py) assert.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))


def _row(scenario: str, runs: int, counts: Counter, command: str, note: str = "") -> dict:
    row = {"scenario": scenario, "runs": runs, "completed": counts["COMPLETED"],
           "failed_with_reason": counts["FAILED"], "lost": counts["lost"], "stuck": counts["stuck"],
           "command": command, "note": note}
    print(f"| {scenario} | {runs} | {row['completed']} | {row['failed_with_reason']} | {row['lost']} | "
          f"{row['stuck']} | `{command}` | {note} |", flush=True)
    return row


def _outcome(services, job_id: str) -> str:
    from musicvid_core.domain import Status
    from musicvid_core.domain.errors import NotFound

    try:
        job = services.jobs.get(job_id)
    except NotFound:
        return "lost"
    if not services.objects.exists(services.objects.key_from_uri(job.s3_url)):
        return "lost"
    if job.status in (Status.SCHEDULED, Status.PROCESSING):
        return "stuck"
    if job.status == Status.FAILED and not (job.error and job.error.message):
        return "stuck"  # a failure without a reason counts against us too
    return job.status.value


def kill(runs: int) -> list[dict]:
    from musicvid_core.bootstrap import build_services
    from musicvid_core.lab.samples import make_video
    from musicvid_core.settings import Settings
    from tests.crash_child import STAGES

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "MUSICVID_HOME": str(tmp / "home"), "MUSICVID_USER": "bench"}
        os.environ.update(env)
        video = make_video(tmp / "in.mp4", (2, 2), size=(320, 180), fps=25, audio="tone").path
        services = build_services(Settings())
        for stage in STAGES:
            counts: Counter = Counter()
            for i in range(runs):
                marker = tmp / f"marker-{stage}-{i}"
                child = subprocess.Popen([sys.executable, str(ROOT / "tests" / "crash_child.py"), stage, str(marker),
                                          "run", str(video), "-p", "calm piano", "--quiet"], env=env,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                while not marker.exists() and child.poll() is None:
                    time.sleep(0.02)
                job_id = next(j.job_id for j in services.jobs.unfinished())
                child.send_signal(signal.SIGKILL)
                child.wait()
                subprocess.run([sys.executable, "-m", "musicvid_core.cli", "jobs", "--limit", "1"], env=env,
                               capture_output=True, timeout=120)
                counts[_outcome(services, job_id)] += 1
            rows.append(_row(f"SIGKILL during {stage}, then `musicvid jobs`", runs, counts,
                             f"python bench/reliability.py kill --runs {runs}"))
        # Unannounced: a plain `musicvid run` killed at a random moment (often inside an ffmpeg run).
        rng = random.Random(0)
        counts = Counter()
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "musicvid_core.cli", "run", str(video), "-p", "calm", "--quiet"], env=env,
                       capture_output=True, timeout=300)
        whole = time.perf_counter() - t0
        for _ in range(runs * 3):
            before = {j.job_id for j in services.jobs.unfinished()}
            child = subprocess.Popen([sys.executable, "-m", "musicvid_core.cli", "run", str(video), "-p", "calm",
                                      "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.5, whole))
            child.send_signal(signal.SIGKILL)
            child.wait()
            subprocess.run([sys.executable, "-m", "musicvid_core.cli", "jobs", "--limit", "1"], env=env,
                           capture_output=True, timeout=120)
            newest, _ = services.jobs.list_for_user("bench", limit=1)
            if newest and newest[0].job_id not in before:
                counts[_outcome(services, newest[0].job_id)] += 1
            else:
                counts["not started"] += 1
        rows.append(_row(f"SIGKILL at a random moment of a {whole:.0f} s `musicvid run`", runs * 3, counts,
                         f"python bench/reliability.py kill --runs {runs}",
                         f"{counts['not started']} killed before submitting" if counts["not started"] else ""))
    return rows


def hostile(runs: int) -> list[dict]:
    from musicvid_core.bootstrap import build_services
    from musicvid_core.lab.samples import HOSTILE_KINDS, make_hostile
    from musicvid_core.settings import Settings
    from musicvid_core.workflow import submit as service

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MUSICVID_HOME"] = str(Path(tmp) / "home")
        services = build_services(Settings())
        for kind, expected in HOSTILE_KINDS.items():
            path = make_hostile(kind, Path(tmp) / "corpus")
            counts: Counter = Counter()
            reason = ""
            for _ in range(runs):
                uri = service.upload_file(services, path, "bench")
                job = service.run(services, service.submit_new(services, uri, "calm piano", "bench"))
                counts[_outcome(services, job.job_id)] += 1
                reason = job.error.message if job.error else "scored"
            rows.append(_row(f"hostile media: {kind} (expected: {expected})", runs, counts,
                             f"python bench/reliability.py hostile --runs {runs}", reason))
    return rows


def long(minutes: float) -> list[dict]:
    from musicvid_core.bootstrap import build_services
    from musicvid_core.media import run_ffmpeg
    from musicvid_core.settings import Settings
    from musicvid_core.workflow import submit as service

    OUT.mkdir(parents=True, exist_ok=True)
    video = OUT / f"long_{minutes:g}min_160x90.mp4"
    if not video.exists():
        # cheap to make: a small picture at 5 fps, a sine bed, x264 ultrafast
        run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=5", "-f", "lavfi", "-i",
                    "sine=f=220:r=48000", "-t", f"{minutes * 60:.0f}", "-c:v", "libx264", "-preset", "ultrafast",
                    "-g", "50", "-c:a", "aac", "-b:a", "64k", str(video)], what="long sample", timeout=3600)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MUSICVID_HOME"] = str(Path(tmp) / "home")
        rss_log = Path(tmp) / "ffmpeg_rss.log"
        if Path("/usr/bin/time").exists():  # each ffmpeg's own peak RSS (as bench/pipeline.py does)
            from musicvid_core.media import ffmpeg_exe

            wrapper = Path(tmp) / "ffmpeg"
            wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/time -f %M -a -o "{rss_log}" "{ffmpeg_exe()}" "$@"\n')
            wrapper.chmod(0o755)
            os.environ["MUSICVID_FFMPEG"] = str(wrapper)
            ffmpeg_exe.cache_clear()
        services = build_services(Settings())
        t0 = time.perf_counter()
        uri = service.upload_file(services, video, "bench")
        job = service.run(services, service.submit_new(services, uri, "calm piano", "bench"))
        wall = time.perf_counter() - t0
        self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peaks = [int(v) for v in rss_log.read_text().split() if v.isdigit()] if rss_log.exists() else []
        child_mb = max(peaks, default=0) / 1024
        counts = Counter({_outcome(services, job.job_id): 1})
        note = (f"{wall:.0f} s wall ({minutes * 60 / wall:.1f}x real time); peak RSS python {self_mb:.0f} MB, "
                f"largest ffmpeg {child_mb:.0f} MB; {job.error.message if job.error else 'output scored'}")
    return [_row(f"very long input ({minutes:g} min)", 1, counts,
                 f"python bench/reliability.py long --minutes {minutes:g}", note)]


def load(jobs: int) -> list[dict]:
    from tests.load import run_load

    result = run_load(jobs)
    counts = Counter(result["outcomes"])
    note = (f"{result['wall_s']:.0f} s for all; status reads p50 {result['read_p50_ms']:.0f} ms, "
            f"p99 {result['read_p99_ms']:.0f} ms over {result['reads']} reads; workers {result['workers']}; "
            f"'database is locked' errors {result['locked_errors']}")
    return [_row(f"{jobs} concurrent jobs through `musicvid serve`", jobs, counts,
                 f"python bench/reliability.py load --jobs {jobs}", note)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=["kill", "hostile", "long", "load", "all"])
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--jobs", type=int, default=50)
    args = parser.parse_args()
    print("| scenario | runs | completed | failed with reason | lost | stuck | reproduce | note |")
    print("|---|---|---|---|---|---|---|---|")
    rows: list[dict] = []
    if args.scenario in ("kill", "all"):
        rows += kill(args.runs or 3)
    if args.scenario in ("hostile", "all"):
        rows += hostile(args.runs or 1)
    if args.scenario in ("load", "all"):
        rows += load(args.jobs)
    if args.scenario in ("long", "all"):
        rows += long(args.minutes)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"reliability_{args.scenario}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
