"""musicvid_core.metrics.sound on synthetic signals whose answers are known by arithmetic."""

import json
import math

import numpy as np
import pytest

from musicvid_core.domain.errors import BadInput
from musicvid_core.metrics import sound
from musicvid_core.metrics.sound_reference import REFERENCE

SR = 48000


def sine(freq=1000.0, seconds=2.0, amp=0.5, sr=SR):
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_crest_factor_of_a_sine_and_a_square():
    assert sound.crest_factor_db(sine(), SR) == pytest.approx(20 * math.log10(math.sqrt(2)), abs=0.02)
    square = np.sign(sine(100.0)) * 0.3
    assert sound.crest_factor_db(np.stack([square, square], axis=1), SR) == pytest.approx(0.0, abs=0.01)
    with pytest.raises(BadInput):
        sound.crest_factor_db(np.zeros(SR), SR)


def test_loudness_range_of_two_levels_is_their_difference():
    loud, quiet = sine(seconds=20.0, amp=0.3), sine(seconds=20.0, amp=0.3 * 10 ** (-10 / 20))
    two = np.concatenate([loud, quiet])
    assert sound.loudness_range_lu(np.stack([two, two], axis=1), SR) == pytest.approx(10.0, abs=0.3)
    assert sound.loudness_range_lu(loud, SR) == pytest.approx(0.0, abs=0.05)
    assert sound.loudness_range_lu(sine(seconds=1.0), SR) == 0.0  # shorter than one 3 s window


def test_stereo_width_mono_uncorrelated_and_out_of_phase():
    rng = np.random.default_rng(0)
    mono = rng.standard_normal(SR * 4) * 0.1
    same = sound.stereo_width(np.stack([mono, mono], axis=1), SR)
    assert same == {"width": 0.0, "correlation": pytest.approx(1.0), "mono_loss_db": pytest.approx(0.0, abs=1e-9)}
    wide = sound.stereo_width(rng.standard_normal((SR * 4, 2)) * 0.1, SR)
    assert wide["width"] == pytest.approx(1.0, abs=0.02) and abs(wide["correlation"]) < 0.02
    assert wide["mono_loss_db"] == pytest.approx(-3.01, abs=0.05)
    flipped = sound.stereo_width(np.stack([mono, -mono], axis=1), SR)
    assert flipped["width"] == 10.0 and flipped["correlation"] == pytest.approx(-1.0)
    assert flipped["mono_loss_db"] == sound.SILENCE_DB
    assert sound.stereo_width(mono, SR)["width"] == 0.0  # one channel reads as mono


def test_section_contrast_of_alternating_levels():
    a, b = sine(seconds=8.0, amp=0.3), sine(seconds=8.0, amp=0.3 * 10 ** (-6 / 20))
    x = np.concatenate([a, b, a, b])
    assert sound.section_contrast_db(x, SR) == pytest.approx(6.0, abs=0.05)
    assert sound.section_contrast_db(x, SR, boundaries_s=[16.0]) == pytest.approx(0.0, abs=0.05)  # same mix each half
    assert math.isnan(sound.section_contrast_db(a, SR))  # one section: nothing to compare


def test_repetition_index_of_a_copied_bar_and_of_bars_that_all_differ():
    rng = np.random.default_rng(1)

    def rhythm(bars):  # noise with a random level per 16th note: each bar its own rhythm
        return rng.standard_normal(bars * 2 * SR) * np.repeat(rng.uniform(0.0, 1.0, bars * 16) ** 2, SR // 8)

    bar = rhythm(1)  # 2 s bars: 120 bpm in 4/4
    assert sound.repetition_index(np.tile(bar, 8), SR, bpm=120.0) == 1.0
    fresh = rhythm(8)
    assert sound.repetition_index(fresh, SR, bpm=120.0) == 0.0
    half = np.concatenate([np.tile(bar, 4), fresh[:8 * SR]])  # 4 copies, then 4 bars of their own
    assert sound.repetition_index(half, SR, beats_s=list(np.arange(0, 16, 0.5))) == 0.5
    assert math.isnan(sound.repetition_index(bar, SR, bpm=120.0))  # one bar


def test_spectral_balance_of_white_noise_and_a_sine():
    noise = np.random.default_rng(2).standard_normal((SR * 8, 2)) * 0.1
    curve = sound.spectral_balance(noise, SR)
    assert len(curve) == len(sound.BAND_CENTRES) == 28
    steps = np.diff(curve[8:26])  # white noise: each third octave holds 2^(1/3) times the one below
    assert np.all(np.abs(steps - 10 * math.log10(2 ** (1 / 3))) < 0.35)
    tone = sound.spectral_balance(sine(1000.0), SR)
    assert tone[sound.BAND_NAMES.index("1.0k")] == pytest.approx(0.0, abs=0.01)
    assert np.delete(tone, sound.BAND_NAMES.index("1.0k")).max() < -30


def test_balance_deviation_against_itself_and_a_tilt():
    ref = REFERENCE["curve"]
    same = sound.balance_deviation(ref)
    assert same["rms_db"] == 0.0 and all(v == 0.0 for v in same["regions_db"].values())
    dull = np.array(ref) - np.where(np.array(sound.BAND_CENTRES) >= 6000, 20.0, 0.0)
    dev = sound.balance_deviation(dull)
    assert dev["regions_db"]["air"] == pytest.approx(-20.0, abs=0.5) and dev["regions_db"]["mid"] > -0.5
    with pytest.raises(BadInput):
        sound.balance_deviation([0.0, 1.0])


def test_the_reference_table_is_complete():
    assert REFERENCE["tracks"] == 28 and len(REFERENCE["curve"]) == len(sound.BAND_CENTRES)
    assert set(REFERENCE["regions_db"]) == set(sound.REGIONS)
    for figure in ("crest_db", "lra_lu", "width", "correlation", "mono_loss_db", "contrast_db", "repetition"):
        q = REFERENCE["figures"][figure]
        assert q["p10"] <= q["median"] <= q["p90"]


def test_sound_report_is_json_and_bad_input_is_one_line():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((SR * 10, 2)) * 0.05).astype(np.float32)
    report = sound.sound_report(x, SR, beats_s=list(np.arange(0, 10, 0.5)))
    assert json.loads(json.dumps(report)) == report
    assert report["width"] == pytest.approx(1.0, abs=0.05) and report["repetition"] == 0.0
    for bad in (np.zeros((0, 2)), np.full((SR, 2), np.nan), np.zeros((10, 2))):
        with pytest.raises(BadInput):
            sound.sound_report(bad, SR)
    with pytest.raises(BadInput):
        sound.crest_factor_db(x, 0)


def test_other_rates_are_measured_at_48k():
    x32 = sine(1000.0, sr=32000)
    assert sound.crest_factor_db(x32, 32000) == pytest.approx(3.01, abs=0.05)
    assert sound.spectral_balance(x32, 32000)[sound.BAND_NAMES.index("1.0k")] == pytest.approx(0.0, abs=0.05)
