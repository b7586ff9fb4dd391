"""Mixing figures on generated videos (issue 4's targets), printed, not asserted.

    python bench/mixing.py

For each case (speech via espeak-ng, music in the source, a steady tone, digital silence) and each
loudness preset, the real pipeline runs on a 12 s 640x360 video and the script prints, measured on
the output and the mixer's stems:
- integrated loudness vs the preset's target (goal: within +-0.5 LU) and true peak (goal: <= limit);
- speech-to-music difference during speech (goal: >= 10 LU) and the music's recovery >= 1 s after
  speech ends (goal: within 3 LU of its unducked level);
- whether every figure is finite (no NaN/inf on silent input) and the video packets are unchanged.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from pathlib import Path

CASES = ("speech", "music", "tone", "silence")
PRESETS = ("web", "apple", "broadcast")


def main() -> None:
    from musicvid_core.bootstrap import build_services
    from musicvid_core.lab.samples import espeak_available, make_video
    from musicvid_core.metrics import measure_loudness, video_packet_hashes
    from musicvid_core.settings import Settings
    from musicvid_core.stages.mix.presets import LOUDNESS_PRESETS
    from musicvid_core.workflow import submit as service

    if not espeak_available():
        print("note: espeak-ng is not installed: the speech case falls back to a tone", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MUSICVID_HOME"] = str(Path(tmp) / "home")
        services = build_services(Settings())
        print(f"{'case':<8} {'preset':<9} {'LUFS':>6} {'target':>6} {'err':>5} {'TP':>6} {'speech-music':>12} "
              f"{'recovery':>8} {'finite':>6} {'video':>6}")
        for case in CASES:
            sample = make_video(Path(tmp) / f"{case}.mp4", (4, 4, 4), size=(640, 360), fps=30, audio=case)
            for preset in PRESETS:
                uri = service.upload_file(services, sample.path, "bench")
                job = service.submit_new(services, uri, "calm ambient piano", "bench",
                                         options={"loudness": preset})
                job = service.run(services, job)
                if job.error:
                    print(f"{case:<8} {preset:<9} FAILED {job.error.type}: {job.error.message}")
                    continue
                out = service.output_path(services, job)
                loud = measure_loudness(out)
                target, _ = LOUDNESS_PRESETS[preset]
                m = job.metrics
                sm = m.get("speech_music", {}) or {}
                numbers = [v for v in (loud.integrated_lufs, loud.true_peak_dbtp, loud.lra_lu,
                                       *[x for x in sm.values() if isinstance(x, float)]) if v is not None]
                finite = all(math.isfinite(v) for v in numbers)
                same = video_packet_hashes(out) == video_packet_hashes(sample.path)
                diff = sm.get("speech_music_lu")
                rec = sm.get("recovery_lu")
                print(f"{case:<8} {preset:<9} {loud.integrated_lufs:>6.1f} {target:>6.1f} "
                      f"{loud.integrated_lufs - target:>+5.1f} {loud.true_peak_dbtp:>6.1f} "
                      f"{(f'{diff:.1f} LU' if diff is not None else '-'):>12} "
                      f"{(f'{rec:.1f} LU' if rec is not None else '-'):>8} {str(finite):>6} {str(same):>6}")


if __name__ == "__main__":
    main()
