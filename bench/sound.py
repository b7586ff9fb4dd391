"""Benchmark: how the procedural music sounds, per style, beside the real recordings' figures.

    python bench/sound.py                              # 10 styles, 30 s each, the default SoundFont
    python bench/sound.py --soundfont /usr/share/sounds/sf2/FluidR3_GM.sf2 --styles lofi jazz
    python bench/sound.py --json before.json --wav-dir /tmp/sound   # keep the figures and the stems

A generated 30 s video with irregular cuts (bench/music_fit.py's ``irregular``: scenes of 1.5-5 s) is
analysed once; for each style a plain one-line prompt is planned by the rule planner, every segment
rendered by the procedural generator and the segments assembled into the music stem (before ducking
and fades), which musicvid_core.metrics.sound measures: balance against the references' median curve
(per region, dB; negative = less than the references), crest factor, loudness range, stereo width,
L/R correlation, mono fold-down loss, section contrast (8 s windows, as for the references) and the
repetition index (bars from the plan's own beat grid). The last rows are the 28 reference tracks'
median and 10th-90th percentiles (musicvid_core.metrics.sound_reference). Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from music_fit import scenes

from musicvid_core.domain.styles import STYLES
from musicvid_core.lab.samples import make_video
from musicvid_core.media import write_float_wav
from musicvid_core.metrics import music as mm
from musicvid_core.metrics import sound
from musicvid_core.settings import Settings
from musicvid_core.stages.analyse.features import analyze_video
from musicvid_core.stages.analyse.probe import probe
from musicvid_core.stages.compose.procedural import ProceduralGenerator
from musicvid_core.stages.plan.planner import RulePlanner

# Plain one-line prompts, as a user types them (issue 16: each must sound like its genre).
PROMPTS = {"cinematic": "epic cinematic trailer build", "lofi": "chill lo-fi hip hop",
           "electronic": "upbeat house music", "ambient": "calm ambient soundscape",
           "rock": "energetic rock", "orchestral": "uplifting orchestral", "jazz": "swinging jazz",
           "acoustic": "warm acoustic folk", "corporate": "upbeat corporate", "piano": "gentle solo piano"}
REGIONS = tuple(sound.REGIONS)
COLUMNS = ("crest_db", "lra_lu", "width", "correlation", "mono_loss_db", "contrast_db", "repetition")


def measure_style(gen: ProceduralGenerator, planner: RulePlanner, features, style: str, seed: int,
                  wav_dir: Path | None) -> tuple[dict, float, float]:
    """The style's sound report, the seconds rendered and the CPU seconds the render took."""
    plan = planner.plan(features, PROMPTS[style], seed)
    c0 = time.process_time()
    clips = [gen.generate(plan, i, seed) for i in range(len(plan.segments))]
    cpu = time.process_time() - c0
    music = mm.assemble_music(clips, plan, gen.sample_rate)
    if wav_dir is not None:
        write_float_wav(wav_dir / f"{style}.wav", music, gen.sample_rate)
    report = sound.sound_report(music, gen.sample_rate, beats_s=sound.plan_beats(plan))
    report["styles_planned"] = sorted({s.style for s in plan.segments})
    return report, plan.duration, cpu


def _row(name: str, regions: dict, figures: dict, rms: str) -> str:
    cells = " ".join(f"{_fmt(regions.get(k)):>8s}" for k in REGIONS)
    return f"{name:11s} {rms:>5s} {cells} " + " ".join(f"{_fmt(figures.get(k)):>7s}" for k in COLUMNS)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.2f}" if isinstance(v, float) and abs(v) < 10 else f"{v}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the generated video, s")
    ap.add_argument("--styles", nargs="*", default=list(STYLES), help="styles to measure")
    ap.add_argument("--seed", type=int, default=1, help="music seed")
    ap.add_argument("--soundfont", type=Path, default=None, help="render with this SoundFont (else the default)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--wav-dir", type=Path, default=None, help="also write each style's music stem here")
    args = ap.parse_args(argv)
    settings = Settings() if args.soundfont is None else Settings(soundfont=args.soundfont)
    gen, planner = ProceduralGenerator(settings), RulePlanner(settings)
    if args.wav_dir:
        args.wav_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mv-sound-") as tmp:
        sample = make_video(Path(tmp) / "irregular.mp4", scenes("irregular", args.seconds), size=(160, 90),
                            fps=25, audio="none")
        features = analyze_video(sample.path, probe(sample.path))
    print(f"SoundFont {gen.soundfont.name}; balance: region level minus the references' median, dB "
          f"(rms: over the 28 third-octave bands)")
    print(f"{'style':11s} {'rms':>5s} " + " ".join(f"{k:>8s}" for k in REGIONS) + " "
          + " ".join(f"{k.split('_')[0]:>7s}" for k in COLUMNS))
    out = {"soundfont": gen.soundfont.name, "styles": {}}
    audio_s = cpu_s = 0.0
    for style in args.styles:
        report, seconds, cpu = measure_style(gen, planner, features, style, args.seed, args.wav_dir)
        audio_s, cpu_s = audio_s + seconds, cpu_s + cpu
        out["styles"][style] = report
        print(_row(style, report["balance_vs_reference_db"], report, f"{report['balance_rms_db']:.1f}"), flush=True)
    ref = sound.REFERENCE
    for q in ("median", "p10", "p90"):
        regions = {k: ref["regions_db"][k][q] - ref["regions_db"][k]["median"] for k in REGIONS}
        print(_row(f"refs {q}", regions, {k: ref["figures"][k][q] for k in COLUMNS}, "-"))
    print(f"(render: {audio_s / cpu_s:.0f}x real time per CPU second, one thread)")
    out["render_x_cpu"] = round(audio_s / cpu_s, 1)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
