"""When a note is heard: the onset-lag measurement behind the renderer's onset alignment (render.py,
docs/music.md "Onset alignment"). Pure numpy, on one rendered note."""

from __future__ import annotations

import numpy as np

ONSET_WINDOW_S = 0.093  # STFT window of the onset function (librosa's 2048 samples at 22.05 kHz) ...
ONSET_LAG_S = 0.0116  # ... and the frame distance its flux differences (its 256-sample hop)
ONSET_HOP_S = 0.002  # this measurement's hop: 2 ms resolution
ONSET_RANGE_DB = 30.0  # levels more than this below the note's peak count as the peak less this: in a
# mix a note is heard when it rises out of the rest; from digital silence the log spectrum jumps
# the moment the window's edge touches the attack, and every sound would measure as a click
ONSET_BANDS = 40  # log-spaced from 30 Hz to Nyquist


def onset_time(mono: np.ndarray, sample_rate: int) -> float:
    """Time (seconds) of the peak of a spectral-flux onset function of ``mono``: log-power spectra
    (Hann window ONSET_WINDOW_S, ONSET_BANDS bands, floored ONSET_RANGE_DB below the peak) every
    ONSET_HOP_S, the mean over bands of the rise since ONSET_LAG_S before, half-wave rectified:
    the standard onset model of music information retrieval (as librosa's onset_strength), at a
    finer hop."""
    n_fft = round(ONSET_WINDOW_S * sample_rate)
    hop = max(1, round(ONSET_HOP_S * sample_rate))
    x = np.pad(mono.astype(np.float64), n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    edges = np.geomspace(30.0, sample_rate / 2, ONSET_BANDS + 1)
    band = np.digitize(freqs, edges) - 1
    ok = (band >= 0) & (band < ONSET_BANDS)
    bands = np.zeros((power.shape[0], ONSET_BANDS))
    np.add.at(bands.T, band[ok], power[:, ok].T)
    db = 10 * np.log10(np.maximum(bands, 1e-10))
    db = np.maximum(db, db.max() - ONSET_RANGE_DB)
    lag = max(1, round(ONSET_LAG_S / ONSET_HOP_S))
    flux = np.maximum(0.0, db[lag:] - db[:-lag]).mean(axis=1)
    return (int(np.argmax(flux)) + lag) * hop / sample_rate
