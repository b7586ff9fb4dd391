"""Stream facts measured with ffmpeg alone: packet hashes, pts, exact durations."""

from fractions import Fraction

import pytest

from musicvid_core.domain.errors import MediaToolError
from musicvid_core.lab.samples import make_video
from musicvid_core.media import run_ffmpeg
from musicvid_core.metrics import (
    measure_loudness,
    scan_video_packets,
    stream_durations,
    video_packet_hashes,
    video_packet_pts,
)
from musicvid_core.metrics.streams import StreamTimes, measure_output, parse_framemd5

FRAMEMD5 = """#format: frame checksums
#version: 2
#hash: MD5
#tb 0: 1/12800
#media_type 0: video
#tb 1: 1/48000
#media_type 1: audio
#stream#, dts,        pts, duration,     size, hash
0,      -1024,          0,      512,     3410, d09de7ff2e28545c60ca62fb309b7bd7
1,      -1024,      -1024,     1024,      260, 386f8e2a2b239bb8080caa5663289302, S=1,       10, f009
0,       -512,       1024,      512,     1168, a5d4cd11e5f55d8320a247a4035446b5
0,          0,        512,        0,       13, 5061aa605caee6d7c49d116a7d676379
1,          0,          0,      256,      365, 6454908c8ffd4e36932e7e8c157242c8
"""


def test_parse_framemd5():
    scans = parse_framemd5(FRAMEMD5)
    video, audio = scans[0], scans[1]
    assert (video.media_type, video.time_base) == ("video", Fraction(1, 12800))
    assert [p.pts for p in video.packets] == [0, 1024, 512]
    assert video.packets[0].md5 == "d09de7ff2e28545c60ca62fb309b7bd7" and video.packets[1].size == 1168
    # the packet without a duration counts as one typical step (512 ticks)
    assert video.span_s == pytest.approx(1536 / 12800)
    assert audio.packets[0].md5 == "386f8e2a2b239bb8080caa5663289302"  # side data ignored
    assert audio.start_s == pytest.approx(-1024 / 48000)
    assert audio.total_duration_s == pytest.approx(1280 / 48000)


def test_the_duration_columns_read_what_the_packets_read():
    """stream_durations keeps two int64 columns per stream instead of every Packet (issue 18: ~150 MB
    of objects for a 60-minute output); start, span and total read the same from either, an edit
    list's hidden packet (F=0x4) included, and lines read from a file (with their newlines) parse
    as the text does."""
    hidden = FRAMEMD5 + "0,        512,       -512,      512,      900, 0a0a, F=0x4\n"
    full, cols = parse_framemd5(hidden), parse_framemd5(hidden.splitlines(keepends=True), StreamTimes)
    for i in (0, 1):
        for prop in ("start_s", "span_s", "total_duration_s"):
            assert getattr(cols[i], prop) == getattr(full[i], prop), (i, prop)
        assert cols[i].media_type == full[i].media_type and cols[i].time_base == full[i].time_base
    assert cols[0].hidden == full[0].hidden == 1 and list(cols[0].pts) == [0, 1024, 512]
    assert cols[0].start_s == 0.0 and full[0].total_duration_s == pytest.approx(1536 / 12800)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("streams") / "in.mp4", (1.2, 1.2), fps=25, audio="tone")


def test_durations_are_exact(sample):
    durs = stream_durations(sample.path)
    assert durs["video"] == pytest.approx(2.4, abs=1e-9)
    assert durs["video_start"] == 0.0 and durs["audio_start"] == 0.0
    # the AAC stream carries 1024 priming samples and end padding; decoding drops both
    assert durs["audio"] == pytest.approx(2.4, abs=1e-9)
    copied = parse_framemd5(run_ffmpeg(["-i", str(sample.path), "-map", "0:a:0", "-c", "copy", "-f",
                                        "framemd5", "-"], stdout=-1).stdout.decode())[0]
    assert copied.span_s > durs["audio"] + 0.02  # what a naive packet scan would report


def test_measure_output_equals_the_separate_meters(sample):
    loudness, durs = measure_output(sample.path)
    assert loudness == measure_loudness(sample.path)
    assert durs == stream_durations(sample.path)


def test_measure_output_without_audio_raises(tmp_path):
    sample = make_video(tmp_path / "silent-film.mp4", (1.0,), fps=30, audio="none")
    with pytest.raises(MediaToolError):
        measure_output(sample.path)


def test_durations_without_audio(tmp_path):
    sample = make_video(tmp_path / "silent-film.mp4", (1.0,), fps=30, audio="none")
    durs = stream_durations(sample.path)
    assert durs["video"] == pytest.approx(1.0, abs=1e-9)
    assert durs["audio"] is None and durs["audio_start"] is None


def test_packet_hashes_survive_a_remux_but_not_a_reencode(sample, tmp_path):
    remuxed = tmp_path / "remux.mkv"
    run_ffmpeg(["-y", "-i", str(sample.path), "-map", "0", "-c", "copy", str(remuxed)])
    original = video_packet_hashes(sample.path)
    assert len(original) == 60
    assert video_packet_hashes(remuxed) == original  # timestamps change with the container, data not
    reencoded = tmp_path / "reencoded.mp4"
    run_ffmpeg(["-y", "-i", str(sample.path), "-map", "0:v", "-c:v", "libx264", "-preset", "ultrafast",
                str(reencoded)])
    assert video_packet_hashes(reencoded) != original


def test_packet_pts(sample):
    pts = video_packet_pts(sample.path)
    assert len(pts) == 60 and min(pts) == 0.0
    assert sorted(pts) == pytest.approx([i / 25 for i in range(60)])
    scan = scan_video_packets(sample.path)
    assert scan.time_base == Fraction(1, 12800) and scan.media_type == "video"


def test_unreadable_file_raises(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(MediaToolError):
        stream_durations(bad)
    with pytest.raises(MediaToolError):
        video_packet_hashes(bad)
