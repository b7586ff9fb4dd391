"""Duration handling shared by the MusicGen backends (SageMaker async endpoint, local transformers).

MusicGen writes ``TOKENS_PER_SECOND`` codec frames per second of audio and was trained on 30 s
excerpts, so a segment's clip (segment + release tail, :meth:`Plan.clip_samples`) is asked for in
*pieces* of at most ``MAX_WINDOW_S``: a longer clip is split on bar lines of the segment's tempo and
the pieces, each generated ``XFADE_S`` longer than its share, are joined with equal-power
crossfades. Whatever length the model returns, the clip is then trimmed or padded to exactly the
number of samples the mixer expects, resampled to the pipeline's rate, made stereo and levelled to
the loudness the procedural generator would give the same energy (``music.fx``).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np

from musicvid_core.domain.errors import GenerationError
from musicvid_core.domain.plan import Plan
from musicvid_core.media import resample

TOKENS_PER_SECOND = 50  # MusicGen's EnCodec frame rate (32 kHz / 640)
CODEBOOKS = 4  # MusicGen's delay pattern costs CODEBOOKS - 1 extra tokens per request
MAX_WINDOW_S = 30.0  # the longest excerpt MusicGen was trained on
XFADE_S = 1.0  # overlap of two pieces of one long clip (equal-power crossfade)
EDGE_FADE_S = 0.02  # fade where a returned clip is cut short, so the trim never clicks
BEATS_PER_BAR = 4


@dataclass(frozen=True)
class Piece:
    """One model request: ``length_s`` seconds of music starting ``offset_s`` into segment
    ``index``'s clip (``part`` 0..n-1 of that clip)."""

    index: int
    part: int
    offset_s: float
    length_s: float
    prompt: str

    @property
    def max_new_tokens(self) -> int:
        return max_new_tokens(self.length_s)


def max_new_tokens(seconds: float, frame_rate: int = TOKENS_PER_SECOND, codebooks: int = CODEBOOKS) -> int:
    """Tokens to ask for ``seconds`` of audio: ``frame_rate`` per second plus the delay pattern."""
    return max(1, math.ceil(seconds * frame_rate - 1e-9)) + codebooks - 1


def split_on_bars(seconds: float, bpm: float, max_s: float = MAX_WINDOW_S,
                  xfade_s: float = XFADE_S) -> list[tuple[float, float]]:
    """``(offset, length)`` pieces (seconds) covering ``seconds``: one piece when it fits in
    ``max_s``, else boundaries at bar lines (4/4 at ``bpm``) near even splits, every piece but the
    last ``xfade_s`` longer than its share and none longer than ``max_s``."""
    if seconds <= max_s:
        return [(0.0, seconds)]
    bar = BEATS_PER_BAR * 60.0 / bpm
    step = max_s - xfade_s
    parts = math.ceil((seconds - xfade_s) / step)
    bounds = [0.0]
    for k in range(1, parts):
        even = seconds * k / parts
        snapped = round(even / bar) * bar
        # A bar line may not push a piece past max_s (with its overlap) or behind the previous one.
        lo, hi = bounds[-1] + xfade_s, min(bounds[-1] + step, seconds - xfade_s)
        if not lo <= snapped <= hi:
            snapped = math.floor(hi / bar) * bar if math.floor(hi / bar) * bar >= lo else hi
        bounds.append(snapped)
    bounds.append(seconds)
    while seconds - bounds[-2] > max_s:  # the last piece must fit too: add a split
        bounds.insert(-1, bounds[-2] + step)
    return [(a, (b - a) + (xfade_s if i < len(bounds) - 2 else 0.0))
            for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]


def plan_pieces(plan: Plan, indexes: list[int] | None = None) -> list[Piece]:
    """The requests for the clips of ``indexes`` (default: every segment), in order."""
    pieces = []
    for index in range(len(plan.segments)) if indexes is None else indexes:
        seg = plan.segments[index]
        clip_s = seg.duration + plan.tail_s(index)
        for part, (offset, length) in enumerate(split_on_bars(clip_s, seg.bpm, MAX_WINDOW_S, XFADE_S)):
            pieces.append(Piece(index, part, offset, length, describe(plan, index)))
    return pieces


def describe(plan: Plan, index: int) -> str:
    """The text MusicGen is conditioned on: the segment's description plus its tempo and key."""
    seg = plan.segments[index]
    extra = [f"{seg.bpm:.0f} bpm", seg.key]
    return ", ".join([seg.prompt.strip().rstrip(".")] + [e for e in extra if e.lower() not in seg.prompt.lower()])


def fit_length(audio: np.ndarray, n: int, sample_rate: int) -> np.ndarray:
    """(m, c) audio trimmed (with a short fade at the cut) or padded with silence to (n, c)."""
    m = audio.shape[0]
    if m >= n:
        out = audio[:n].copy()
        if m > n:
            fade = min(n, round(EDGE_FADE_S * sample_rate))
            out[n - fade:] *= np.cos(np.linspace(0.0, np.pi / 2, fade, dtype=out.dtype))[:, None]
        return out
    return np.concatenate([audio, np.zeros((n - m, audio.shape[1]), dtype=audio.dtype)])


def join_pieces(parts: list[tuple[float, np.ndarray]], sample_rate: int, n: int,
                xfade_s: float | None = None) -> np.ndarray:
    """Join ``(offset seconds, (m, c) audio)`` pieces into (n, c): each piece placed at its offset,
    fitted to reach ``xfade_s`` (default XFADE_S) into the next, and crossfaded with it at equal
    power."""
    xfade_s = XFADE_S if xfade_s is None else xfade_s
    channels = max(p.shape[1] for _, p in parts)
    out = np.zeros((n, channels), dtype=np.float32)
    xf = round(xfade_s * sample_rate)
    starts = [round(offset * sample_rate) for offset, _ in parts] + [n]
    for k, (_, piece) in enumerate(parts):
        a, b = starts[k], starts[k + 1]
        last = k == len(parts) - 1
        want = (b - a) + (0 if last else xf)
        y = fit_length(np.broadcast_to(piece, (piece.shape[0], channels)).astype(np.float32), want, sample_rate)
        if k > 0:  # fade this piece in over the previous one's tail
            ramp = np.linspace(0.0, np.pi / 2, xf, dtype=np.float32)
            y[:xf] *= np.sin(ramp)[:, None]
            out[a:a + xf] *= np.cos(ramp)[:, None]
            out[a:a + xf] += y[:xf]
            y = y[xf:]
            a += xf
        end = min(n, a + y.shape[0])
        out[a:end] = y[:end - a]
    return out


def to_clip(audio: np.ndarray, model_rate: int, plan: Plan, index: int, sample_rate: int) -> np.ndarray:
    """A model's output for segment ``index`` as the pipeline's clip: float32 (n, 2) at
    ``sample_rate`` Hz, exactly ``plan.clip_samples(index, sample_rate)`` long, levelled to the
    segment's energy (fx.target_lufs) with peaks <= -1 dBFS. GenerationError for silence or NaN."""
    from musicvid_core.stages.compose.fx import _normalise, limit, target_lufs

    y = np.asarray(audio, dtype=np.float32)
    if y.ndim == 1:
        y = y[:, None]
    if y.shape[0] == 0 or not np.isfinite(y).all() or not np.abs(y).max() > 1e-6:
        raise GenerationError(f"segment {index}: the model returned empty, silent or invalid audio",
                              index=index)
    y = resample(y, model_rate, sample_rate)
    if y.shape[1] == 1:
        y = np.repeat(y, 2, axis=1)
    y = y[:, :2]
    n = plan.clip_samples(index, sample_rate)
    y = fit_length(y, n, sample_rate)
    seg = plan.segments[index]
    body = max(1, n - round(plan.tail_s(index) * sample_rate))
    y = _normalise(y, sample_rate, body, target_lufs(seg.mean_energy))
    y = np.clip(limit(y, sample_rate), -1.0, 1.0)
    return np.ascontiguousarray(y, dtype=np.float32)


def assemble(parts: list[tuple[float, np.ndarray]], model_rate: int, plan: Plan, index: int,
             sample_rate: int) -> np.ndarray:
    """Segment ``index``'s clip from its generated pieces ((offset s, audio at ``model_rate``)):
    joined when there are several, then :func:`to_clip`."""
    n_model = round((plan.segments[index].duration + plan.tail_s(index)) * model_rate)
    joined = join_pieces(parts, model_rate, n_model) if len(parts) > 1 else parts[0][1]
    return to_clip(joined, model_rate, plan, index, sample_rate)


def decode_wav(data: bytes, what: str) -> tuple[np.ndarray, int]:
    """(frames, channels) float32 and the rate of WAV (or any soundfile format) bytes;
    GenerationError for bytes that are not audio or hold no frames."""
    import soundfile as sf

    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (RuntimeError, ValueError, sf.LibsndfileError) as exc:
        raise GenerationError(f"{what}: the output is not audio ({' '.join(str(exc).split())[:120]})") from None
    if audio.shape[0] == 0:
        raise GenerationError(f"{what}: the output holds no audio")
    return audio, int(rate)


def encode_wav(audio: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV bytes of (frames[, channels]) float audio (what the endpoint returns)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()
