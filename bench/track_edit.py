"""Benchmark: the track editor's targets on real recordings (issue 15).

    python bench/track_edit.py                      # every library track + altered ones, 15 s / 60 s / 5 min
    python bench/track_edit.py --tracks 6 --targets 60 300
    python bench/track_edit.py --names tender_electronic_1 energetic_electronic_s411 --targets 300 --altered 0

For every bundled library track (``immich-memories-music``) and for four altered copies of a few of
them -- tempo x0.92 and x1.08 (Rubber Band, pitch kept), key +3 semitones, resampled to 32 kHz and
back to a 32 kHz file, started 0.7 s late (cut mid-bar) -- each written to a WAV file and analysed
through the real path (``analyse_file``, cached by content hash): an edit to each target duration
with known irregular cuts (shots of 2-8 s, seeded; the first cut at least 12 s after the last
strong one is strong), rendered, and measured on the rendered audio by ``metrics.edit``:

- exact length (samples), cut-beat and strong-cut-downbeat hit rates (pooled over all cuts; beats
  re-detected at the edit's tempo, and in brackets with the tempo left to the tracker, and as the
  edit planned them: its own beats and bar lines, what the audio is measured against),
  seam z-scores (median, largest, share above 2.5), largest stretch, most back-to-back repeats;
- the same pooled per ``beat_events`` (one event a beat, two alike, a triplet feel: analysis.py);
- speed: analysis (cached) + decode + edit + render of each 5-minute result, as a multiple of real
  time (300 s / wall seconds); the median over tracks and the slowest; and the CPU seconds it took
  (all threads: what a loaded machine's wall time cannot show).

Prints figures; asserts nothing (tests/test_track_editor.py asserts). Targets: 100 % exact, >= 90 %
cuts on beats, >= 70 % strong cuts on bar lines, median seam z <= 1.0, none above 2.5, stretch <= 6 %,
>= 30x real time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from musicvid_core.lab.tracks import irregular_cuts
from musicvid_core.media import resample, write_float_wav
from musicvid_core.metrics.edit import bar_line_flux, edit_report
from musicvid_core.stages.compose.track.analysis import analyse_file
from musicvid_core.stages.compose.track.audio import load_track
from musicvid_core.stages.compose.track.edit import make_edit
from musicvid_core.stages.compose.track.fit import edl_figures
from musicvid_core.stages.compose.track.library import list_tracks
from musicvid_core.stages.compose.track.render import render_edit

SR = 48000




def altered(path: Path, folder: Path) -> list[Path]:
    """Tempo x0.92 / x1.08, key +3, 32 kHz, 0.7 s late: WAV files in ``folder``."""
    import pedalboard

    x = load_track(path, SR)
    out = []
    for name, make, rate in (
            ("tempo092", lambda a: pedalboard.time_stretch(a.T.copy(), SR, 0.92).T, SR),
            ("tempo108", lambda a: pedalboard.time_stretch(a.T.copy(), SR, 1.08).T, SR),
            ("key+3", lambda a: pedalboard.time_stretch(a.T.copy(), SR, 1.0, pitch_shift_in_semitones=3.0).T, SR),
            ("sr32k", lambda a: resample(a, SR, 32000), 32000),
            ("late0.7", lambda a: a[int(0.7 * SR):], SR)):
        dest = folder / f"{path.stem}-{name}.wav"
        write_float_wav(dest, np.ascontiguousarray(make(x), dtype=np.float32), rate)
        out.append(dest)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tracks", type=int, default=0, help="library tracks to use (0 = all)")
    ap.add_argument("--names", nargs="+", default=None,
                    help="only these library tracks (file stems; cuts and seeds as in a full run)")
    ap.add_argument("--altered", type=int, default=3, help="library tracks to alter (tempo, key, rate, offset)")
    ap.add_argument("--targets", type=float, nargs="+", default=[15.0, 60.0, 300.0])
    ap.add_argument("--cache", default=None, help="analysis cache folder (default: a temporary one)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="musicvid-trackbench-"))
    cache = Path(args.cache) if args.cache else tmp / "cache"
    paths = [t.path for t in list_tracks() if t.bundled]
    paths = paths[:args.tracks] if args.tracks else paths
    # a track's cuts and seed are its index in the full list, so a subset reproduces a full run's rows
    index = {p: k for k, p in enumerate(paths)}
    if args.names:
        paths = [p for p in paths if p.stem in set(args.names)]
    step = max(1, len(paths) // max(1, args.altered))
    paths += [p for src in paths[::step][:args.altered] for p in altered(src, tmp)]
    t0 = time.perf_counter()
    for p in paths:
        analyse_file(p, cache_dir=cache)
    print(f"{len(paths)} tracks analysed in {time.perf_counter() - t0:.1f} s (cached in {cache})")
    rows, speeds, cpus = [], [], []
    for j, p in enumerate(paths):
        k = index.get(p, j)  # an altered copy: its place in the list, as before
        source = load_track(p, SR)
        a = analyse_file(p, cache_dir=cache)
        flux = bar_line_flux(source, SR, [b.start for b in a.bars])
        for dur in args.targets:
            cuts, strong = irregular_cuts(dur, k)
            n = int(round(dur * SR))
            start, cpu0 = time.perf_counter(), time.process_time()
            a = analyse_file(p, cache_dir=cache)  # cached: reads the JSON
            src = load_track(p, SR)
            edit = make_edit(a, n, SR, cuts=cuts, strong=strong, seed=k)
            out = render_edit(edit, src)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
            if dur >= 300:
                speeds.append(dur / wall)
                cpus.append(cpu)
            r = edit_report(out, SR, expected_samples=n, cuts=cuts, strong=strong, seams_s=edit.seams,
                            seam_bars=edit.seam_bars, reference_flux=flux, edit=edit)
            plan = edl_figures(edit, cuts=cuts, strong=strong)  # the grid's own rates, before any audio
            r.update(track=p.stem, target=dur, rtf=dur / wall, bpm=a.bpm, free=a.free_time, agree=a.beat_agreement,
                     events=a.beat_events, planned_beat=plan["planned_cut_beat_hit_rate"],
                     planned_bar=plan["planned_strong_downbeat_hit_rate"])
            rows.append(r)
            print(f"{p.stem:36s} {dur:5.0f}s exact {r['exact_length']!s:5s} beat {r['cut_beat_hit_rate'] or 0:5.2f} "
                  f"bar {r['strong_downbeat_hit_rate'] or 0:5.2f} seams {r['seams']:3d} z~ {r['seam_z_median'] or 0:5.2f} "
                  f"zmax {r['seam_z_max'] or 0:5.2f} stretch {r['max_stretch']:.3f} b2b {r['max_back_to_back']} "
                  f"{r['ending']} {dur / wall:5.1f}x (beat agreement {a.beat_agreement:.2f}, events {a.beat_events})",
                  flush=True)
    print()
    for dur in args.targets:
        report(f"{dur:.0f} s", [r for r in rows if r["target"] == dur])
    report("all", rows)
    clear = [r for r in rows if r["agree"] >= 0.9]
    report("clear beat (agreement >= 0.9)", clear)
    for n, label in ((1, "one event a beat"), (2, "two equal events a beat"), (3, "triplet feel (three)")):
        report(label, [r for r in rows if r["events"] == n])
    if speeds:
        print(f"speed of a 5-minute result (analysis cached + decode + edit + render): median {np.median(speeds):.1f}x, "
              f"slowest {min(speeds):.1f}x real time; CPU seconds (all threads) median {np.median(cpus):.1f}, "
              f"most {max(cpus):.1f} (on 2 free cores: >= {dur_of(rows) / max(cpus) * 2:.0f}x)")


def dur_of(rows: list[dict]) -> float:
    return max(r["target"] for r in rows)


def report(label: str, rows: list[dict]) -> None:
    if not rows:
        return

    def pooled(key: str, count: str) -> float:
        n = sum(r[count] for r in rows)
        return sum((r[key] or 0) * r[count] for r in rows) / max(1, n)

    z = [v for r in rows for v in r["seam_z"]]
    print(f"{label:32s} n={len(rows):3d} exact {np.mean([r['exact_length'] for r in rows]) * 100:5.1f} % | "
          f"cuts on beats {pooled('cut_beat_hit_rate', 'cuts') * 100:5.1f} % | "
          f"strong on bar lines {pooled('strong_downbeat_hit_rate', 'strong_cuts') * 100:5.1f} % "
          f"(tempo left free: {pooled('cut_beat_hit_rate_free', 'cuts') * 100:4.1f} / "
          f"{pooled('strong_downbeat_hit_rate_free', 'strong_cuts') * 100:4.1f} %; planned: "
          f"{pooled('planned_beat', 'cuts') * 100:4.1f} / {pooled('planned_bar', 'strong_cuts') * 100:4.1f} %) | "
          f"seam z median {np.median(z) if z else 0:5.2f}, max {max(z) if z else 0:5.2f}, "
          f"> 2.5: {np.mean(np.asarray(z) > 2.5) * 100 if z else 0:4.1f} % | "
          f"stretch max {max(r['max_stretch'] for r in rows) * 100:4.2f} % | "
          f"back-to-back max {max(r['max_back_to_back'] for r in rows)}")


if __name__ == "__main__":
    main()
