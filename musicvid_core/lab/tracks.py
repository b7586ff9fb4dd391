"""Synthetic music tracks with known beats and bars, made with numpy (no SoundFont, no files).

The track editor's tests and ``bench/track_edit.py`` need ground truth that no real recording
has: where every beat and every bar line is. :func:`make_track` plays a small band to a fixed
grid -- kick on beats 1 and 3, snare on 2 and 4, eighth-note hi-hats, a bass note and an
arpeggio, a sustained chord that changes every ``chord_bars`` bars -- with a tempo, a start
offset (silence before the music), a pickup (beats before the first bar line) and either a real
ending (the last chord struck on a downbeat and left to ring) or none (cut off mid-bar, as most
generated clips are). ``free_time=True`` makes a pad with no steady beat instead.

Everything is seeded: the same arguments give the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Scale degrees of a I-V-vi-IV (major) / i-VI-III-VII (minor) progression, in semitones from the tonic.
PROGRESSIONS = {"major": ((0, 4, 7), (7, 11, 14), (9, 12, 16), (5, 9, 12)),
                "minor": ((0, 3, 7), (8, 12, 15), (3, 7, 10), (10, 14, 17))}


@dataclass(frozen=True)
class SynthTrack:
    """A generated track: ``audio`` float32 (samples, 2) at ``sample_rate`` Hz; the truth in seconds
    from the file's first sample: every ``beats`` time, the ``downbeats`` (bar lines; empty for
    free time), where the ``ending`` chord is struck (None without a real ending)."""

    audio: np.ndarray = field(repr=False)
    sample_rate: int
    bpm: float
    meter: int
    beats: tuple[float, ...] = field(repr=False)
    downbeats: tuple[float, ...] = field(repr=False)
    ending: float | None
    pickup_beats: int
    free_time: bool = False

    @property
    def duration(self) -> float:
        return self.audio.shape[0] / self.sample_rate


def make_track(*, bpm: float = 120.0, bars: int = 16, meter: int = 4, sample_rate: int = 44100,
               offset_s: float = 0.0, pickup_beats: int = 0, tonic: int = 0, mode: str = "major",
               chord_bars: int = 1, ending: bool = False, ring_s: float = 3.0, tail_beats: float = 2.5,
               free_time: bool = False, seed: int = 0) -> SynthTrack:
    """Synthesize a track (see the module docstring). ``tonic``: pitch class of the key (0 = C);
    ``tail_beats``: without a real ending, how far into one more bar the music runs before it is
    cut off. Raises ValueError for a non-positive tempo, bar count or meter."""
    if bpm <= 0 or bars < 1 or meter < 2 or sample_rate < 8000:
        raise ValueError(f"make_track needs bpm > 0, bars >= 1, meter >= 2, got {bpm}, {bars}, {meter}")
    rng = np.random.default_rng(seed)
    if free_time:
        return _free_time(bars, sample_rate, offset_s, tonic, mode, rng)
    beat = 60.0 / bpm
    first = offset_s + pickup_beats * beat  # the first bar line
    n_beats = bars * meter
    beats = [first + (k - pickup_beats) * beat for k in range(pickup_beats + n_beats)]
    end_s = first + n_beats * beat + (ring_s if ending else tail_beats * beat)
    if ending:
        beats.append(first + n_beats * beat)
    else:
        beats += [first + (n_beats + k) * beat for k in range(int(np.ceil(tail_beats)))]
    out = np.zeros((int(round(end_s * sample_rate)) + 1, 2), np.float32)
    prog = PROGRESSIONS.get(mode, PROGRESSIONS["major"])
    root = 48 + tonic  # C3 + tonic

    def chord_of(bar: int) -> tuple[int, ...]:
        return tuple(root + d for d in prog[(bar // chord_bars) % len(prog)])

    total_bars = bars + (0 if ending else 1)
    for bar in range(-1 if pickup_beats else 0, total_bars):
        chord = chord_of(max(bar, 0))
        t0 = first + bar * meter * beat
        for b in range(meter):
            t = t0 + b * beat
            if t < offset_s - 1e-9 or t >= end_s:
                continue
            if bar >= 0 and b % 2 == 0:
                _add(out, t, _kick(sample_rate, 0.9 if b == 0 else 0.6), sample_rate)
                _add(out, t, _tone(_hz(chord[0] - 12), 0.45 if b == 0 else 0.3, beat * 1.8, sample_rate, 0.02,
                                   harmonics=2), sample_rate)
            if b % 2 == 1:
                _add(out, t, _snare(sample_rate, rng, 0.35), sample_rate)
            for half in (0.0, 0.5):
                _add(out, t + half * beat, _hat(sample_rate, rng, 0.10 if half else 0.14), sample_rate)
            arp = chord[(b * 2) % 3] + 12
            _add(out, t, _tone(_hz(arp), 0.12, beat * 0.9, sample_rate, 0.005), sample_rate, pan=0.3)
            _add(out, t + 0.5 * beat, _tone(_hz(chord[(b * 2 + 1) % 3] + 12), 0.09, beat * 0.45, sample_rate, 0.005),
                 sample_rate, pan=-0.3)
        if bar >= 0 and bar % chord_bars == 0:
            length = min(chord_bars, total_bars - bar) * meter * beat
            for note in chord:
                _add(out, t0, _tone(_hz(note), 0.07, length + 0.3, sample_rate, 0.03, harmonics=3), sample_rate)
    final = None
    if ending:
        final = first + n_beats * beat
        chord = tuple(root + d for d in prog[0])
        _add(out, final, _kick(sample_rate, 1.0), sample_rate)
        _add(out, final, _tone(_hz(chord[0] - 12), 0.5, ring_s, sample_rate, 0.01, harmonics=2, decay=ring_s / 5),
             sample_rate)
        for note in chord + (chord[0] + 12,):
            _add(out, final, _tone(_hz(note), 0.12, ring_s, sample_rate, 0.005, harmonics=3, decay=ring_s / 5),
                 sample_rate)
    out = out[:int(round(end_s * sample_rate))]
    out *= 0.5 / max(1e-9, float(np.abs(out).max()))
    downbeats = tuple(t for t in beats if t >= first - 1e-9 and round((t - first) / beat) % meter == 0)
    return SynthTrack(audio=out, sample_rate=sample_rate, bpm=bpm, meter=meter, beats=tuple(beats),
                      downbeats=downbeats, ending=final, pickup_beats=pickup_beats)


def _free_time(phrases: int, sr: int, offset_s: float, tonic: int, mode: str, rng) -> SynthTrack:
    """Slow pad chords at irregular times (3-7 s apart) and plucked notes at random times (a
    Poisson process, ~1.5 a second): onsets, but no steady beat."""
    prog = PROGRESSIONS.get(mode, PROGRESSIONS["major"])
    times = offset_s + np.concatenate([[0.0], np.cumsum(rng.uniform(3.0, 7.0, phrases))])
    out = np.zeros((int(round((times[-1] + 2.0) * sr)), 2), np.float32)
    for k, t in enumerate(times[:-1]):
        length = times[k + 1] - t + 1.5
        for d in prog[int(rng.integers(len(prog)))]:
            _add(out, t, _tone(_hz(48 + tonic + d), 0.08, length, sr, 1.2, harmonics=3, decay=None), sr)
    for t in np.cumsum(rng.exponential(1 / 1.5, int(times[-1] * 2))):
        if t < times[-1]:
            note = 60 + tonic + int(rng.choice(prog[0]))
            _add(out, offset_s + t, _tone(_hz(note), 0.06, 1.0, sr, 0.004, harmonics=2), sr, pan=float(rng.uniform(-.5, .5)))
    out *= 0.5 / max(1e-9, float(np.abs(out).max()))
    return SynthTrack(audio=out, sample_rate=sr, bpm=0.0, meter=1, beats=(), downbeats=(), ending=None,
                      pickup_beats=0, free_time=True)


# --- instruments -------------------------------------------------------------------------------
def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


def _add(out: np.ndarray, t: float, sound: np.ndarray, sr: int, pan: float = 0.0) -> None:
    start = int(round(t * sr))
    if start >= out.shape[0] or start + sound.size <= 0:
        return
    a, b = max(0, start), min(out.shape[0], start + sound.size)
    part = sound[a - start:b - start]
    out[a:b, 0] += part * (1 - pan) * 0.7
    out[a:b, 1] += part * (1 + pan) * 0.7


def _tone(hz: float, amp: float, length: float, sr: int, attack: float, *, harmonics: int = 1,
          decay: float | None = 0.0) -> np.ndarray:
    """A note: a few harmonics, a linear attack, then exponential decay (``decay`` seconds to 1/e;
    0 = a third of the length; None = sustained, released over the last 0.5 s)."""
    t = np.arange(int(length * sr)) / sr
    wave = sum(np.sin(2 * np.pi * hz * h * t) / h ** 1.5 for h in range(1, harmonics + 1))
    env = np.minimum(1.0, t / max(attack, 1e-4))
    if decay is None:
        env *= np.clip((length - t) / 0.5, 0.0, 1.0)
    else:
        env *= np.exp(-t / (decay or length / 3))
    return (amp * wave * env).astype(np.float32)


def _kick(sr: int, amp: float) -> np.ndarray:
    t = np.arange(int(0.25 * sr)) / sr
    phase = 2 * np.pi * (50 * t + (110 - 50) * 0.03 * (1 - np.exp(-t / 0.03)))
    return (amp * np.sin(phase) * np.exp(-t / 0.08)).astype(np.float32)


def _snare(sr: int, rng, amp: float) -> np.ndarray:
    t = np.arange(int(0.18 * sr)) / sr
    noise = rng.standard_normal(t.size)
    noise = np.diff(noise, prepend=0.0)  # brighter
    return (amp * (0.6 * noise * np.exp(-t / 0.05) + 0.5 * np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.04))
            ).astype(np.float32)


def _hat(sr: int, rng, amp: float) -> np.ndarray:
    t = np.arange(int(0.05 * sr)) / sr
    noise = np.diff(rng.standard_normal(t.size + 1), n=1)
    return (amp * noise * np.exp(-t / 0.012)).astype(np.float32)


def irregular_cuts(duration: float, seed: int) -> tuple[list[float], list[float]]:
    """Irregular picture cuts for a ``duration``-second video (shots of 2-8 s, seeded), and the strong
    ones among them: the first cut 12 s or more after the last strong one. Seconds."""
    import numpy as np

    rng = np.random.default_rng(seed)
    cuts = [round(float(c), 3) for c in np.cumsum(rng.uniform(2.0, 8.0, 400)) if c < duration - 3]
    strong, last = [], 0.0
    for c in cuts:
        if c - last >= 12:
            strong.append(c)
            last = c
    return cuts, strong


def listed_bpm() -> dict[str, float]:
    """The tempo ACE-Step was asked for, per bundled library track (file stem -> bpm), as
    immich-memories-music's LICENSE-MUSIC lists it: the reference the tests and benches hold the
    analysis's tempo against. Raises PackageNotFoundError without the [library] extra."""
    import re
    from importlib.metadata import distribution

    text = next(f for f in distribution("immich-memories-music").files if f.name == "LICENSE-MUSIC").read_text()
    return {name: float(bpm) for name, bpm in re.findall(r"(\w+)\.opus\s+(\d+) bpm", text)}
