"""The learned beat and downbeat activations (metrics/learned_beats.py: BeatNet's CRNN in numpy).

The port was checked against BeatNet itself (torch and madmom, which are not dependencies) by
data/beatnet_weights.py: features within 4e-7, activations within 2e-6 on library tracks. Here:
what the port must keep without them -- the weights and their notice ship, the filterbank is
madmom's shape, blocks give what the whole file gives, and the network hears the beats of a
generated track with known beats (on them, not between them) and its downbeats.
"""

from __future__ import annotations

import numpy as np
import pytest

from musicvid_core.domain.errors import BadInput
from musicvid_core.lab.tracks import make_track
from musicvid_core.metrics import learned_beats as lb


def test_the_weights_ship_with_their_licence_notice():
    with np.load(lb.WEIGHTS) as data:
        assert "CC BY 4.0" in str(data["notice"]) and "Heydari" in str(data["notice"])
        assert data["lstm.weight_hh_l1"].shape == (600, 150) and data["linear.weight"].shape == (3, 150)


def test_the_filterbank_is_madmoms_logarithmic_one():
    fb = lb.filterbank()
    assert fb.shape == (lb.FRAME >> 1, 136)  # 24 bands an octave, 30 Hz - 17 kHz, unique bins
    assert np.allclose(fb.sum(axis=0), 1.0, atol=1e-5)  # area-normalised
    centres = np.argmax(fb, axis=0)
    assert np.all(np.diff(centres) > 0)  # one band per bin pair, rising


def test_blocks_carry_the_network_state_exactly(monkeypatch):
    y = make_track(bpm=120, bars=6, seed=3)
    mono = lb.activations(y.audio, y.sample_rate)
    whole = lb.network(lb.features(_mono(y)))
    monkeypatch.setattr(lb, "CHUNK", 97)  # odd blocks: the diff frames and the LSTM cross every edge
    blocked = lb.activations(y.audio, y.sample_rate)
    assert mono.shape == whole.shape == blocked.shape == (int(np.ceil(_mono(y).size / lb.HOP)), 3)
    assert np.abs(blocked - whole).max() < 1e-5 and np.abs(mono - whole).max() < 1e-5
    assert np.allclose(blocked.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("kw", [dict(bpm=120), dict(bpm=96, offset_s=0.37), dict(bpm=140, sample_rate=48000)])
def test_the_network_hears_the_beats_of_a_generated_track(kw):
    s = make_track(bars=16, seed=1, **kw)
    act = lb.activations(s.audio, s.sample_rate)
    beat = act[:, lb.BEAT] + act[:, lb.DOWNBEAT]
    beats = np.asarray(s.beats)
    beats = beats[beats > 4.0]  # a causal network: the first seconds are its warm-up
    period = float(np.median(np.diff(beats)))

    def at(times):
        idx = np.clip(np.rint(np.asarray(times) * lb.FPS).astype(int), 1, beat.size - 2)
        return np.maximum(np.maximum(beat[idx - 1], beat[idx]), beat[idx + 1])

    assert np.mean(at(beats)) > 0.5
    assert np.mean(at(beats + period / 2)) < 0.25 * np.mean(at(beats))


def test_frames_at_another_rate_are_read_in_time():
    act = np.zeros((500, 3), np.float32)
    act[:, lb.NEITHER] = 1.0
    act[100] = (0.2, 0.7, 0.1)  # 2.0 s
    heard = lb.on_frames(act, 300, 256, 22050, delay_s=0.024)
    j = int(np.argmax(heard[0]))
    assert abs(j * 256 / 22050 - 0.024 - 2.0) < 256 / 22050
    assert heard[0, j] == pytest.approx(0.9, abs=0.2) and heard[1, j] == pytest.approx(0.7, abs=0.2)


def test_bad_audio_is_one_line():
    with pytest.raises(BadInput):
        lb.activations(np.array([0.0, np.nan, 0.0], np.float32), 22050)
    quiet = lb.activations(np.zeros(22050 * 3, np.float32), 22050)
    assert np.isfinite(quiet).all() and quiet[:, lb.NEITHER].min() > 0.5


def _mono(s) -> np.ndarray:
    from musicvid_core.metrics.music import _analysis_mono

    return _analysis_mono(s.audio, s.sample_rate)
