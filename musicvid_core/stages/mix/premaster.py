"""The premaster mixed in numpy, block by block, and metered in the same pass (issue 18).

The premaster used to be an ffmpeg pass: the music bus ducked by a per-frame ``volume``
expression, the original bus through the source-music chain, ``amix``, and the ebur128 meter
(sample peak) into a WAV; then the limiter read that WAV again for its K-weighted energies. Here
one pass over the two buses (BLOCK chunks at a time, memory flat at any length) does all of it:

- the music lowered by the ducking depth under the plan's speech (filtergraph.duck_chain's gain),
- the original lowered (or muted) during its own music (filtergraph.source_music_chain's gain),
- both written as stems where asked (the bus taps), and summed into the premaster WAV,
- the premaster's sample peak, and its K-weighted energy per limiter chunk (limiter.analyse's
  figure, computed the same way: analyse is then left only the true peaks), from which its
  integrated loudness (BS.1770 blocks and gates, metrics.loudness.gated_lufs); the meter runs
  on a worker thread a block behind the mixing, so the pass uses both cores.

Both gains are the graph's own, evaluated once per DUCK_FRAME_SAMPLES frame at the frame's first
sample; tested equal to the filter graph's premaster sample for sample (tests/test_mixing_render.py),
its loudness within 0.1 LU of ebur128's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from musicvid_core.domain.errors import MediaToolError
from musicvid_core.domain.plan import Plan
from musicvid_core.metrics.loudness import k_weighting
from musicvid_core.stages.mix import limiter
from musicvid_core.stages.mix.filtergraph import DUCK_FRAME_SAMPLES, duck_spans, source_music_spans

# Chunks per block: a multiple of DUCK_FRAME_SAMPLES at any chunk size (4096 = 32 x 128), ~2.7 s
# at 48 kHz, 1 MB of float stereo per bus.
BLOCK_CHUNKS = 4096


@dataclass(frozen=True)
class Premaster:
    """The premaster written by :func:`mix_premaster`: its WAV, integrated loudness (LUFS, -70 for
    silence), sample peak (dBFS) and K-weighted energy per limiter chunk (limiter.analyse's
    ``energy``, handed to it so the premaster is not K-weighted twice)."""

    path: Path
    integrated_lufs: float
    sample_peak_db: float
    energy: object
    chunk: int


def span_gain(plan: Plan, spans: Sequence[tuple[float, float]], start: int, count: int, *, sample_rate: int,
              depth_db: float):
    """The gain (float64, one value per sample) of samples ``[start, start + count)`` lowered by
    ``depth_db`` dB over ``spans`` (filtergraph._envelope: a raised cosine over plan.duck_attack_s
    before each span, held, falling over plan.duck_release_s after it; infinite depth: 1 - envelope,
    silence inside). Evaluated once per DUCK_FRAME_SAMPLES frame, at its first sample, as ffmpeg's
    ``volume`` with ``eval=frame`` does after ``asetnsamples``; frames count from sample 0."""
    import numpy as np

    first = start // DUCK_FRAME_SAMPLES
    frames = -(-(start + count) // DUCK_FRAME_SAMPLES) - first
    t = (first + np.arange(frames)) * DUCK_FRAME_SAMPLES / sample_rate
    a, r = plan.duck_attack_s, plan.duck_release_s
    envelope = np.zeros(frames)
    for s, e in spans:
        if s - a > t[-1] or e + r < t[0]:
            continue
        up = 0.5 - 0.5 * np.cos(np.pi * np.clip((t - (s - a)) / a, 0.0, 1.0))
        down = 0.5 - 0.5 * np.cos(np.pi * np.clip((e + r - t) / r, 0.0, 1.0))
        envelope += np.minimum(up, down)
    gain = np.maximum(0.0, 1.0 - envelope) if math.isinf(depth_db) else 10 ** (-depth_db * envelope / 20)
    skip = start - first * DUCK_FRAME_SAMPLES
    return np.repeat(gain, DUCK_FRAME_SAMPLES)[skip:skip + count]


def mix_premaster(plan: Plan, music: Path, original: Path | None, dest: Path, *, sample_rate: int,
                  duck_db: float = 0.0, source_db: float = 0.0, stems: dict[str, Path] | None = None) -> Premaster:
    """Write the premaster to ``dest`` (float WAV): ``music`` (the music bus, render.render_music)
    ducked by ``duck_db`` dB under the plan's speech, plus ``original`` (the original bus,
    compose._bus_pass; None for a video without sound) lowered by ``source_db`` dB during the source's
    own music (infinite: muted). Both buses are float stereo WAVs at ``sample_rate`` of the same
    length. ``stems``: ``music`` and ``original`` name files for the buses as mixed (other names are
    not this pass's). Raises MediaToolError when the buses differ in length or format."""
    import numpy as np
    import soundfile as sf

    stems = {name: path for name, path in (stems or {}).items() if name in ("music", "original")}
    ducking = duck_spans(plan) if duck_db > 0 else []
    lowering = source_music_spans(plan) if original is not None and source_db > 0 else []
    chunk = limiter.chunk_size(sample_rate)
    step = BLOCK_CHUNKS * chunk
    with ExitStack() as stack:
        m = stack.enter_context(sf.SoundFile(str(music)))
        o = stack.enter_context(sf.SoundFile(str(original))) if original is not None else None
        total = m.frames
        if m.samplerate != sample_rate or m.channels != 2 or (
                o is not None and (o.frames != total or o.samplerate != sample_rate or o.channels != 2)):
            raise MediaToolError("the music and original buses differ in length or format")

        def writer(path: Path):
            return stack.enter_context(sf.SoundFile(str(path), "w", samplerate=sample_rate, channels=2,
                                                    subtype="FLOAT", format=m.format))

        out = writer(dest)
        taps = {name: writer(path) for name, path in stems.items()}
        energy = np.empty(-(-total // chunk), dtype=np.float32)
        meter = _Meter(k_weighting(sample_rate), energy, chunk)
        pool = stack.enter_context(ThreadPoolExecutor(1))  # one worker: the blocks are metered in order
        pending: list = []
        for b0 in range(0, total, step):
            x = m.read(step, dtype="float32", always_2d=True)
            n = len(x)
            if ducking:
                x *= span_gain(plan, ducking, b0, n, sample_rate=sample_rate, depth_db=duck_db)[:, None]
            if "music" in taps:
                taps["music"].write(x)
            if o is not None:
                y = o.read(step, dtype="float32", always_2d=True)
                if lowering:
                    y *= span_gain(plan, lowering, b0, n, sample_rate=sample_rate, depth_db=source_db)[:, None]
                if "original" in taps:
                    taps["original"].write(y)
                x += y
            pending.append(pool.submit(meter.add, x, b0 // chunk))  # x is not changed after this
            out.write(x)
            while len(pending) > 2:  # a block or two ahead of the meter, not the file
                pending.pop(0).result()
        for done in pending:
            done.result()
    peak = meter.peak
    peak_db = 20 * math.log10(peak) if peak > 0 else -math.inf
    lufs = limiter.energy_lufs(energy, chunk=chunk, sample_rate=sample_rate, total=total)
    return Premaster(Path(dest), round(lufs, 2), peak_db, energy, chunk)


class _Meter:
    """The premaster's meter, fed block after block (in order: the K-weighting's state runs on) on
    a worker thread beside the mixing (scipy's sosfilt and numpy's reductions release the GIL): the
    sample peak and each chunk's K-weighted energy (both channels summed), into ``energy``."""

    def __init__(self, sos, energy, chunk: int) -> None:
        import numpy as np

        self.sos, self.energy, self.chunk = sos, energy, chunk
        self.zi = np.zeros((sos.shape[0], 2, 2))  # the filter starts from rest, as the meters' do
        self.peak = 0.0

    def add(self, block, first_chunk: int) -> None:
        import numpy as np

        self.peak = max(self.peak, float(np.abs(block).max()))
        energy, self.zi = limiter.chunk_energies(self.sos, block, self.zi, self.chunk)
        self.energy[first_chunk:first_chunk + len(energy)] = energy
