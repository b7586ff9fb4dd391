"""Loudness meters: ffmpeg ebur128 on files, pyloudnorm on arrays; silence-safe, and they agree."""

import math

import numpy as np
import pytest
import soundfile as sf

from musicvid_core.domain.errors import BadInput, MediaToolError
from musicvid_core.metrics import measure_array, measure_loudness
from musicvid_core.metrics.loudness import parse_ebur128_summary

SR = 48000

SUMMARY = """[Parsed_ebur128_0 @ 0x1] t: 5.9  TARGET:-23 LUFS    M: -20.1 S: -20.0     I: -20.0 LUFS
[Parsed_ebur128_0 @ 0x1] Summary:

  Integrated loudness:
    I:         -20.0 LUFS
    Threshold: -30.0 LUFS

  Loudness range:
    LRA:         1.5 LU
    Threshold: -40.0 LUFS
    LRA low:   -21.0 LUFS
    LRA high:  -19.5 LUFS

  True peak:
    Peak:      {peak} dBFS
"""


def sine(level_dbfs: float, seconds: float = 5.0, freq: float = 1000.0):
    t = np.arange(round(seconds * SR)) / SR
    x = 10 ** (level_dbfs / 20) * np.sin(2 * np.pi * freq * t)
    return np.stack([x, x], axis=1)


def test_parse_summary():
    rep = parse_ebur128_summary(SUMMARY.format(peak="-3.2"))
    assert (rep.integrated_lufs, rep.lra_lu, rep.true_peak_dbtp) == (-20.0, 1.5, -3.2)
    silent = parse_ebur128_summary(SUMMARY.format(peak="-inf").replace("-20.0 LUFS", "-70.0 LUFS"))
    assert silent.true_peak_dbtp == -120.0 and silent.integrated_lufs == -70.0
    with pytest.raises(MediaToolError):
        parse_ebur128_summary("Error opening input")


def test_array_meter_reads_a_reference_sine():
    # A 1 kHz sine in both channels reads its peak level in LUFS (BS.1770's calibration).
    rep = measure_array(sine(-20.0), SR)
    assert rep.integrated_lufs == pytest.approx(-20.0, abs=0.1)
    assert rep.true_peak_dbtp == pytest.approx(-20.0, abs=0.1)


def test_array_meter_is_silence_safe():
    rep = measure_array(np.zeros((SR * 2, 2)), SR)
    assert (rep.integrated_lufs, rep.true_peak_dbtp, rep.lra_lu) == (-70.0, -120.0, 0.0)
    assert measure_array(np.zeros(SR), SR).integrated_lufs == -70.0  # mono, too short for LRA
    with pytest.raises(BadInput):
        measure_array(np.zeros(100), SR)
    with pytest.raises(BadInput):
        measure_array(np.zeros((SR, 6)), SR)  # 5.1: pyloudnorm has no LFE weighting


def test_file_meter_agrees_with_array_meter(tmp_path):
    # two chords of different level, so the loudness range is not zero
    x = np.concatenate([sine(-30.0, 4.0, 440.0), sine(-18.0, 4.0, 660.0)])
    wav = tmp_path / "x.wav"
    sf.write(wav, x.astype(np.float32), SR, subtype="FLOAT")
    a, f = measure_array(x, SR), measure_loudness(wav)
    assert f.integrated_lufs == pytest.approx(a.integrated_lufs, abs=0.2)
    assert f.true_peak_dbtp == pytest.approx(a.true_peak_dbtp, abs=0.2)
    assert f.lra_lu > 5 and a.lra_lu > 5


def test_file_meter_on_silence(tmp_path):
    wav = tmp_path / "silence.wav"
    sf.write(wav, np.zeros((SR * 3, 2), dtype=np.float32), SR, subtype="FLOAT")
    rep = measure_loudness(wav)
    assert rep.integrated_lufs == -70.0 and rep.true_peak_dbtp == -120.0
    assert all(math.isfinite(v) for v in rep.as_dict().values())


def test_file_meter_without_audio_raises(tmp_path):
    with pytest.raises(MediaToolError):
        measure_loudness(tmp_path / "missing.wav")
