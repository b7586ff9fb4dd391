"""Benchmark: how much faster than real time the procedural generator is, per style and stage.

    python bench/music_render.py                 # 60 s per style, synthesis at 32 kHz, output 48 kHz
    python bench/music_render.py --synth-rate 48000   # synthesis at the output rate (the old way)
    python bench/music_render.py --seconds 30 --energy 0.9

Stages: compose (MIDI), render (the SoundFont stems), mix (production.py's mix, fx.finish, the
resample to the output rate). Prints figures and asserts nothing (a benchmark, not a test). Each
style is warmed up first with a one-second render, so the SoundFont parse and preset calibration
(once per process) are not counted; the cold cost is printed separately. Each stage reports its fastest of ``--repeat`` runs;
the CPU-time column is the figure to trust on a machine shared with other work (the pipeline is
single-threaded, so on an idle machine wall time matches it).
"""

from __future__ import annotations

import argparse
import time

from musicvid_core.domain.plan import Plan, Segment
from musicvid_core.domain.styles import STYLES
from musicvid_core.settings import Settings
from musicvid_core.stages.compose.composer import compose_segment
from musicvid_core.stages.compose.fx import finish
from musicvid_core.stages.compose.mixes import mix_for
from musicvid_core.stages.compose.procedural import KICKS, SYNTH_RATE, _resample
from musicvid_core.stages.compose.production import produce
from musicvid_core.stages.compose.render import find_soundfont, render_stems


def _plan(style: str, seconds: float, energy: float) -> Plan:
    s = STYLES[style]
    seg = Segment(index=0, start=0.0, end=seconds, prompt=style, style=style, mood="neutral",
                  bpm=s.default_bpm, key=f"D {s.default_mode}", energy=energy,
                  accents=[seconds * k / 4 for k in (1, 2, 3)])
    return Plan(duration=seconds, prompt=style, segments=[seg])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="segment length per style, s")
    ap.add_argument("--energy", type=float, default=0.7, help="segment energy 0..1")
    ap.add_argument("--repeat", type=int, default=3, help="runs per style; the fastest is reported")
    ap.add_argument("--synth-rate", type=int, default=SYNTH_RATE,
                    help="synthesis + fx rate, Hz (the generator's; resampled to the output rate after)")
    args = ap.parse_args(argv)
    settings = Settings()
    out_sr, sf = settings.sample_rate, find_soundfont(settings)
    sr = min(out_sr, args.synth_rate)

    t0 = time.perf_counter()
    warm = _plan("cinematic", 1.0, args.energy)
    render_stems(compose_segment(warm, 0, 0), sr, warm.clip_samples(0, sr), sf)
    print(f"SoundFont {sf.name}, synthesis at {sr} Hz, output {out_sr} Hz; cold start (parse + first presets): "
          f"{time.perf_counter() - t0:.2f} s")
    print(f"{'style':12s} {'compose s':>9s} {'render s':>9s} {'mix s':>7s} {'total s':>8s} "
          f"{'x real time':>12s} {'x (CPU time)':>13s}")
    totals = [0.0, 0.0, 0.0]
    for style in STYLES:
        warm = _plan(style, 1.0, args.energy)
        render_stems(compose_segment(warm, 0, 0), sr, warm.clip_samples(0, sr), sf)
        plan = _plan(style, args.seconds, args.energy)
        n = plan.clip_samples(0, sr)
        best = [float("inf")] * 3
        best_cpu = float("inf")
        for _ in range(args.repeat):  # the best of a few runs: the least disturbed by other load
            c0, t0 = time.process_time(), time.perf_counter()
            midi = compose_segment(plan, 0, 1)
            t1 = time.perf_counter()
            stems = render_stems(midi, sr, n, sf)
            t2 = time.perf_counter()
            kicks = [x.start for inst in midi.instruments if inst.is_drum for x in inst.notes if x.pitch in KICKS]
            audio = produce(stems, sr, mix_for(style), bpm=STYLES[style].default_bpm, kicks=kicks, seed=1)
            audio = finish(audio, sr, energy=args.energy, body_samples=n)
            if sr != out_sr:
                _resample(audio, sr, out_sr, plan.clip_samples(0, out_sr))
            t3 = time.perf_counter()
            best = [min(b, d) for b, d in zip(best, (t1 - t0, t2 - t1, t3 - t2))]
            best_cpu = min(best_cpu, time.process_time() - c0)
        total = sum(best)
        totals = [totals[0] + args.seconds, totals[1] + total, totals[2] + best_cpu]
        print(f"{style:12s} {best[0]:9.3f} {best[1]:9.3f} {best[2]:7.3f} {total:8.3f} "
              f"{args.seconds / total:11.0f}x {args.seconds / best_cpu:12.0f}x")
    print(f"{'all':12s} {'':9s} {'':9s} {'':7s} {totals[1]:8.3f} {totals[0] / totals[1]:11.0f}x "
          f"{totals[0] / totals[2]:12.0f}x")

if __name__ == "__main__":
    main()
