"""Make the sample videos offline (ffmpeg lavfi, espeak-ng where installed) into data/samples/.

    python data/make_samples.py

Each has known scene-cut times (printed, and written to data/samples/truth.json).
"""

from __future__ import annotations

import json
from pathlib import Path

from musicvid_core.lab.samples import espeak_available, make_video

OUT = Path(__file__).resolve().parent / "samples"

SAMPLES = {
    "cuts_tone.mp4": dict(scene_durations=(4, 3, 5, 4, 4), size=(1280, 720), fps=30, audio="tone"),
    "speech.mp4": dict(scene_durations=(5, 5, 5), size=(640, 360), fps=25, audio="speech"),
    "no_audio.mp4": dict(scene_durations=(3, 3, 4), size=(640, 360), fps=24, audio="none"),
    "surround51.mp4": dict(scene_durations=(4, 4), size=(640, 360), fps=30, audio="5.1"),
    "music_in_source.mp4": dict(scene_durations=(4, 4, 4), size=(640, 360), fps=30, audio="music"),
}


def main() -> None:
    truth = {}
    if not espeak_available():
        print("note: espeak-ng not installed; speech.mp4 gets a tone instead of speech")
    for name, kw in SAMPLES.items():
        s = make_video(OUT / name, **kw)
        truth[name] = {"cuts": s.cuts, "duration": s.duration, "speech": s.speech}
        print(f"{s.path}  duration {s.duration:.2f} s  cuts {s.cuts}")
    (OUT / "truth.json").write_text(json.dumps(truth, indent=1))


if __name__ == "__main__":
    main()
