"""The speech report's numpy span meter against ffmpeg's ebur128 (the figure it replaces)."""

import numpy as np
import pytest
import soundfile as sf

from musicvid_core.metrics import speech
from musicvid_core.metrics.speech import loudness_over, loudness_over_ffmpeg, speech_music_difference

SR = 48000


@pytest.fixture(scope="module")
def stem(tmp_path_factory):
    """20 s of stereo: noise on the left, a tone on the right, loud 1.2 s of every 3 s (so gating
    and the joins between spans matter), a length that is no whole number of 10 ms frames."""
    rng = np.random.default_rng(7)
    n = 20 * SR + 123
    t = np.arange(n) / SR
    env = np.where((t % 3) < 1.2, 0.3, 0.02) * (1 + 0.5 * np.sin(t))
    x = np.stack([env * rng.standard_normal(n) * 0.3, env * np.sin(2 * np.pi * 440 * t)], axis=1)
    path = tmp_path_factory.mktemp("meter") / "stem.wav"
    sf.write(path, x.astype(np.float32), SR, subtype="FLOAT")
    return path


@pytest.mark.parametrize("spans", [
    [(0, 20)],  # the whole stem, its part frame at the end
    [(1.003, 2.2)],  # off the 10 ms grid
    [(2, 5), (7.1234, 9.0), (8.5, 12.3)],  # overlapping spans: each frame once
    [(0.31, 1.7), (3.0, 3.45), (6.02, 7.99)],  # short pieces joined: the blocks straddle the joins
    [(0.5, 0.95)],  # one gating block
    [(4.2, 5.2)],  # quiet: the relative gate
    [(19.2, 25)],  # clipped at the end
])
def test_numpy_meter_reads_what_ebur128_reads(stem, spans):
    assert loudness_over(stem, spans) == pytest.approx(loudness_over_ffmpeg(stem, spans), abs=0.1)


def test_report_is_the_same_as_with_ebur128(stem, tmp_path, monkeypatch):
    """The whole speech report, old (one ffmpeg run per span set) against new, within 0.1 LU."""
    music = tmp_path / "music.wav"
    x, _ = sf.read(stem)
    sf.write(music, (x[::-1] * 0.2).astype(np.float32), SR, subtype="FLOAT")
    regions = [(1.0, 2.5), (5.2, 6.0), (9.0, 12.5), (16.0, 17.1)]
    new = speech_music_difference(stem, music, regions, unducked_music=stem)
    calls = []

    def by_ffmpeg(path, spans, timeout=600.0):
        calls.append(spans)
        return loudness_over_ffmpeg(path, spans, timeout=timeout)

    monkeypatch.setattr(speech, "loudness_over", by_ffmpeg)
    old = speech_music_difference(stem, music, regions, unducked_music=stem)
    assert len(calls) == 2 + 2 * 4  # the old way: one ffmpeg run per span set
    for key in ("speech_lufs", "music_lufs", "speech_music_lu", "recovery_lu"):
        assert new[key] == pytest.approx(old[key], abs=0.1), key
    assert new["speech_s"] == old["speech_s"] and new["music_recovered"] == old["music_recovered"]


def test_other_rates_go_through_ffmpeg(tmp_path):
    t = np.arange(3 * 44100) / 44100
    path = tmp_path / "cd.wav"
    sf.write(path, 0.1 * np.sin(2 * np.pi * 1000 * t), 44100, subtype="FLOAT")
    assert loudness_over(path, [(0.5, 2.5)]) == pytest.approx(-23.0, abs=0.2)  # mono 1 kHz sine at -20 dBFS peak
    assert loudness_over(path, [(0.5, 2.5)]) == loudness_over_ffmpeg(path, [(0.5, 2.5)])
