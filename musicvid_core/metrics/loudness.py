"""Loudness measurements (ITU-R BS.1770 / EBU R128), independent of the code that mixed the audio.

``measure_loudness`` decodes a finished file and runs ffmpeg's ``ebur128`` meter on it, so what is
reported is what a player will hear, AAC encoding included. ``measure_array`` does the same for numpy
audio with pyloudnorm. Both are silence-safe: they never return NaN or infinities, so the figures can
be stored as JSON and compared without special cases.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from musicvid_core.domain.errors import BadInput, MediaToolError
from musicvid_core.media import DEFAULT_TIMEOUT_S, run_ffmpeg

# Floors reported for silence. -70 LUFS is BS.1770's absolute gate (what ebur128 prints for
# silence); -120 dBTP stands in for "no peak at all" (digital silence is -inf dB).
SILENCE_LUFS = -70.0
SILENCE_DBTP = -120.0
TRUE_PEAK_OVERSAMPLING = 4  # BS.1770-4 Annex 2: 4x oversampling at 48 kHz
ABSOLUTE_GATE_LUFS = -70.0  # BS.1770's gates: blocks under this are not counted...
RELATIVE_GATE_LU = -10.0  # ...nor those this far under the loudness of the blocks above it
# BS.1770 K-weighting's two analogue prototypes (as libebur128 and ffmpeg's ebur128 derive them for
# any rate): the shelving pre-filter and the RLB high-pass.
_SHELF_HZ, _SHELF_DB, _SHELF_Q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
_HIGHPASS_HZ, _HIGHPASS_Q = 38.13547087602444, 0.5003270373238773

# framelog=verbose keeps ebur128's ten-lines-a-second log out of stderr at the default log level;
# only the summary printed at the end is read.
EBUR128_FILTER = "ebur128=peak=true:framelog=verbose"
# The same meter with the sample peak instead of the 4x oversampled true peak (its summary's "Peak:"
# is then dBFS): a third of the cost, where a pass needs the loudness and only a bound on the peak.
SAMPLE_PEAK_FILTER = "ebur128=peak=sample:framelog=verbose"

_NUMBER = r"(-?(?:\d+(?:\.\d+)?|inf)|nan)"
_SUMMARY_FIELDS = {
    "integrated": re.compile(r"\bI:\s+" + _NUMBER + r"\s+LUFS"),
    "lra": re.compile(r"\bLRA:\s+" + _NUMBER + r"\s+LU\b"),
    "peak": re.compile(r"\bPeak:\s+" + _NUMBER + r"\s+dBFS"),
}


@dataclass(frozen=True)
class LoudnessReport:
    integrated_lufs: float  # LUFS, floored at -70 (silence)
    true_peak_dbtp: float  # dBTP, floored at -120 (silence)
    lra_lu: float  # loudness range in LU, 0 when undefined (silence, too short)

    def as_dict(self) -> dict:
        return {"integrated_lufs": self.integrated_lufs, "true_peak_dbtp": self.true_peak_dbtp,
                "lra_lu": self.lra_lu}


def _finite(value: float, floor: float) -> float:
    """``value`` rounded to 0.01, or ``floor`` when it is below the floor, -inf or NaN."""
    if math.isnan(value) or value < floor:
        return floor
    return round(value, 2)


def report(integrated_lufs: float, true_peak_dbtp: float, lra_lu: float) -> LoudnessReport:
    """A LoudnessReport with the silence floors applied (never NaN or infinite)."""
    lra = 0.0 if not math.isfinite(lra_lu) else round(max(lra_lu, 0.0), 2)
    return LoudnessReport(_finite(integrated_lufs, SILENCE_LUFS), _finite(true_peak_dbtp, SILENCE_DBTP),
                          lra)


def k_weighting(sample_rate: int):
    """BS.1770's K-weighting at ``sample_rate`` as scipy second-order sections (at 48 kHz the
    coefficients BS.1770-4 tabulates). numpy is imported here, on use: the mix stage imports this
    module, and nothing on `musicvid run`'s way to its first stage may import numpy (issue 18)."""
    import numpy as np

    k = math.tan(math.pi * _SHELF_HZ / sample_rate)
    vh = 10 ** (_SHELF_DB / 20)
    vb = vh ** 0.4996667741545416
    a0 = 1 + k / _SHELF_Q + k * k
    shelf = [(vh + vb * k / _SHELF_Q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / _SHELF_Q + k * k) / a0,
             1.0, 2 * (k * k - 1) / a0, (1 - k / _SHELF_Q + k * k) / a0]
    k = math.tan(math.pi * _HIGHPASS_HZ / sample_rate)
    a0 = 1 + k / _HIGHPASS_Q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2 * (k * k - 1) / a0, (1 - k / _HIGHPASS_Q + k * k) / a0]
    return np.array([shelf, highpass])


def gated_lufs(steps, step_samples: int) -> float:
    """BS.1770 integrated loudness (LUFS) from ``steps``: K-weighted energies (channels summed) of
    consecutive 100 ms steps of ``step_samples`` samples each. 400 ms blocks every 100 ms, then the
    absolute and the relative gate, as ebur128 applies them; SILENCE_LUFS when no block passes or
    there are fewer than four steps (not finite below that)."""
    import numpy as np

    if len(steps) < 4:
        return SILENCE_LUFS
    blocks = (steps[:-3] + steps[1:-2] + steps[2:-1] + steps[3:]) / (4 * step_samples)
    with np.errstate(divide="ignore"):
        level = -0.691 + 10 * np.log10(blocks)
        blocks = blocks[level >= ABSOLUTE_GATE_LUFS]
        if not len(blocks):
            return SILENCE_LUFS
        relative = -0.691 + 10 * np.log10(blocks.mean()) + RELATIVE_GATE_LU
        blocks = blocks[-0.691 + 10 * np.log10(blocks) >= relative]
        return float(-0.691 + 10 * np.log10(blocks.mean()))


def parse_ebur128_summary(stderr: str) -> LoudnessReport:
    """Read integrated loudness, loudness range and true peak from ffmpeg ebur128's summary.

    The summary is the block after the last ``Summary:`` line; with several audio streams metered
    in one run each prints one, so callers meter one stream per run. Raises MediaToolError when
    there is no summary (ffmpeg produced no audio).
    """
    at = stderr.rfind("Summary:")
    if at < 0:
        raise MediaToolError("ebur128 printed no loudness summary", stderr_tail=stderr[-2000:])
    block = stderr[at:]
    values = {}
    for name, pattern in _SUMMARY_FIELDS.items():
        m = pattern.search(block)
        values[name] = float(m.group(1)) if m else float("nan")
    return report(values["integrated"], values["peak"], values["lra"])


def measure_loudness(path: str | Path, *, stream: str = "a:0",
                     timeout: float = DEFAULT_TIMEOUT_S) -> LoudnessReport:
    """Integrated loudness (LUFS), true peak (dBTP) and loudness range (LU) of one audio stream of
    a media file, decoded and metered by ffmpeg's ebur128 (BS.1770-4, true peak 4x oversampled).

    ``stream`` is an ffmpeg stream specifier within the file (``a:0`` = first audio stream). Video is
    not decoded. Raises MediaToolError when the file or the stream cannot be read.
    """
    proc = run_ffmpeg(["-vn", "-sn", "-dn", "-i", str(path), "-map", f"0:{stream}",
                       "-af", EBUR128_FILTER, "-f", "null", "-"], timeout=timeout, what="loudness meter")
    return parse_ebur128_summary(proc.stderr)


def measure_array(samples, sample_rate: int) -> LoudnessReport:
    """BS.1770 loudness of numpy audio, shaped (samples,) or (samples, channels), floats in -1..1;
    channels in pyloudnorm's order L, R, C, Ls, Rs (at most 5, no LFE).

    Integrated loudness and loudness range come from pyloudnorm; true peak is the largest absolute
    sample after 4x polyphase oversampling. Raises BadInput for audio shorter than one 400 ms
    gating block (BS.1770 defines no loudness for it) or with more than 5 channels.
    """
    # The [local] extra's media stack, imported on use: the API Lambda imports this package without it.
    import numpy as np
    import pyloudnorm
    from scipy.signal import resample_poly

    data = np.asarray(samples, dtype=np.float64)
    channels = data.shape[1] if data.ndim == 2 else 1
    if data.ndim not in (1, 2) or channels > 5 or data.shape[0] < round(0.4 * sample_rate):
        raise BadInput("loudness needs at least 0.4 s of audio shaped (samples,) or (samples, channels "
                       "<= 5)", shape=list(data.shape), sample_rate=sample_rate)
    meter = pyloudnorm.Meter(sample_rate)
    integrated = meter.integrated_loudness(data)
    try:
        lra = meter.loudness_range(data)
    except ValueError:  # shorter than the 3 s short-term window needs
        lra = 0.0
    peak = float(np.max(np.abs(resample_poly(data, TRUE_PEAK_OVERSAMPLING, 1, axis=0))))
    peak_db = 20.0 * math.log10(peak) if peak > 0 else float("-inf")
    return report(float(integrated), peak_db, float(lra))
