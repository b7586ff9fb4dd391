"""Benchmark: each stage's wall time, end to end, peak RSS, and the ratio of end to end to one
plain decode pass (`ffmpeg -i IN -f null -`) measured in the same run.

    python bench/pipeline.py                 # 60 s and 10 min inputs, 1280x720, 30 fps
    python bench/pipeline.py --durations 60  # just the 60 s one

Goals (issue 2): end to end <= 2x one decode pass; peak RSS <= 600 MB and not growing with duration.
Inputs are generated once into bench/out/ (git-ignored). This is a benchmark, not a test: it prints
figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def _child(video: str) -> None:
    """Run the pipeline in this (fresh) process and print its figures as JSON."""
    from musicvid_core.bootstrap import build_services
    from musicvid_core.settings import Settings
    from musicvid_core.workflow import submit as service

    services = build_services(Settings())
    stages: dict[str, float] = {}
    entered: dict[str, float] = {}

    def on_event(ev: dict) -> None:
        state = ev.get("state")
        if state in ("Start", "Analyze", "GenerateAudio", "Mix", "Summarize"):
            if ev["type"] == "StateEntered":
                entered[state] = time.perf_counter()
            elif ev["type"] == "StateExited":
                stages[state] = time.perf_counter() - entered[state]

    t0 = time.perf_counter()
    uri = service.upload_file(services, video, "bench")
    job = service.submit_new(services, uri, "warm acoustic, slow build, big finish", "bench")
    upload_s = time.perf_counter() - t0
    job = service.run(services, job, on_event)
    total = time.perf_counter() - t0
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Each ffmpeg ran under the /usr/bin/time wrapper (see bench_one), which logged its own peak
    # in KiB. (RUSAGE_CHILDREN is no use here: a child's high-water mark survives fork + exec, so
    # it reports the Python parent's size.)
    rss_log = os.environ.get("BENCH_FFMPEG_RSS_LOG")
    peaks = [int(x) for x in Path(rss_log).read_text().split() if x.isdigit()] if rss_log else []
    child_rss = max(peaks) / 1024 if peaks else float("nan")
    print(json.dumps({"status": job.status.value, "error": job.error and job.error.model_dump(),
                      "upload_s": upload_s, "stages_s": stages, "end_to_end_s": total,
                      "peak_rss_python_mb": self_rss, "peak_rss_ffmpeg_mb": child_rss,
                      "segments": len(json.loads(services.objects.get_bytes(
                          services.objects.key_from_uri(job.plan_url)))["segments"]) if job.plan_url else 0,
                      "metrics": job.metrics}))


def _decode_seconds(video: Path) -> float:
    from musicvid_core.media import ffmpeg_exe

    t0 = time.perf_counter()
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(video), "-f", "null",
                    "-"], check=True)
    return time.perf_counter() - t0


def bench_one(seconds: float, preset: str) -> dict:
    from musicvid_core.lab.samples import make_long_video

    OUT.mkdir(parents=True, exist_ok=True)
    video = OUT / f"bench_{int(seconds)}s_720p30_{preset}.mp4"
    if not video.exists():
        print(f"generating {video.name} …", file=sys.stderr)
        make_long_video(video, seconds, size=(1280, 720), fps=30, preset=preset,
                        crf=30 if preset == "ultrafast" else 23)
    decode = min(_decode_seconds(video) for _ in range(2))
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "MUSICVID_HOME": home}
        if Path("/usr/bin/time").exists():  # measure every ffmpeg's own peak RSS
            from musicvid_core.media import ffmpeg_exe

            wrapper, log = Path(home) / "ffmpeg", Path(home) / "ffmpeg_rss.log"
            wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/time -f %M -a -o "{log}" "{ffmpeg_exe()}" "$@"\n')
            wrapper.chmod(0o755)
            env.update(MUSICVID_FFMPEG=str(wrapper), BENCH_FFMPEG_RSS_LOG=str(log))
        proc = subprocess.run([sys.executable, __file__, "--child", str(video)], env=env,
                              capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"pipeline run failed: {proc.stderr[-2000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res.update(input_s=seconds, preset=preset, input_mb=video.stat().st_size / 1e6, decode_s=decode,
               ratio_to_decode=res["end_to_end_s"] / decode)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--durations", type=float, nargs="+", default=[60, 600])
    ap.add_argument("--preset", nargs="+", default=["veryfast"], choices=["ultrafast", "veryfast", "medium"],
                    help="x264 preset of the generated input (veryfast decodes like a phone upload)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child)
        return
    rows = [bench_one(s, p) for p in args.preset for s in args.durations]
    print(f"{'preset':>9} {'input':>7} {'decode':>7} {'start':>6} {'analyze':>8} {'generate':>9} {'mix':>6} "
          f"{'summary':>8} {'e2e':>7} {'ratio':>6} {'rss py':>7} {'rss ff':>7} segs")
    for r in rows:
        st = r["stages_s"]
        print(f"{r['preset']:>9} {r['input_s']:>6.0f}s {r['decode_s']:>6.2f}s {st.get('Start', 0):>5.2f}s "
              f"{st.get('Analyze', 0):>7.2f}s {st.get('GenerateAudio', 0):>8.2f}s {st.get('Mix', 0):>5.2f}s "
              f"{st.get('Summarize', 0):>7.2f}s {r['end_to_end_s']:>6.2f}s {r['ratio_to_decode']:>5.2f}x "
              f"{r['peak_rss_python_mb']:>5.0f}MB {r['peak_rss_ffmpeg_mb']:>5.0f}MB {r['segments']}")
    (OUT / "results.json").write_text(json.dumps(rows, indent=1))
    print(f"(details in {OUT / 'results.json'})")


if __name__ == "__main__":
    main()
