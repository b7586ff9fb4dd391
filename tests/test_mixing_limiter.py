"""The in-process true-peak limiter (stages/mix/limiter.py) against ffmpeg's meters: its true peak,
its loudness estimate, the ceiling it keeps, its fit, and the master streamed into ffmpeg."""

import math
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from musicvid_core.domain.errors import MediaToolError
from musicvid_core.media import run_ffmpeg
from musicvid_core.metrics.loudness import measure_loudness
from musicvid_core.stages.mix import limiter

SR = 48000


def write(path, x, rate=SR):
    sf.write(path, np.asarray(x, dtype=np.float32), rate, subtype="FLOAT")
    return path


def music_like(seconds, rate=SR, seed=0):
    """Noise shaped like a loud mix: a bass tone, pink-ish noise, and drum hits (sharp transients
    whose in-between peaks exceed their samples), stereo."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    noise = np.cumsum(rng.standard_normal((n, 2)), axis=0)
    noise -= np.convolve(noise[:, 0], np.ones(64) / 64, mode="same")[:, None]
    noise = 0.05 * noise / np.abs(noise).max()
    bass = 0.15 * np.sin(2 * np.pi * 55 * t)[:, None]
    hits = np.zeros((n, 2))
    for start in range(rate // 4, n - 2000, rate // 2):
        decay = np.exp(-np.arange(2000) / 300.0)
        hits[start:start + 2000] += (0.6 * rng.uniform(0.5, 1.0) * decay * np.sin(np.arange(2000) * 2.9))[:, None]
    return (noise + bass + hits).astype(np.float32)


def oversampled_peak_db(x):
    return 20 * math.log10(np.abs(resample_poly(x.astype(np.float64), 4, 1, axis=0)).max())


def streamed(premaster, peaks, gain_db, reduction):
    """The master limiter.master_blocks streams, read back in memory."""
    data = b"".join(limiter.master_blocks(premaster, gain_db, reduction, chunk=peaks.chunk))
    return np.frombuffer(data[44:], dtype=np.float32).reshape(-1, peaks_channels(premaster))


def peaks_channels(path):
    return sf.info(str(path)).channels


def test_k_weighting_at_48k_is_the_tabulated_filter():
    from musicvid_core.metrics.loudness import k_weighting

    sos = k_weighting(48000)
    assert sos[0] == pytest.approx([1.53512485958697, -2.69169618940638, 1.19839281085285, 1.0,
                                    -1.69065929318241, 0.73248077421585], abs=1e-9)
    assert sos[1] == pytest.approx([1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621], abs=1e-9)


@pytest.mark.parametrize("rate", [48000, 24000, 44100])
def test_true_peak_and_loudness_agree_with_ffmpegs_meter(tmp_path, rate):
    """The true peak (4x, 12 taps a phase) and the loudness estimate of an unlimited premaster: a
    tone at a quarter of the rate, its samples 3 dB under its peaks, reads its true peak; a loud
    music-like mix reads as ffmpeg's ebur128 reads it, loudness and true peak."""
    n = 4 * rate
    tone = 0.5 * np.sin(2 * np.pi * (rate / 4) * np.arange(n) / rate + np.pi / 4)
    path = write(tmp_path / "tone.wav", np.stack([tone, tone], axis=1), rate)
    peaks = limiter.analyse(path)
    assert len(peaks.peak_db) == -(-n // peaks.chunk) and peaks.total == n
    assert 20 * math.log10(np.abs(tone).max()) == pytest.approx(-9.03, abs=0.01)  # the samples
    assert peaks.true_peak_db == pytest.approx(-6.02, abs=0.2)  # the wave between them
    assert limiter.loudness(peaks, 0.0) == pytest.approx(measure_loudness(path).integrated_lufs, abs=0.1)
    path = write(tmp_path / "mix.wav", music_like(4, rate), rate)
    peaks, theirs = limiter.analyse(path), measure_loudness(path)
    assert peaks.true_peak_db == pytest.approx(theirs.true_peak_dbtp, abs=0.15)
    assert limiter.loudness(peaks, 0.0) == pytest.approx(theirs.integrated_lufs, abs=0.1)
    assert limiter.loudness(peaks, 2.5) == pytest.approx(limiter.loudness(peaks, 0.0) + 2.5, abs=1e-6)


def test_the_bound_under_the_floor_is_never_under_the_exact_peak(tmp_path):
    """Under ``floor_db`` a chunk keeps the bound (the interpolator's gain times its neighbourhood's
    largest sample): never under the exact true peak, and exact wherever the bound reaches the floor."""
    path = write(tmp_path / "mix.wav", music_like(6))
    exact = limiter.analyse(path)
    floored = limiter.analyse(path, floor_db=-12.0)
    assert (floored.peak_db >= exact.peak_db - 1e-5).all()
    reaching = floored.peak_db >= -11.95  # (float16 rounds a bound just under the floor up to it)
    assert reaching.any() and (~reaching).any()
    assert np.array_equal(floored.peak_db[reaching], exact.peak_db[reaching])
    assert np.array_equal(floored.energy, exact.energy)
    single = limiter.analyse(path, floor_db=-12.0, workers=1)
    assert np.array_equal(single.peak_db, floored.peak_db)  # threads change nothing


@pytest.mark.parametrize("gain_db", [3.0, 9.0])
def test_the_master_keeps_the_ceiling_between_samples(tmp_path, gain_db):
    """The limited master's 4x-oversampled peak stays under the ceiling (the reduction each sample
    gets covers its chunk's true peak), however hard the limiter works; where nothing is near the
    ceiling the gain is exactly the make-up gain."""
    x = music_like(6)
    x[3 * SR:3 * SR + 6 * SR // 5] *= 0.05  # a quiet stretch: no limiting there, once released
    path = write(tmp_path / "mix.wav", x)
    peaks = limiter.analyse(path)
    ceiling = -2.0
    reduction = limiter.curve(peaks, gain_db, ceiling)
    master = streamed(path, peaks, gain_db, reduction)
    assert master.shape == x.shape
    assert oversampled_peak_db(master) <= ceiling + 0.05
    need = peaks.true_peak_db + gain_db - ceiling
    assert need <= float(reduction.max()) <= need + 0.02  # float16, rounded up
    quiet = slice(4 * SR, 4 * SR + SR // 5 - SR // 100)  # 1.25 s after the last loud hit, before the next
    assert np.allclose(master[quiet], x[quiet] * 10 ** (gain_db / 20), rtol=1e-3, atol=1e-6)


def test_attack_and_release_shape_the_reduction(tmp_path):
    """One click in silence: the gain falls over the attack time before it (not earlier than the
    look-ahead), is fully down at the click, and recovers with the release time constant."""
    x = np.zeros((SR, 2), dtype=np.float32)
    x[SR // 2] = 0.9
    path = write(tmp_path / "click.wav", x)
    peaks = limiter.analyse(path)
    reduction = limiter.curve(peaks, 6.0, -2.0)
    click = SR // 2 // peaks.chunk
    need = peaks.peak_db[click] + 6.0 + 2.0
    span = limiter.attack_chunks(peaks)
    assert reduction[click] >= need
    assert reduction[:click - span - 1].max() == 0.0  # nothing before the look-ahead
    assert 0 < reduction[click - span // 2] < need  # ramping down
    later = click + round(limiter.LIMITER_RELEASE_MS / 1000 * SR / peaks.chunk) + span
    assert reduction[later] == pytest.approx(need / math.e, rel=0.1)  # one time constant on


def test_fit_predicts_what_ffmpeg_measures_on_the_streamed_master(tmp_path):
    """The gain fitted on the arrays alone brings the master, streamed into ffmpeg and metered
    there, to the target within 0.1 LU; the prediction is what was measured."""
    path = write(tmp_path / "mix.wav", 0.3 * music_like(8, seed=4))
    peaks = limiter.analyse(path)
    start = -14.0 - limiter.loudness(peaks, 0.0)
    gain, predicted = limiter.fit(peaks, target_lufs=-14.0, ceiling_db=-2.0, gain_db=start)
    assert gain > start + 0.3  # the limiter took loudness, the gain made it up
    assert predicted == pytest.approx(-14.0, abs=0.02)
    proc = run_ffmpeg(["-f", "wav", "-i", "pipe:0", "-af", "ebur128=peak=true", "-f", "null", "-"],
                      feed=limiter.master_blocks(path, gain, limiter.curve(peaks, gain, -2.0), chunk=peaks.chunk))
    from musicvid_core.metrics.loudness import parse_ebur128_summary

    measured = parse_ebur128_summary(proc.stderr)
    assert measured.integrated_lufs == pytest.approx(-14.0, abs=0.1)
    assert measured.true_peak_dbtp <= -2.0 + 0.1


def test_wav_header_past_4_gb_says_read_to_the_end():
    small = limiter.wav_header(48000, 2, 1000)
    assert small[:4] == b"RIFF" and int.from_bytes(small[40:44], "little") == 8000
    huge = limiter.wav_header(48000, 2, 4 * 3600 * 48000)
    assert int.from_bytes(huge[4:8], "little") == 0xFFFFFFFF == int.from_bytes(huge[40:44], "little")


def test_a_fed_ffmpeg_reads_the_stream_and_fails_cleanly(tmp_path):
    """run_ffmpeg(feed=...): the bytes reach ffmpeg as they are yielded; ffmpeg failing mid-stream is a
    MediaToolError (the feed stops, nothing hangs); an error in the feed kills ffmpeg and propagates;
    a stalled run ends at its timeout."""
    x = music_like(2)
    path = write(tmp_path / "x.wav", x)
    out = tmp_path / "copy.wav"
    blocks = [limiter.wav_header(SR, 2, len(x))] + [x[i:i + 4096].tobytes() for i in range(0, len(x), 4096)]
    run_ffmpeg(["-y", "-f", "wav", "-i", "pipe:0", "-c:a", "pcm_f32le", str(out)], feed=iter(blocks))
    assert np.array_equal(sf.read(out, dtype="float32")[0], sf.read(path, dtype="float32")[0])

    with pytest.raises(MediaToolError, match="bad feed failed"):  # not a WAV: ffmpeg exits
        run_ffmpeg(["-f", "wav", "-i", "pipe:0", "-f", "null", "-"], feed=iter([b"nonsense" * 1000] * 200),
                   what="bad feed")

    def broken():
        yield blocks[0]
        yield blocks[1]
        raise RuntimeError("the feed broke")

    with pytest.raises(RuntimeError, match="the feed broke"):
        run_ffmpeg(["-f", "wav", "-i", "pipe:0", "-f", "null", "-"], feed=broken())

    started = time.monotonic()
    with pytest.raises(MediaToolError, match="timed out"):
        run_ffmpeg(["-f", "wav", "-i", "pipe:0", "-f", "null", "-"], feed=_slow(blocks), timeout=1.0)
    assert time.monotonic() - started < 10
    with pytest.raises(ValueError):
        run_ffmpeg(["-f", "wav", "-i", "pipe:0", "-f", "null", "-"], feed=iter(blocks), stdout=subprocess.PIPE)


def _slow(blocks):
    """Feeds a header, then nothing for a while: ffmpeg waits on its stdin past the timeout."""
    yield blocks[0]
    time.sleep(3)
    yield from blocks[1:3]
