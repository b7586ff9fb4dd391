"""Unattended batch: N generated clips plus one input that is not a video, through `run_batch`
with its progress display. Prints what completed and failed, and speed against the reference of
the same run (seconds of video scored, i.e. real time).

    python bench/batch.py [N] [SECONDS_PER_CLIP]      # default 10 clips of 8 s

Inputs and outputs go to bench/out/batch/ (a fresh MUSICVID_HOME there, so no jobs of yours mix in).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out" / "batch"


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 8.0
    shutil.rmtree(OUT, ignore_errors=True)
    os.environ["MUSICVID_HOME"] = str(OUT / "home")
    from musicvid_core.lab import batch, experiments

    t0 = time.monotonic()
    manifest = batch.make_sample_batch(OUT / "in", count, broken=1, seconds=seconds)
    made = time.monotonic() - t0
    items = batch.load_manifest(manifest)
    result = batch.run_batch(experiments.services(), items, OUT / "run", progress=True)
    ok = [r for r in result.rows if r["status"] == "COMPLETED"]
    video_s = sum(r["duration_s"] for r in ok)
    job_s = sum(r["elapsed_s"] for r in ok)
    measure_s = sum(r.get("measure_s") or 0.0 for r in ok)
    print(f"inputs                 {len(result.rows)} ({count} clips of {seconds:g} s + 1 broken; made in {made:.1f} s)")
    print(f"completed / failed     {result.completed} / {result.failed}")
    for r in result.rows:
        if r["status"] != "COMPLETED":
            print(f"  failed: {r['label']}: {r['error_type']} at {r['stage']}: {r['error']}")
    print(f"batch wall time        {result.seconds:.1f} s for {video_s:.0f} s of video "
          f"= {video_s / result.seconds:.2f}x real time")
    print(f"jobs (upload..done)    {job_s:.1f} s = {video_s / job_s:.2f}x real time, {job_s / len(ok):.2f} s per clip")
    print(f"music metrics          {measure_s:.1f} s ({measure_s / result.seconds:.0%} of the batch)")
    lufs = [r["integrated_lufs"] for r in ok]
    print(f"integrated loudness    {min(lufs):.1f} .. {max(lufs):.1f} LUFS (target {ok[0]['target_lufs']:g})")
    hits = [r["hit_rate"] for r in ok if r.get("hit_rate") is not None]
    if hits:
        print(f"cut-beat hit rate      mean {sum(hits) / len(hits):.2f} over {len(hits)} clips")
    print(f"table                  {result.table}\nfigure                 {result.figure}")


if __name__ == "__main__":
    main()
