"""Benchmark: how faithful each time-stretch setting is to the source (issue 15, the track editor).

    python bench/stretch_fidelity.py                  # 28 library tracks x 4 ratios, 3 settings
    python bench/stretch_fidelity.py --tracks 6 --seconds 10

The track editor stretches runs of beats by up to 6 % (render.py, ``pedalboard.time_stretch``). A
stretch should change the music as little as it can; what matters most to an edit cut on the beat is
that the beat keeps its accent over the off-beat. For every bundled library track (its first
``--seconds`` after 2 s) stretched to 0.95, 0.97, 1.03 and 1.05 of its length with each setting, the
stretched audio is mapped back to the source's clock and compared with the source:

- accent shift: log(onset strength at the beats / at the half-beats), stretched less source (the
  beats are the shipped analysis's; the onset strength is ``metrics.bars.onset_envelope``, the one the
  edit's metric reads, its peak within a frame of each time, averaged: ``metrics.beat_grid._salience``);
  |shift| median, 90th percentile and largest over all tracks and ratios. 0.69 means the beat lost
  half its lead over the off-beat;
- beat attack: the onset strength at the beats, stretched over source (median over tracks and
  ratios): > 1 sharper, < 1 softer;
- spectrum: mean |dB| difference of the 64-band log-mel frames (``metrics.bars.log_mel``) and of a
  4096-point STFT's bins within 60 dB of the loudest, frame against mapped frame;
- CPU seconds of the stretches themselves.

Prints figures; asserts nothing (tests/test_track_seams_beats.py checks the setting the editor uses).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from musicvid_core.media import resample
from musicvid_core.metrics import bars, beat_grid
from musicvid_core.stages.compose.track.analysis import analyse_file
from musicvid_core.stages.compose.track.audio import load_track
from musicvid_core.stages.compose.track.library import list_tracks
from musicvid_core.stages.compose.track.render import STRETCH_OPTIONS

SR = 48000
RATIOS = (0.95, 0.97, 1.03, 1.05)  # output length over source length, as Piece.ratio
SETTINGS = {
    "R2 crisp (render.STRETCH_OPTIONS)": STRETCH_OPTIONS,
    "R2 mixed transients": {**STRETCH_OPTIONS, "transient_mode": "mixed"},
    "R3 (finer engine)": {"high_quality": True},
}


def stft_db(x: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.amplitude_to_db(np.abs(librosa.stft(x, n_fft=4096, hop_length=1024)), ref=1.0, top_db=None)


def mapped(frames: np.ndarray, n: int, ratio: float) -> np.ndarray:
    """The stretched spectrogram's frames at the source's n frame times."""
    return frames[:, np.clip(np.round(np.arange(n) * ratio).astype(int), 0, frames.shape[1] - 1)]


def main() -> None:
    import pedalboard

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tracks", type=int, default=0, help="library tracks to use (0 = all)")
    ap.add_argument("--seconds", type=float, default=12.0, help="length of each excerpt")
    args = ap.parse_args()
    tracks = [t for t in list_tracks() if t.bundled]
    tracks = tracks[:args.tracks] if args.tracks else tracks
    figures = {name: {"shift": [], "attack": [], "mel": [], "stft": [], "cpu": 0.0} for name in SETTINGS}
    for track in tracks:
        analysis = analyse_file(track.path)
        x = load_track(track.path, SR)[int(2 * SR):int((2 + args.seconds) * SR)]
        beats = np.asarray(analysis.beats) - 2.0
        beats = beats[(beats > 0.5) & (beats < x.shape[0] / SR - 0.5)]
        half = beats[:-1] + np.diff(beats) / 2
        mono = resample(x.mean(axis=1, keepdims=True), SR, bars.ANALYSIS_SR)[:, 0]
        onset0, mel0, spec0 = bars.onset_envelope(mono), bars.log_mel(mono), stft_db(x.mean(axis=1))
        on0, off0 = beat_grid._salience(beats, onset0), beat_grid._salience(half, onset0)
        for ratio in RATIOS:
            for name, options in SETTINGS.items():
                t = time.process_time()
                y = pedalboard.time_stretch(x.T.copy(), SR, stretch_factor=1.0 / ratio, **options).T
                figures[name]["cpu"] += time.process_time() - t
                ym = resample(np.ascontiguousarray(y.mean(axis=1, keepdims=True)), SR, bars.ANALYSIS_SR)[:, 0]
                onset = bars.onset_envelope(ym)
                on, off = beat_grid._salience(beats * ratio, onset), beat_grid._salience(half * ratio, onset)
                figures[name]["shift"].append(abs(float(np.log(on / off) - np.log(on0 / off0))))
                figures[name]["attack"].append(on / on0)
                n = mel0.shape[1]
                figures[name]["mel"].append(float(np.mean(np.abs(mapped(bars.log_mel(ym), n, ratio) - mel0)[:, 5:n - 5])))
                spec, n = stft_db(np.ascontiguousarray(y.mean(axis=1))), spec0.shape[1]
                loud = spec0[:, 5:n - 5] > spec0.max() - 60
                figures[name]["stft"].append(float(np.mean(np.abs(mapped(spec, n, ratio)[:, 5:n - 5]
                                                                  - spec0[:, 5:n - 5])[loud])))
        print(f"{track.path.stem} done", flush=True)
    print(f"\n{len(tracks)} tracks x {len(RATIOS)} ratios, {args.seconds:.0f} s each")
    for name, f in figures.items():
        s = np.asarray(f["shift"])
        print(f"{name:36s} accent shift |log| median {np.median(s):.3f}, p90 {np.percentile(s, 90):.3f}, "
              f"max {s.max():.3f} | beat attack x{np.median(f['attack']):.3f} | log-mel {np.median(f['mel']):.2f} dB, "
              f"STFT {np.median(f['stft']):.2f} dB | CPU {f['cpu']:.1f} s")


if __name__ == "__main__":
    main()
