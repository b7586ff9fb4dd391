"""musicvid_core.metrics.windows: the music and sound metrics of long music in bounded memory (issue 17).

Short music is measured with small windows and blocks, so the windowed paths run, and compared with
the whole-array metrics; the music bus read from clip files equals assemble_music; peak memory of
the windowed report does not grow with the music's length."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from musicvid_core.domain.errors import BadInput
from musicvid_core.media import write_float_wav
from musicvid_core.metrics import music as mm
from musicvid_core.metrics import sound as sm
from musicvid_core.metrics import windows as mw

SR = 48000


def _music(seconds: float, bpms=(120.0,), sr: int = SR, seed: int = 1) -> np.ndarray:
    """Stereo clicks on every beat (bar lines louder) over a triad, the level stepping every 8 s, the
    tempo changing at each equal part: (samples, 2) float32."""
    rng = np.random.default_rng(seed)
    n = round(seconds * sr)
    t = np.arange(n) / sr
    tone = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 3
    y = 0.15 * tone * (1 + 0.5 * ((t // 8) % 2))
    click = np.exp(-np.arange(int(0.03 * sr)) / (0.006 * sr))
    part = seconds / len(bpms)
    for p, bpm in enumerate(bpms):
        for k, b in enumerate(np.arange(p * part, (p + 1) * part - 0.05, 60.0 / bpm)):
            i = round(b * sr)
            seg = y[i:i + click.size]
            seg += (0.6 if k % 4 == 0 else 0.35) * click[:seg.size] * rng.standard_normal(seg.size)
    side = 0.05 * rng.standard_normal(n)
    return np.stack([y + side, y - side], axis=1).astype(np.float32)


def _plan(seconds: float, bpms=(120.0,), cuts=()):
    part = seconds / len(bpms)
    segments = [SimpleNamespace(index=i, start=i * part, end=(i + 1) * part, bpm=bpm, key="A major",
                                beats=list(np.arange(i * part, (i + 1) * part, 60.0 / bpm)))
                for i, bpm in enumerate(bpms)]
    return SimpleNamespace(segments=segments, duration=seconds, cuts=list(cuts))


def test_music_report_is_the_same_call_up_to_one_window_and_close_past_it():
    seconds, bpms = 60.0, (120.0, 100.0)
    x = _music(seconds, bpms)
    plan = _plan(seconds, bpms, cuts=[4.0, 12.0, 20.0, 36.0, 42.0, 54.0])
    whole = mm.music_report(x, SR, plan)
    assert mw.music_report(mw.ArraySource(x, SR), plan) == whole  # one window: the very same figures
    windowed = mw.music_report(mw.ArraySource(x, SR), plan, window_s=20.0, overlap_s=4.0)
    assert windowed["beat_windows"] == {"window_s": 20.0, "overlap_s": 4.0, "count": 4}
    assert windowed["cut_beat_hit_rate"] == whole["cut_beat_hit_rate"] == 1.0
    for key in ("peak_dbfs", "clipped_samples", "boundary_max_jump_db", "boundary_clicks", "cuts",
                "tempo_within_2pct"):
        assert windowed[key] == whole[key], key
    for w, s in zip(windowed["segments"], whole["segments"]):  # segments past a window: by window
        assert w["bpm_estimated"] == pytest.approx(s["bpm_estimated"], rel=0.01)
        assert w["key_estimated"] == s["key_estimated"]
    # the stitched beats are the whole-array beats: none doubled or lost at the seams
    spans = mm.plan_tempo_spans(plan)
    ref = mm.detect_beats(x, SR, tempo_spans=spans)
    got = mw.beats(mw.ArraySource(x, SR), tempo_spans=spans, window_s=20.0, overlap_s=4.0)
    inner = ref[(ref > 1.0) & (ref < seconds - 1.0)]
    assert abs(got.size - ref.size) <= 1
    assert np.max(np.abs(got[np.abs(got[:, None] - inner).argmin(axis=0)] - inner)) < 0.03


def test_streamed_sound_report_equals_the_whole_array_one():
    x = _music(50.0)
    beats = list(np.arange(0, 50.0, 0.5))
    for boundaries in (None, [12.5, 30.0]):
        whole = sm.sound_report(x, SR, beats_s=beats, boundaries_s=boundaries)
        assert mw.sound_report(mw.ArraySource(x, SR), beats_s=beats, boundaries_s=boundaries) == whole
        assert mw.sound_report(mw.ArraySource(x, SR), beats_s=beats, boundaries_s=boundaries, block_s=7.0) == whole
    # another rate: resampled block by block for the spectrum, within rounding of the whole
    y = _music(40.0, sr=32000)
    whole = sm.sound_report(y, 32000, beats_s=beats)
    streamed = mw.sound_report(mw.ArraySource(y, 32000), beats_s=beats, block_s=6.0)
    assert streamed.keys() == whole.keys()
    for key, value in whole.items():
        if isinstance(value, dict):
            assert streamed[key] == pytest.approx(value, abs=0.11), key
        else:
            assert streamed[key] == pytest.approx(value, abs=0.011), key
    with pytest.raises(BadInput):
        mw.sound_report(mw.ArraySource(np.full((SR * 20, 2), np.nan, np.float32), SR), beats_s=beats, block_s=5.0)
    with pytest.raises(BadInput):
        mw.sound_report(mw.ArraySource(np.zeros((SR // 2, 2), np.float32), SR))


def test_the_bus_read_from_the_clips_is_assemble_music(tmp_path):
    rng = np.random.default_rng(2)
    plan = _plan(9.0, (120.0, 90.0, 100.0))
    clips = [rng.uniform(-0.5, 0.5, (round(3.7 * SR), 2)).astype(np.float32) for _ in plan.segments]
    clips[1] = clips[1][:, :1]  # a mono clip plays on both channels
    paths = []
    for i, clip in enumerate(clips):  # each clip rings 0.7 s into the next segment (and past the end)
        paths.append(tmp_path / f"c{i}.wav")
        write_float_wav(paths[-1], clip, SR)
    bus = mw.ClipBus(plan, paths)
    whole = mm.assemble_music(clips, plan, SR)
    assert (bus.frames, bus.channels, bus.sr) == (whole.shape[0], 2, SR)
    np.testing.assert_array_equal(bus.read(0, bus.frames), whole)
    np.testing.assert_array_equal(bus.read(SR * 2, SR * 4), whole[SR * 2:SR * 4])
    with pytest.raises(BadInput):
        mw.ClipBus(plan, paths[:2])


def test_music_metrics_step_on_clip_files_is_json(tmp_path):
    from musicvid_core.workflow.steps import music_metrics

    plan = _plan(12.0, (120.0,), cuts=[2.0, 6.0])
    x = _music(12.0)
    write_float_wav(tmp_path / "c0.wav", x, SR)
    report = music_metrics(plan, [tmp_path / "c0.wav"])
    assert report == json.loads(json.dumps(report))
    assert report["cut_beat_hit_rate"] == 1.0 and report["sound"]["width"] > 0


@pytest.mark.slow
def test_peak_memory_of_the_windowed_report_does_not_grow_with_length(tmp_path):
    """A child process per length measures its own peak RSS (ru_maxrss) over the windowed reports
    of a clip file: 4x the music, about the same peak (the whole-array report grows ~60 MB a minute)."""
    import subprocess
    import sys

    peaks = {}
    for minutes in (1.5, 6.0):
        path = tmp_path / f"m{minutes}.wav"
        write_float_wav(path, np.tile(_music(30.0), (round(minutes * 2), 1)), SR)
        code = (
            "import resource, sys; from types import SimpleNamespace as S; import soundfile as sf\n"
            "from musicvid_core.metrics import windows as mw\n"
            f"n = sf.info({str(path)!r}).frames; d = n / {SR}\n"
            "plan = S(segments=[S(index=0, start=0.0, end=d, bpm=120.0, key='A major', beats=[])],"
            " duration=d, cuts=[2.0, 30.0])\n"
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            f"src = mw.ClipBus(plan, [{str(path)!r}])\n"
            "mw.music_report(src, plan, window_s=40.0, overlap_s=5.0)\n"
            "mw.sound_report(src, beats_s=[i * 0.5 for i in range(int(d * 2))], block_s=20.0)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)\n")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        peaks[minutes] = int(proc.stdout.split()[-1]) / 1024  # MB
    assert peaks[6.0] < peaks[1.5] + 40, peaks  # 4.5 more minutes held whole would be ~+250 MB
