"""Playing an edit decision list: the source audio, piece by piece, into exactly ``n_samples``.

A piece within COPY_TOLERANCE of its recorded tempo is copied sample for sample (most of them:
the grid stretches as few beats as it can); the others go through Rubber Band
(``pedalboard.time_stretch``, pitch kept; its R2 engine with crisp transients, STRETCH_OPTIONS)
with PAD_S of source either side so the stretcher's
edges fall outside what is kept, on a pool of two threads (Rubber Band releases the GIL). Each
piece is laid over the one before it in its ``fade`` window: equal-power (cos/sin) at a seam --
two different signals -- and linear where the source plays on (the same signal twice, where an
equal-power fade would swell by 3 dB). The ending is the track's own, faded over its last
END_FADE_S so the last sample is silent, or a made one: the bar after the last one played, held
for a beat, then released to silence (a raised-cosine fade) under a reverb tail of its first
beat. Every piece is rendered from its own arguments only, so re-rendering one segment changes no
sample outside it.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from musicvid_core.domain.errors import BadInput
from musicvid_core.stages.compose.track.edit import COPY_TOLERANCE, Edit, Piece

PAD_S = 0.1
END_FADE_S = 0.01
RING_HOLD_BEATS = 1.0
REVERB = dict(room_size=0.85, damping=0.4, wet_level=1.0, dry_level=0.0, width=1.0)
REVERB_GAIN = 0.35
THREADS = 2
# Rubber Band's R2 engine, crisp transients (its default): it keeps the beat's accent over the
# off-beat (|log| shift p90 0.11, largest 0.23, over the 28 library tracks stretched by 3-5 %; the
# finer R3 engine 0.22 and 0.65, always softening the beat) at a like spectral fidelity and 0.4x
# R3's CPU. bench/stretch_fidelity.py; docs/tracks.md, "Round 6".
STRETCH_OPTIONS = dict(high_quality=False, transient_mode="crisp")


def render_edit(edit: Edit, source: np.ndarray, *, threads: int = THREADS) -> np.ndarray:
    """The edit's audio: float32 (edit.n_samples, channels) from ``source`` (samples, channels) at
    ``edit.sample_rate``. Raises BadInput when the source is not 2-D or is shorter than a piece
    needs (it was decoded from another file or at another rate)."""
    src = np.asarray(source, dtype=np.float32)
    if src.ndim != 2:
        raise BadInput(f"source audio must be (samples, channels), got shape {src.shape}")
    need = max((p.src_start for p in edit.pieces), default=0)
    if need >= src.shape[0]:
        raise BadInput("source audio is shorter than the edit needs: decode the edit's own track at "
                       f"{edit.sample_rate} Hz")
    beat = int(round(_beat_s(edit) * edit.sample_rate))
    with ThreadPoolExecutor(max(1, threads)) as pool:
        bodies = list(pool.map(lambda p: _piece(p, src, edit.sample_rate), edit.pieces[:-1]))
    out = np.zeros((edit.n_samples, src.shape[1]), np.float32)
    for piece, buf in zip(edit.pieces, bodies + [_ending(edit, edit.pieces[-1], src, beat)]):
        _lay(out, piece, buf)
    return out


def render_span(edit: Edit, source: np.ndarray, start_sample: int, end_sample: int, *,
                threads: int = THREADS) -> np.ndarray:
    """Samples [start_sample, end_sample) of the edit's audio, bit-identical to
    ``render_edit(edit, source)[start_sample:end_sample]``, rendering only the pieces that reach
    that span (a piece reaches back ``fade`` samples before its start; the one whose crossfade
    falls in the span brings the piece before it). float32 (end - start, channels). Raises
    BadInput for a span outside [0, n_samples] or as :func:`render_edit` does."""
    src = np.asarray(source, dtype=np.float32)
    if src.ndim != 2:
        raise BadInput(f"source audio must be (samples, channels), got shape {src.shape}")
    if not 0 <= start_sample <= end_sample <= edit.n_samples:
        raise BadInput(f"span {start_sample}..{end_sample} is outside the edit's {edit.n_samples} samples")
    need = max((p.src_start for p in edit.pieces), default=0)
    if need >= src.shape[0]:
        raise BadInput("source audio is shorter than the edit needs: decode the edit's own track at "
                       f"{edit.sample_rate} Hz")
    last = len(edit.pieces) - 1
    chosen = [i for i, p in enumerate(edit.pieces)
              if p.out_start - min(p.fade, p.out_start) < end_sample and p.out_end > start_sample]
    if not chosen:
        return np.zeros((end_sample - start_sample, src.shape[1]), np.float32)
    # a piece's crossfade lies in the piece before it: both are in ``chosen`` when it reaches the span
    base = min(edit.pieces[i].out_start - min(edit.pieces[i].fade, edit.pieces[i].out_start) for i in chosen)
    top = max(edit.pieces[i].out_end for i in chosen)
    beat = int(round(_beat_s(edit) * edit.sample_rate))
    inner = [i for i in chosen if i != last]
    with ThreadPoolExecutor(max(1, threads)) as pool:
        bodies = dict(zip(inner, pool.map(lambda i: _piece(edit.pieces[i], src, edit.sample_rate), inner)))
    if last in chosen:
        bodies[last] = _ending(edit, edit.pieces[last], src, beat)
    out = np.zeros((top - base, src.shape[1]), np.float32)
    for i in chosen:  # in order, as render_edit lays them
        p = edit.pieces[i]
        _lay(out, p.model_copy(update={"out_start": p.out_start - base, "out_end": p.out_end - base}), bodies[i])
    return out[start_sample - base:end_sample - base]


def _beat_s(edit: Edit) -> float:
    if len(edit.beats) > 1:
        return (edit.beats[-1] - edit.beats[0]) / (len(edit.beats) - 1)
    return 0.5


def _window(src: np.ndarray, a: int, b: int) -> np.ndarray:
    """src[a:b] with zeros where it runs past either end."""
    out = np.zeros((b - a, src.shape[1]), np.float32)
    lo, hi = max(a, 0), min(b, src.shape[0])
    if hi > lo:
        out[lo - a:hi - a] = src[lo:hi]
    return out


def _piece(p: Piece, src: np.ndarray, sr: int) -> np.ndarray:
    """The piece's samples from ``fade`` before its start to its end: (fade + length, channels)."""
    length = p.out_end - p.out_start
    ratio = p.ratio
    if abs(ratio - 1) <= COPY_TOLERANCE:
        return _window(src, p.src_start - p.fade, p.src_start + length)
    import pedalboard

    pad = int(PAD_S * sr)
    pre = int(round(p.fade / ratio))
    a, b = p.src_start - pre - pad, p.src_end + pad
    stretched = pedalboard.time_stretch(_window(src, a, b).T.copy(), sr, stretch_factor=1.0 / ratio,
                                        **STRETCH_OPTIONS).T
    start = int(round(pad * ratio))
    got = stretched[start:start + p.fade + length]
    if got.shape[0] < p.fade + length:
        got = np.concatenate([got, np.zeros((p.fade + length - got.shape[0], src.shape[1]), np.float32)])
    return np.ascontiguousarray(got, dtype=np.float32)


def _lay(out: np.ndarray, p: Piece, buf: np.ndarray) -> None:
    """Write ``buf`` (fade + length samples) at the piece's place, crossfading its first ``fade``."""
    fade = min(p.fade, p.out_start)
    body = buf[p.fade:]
    out[p.out_start:p.out_end] = body[:p.out_end - p.out_start]
    if fade <= 0:
        return
    head = buf[p.fade - fade:p.fade]
    x = (np.arange(fade, dtype=np.float64) + 0.5) / fade
    if p.join == "seam":
        g_in, g_out = np.sin(x * math.pi / 2), np.cos(x * math.pi / 2)
    else:
        g_in, g_out = x, 1 - x
    region = out[p.out_start - fade:p.out_start]
    region[:] = region * g_out[:, None].astype(np.float32) + head * g_in[:, None].astype(np.float32)


def _ending(edit: Edit, p: Piece, src: np.ndarray, beat: int) -> np.ndarray:
    """The ending piece (fade + length samples): the track's own with a final END_FADE_S fade, or a
    made one (see the module docstring) that reaches silence on the last sample."""
    sr = edit.sample_rate
    length = p.out_end - p.out_start
    buf = _window(src, p.src_start - p.fade, p.src_start + length)
    if length <= 0:
        return buf
    tail = buf[p.fade:]
    if edit.ending == "real":
        n = min(length, max(1, int(END_FADE_S * sr)))
        tail[-n:] *= np.linspace(1.0, 0.0, n, dtype=np.float32)[:, None]
        return buf
    hold = min(int(RING_HOLD_BEATS * beat), length // 3) if not edit.free_time else min(length // 4, sr)
    t = np.arange(length - hold, dtype=np.float64) / max(1, length - hold - 1)
    release = (0.5 * (1 + np.cos(math.pi * t))).astype(np.float32)  # 1 -> 0, raised cosine
    env = np.concatenate([np.ones(hold, np.float32), release])
    dry = tail * env[:, None]
    try:
        import pedalboard

        chord = np.zeros_like(tail)
        chord[:max(hold, 1)] = tail[:max(hold, 1)]
        wet = pedalboard.Reverb(**REVERB)(chord.T.copy(), sr).T
        decay = np.linspace(1.0, 0.0, length, dtype=np.float32) ** 2
        dry = dry + REVERB_GAIN * wet[:length] * decay[:, None]
    except ImportError:  # pedalboard is in the [local] extra; the release alone still ends in silence
        pass
    buf[p.fade:] = dry
    return buf
