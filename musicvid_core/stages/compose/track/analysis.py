"""Analysing a recording for the editor: beats, bars, tempo and drift, sections, key, loudness and
energy per bar, and how it ends -- one JSON-able :class:`TrackAnalysis`, cached by the SHA-256 of
the file's bytes in a folder the caller names (never re-analysed unless the file changes).

Beats, bar lines and pulse come from ``metrics/bars.py`` (the method and its accuracy: docs/tracks.md);
this module adds what an editor needs on top:

- **bars**: each bar's level (RMS dBFS), energy (0..1 against the track's loudest bar over 24 dB),
  chroma and timbre (MFCC means; the seam costs compare them) and section;
- **sections**: structural boundaries by agglomerative clustering of the bar-synchronous features
  (librosa.segment.agglomerative), about one every SECTION_BARS bars;
- **pickup**: beats before the first bar line that are played, and quieter than the body (a lead-in,
  not a clip cut off mid-bar);
- **ending**: "real" when the last 0.25 s lies REAL_ENDING_DB or more under the body level and a bar
  line carries the last strong onset (the final chord) with at least a beat of ring-out after it;
  otherwise "none" (generated clips are often cut off: then the editor makes an ending);
- **seams**: how audible every possible seam between two bars is, measured (``seams.py``; a track
  of over 64 bars: the seams out of each bar that the arrangement's predicted costs rank first);
- **beat events**: the mean onset strength over one beat period at twelve points; where the
  events a third and two thirds into the beat are as strong as the beat's own (EVENT_RATIO), the
  track has a triplet feel (``beat_events`` 3), where the half-beat one is, two events alike (2):
  nothing in the onsets says which event is the beat, so cuts aimed at one may be heard on another
  (``choose`` ranks such tracks lower when another fits about as well);
- **free time**: music with no steady beat (metrics.bars.FREE_TIME_PULSE) gets phrases instead
  of bars: novelty peaks of the chroma and timbre, 2.5-8 s apart.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from musicvid_core.metrics.bars import ONSET_DELAY_S, Spectra, beat_events, find_bars, spectra
from musicvid_core.metrics.music import ANALYSIS_SR, HOP, _librosa, key_of_chroma
from musicvid_core.stages.compose.track.arrange import seam_costs
from musicvid_core.stages.compose.track.audio import check_audio, decode, file_sha256
from musicvid_core.stages.compose.track.seams import MAX_PAIRS, seam_matrix

ANALYSIS_VERSION = 8  # bump when the analysis changes: cached records of other versions are redone
SECTION_BARS = 8
REAL_ENDING_DB = -24.0  # the last 0.25 s this far under the body level: the track ends by itself
SILENT_DB = -50.0  # under the body level by this much counts as silence (where a ring-out ends)
PICKUP_DB = (-40.0, -3.0)  # a lead-in before the first bar line sits this far under the body
ENERGY_RANGE_DB = 24.0
PHRASE_S = (2.5, 8.0)  # free time: phrase lengths
TAIL_FRAMES = 4  # a bar's "tail" spectrum: this many frames (~46 ms) before the next bar line


class Bar(BaseModel):
    """One bar (free time: one phrase). Times in seconds from the file's first sample."""

    start: float
    end: float
    full: bool = True  # False for a last bar that the file cuts short
    rms_db: float  # dBFS
    energy: float  # 0..1: 1 = the track's loudest bar, 0 = ENERGY_RANGE_DB under it
    section: int = 0
    chroma: list[float] = Field(default_factory=list)  # 12 pitch classes, unit length
    timbre: list[float] = Field(default_factory=list)  # MFCC 1-12 means
    head: list[float] = Field(default_factory=list)  # log-mel (dB) of the frame that carries the bar line's attack
    tail: list[float] = Field(default_factory=list)  # log-mel (dB) just before the next bar line (and a seam's crossfade)


class Section(BaseModel):
    start: int  # first bar
    end: int  # the bar after the last
    energy: float  # mean of its bars'


class Ending(BaseModel):
    """``kind`` "real": the track ends by itself -- its final bar line ``at`` (seconds; ``bar`` its
    index in ``bars``) followed by ``ring_out`` seconds of decay; "none": it stops without an
    ending (the editor makes one). ``tail_db``: the last 0.25 s against the body level, dB."""

    kind: Literal["real", "none"]
    bar: int | None = None
    at: float | None = None
    ring_out: float = 0.0
    tail_db: float


class TrackAnalysis(BaseModel):
    """What the editor knows about a track (times in seconds, levels dB). ``beats`` and
    ``downbeats`` as found (see metrics.bars.Bars); ``bars`` one per downbeat (free time: per
    phrase); ``pickup_beats``: played beats before the first bar line; ``intensity`` 0..1 from tempo
    and onset rate (for choosing); ``key`` like "A minor"."""

    version: int = ANALYSIS_VERSION
    sha256: str = ""
    name: str = ""
    duration: float
    bpm: float | None
    meter: int
    pulse: float
    free_time: bool
    drift: float
    jitter_s: float
    meter_confidence: float
    beat_agreement: float = 1.0  # share of beats a looser tracker agrees with (metrics.bars.Bars.agreement)
    beat_events: int = 1  # onset events per beat as strong as the beat's own: 3 a triplet feel, 2 off-beats alike
    beat_event_ratio: float = 0.0  # the weakest of those events (else the strongest other) over the beat's
    beats: list[float]
    downbeats: list[float]
    pickup_beats: int = 0
    bars: list[Bar]
    sections: list[Section]
    key: str
    key_confidence: float
    loudness_lufs: float
    body_db: float
    intensity: float
    ending: Ending
    seam_z: list[list[float | None]] | None = None  # [a][b]: the seam "bar b after bar a", measured (seams.py)

    @property
    def beat_s(self) -> float:
        """Median beat period, seconds (free time: median phrase length)."""
        src = self.beats if not self.free_time and len(self.beats) > 1 else self.downbeats
        return float(np.median(np.diff(src))) if len(src) > 1 else self.duration

    @property
    def body_bars(self) -> int:
        """Bars the editor may use as body: those before a real ending, else the full ones."""
        if self.ending.kind == "real" and self.ending.bar is not None:
            return self.ending.bar
        return sum(1 for b in self.bars if b.full)


def analyse_file(path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                 shipped: bool = True) -> TrackAnalysis:
    """The analysis of the music file ``path``: read from ``cache_dir/<sha256>.json`` when there
    (same version), else (with ``shipped``) the package's own analysis of a bundled library track
    with the same bytes (track/shipped.py), else computed; a new one is written to the cache
    atomically. Raises BadInput for a missing, non-audio, silent or too short file."""
    from musicvid_core.stages.compose.track.shipped import shipped_record

    sha = file_sha256(path)
    cached = Path(cache_dir) / f"{sha}.json" if cache_dir else None
    if cached is not None and cached.is_file():
        try:
            record = TrackAnalysis.model_validate_json(cached.read_text())
            if record.version == ANALYSIS_VERSION:
                return record
        except ValueError:
            pass  # unreadable or an older shape: analyse again
    known = shipped_record(sha, ANALYSIS_VERSION) if shipped else None
    if known is not None:  # the same bytes as a bundled track: its analysis, under this file's name
        result = TrackAnalysis.model_validate({**known, "name": Path(path).name})
    else:
        y = decode(path, ANALYSIS_SR, channels=1)[:, 0]
        check_audio(y, ANALYSIS_SR, name=Path(path).name)
        result = analyse_audio(y, name=Path(path).name, sha256=sha)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".part")
        with os.fdopen(fd, "w") as fh:
            fh.write(result.model_dump_json())
        os.replace(tmp, cached)
    return result


def analyse_audio(y: np.ndarray, *, name: str = "", sha256: str = "") -> TrackAnalysis:
    """Analyse mono float audio ``y`` at ANALYSIS_SR Hz (see the module docstring)."""
    y = np.ascontiguousarray(y, dtype=np.float32)
    duration = y.size / ANALYSIS_SR
    feats = spectra(y)
    found = find_bars(y, ANALYSIS_SR, features=feats)
    frame_db = 20 * np.log10(np.maximum(feats.rms, 1e-6))
    if found.free_time:
        starts = _phrases(feats, duration)
    else:
        starts = list(found.downbeats)
    bars = _bars(starts, feats, duration, found.meter * float(np.median(np.diff(found.beats)))
                 if not found.free_time else None)
    full_db = [b.rms_db for b in bars if b.full] or [float(np.median(frame_db))]
    body_db = float(np.median(full_db))
    ending = _ending(y, feats, bars, found.beats, body_db, duration, found.free_time)
    if ending.kind == "real":
        bars = bars[:ending.bar + 1]
    top = max((b.rms_db for b in bars), default=body_db)
    for b in bars:
        b.energy = round(float(np.clip(1 + (b.rms_db - top) / ENERGY_RANGE_DB, 0, 1)), 3)
    body = ending.bar if ending.kind == "real" else sum(b.full for b in bars)
    sections = _sections(bars, body)
    pickup = 0 if found.free_time else _pickup(found, frame_db, body_db)
    key = key_of_chroma(feats.chroma.mean(axis=1)) if np.ptp(feats.chroma.mean(axis=1)) > 0 else None
    events, event_ratio = (1, 0.0) if found.free_time else beat_events(feats.onset, found.beats)
    seam_z = None
    if not found.free_time:  # a long track measures the seams the arrangement would rank first
        rank = seam_costs(SimpleNamespace(bars=bars, seam_z=None)) if len(bars) ** 2 > MAX_PAIRS else None
        seam_z = seam_matrix(y, [b.start for b in bars], [b.end for b in bars], onset=feats.onset,
                             top=float(feats.mel.max()), rank=rank)
    librosa = _librosa()
    onsets = librosa.onset.onset_detect(onset_envelope=feats.onset, sr=ANALYSIS_SR, hop_length=HOP)
    bpm = None if found.free_time or not math.isfinite(found.bpm) else round(found.bpm, 3)
    intensity = 0.5 * np.clip(((bpm or 60.0) - 60.0) / 100.0, 0, 1) + 0.5 * np.clip(len(onsets) / duration / 8.0, 0, 1)
    return TrackAnalysis(
        sha256=sha256, name=name, duration=round(duration, 4), bpm=bpm, meter=found.meter, pulse=found.pulse,
        free_time=found.free_time, drift=found.drift, jitter_s=round(found.jitter_s, 4),
        meter_confidence=found.meter_confidence, beat_agreement=found.agreement, beat_events=events,
        beat_event_ratio=event_ratio, beats=[round(t, 4) for t in found.beats],
        downbeats=[round(b.start, 4) for b in bars], pickup_beats=pickup, bars=bars, sections=sections,
        key=key.key if key else "C major", key_confidence=key.margin if key else 0.0,
        loudness_lufs=_lufs(y), body_db=round(body_db, 2), intensity=round(float(intensity), 3), ending=ending,
        seam_z=seam_z)


# ---------------------------------------------------------------------------------------------
def _frame(t: float, feats: Spectra) -> int:
    return int(np.clip(round((t + ONSET_DELAY_S) * ANALYSIS_SR / HOP), 0, feats.frames - 1))


def _bars(starts: list[float], feats: Spectra, duration: float, bar_s: float | None) -> list[Bar]:
    """One Bar per start; the last one ends a bar length later (free time: at the end of the file)."""
    out = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else (start + bar_s if bar_s else duration)
        full = end <= duration + 0.02
        a = int(start * ANALYSIS_SR / HOP)
        b = max(a + 1, int(min(end, duration) * ANALYSIS_SR / HOP))
        rms = float(np.sqrt(np.mean(np.square(feats.rms[a:b])))) if b <= feats.frames else 1e-6
        chroma = feats.chroma[:, a:b].mean(axis=1) if a < feats.frames else np.zeros(12)
        chroma = chroma / (np.linalg.norm(chroma) + 1e-9)
        timbre = feats.mfcc[1:13, a:b].mean(axis=1) if a < feats.frames else np.zeros(12)
        f0 = _frame(start, feats)
        peak = max(1, min(feats.frames - 1, f0 - 2 + int(np.argmax(feats.onset[max(0, f0 - 2):f0 + 3]))))
        before = max(0, _frame(min(end, duration), feats) - TAIL_FRAMES)
        out.append(Bar(start=round(start, 5), end=round(min(end, duration) if not full else end, 5), full=full,
                       rms_db=round(20 * math.log10(max(rms, 1e-6)), 2), energy=0.0,
                       chroma=[round(float(c), 3) for c in chroma], timbre=[round(float(c), 2) for c in timbre],
                       head=[round(float(v), 1) for v in feats.mel[:, peak]],
                       tail=[round(float(v), 1) for v in feats.mel[:, before]]))
    return out


def _ending(y: np.ndarray, feats: Spectra, bars: list[Bar], beats: tuple[float, ...], body_db: float,
            duration: float, free_time: bool) -> Ending:
    tail = y[-int(0.25 * ANALYSIS_SR):]
    tail_db = 20 * math.log10(max(float(np.sqrt(np.mean(np.square(tail, dtype=np.float64)))), 1e-6)) - body_db
    if tail_db > REAL_ENDING_DB or len(bars) < 2:
        return Ending(kind="none", tail_db=round(tail_db, 2))
    # the last strong onset (the final chord) and the bar line carrying it
    beat_s = float(np.median(np.diff(beats))) if len(beats) > 1 else 1.0
    points = list(beats) if not free_time and len(beats) else [b.start for b in bars]
    peaks = np.array([feats.onset[max(0, _frame(t, feats) - 2):_frame(t, feats) + 3].max() for t in points])
    strong = [t for t, p in zip(points, peaks) if p >= 0.4 * float(np.median(peaks))]
    if not strong:
        return Ending(kind="none", tail_db=round(tail_db, 2))
    last = strong[-1]
    candidates = [i for i, b in enumerate(bars) if b.start <= last + 0.5 * beat_s]
    if not candidates:
        return Ending(kind="none", tail_db=round(tail_db, 2))
    k = candidates[-1]
    frame_db = 20 * np.log10(np.maximum(feats.rms, 1e-6)) - body_db
    loud = np.nonzero(frame_db > SILENT_DB)[0]
    end = min(duration, (loud[-1] + 1) * HOP / ANALYSIS_SR) if loud.size else duration
    ring = end - bars[k].start
    if ring < (beat_s if not free_time else 1.0) or k < 1:
        return Ending(kind="none", tail_db=round(tail_db, 2))
    return Ending(kind="real", bar=k, at=bars[k].start, ring_out=round(ring, 4), tail_db=round(tail_db, 2))


def _sections(bars: list[Bar], body: int) -> list[Section]:
    """Sections over the body bars (agglomerative clustering of chroma, timbre and level), each at
    least two bars; the bars after the body (a real ending) join the last one."""
    n = max(1, body)
    k = int(np.clip(round(n / SECTION_BARS), 1, 32))
    bounds = [0]
    if k > 1 and n >= 4:
        data = np.array([b.chroma + [t / 20.0 for t in b.timbre] + [b.rms_db / 6.0] for b in bars[:n]]).T
        data = (data - data.mean(axis=1, keepdims=True)) / (data.std(axis=1, keepdims=True) + 1e-6)
        found = sorted(int(x) for x in _librosa().segment.agglomerative(data, k))
        for b in found:
            if b - bounds[-1] >= 2 and n - b >= 2:
                bounds.append(b)
    bounds.append(len(bars) if len(bars) else 1)
    sections = []
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        for bar in bars[a:b]:
            bar.section = i
        sections.append(Section(start=a, end=b, energy=round(float(np.mean([x.energy for x in bars[a:b]] or [0])), 3)))
    return sections


def _pickup(found, frame_db: np.ndarray, body_db: float) -> int:
    """Beats before the first bar line that are a lead-in: played, and quieter than the body."""
    if not found.downbeats:
        return 0
    phase = int(np.argmin(np.abs(np.asarray(found.beats) - found.downbeats[0])))
    if phase < 1:
        return 0
    a = int(max(0.0, found.beats[0]) * ANALYSIS_SR / HOP)
    b = int(found.downbeats[0] * ANALYSIS_SR / HOP)
    if b <= a:
        return 0
    level = 10 * math.log10(float(np.mean(10 ** (frame_db[a:b] / 10)))) - body_db
    return phase if PICKUP_DB[0] <= level <= PICKUP_DB[1] else 0


def _phrases(feats: Spectra, duration: float) -> list[float]:
    """Free time: phrase starts at novelty peaks of chroma + timbre (0.5 s blocks, 2 s either side),
    2.5-8 s apart; long phrases split evenly."""
    block = max(1, int(0.5 * ANALYSIS_SR / HOP))
    n = feats.frames // block
    if n < 8:
        return [0.0]
    x = np.vstack([feats.chroma, feats.mfcc[1:13] / 20.0])[:, :n * block].reshape(-1, n, block).mean(axis=2).T
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    w = 4
    nov = np.zeros(n)
    for t in range(w, n - w):
        a, b = x[t - w:t].mean(axis=0), x[t:t + w].mean(axis=0)
        nov[t] = 1 - float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9)
    first = float(np.argmax(feats.rms > feats.rms.max() * 0.05)) * HOP / ANALYSIS_SR
    starts = [first]
    for t in np.argsort(-nov):
        s = t * block * HOP / ANALYSIS_SR
        if nov[t] <= 0 or s > duration - PHRASE_S[0]:
            continue
        if all(abs(s - u) >= PHRASE_S[0] for u in starts):
            starts.append(s)
    starts.sort()
    out = []
    for a, b in zip(starts, starts[1:] + [duration]):
        parts = max(1, math.ceil((b - a) / PHRASE_S[1] - 1e-9))
        out += [a + (b - a) * j / parts for j in range(parts)]
    return [round(s, 4) for s in out]


def _lufs(y: np.ndarray) -> float:
    try:
        import pyloudnorm

        value = float(pyloudnorm.Meter(ANALYSIS_SR).integrated_loudness(y.astype(np.float64)))
    except (ImportError, ValueError):
        return -70.0
    return round(value, 2) if math.isfinite(value) else -70.0


def dump(analysis: TrackAnalysis) -> dict:
    """The analysis as plain JSON values."""
    return json.loads(analysis.model_dump_json())
