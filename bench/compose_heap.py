"""Benchmark (issue 18): the composer's CPU and peak RSS with glibc's own mmap threshold and with it
fixed (Settings.mmap_threshold_kb; musicvid_core/heap.py says why the default is off).

    python bench/compose_heap.py                       # 24 segments of 16 s, two threads, 0 and 256 KiB
    python bench/compose_heap.py --thresholds 0 256 4096 --segments 12

Each threshold runs in a fresh process (the threshold is per process and glibc's sliding one keeps its
history): a warm-up segment (the SoundFont subset parsed), then ``--segments`` segments of a
"warm acoustic" plan rendered on two threads as the local runner's Map does, each followed by
heap.trim() as the Map step does. Prints CPU seconds, wall seconds and the process's peak RSS
(VmHWM). A benchmark: prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

CHILD = """
import sys, time
from concurrent.futures import ThreadPoolExecutor
from musicvid_core import heap
from musicvid_core.domain.plan import Plan, Segment
from musicvid_core.settings import Settings
from musicvid_core.stages.compose.procedural import ProceduralGenerator

threshold, count = int(sys.argv[1]), int(sys.argv[2])
heap.set_mmap_threshold(threshold)
segs = [Segment(index=i, start=16.0 * i, end=16.0 * (i + 1), prompt="warm acoustic", style="acoustic",
                mood="warm", bpm=97, key="C major", energy=0.35 + 0.5 * i / count, accents=[16.0 * i + 8.0])
        for i in range(count + 1)]
plan = Plan(duration=16.0 * (count + 1), prompt="warm acoustic", segments=segs)
gen = ProceduralGenerator(Settings())
gen.generate(plan, 0, 0)

def one(i):
    gen.generate(plan, i, 5)
    heap.trim()

cpu, wall = time.process_time(), time.perf_counter()
with ThreadPoolExecutor(2) as pool:
    list(pool.map(one, range(1, count + 1)))
hwm = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) // 1024
print(f"{time.process_time() - cpu:.2f} {time.perf_counter() - wall:.2f} {hwm}")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--thresholds", type=int, nargs="+", default=[0, 256], help="KiB; 0: glibc's own")
    ap.add_argument("--segments", type=int, default=24)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    print(f"{'threshold':>10} {'CPU s':>7} {'wall s':>7} {'peak RSS':>9}")
    for _ in range(args.runs):
        for kb in args.thresholds:
            out = subprocess.run([sys.executable, "-c", CHILD, str(kb), str(args.segments)], capture_output=True,
                                 text=True, check=True).stdout.split()
            print(f"{kb:>7} KiB {float(out[0]):>7.2f} {float(out[1]):>7.2f} {int(out[2]):>6} MB")


if __name__ == "__main__":
    main()
