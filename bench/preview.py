"""Preview vs full render, end to end through the real pipeline (issue 4's preview aim: <= 25 %).

    python bench/preview.py            # 60 s 1280x720 30 fps (x264 veryfast) input, 2 runs each

Prints each run's wall time (upload to COMPLETED) and the stage split, then the ratio of medians.
A benchmark: it asserts nothing.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def main() -> None:
    from musicvid_core import service
    from musicvid_core.config import Settings, build_services
    from musicvid_core.samples import make_long_video

    video = OUT / "bench_60s_720p30_veryfast.mp4"
    if not video.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        make_long_video(video, 60)
    with tempfile.TemporaryDirectory() as home:
        os.environ["MUSICVID_HOME"] = home
        services = build_services(Settings())
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(2):
            for preview in (False, True):
                stages: dict[str, float] = {}

                def on(ev: dict, stages=stages) -> None:
                    if ev.get("state") in ("Analyze", "GenerateAudio", "Mix"):
                        now = time.perf_counter()
                        if ev["type"] == "StateEntered":
                            stages[ev["state"]] = now
                        elif ev["type"] == "StateExited":
                            stages[ev["state"]] = now - stages[ev["state"]]

                t0 = time.perf_counter()
                uri = service.upload_file(services, video, "bench")
                job = service.submit_new(services, uri, "warm acoustic", "bench", options={"preview": preview})
                job = service.run(services, job, on)
                wall = time.perf_counter() - t0
                times[preview].append(wall)
                split = " ".join(f"{k} {v:.2f}s" for k, v in stages.items())
                print(f"{'preview' if preview else 'full':<8} {wall:6.2f}s  {job.status.value}  {split}")
        full, prev = statistics.median(times[False]), statistics.median(times[True])
        print(f"median full {full:.2f}s, preview {prev:.2f}s, preview/full = {prev / full:.0%}")


if __name__ == "__main__":
    main()
