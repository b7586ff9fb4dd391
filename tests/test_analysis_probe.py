"""probe(): fields of real generated files, exact duration, and one clear error per bad input."""

import pytest

from musicvid_core.domain.errors import BadInput, UnsupportedMedia
from musicvid_core.lab.samples import make_video
from musicvid_core.media import run_ffmpeg
from musicvid_core.stages.analyse.probe import _channels, _parse_header, probe

NTSC = 30000 / 1001


@pytest.fixture(scope="module")
def surround(tmp_path_factory):
    # odd scene lengths at 29.97 fps: 39 + 21 frames
    return make_video(tmp_path_factory.mktemp("probe") / "surround.mp4", (1.3, 0.7), size=(426, 240),
                      fps=NTSC, audio="5.1")


@pytest.fixture(scope="module")
def silent(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("probe") / "silent.mp4", (1.0, 1.5), audio="none")


def test_stereo(short_video):
    info = probe(short_video.path)
    assert "mp4" in info.container
    assert abs(info.duration - 6.0) < 1e-3
    assert (info.width, info.height, info.video_codec, info.rotation) == (320, 180, "h264", 0)
    assert abs(info.fps - 25) < 1e-6
    assert len(info.audio) == 1
    a = info.audio[0]
    assert (a.index, a.codec, a.sample_rate, a.channels, a.layout) == (0, "aac", 48000, 2, "stereo")


def test_no_audio(silent):
    info = probe(silent.path)
    assert info.audio == [] and not info.has_audio
    assert abs(info.duration - silent.duration) < 1e-3


def test_surround_and_exact_duration(surround):
    info = probe(surround.path)
    assert info.audio[0].channels == 6 and info.audio[0].layout.startswith("5.1")
    assert (info.width, info.height) == (426, 240)
    frames = round(1.3 * NTSC) + round(0.7 * NTSC)
    assert abs(info.duration - frames / NTSC) < 1e-3
    assert abs(info.fps - NTSC) < 1e-3  # exact, unlike the header's rounded "29.97 fps"


@pytest.mark.parametrize("ccw,expected", [(90, 270), (-90, 90), (180, 180)])
def test_rotation(short_video, tmp_path, ccw, expected):
    out = tmp_path / "rotated.mp4"
    run_ffmpeg(["-y", "-display_rotation", str(ccw), "-i", str(short_video.path), "-c", "copy", str(out)])
    info = probe(out)
    assert info.rotation == expected
    assert (info.width, info.height) == (320, 180)  # storage size, as decoded


def _one_line_error(path, cls, *words):
    with pytest.raises(cls) as caught:
        probe(path)
    message = str(caught.value)
    assert "\n" not in message and message
    for word in words:
        assert word in message.lower()
    return caught.value


def test_missing_file(tmp_path):
    err = _one_line_error(tmp_path / "nope.mp4", BadInput, "no such file")
    assert not isinstance(err, UnsupportedMedia)


def test_zero_bytes(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    _one_line_error(tmp_path / "empty.mp4", UnsupportedMedia, "empty")


def test_random_bytes(tmp_path):
    (tmp_path / "random.mp4").write_bytes(bytes((i * 7919) % 251 for i in range(20000)))
    _one_line_error(tmp_path / "random.mp4", UnsupportedMedia, "invalid data")


def test_truncated_mp4(short_video, tmp_path):
    data = short_video.path.read_bytes()  # moov at the end: the front half has no index
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    _one_line_error(tmp_path / "half.mp4", UnsupportedMedia, "truncated")


def test_truncated_faststart_mp4(short_video, tmp_path):
    # moov first: the header reads fine, the packets stop halfway
    full = tmp_path / "fast.mp4"
    run_ffmpeg(["-y", "-i", str(short_video.path), "-c", "copy", "-movflags", "+faststart", str(full)])
    data = full.read_bytes()
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    _one_line_error(tmp_path / "half.mp4", UnsupportedMedia, "truncated")


def test_audio_only(tmp_path):
    m4a = tmp_path / "tone.m4a"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(m4a)])
    _one_line_error(m4a, UnsupportedMedia, "no video stream")


def test_cover_art_is_not_video(tmp_path):
    art, m4a = tmp_path / "cover.png", tmp_path / "song.m4a"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=64x64", "-frames:v", "1", str(art)])
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "sine=duration=1", "-i", str(art), "-map", "0:a", "-map", "1:v",
                "-c:a", "aac", "-c:v", "png", "-disposition:v:0", "attached_pic", str(m4a)])
    _one_line_error(m4a, UnsupportedMedia, "no video stream")


def test_huge_dimensions(tmp_path):
    big = tmp_path / "wide.mp4"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "color=size=8200x16:duration=0.2", "-c:v", "libx264", str(big)])
    _one_line_error(big, UnsupportedMedia, "8200x16", "limit")


def test_header_parser_details(tmp_path):
    path = tmp_path / "x.mkv"
    stderr = """Input #0, matroska,webm, from 'x.mkv':
  Duration: 00:01:02.50, start: 0.000000, bitrate: 900 kb/s
  Stream #0:0: Video: mjpeg (Baseline), yuvj420p(pc), 300x300, 90k tbr, 90k tbn (attached pic)
  Stream #0:1(eng): Video: hevc (Main), yuv420p(tv, bt709), 1920x1080 [SAR 1:1 DAR 16:9], 59.94 fps, 59.94 tbr, 1k tbn (default)
    Metadata:
      rotate          : 90
  Stream #0:2: Audio: opus, 48000 Hz, 5.1(side), fltp (default)
  Stream #0:3: Audio: pcm_s24le, 96000 Hz, 4 channels, s32 (24 bit)
  Stream #0:4: Subtitle: subrip
At least one output file must be specified
"""
    info = _parse_header(stderr, path, path.name)
    assert info["container"] == "matroska,webm" and info["container_duration"] == 62.5
    assert (info["video_codec"], info["width"], info["height"]) == ("hevc", 1920, 1080)
    assert info["fps"] == 59.94 and info["rotation"] == 90
    assert [(a.codec, a.channels, a.layout) for a in info["audio"]] == [
        ("opus", 6, "5.1(side)"), ("pcm_s24le", 4, "4 channels")]
    assert [a.index for a in info["audio"]] == [0, 1]


@pytest.mark.parametrize("layout,count", [("mono", 1), ("stereo", 2), ("5.1", 6), ("5.1(side)", 6),
                                          ("7.1", 8), ("7.1(wide)", 8), ("5.1.4", 10), ("quad", 4),
                                          ("3 channels", 3), ("24 channels (FL+FR)", 24)])
def test_layout_channels(layout, count):
    assert _channels(layout) == count


@pytest.mark.parametrize("suffix,extra", [(".avi", []), (".ts", []), (".mkv", []), (".h264", ["-an"])])
def test_duration_in_other_containers(short_video, tmp_path, suffix, extra):
    # AVI and raw H.264 have no pts (dts stands in); AVI stores a token 1-tick packet duration
    out = tmp_path / f"copy{suffix}"
    run_ffmpeg(["-y", "-i", str(short_video.path), "-c", "copy", *extra, str(out)])
    info = probe(out)
    assert abs(info.duration - 6.0) < 1e-3 and abs(info.fps - 25) < 1e-3
