"""analyze_video(): cuts, curves, loudness and speech measured on generated media with known truth."""

import math

import numpy as np
import pytest

import musicvid_core.stages.analyse.cuts as cuts_module
from musicvid_core.domain.errors import MediaToolError
from musicvid_core.lab.samples import espeak_available, make_video
from musicvid_core.media import run_ffmpeg
from musicvid_core.stages.analyse.features import analysis_size, analyze, analyze_video
from musicvid_core.stages.analyse.probe import probe

NTSC = 30000 / 1001
SPEECH_AT = 2.0


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return tmp_path_factory.mktemp("features")


@pytest.fixture(scope="module")
def short(short_video):
    """(sample, features) of conftest's 6 s clip: cuts at 2 and 4 s, quiet stereo tone."""
    return short_video, analyze(short_video.path)


@pytest.fixture(scope="module")
def speech(media):
    if not espeak_available():
        pytest.skip("espeak-ng is not installed")
    sample = make_video(media / "speech.mp4", (4, 4), audio="speech", speech_at=SPEECH_AT,
                        speech_text="Hello there. This is a short test of the speech detector.")
    return sample, analyze(sample.path)


def _assert_cuts(found, truth, fps):
    times = [c.time for c in found]
    assert len(times) == len(truth), (times, truth)  # none missed, none invented
    for t, expected in zip(times, truth):
        assert abs(t - expected) <= 1 / fps + 1e-6, (times, truth)


def test_cuts_exact_and_strong(short):
    sample, features = short
    _assert_cuts(features.cuts, sample.cuts, 25)
    # hard cuts between unrelated scenes; also guards the detector score we read (0 if it vanished)
    assert all(c.strength > 0.5 for c in features.cuts)


def test_cuts_at_ntsc_rate_all_sources(media):
    # every lavfi scene source once, uneven lengths, 29.97 fps
    sample = make_video(media / "six.mp4", (1.5, 2.2, 1.0, 2.0, 1.2, 1.4), size=(426, 240), fps=NTSC,
                        audio="none")
    features = analyze(sample.path)
    _assert_cuts(features.cuts, sample.cuts, NTSC)


def test_keyframe_pops_are_not_cuts(media, monkeypatch):
    # noisy texture, heavy compression: the detector fires on a keyframe's quality jump (4.0 s)
    sample = make_video(media / "pop.mp4", (1, 5), size=(640, 360), fps=30, audio="none", crf=30,
                        preset="ultrafast")
    _assert_cuts(analyze(sample.path).cuts, sample.cuts, 30)
    monkeypatch.setattr(cuts_module, "_picture_changed", lambda before, after: True)
    # the pop comes back unchanged after it, so the flash test drops it too: both filters off
    monkeypatch.setattr(cuts_module.CutDetector, "_comes_back", lambda self, index, thumbs: False)
    assert len(analyze(sample.path).cuts) > len(sample.cuts)  # the filters are what removed it


def test_variable_frame_rate_uses_timestamps(short_video, tmp_path):
    # drop frames 30..44: frame index / fps would put the cuts 0.6 s early
    vfr = tmp_path / "vfr.mp4"
    run_ffmpeg(["-y", "-i", str(short_video.path), "-vf", r"select=not(between(n\,30\,44))",
                "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "copy", str(vfr)])
    media = probe(vfr)
    features = analyze_video(vfr, media)
    _assert_cuts(features.cuts, short_video.cuts, 25)


def test_curves_in_range_and_cover_the_video(short):
    sample, features = short
    for curve in (features.motion, features.brightness):
        assert len(curve.times) == len(curve.values) == math.ceil(sample.duration * 5)
        assert curve.times == sorted(curve.times)
        assert 0 <= curve.times[0] and curve.times[-1] <= sample.duration
        assert all(0 <= v <= 1 for v in curve.values)
    # the cut frames are not counted as motion: no spike in the bins holding the cuts
    motion = dict(zip(features.motion.times, features.motion.values))
    assert max(motion[2.1], motion[4.1]) < 0.99


def test_brightness_follows_the_picture(media):
    dark = media / "dark.mp4"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "color=c=0x101010:size=160x90:rate=25:duration=1",
                "-f", "lavfi", "-i", "color=c=0xe0e0e0:size=160x90:rate=25:duration=1",
                "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]", "-c:v", "libx264",
                "-pix_fmt", "yuv420p", str(dark)])
    features = analyze(dark)
    values = dict(zip(features.brightness.times, features.brightness.values))
    assert values[0.1] < 0.15 and values[1.9] > 0.8
    assert all(v < 0.05 for v in features.motion.values)  # flat colour: no motion, the cut excluded
    assert [round(c.time, 3) for c in features.cuts] == [1.0]


def test_loudness_matches_pyloudnorm(short, tmp_path):
    import pyloudnorm
    import soundfile as sf

    sample, features = short
    wav = tmp_path / "ref.wav"
    run_ffmpeg(["-y", "-i", str(sample.path), "-map", "0:a:0", "-c:a", "pcm_f32le", str(wav)])
    data, rate = sf.read(wav)
    reference = pyloudnorm.Meter(rate).integrated_loudness(data)
    assert abs(features.audio_integrated_lufs - reference) < 0.3
    loud = features.loudness
    assert len(loud.times) == len(loud.values) == int(sample.duration * 2) + 1
    assert loud.times[0] == 0 and loud.times[-1] == sample.duration
    assert all(abs(v - reference) < 1.0 for v in loud.values)  # a steady tone is steady


def test_silence_and_no_audio(media):
    silence = make_video(media / "silence.mp4", (1.0, 1.0), audio="silence")
    features = analyze(silence.path)
    assert features.audio_integrated_lufs == -70.0
    assert features.loudness.values and all(v == -70.0 for v in features.loudness.values)
    assert features.speech == []
    none = make_video(media / "none.mp4", (1.0, 1.0), audio="none")
    features = analyze(none.path)
    assert features.audio_integrated_lufs is None
    assert features.loudness.values == [] and features.speech == []
    assert len(features.cuts) == 1


def test_no_speech_in_a_tone(short):
    assert short[1].speech == []


def test_speech_found_where_it_is(speech):
    sample, features = speech
    start, end = sample.speech[0]
    assert features.speech, "no speech found"
    assert features.speech[0].start >= start - 0.3  # nothing before the voice starts
    covered = sum(max(0.0, min(r.end, end) - max(r.start, start)) for r in features.speech)
    assert covered >= 0.6 * (end - start)
    assert all(r.end - r.start >= 0.2 for r in features.speech)


def test_audio_aligned_to_a_late_video_start(speech, tmp_path):
    # the video stream starts 0.5 s into the file: every time is from the first video frame
    sample, reference = speech
    late = tmp_path / "late.mkv"
    run_ffmpeg(["-y", "-itsoffset", "0.5", "-i", str(sample.path), "-i", str(sample.path),
                "-map", "0:v", "-map", "1:a", "-c", "copy", str(late)])
    features = analyze(late)
    _assert_cuts(features.cuts, sample.cuts, 25)
    assert abs(features.speech[0].start - (reference.speech[0].start - 0.5)) <= 0.06


def test_reduced_analysis_rate(short):
    sample, _ = short
    features = analyze(sample.path, analysis_fps=10)
    _assert_cuts(features.cuts, sample.cuts, 10)


def test_timeout_is_a_media_tool_error(short):
    sample, _ = short
    with pytest.raises(MediaToolError, match="timed out"):
        analyze_video(sample.path, probe(sample.path), timeout=0.01)


@pytest.mark.parametrize("size,expected", [((1920, 1080), (160, 90)), ((1080, 1920), (90, 160)),
                                           ((320, 180), (160, 90)), ((4000, 10), (160, 2))])
def test_analysis_size(size, expected):
    assert analysis_size(*size) == expected


def test_motion_scale_is_frame_rate_independent(media):
    # the same pan at 25 and 50 fps reads as the same motion
    values = []
    for fps in (25, 50):
        path = media / f"pan{fps}.mp4"
        run_ffmpeg(["-y", "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate={fps}:duration=2",
                    "-vf", "crop=320:180:x='t*100':y=0", "-c:v", "libx264", "-preset", "ultrafast",
                    str(path)])
        values.append(float(np.median(analyze(path).motion.values)))
    assert values[0] > 0.1
    assert abs(values[0] - values[1]) < 0.25 * values[0]


def _library_adaptive(frames, fps):
    """PySceneDetect's own AdaptiveDetector, as cuts.py used to feed it: (scores, cut frames)."""
    from scenedetect.common import FrameTimecode
    from scenedetect.detectors import AdaptiveDetector

    detector = AdaptiveDetector(adaptive_threshold=cuts_module.ADAPTIVE_THRESHOLD, min_scene_len=cuts_module.MIN_SCENE_S,
                                min_content_val=cuts_module.MIN_CONTENT_VAL)
    scores, found = [], []
    for n, frame in enumerate(frames):
        found += [tc.frame_num for tc in detector.process_frame(FrameTimecode(n, fps=fps), frame)]
        scores.append(float(detector._frame_score))
    return scores, found


def _own_adaptive(frames, fps):
    detector = cuts_module._Adaptive(fps)
    scores, found = [], []
    for n, frame in enumerate(frames):
        index = detector.add(n, frame)
        found += [] if index is None else [index]
        scores.append(detector.score)
    return scores, found


def _shots(rng, fps, seconds=12.0, size=(90, 160)):
    """Frames of shots 0.2-2 s long (some shorter than the minimum scene), each a drifting noisy
    colour field, with a flash, a fade through black and a run of identical frames."""
    frames, n = [], int(seconds * fps)
    base, drift = rng.integers(0, 256, (*size, 3)), rng.normal(0, 2, 3)
    change = set(np.cumsum(rng.integers(max(2, int(0.2 * fps)), int(2 * fps), 40)).tolist())
    for i in range(n):
        if i in change:
            base, drift = rng.integers(0, 256, (*size, 3)), rng.normal(0, 2, 3)
        frame = base + drift * (i % 50) + rng.normal(0, 6, (*size, 3))
        if i == n // 3:
            frame = np.full((*size, 3), 250.0)  # a flash
        if n // 2 <= i < n // 2 + 8:
            frame = frame * abs(i - n // 2 - 4) / 4  # a fade through black
        if 2 * n // 3 <= i < 2 * n // 3 + 5:
            frame = np.full((*size, 3), 40.0)  # identical frames: a zero average
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


@pytest.mark.parametrize("fps", [24.0, 25.0, NTSC, 30.0, 59.94, 12.5])
def test_the_adaptive_detector_is_the_librarys_to_the_bit(fps):
    """cuts.py runs PySceneDetect's AdaptiveDetector's algorithm itself (its per-frame objects cost a
    third of a long input's analysis): the same score for every frame, bit for bit, and the same cuts
    as the library's on shots of every length, flashes, fades and frozen frames, at common rates."""
    frames = _shots(np.random.default_rng(int(fps * 100)), fps)
    library_scores, library_cuts = _library_adaptive(frames, fps)
    own_scores, own_cuts = _own_adaptive(frames, fps)
    assert len(library_cuts) >= 5
    assert own_cuts == library_cuts
    assert own_scores == library_scores


def test_the_adaptive_detector_matches_the_library_on_decoded_footage(media):
    """The same on frames decoded from generated footage of each kind of cut (lab.realworld)."""
    from musicvid_core.lab.realworld import CUT_KINDS, make_cut_video

    for kind in CUT_KINDS:
        video = make_cut_video(kind, media)
        info = probe(video.path)
        width, height = analysis_size(info.width, info.height)
        raw = media / f"{kind}.rgb"
        run_ffmpeg(["-y", "-i", str(video.path), "-vf", f"scale={width}:{height}:flags=area",
                    "-pix_fmt", "bgr24", "-f", "rawvideo", str(raw)])
        data = np.fromfile(raw, np.uint8).reshape(-1, height, width, 3)
        assert _own_adaptive(data, info.fps) == _library_adaptive(data, info.fps), kind


def test_the_analysis_does_not_import_the_library(short_video):
    """Nothing in the analysis imports PySceneDetect (25 MB of imports, moviepy's among them)."""
    import subprocess
    import sys

    code = ("import sys\nfrom musicvid_core.stages.analyse.features import analyze\n"
            f"analyze({str(short_video.path)!r})\nprint('scenedetect' in sys.modules, 'moviepy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
