"""Preview vs full render, end to end through the real pipeline (issue 4's preview aim: <= 25 %).

    python bench/preview.py            # 60 s 1280x720 30 fps (x264 veryfast) input, 2 rounds

Each round, on one new job: a full `run` (the reference), a full `regenerate` with a new prompt,
a `regenerate --preview` (the switch: its proxy is encoded then), and one more preview regenerate
(the iteration --preview is for). And on a second new job: a first `run --preview` (which
analyses and encodes the proxy in the same decode). Prints each wall time (submit to COMPLETED, stage split) and
the ratios of the medians to the full run. A benchmark: it asserts nothing.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
PROMPTS = ("warm acoustic, slow build", "dark synth pulse", "bright upbeat pop", "sad solo piano")


def main() -> None:
    from musicvid_core.bootstrap import build_services
    from musicvid_core.lab.samples import make_long_video
    from musicvid_core.settings import Settings
    from musicvid_core.workflow import submit as service

    video = OUT / "bench_60s_720p30_veryfast.mp4"
    if not video.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        make_long_video(video, 60)
    with tempfile.TemporaryDirectory() as home:
        os.environ["MUSICVID_HOME"] = home
        services = build_services(Settings())
        services.warm()
        times: dict[str, list[float]] = {}

        def timed(name: str, job) -> None:
            stages: dict[str, float] = {}

            def on(ev: dict) -> None:
                if ev.get("state") in ("Analyze", "GenerateAudio", "Mix"):
                    now = time.perf_counter()
                    if ev["type"] == "StateEntered":
                        stages[ev["state"]] = now
                    elif ev["type"] == "StateExited":
                        stages[ev["state"]] = now - stages[ev["state"]]

            t0 = time.perf_counter()
            job = service.run(services, job, on)
            wall = time.perf_counter() - t0
            times.setdefault(name, []).append(wall)
            split = " ".join(f"{k} {v:.2f}s" for k, v in stages.items())
            print(f"{name:<20} {wall:6.2f}s  {job.status.value}  {split}", flush=True)

        for round_ in range(2):
            uri = service.upload_file(services, video, "bench")
            job = service.submit_new(services, uri, PROMPTS[0], "bench")
            timed("full run", job)
            timed("full regenerate", service.submit_regenerate(services, job.job_id, PROMPTS[1], "bench"))
            # the first preview of a job rendered in full encodes the proxy (one decode of its own)
            timed("switch to preview", service.submit_regenerate(services, job.job_id, PROMPTS[2], "bench",
                                                                 options={"preview": True}))
            # iterating: proxy and features exist, the picture is copied (what --preview is for)
            timed("preview iteration", service.submit_regenerate(services, job.job_id, PROMPTS[3 - round_],
                                                                 "bench"))
            uri = service.upload_file(services, video, "bench")
            timed("first preview run", service.submit_new(services, uri, PROMPTS[0], "bench",
                                                          options={"preview": True}))
        ref = statistics.median(times["full run"])
        for name, values in times.items():
            med = statistics.median(values)
            print(f"median {name:<20} {med:6.2f}s  = {med / ref:4.0%} of the full run")


if __name__ == "__main__":
    main()
