"""Benchmark (issue 18): `musicvid run`'s launch to its first progress line, and `musicvid --help`,
for one or more source trees launched alternately (the machine is shared: compare in the same minute).

    python bench/first_stage.py                                   # this checkout, 7 runs each
    git archive HEAD musicvid_core | tar -x -C /tmp/before        # a tree to compare against
    python -m compileall -q /tmp/before/musicvid_core             # as installed: bytecode cached
    python bench/first_stage.py --trees before=/tmp/before now=. --runs 7

Each run is a fresh process launched as the console script does (``from musicvid_core.cli import
main``), its tree first on PYTHONPATH, with a fresh MUSICVID_HOME copied from one a first command
made (an existing store and job database, as a user has). The run is killed at its first stage line
(``start …``, the time measured), so nothing else runs meanwhile. Each tree's ``musicvid_core`` is
byte-compiled first, as ``pip install`` does: a source tree under PYTHONDONTWRITEBYTECODE (set on
the project's build machines) otherwise compiles every module it imports again in every launch
(measured: 0.312 s median with 46 of 139 modules cached, 0.274 s with all). Prints each tree's
median and runs, with the load average before and after. A benchmark: it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline_speed import PROMPT, ROOT, as_installed, make_input

LAUNCH = "import sys; from musicvid_core.cli import main; sys.argv[0] = 'musicvid'; sys.exit(main())"


def first_stage_s(tree: Path, video: Path, template: Path) -> float:
    """Seconds from launch to the first progress line of one ``musicvid run``, killed there."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp, "home")
        shutil.copytree(template, home)
        env = {**os.environ, "MUSICVID_HOME": str(home), "PYTHONPATH": str(tree), "COLUMNS": "200"}
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", LAUNCH, "run", str(video), "-p", PROMPT, "-o",
                                 str(Path(tmp, "out.mp4"))], env=env, stderr=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, text=True, start_new_session=True)
        at = None
        for line in proc.stderr:
            if line.rstrip().endswith("start …"):
                at = time.perf_counter() - t0
                break
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its ffmpeg children
        proc.wait()
    if at is None:
        raise SystemExit(f"no first stage line from the tree {tree}")
    return at


def help_s(tree: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", LAUNCH, "--help"], env={**os.environ, "PYTHONPATH": str(tree)},
                   capture_output=True, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", nargs="+", default=[f"now={ROOT}"], help="NAME=PATH: a folder holding musicvid_core")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--input", type=float, default=60, help="bench input, seconds (60: 720p, 83 MB)")
    args = ap.parse_args()
    trees = {name: Path(path).resolve() for name, path in (t.split("=", 1) for t in args.trees)}
    video = make_input(args.input)
    for tree in trees.values():
        as_installed(tree)
    firsts: dict[str, list[float]] = {name: [] for name in trees}
    helps: dict[str, list[float]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as template:
        subprocess.run([sys.executable, "-c", LAUNCH, "jobs"], capture_output=True,
                       env={**os.environ, "MUSICVID_HOME": template, "PYTHONPATH": str(next(iter(trees.values())))})
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for _ in range(args.runs):
            for name, tree in trees.items():
                firsts[name].append(first_stage_s(tree, video, Path(template)))
                helps[name].append(help_s(tree))
        print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name in trees:
        for what, values in (("first stage", firsts[name]), ("--help", helps[name])):
            print(f"{name:>10} {what:>11}: median {statistics.median(values):.3f} s  "
                  f"({' '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
