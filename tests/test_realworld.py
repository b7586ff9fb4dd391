"""Real-world files (issue 17): the player's timeline, every stream, the container --out names, a safe
--out, ducking from the first sample. Asserted by measurement on small lavfi-made files."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile as sf

from musicvid_core.domain import BadInput
from musicvid_core.domain.features import AudioStreamInfo, MediaInfo, Region, StreamInfo
from musicvid_core.lab.samples import make_case
from musicvid_core.media import run_ffmpeg
from musicvid_core.metrics import stream_durations, video_packet_hashes
from musicvid_core.metrics.streams import parse_framemd5
from musicvid_core.stages.analyse.audio import _reach_edges
from musicvid_core.stages.analyse.probe import probe
from musicvid_core.stages.mix import container
from musicvid_core.stages.mix.compose import compose
from musicvid_core.stages.mix.filtergraph import duck_spans, original_chain
from tests.test_mixing_compose import SR, make_plan, write_clips


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("realworld")
    return {kind: make_case(kind, folder) for kind in ("edit_list", "two_tracks", "webm", "phone_mov",
                                                       "late_video", "mpegts", "audio_longer")}


def _header(path) -> str:
    return run_ffmpeg(["-i", str(path)], check=False).stderr


def _decoded_frames(path) -> int:
    out = run_ffmpeg(["-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "framecrc", "-"], stdout=subprocess.PIPE)
    return sum(1 for line in out.stdout.decode().splitlines() if line and not line.startswith("#"))


def _score(case, tmp_path, name, **kw):
    media = probe(case.path)
    plan = make_plan([0, media.duration])
    return media, compose(case.path, media, plan, write_clips(plan, tmp_path / f"clips_{name}"), tmp_path / name, **kw)


# --- the player's timeline -----------------------------------------------------------------------
def test_an_edit_list_hides_the_lead_in(cases):
    case = cases["edit_list"]
    media = probe(case.path)
    assert media.hidden_frames > 0  # the trim kept the GOP's start, hidden
    assert media.duration == pytest.approx(case.truth["frames"] / 30, abs=1e-6)  # what a player shows
    assert media.fps == pytest.approx(30, abs=1e-6)
    assert stream_durations(case.path)["video"] == pytest.approx(media.duration, abs=1e-6)


def test_framemd5_discard_flags_leave_the_span():
    text = ("#tb 0: 1/30\n#media_type 0: video\n0, -3, -3, 1, 10, abc, F=0x5\n0, -2, -2, 1, 10, abc, F=0x4\n"
            "0, 0, 0, 1, 10, abc\n0, 1, 1, 1, 10, abc, F=0x0\n")
    scan = parse_framemd5(text)[0]
    assert scan.hidden == 2 and scan.span_s == pytest.approx(2 / 30) and scan.start_s == 0


def test_the_scored_edit_list_plays_the_same_frames_for_the_same_time(cases, tmp_path):
    case = cases["edit_list"]
    media, metrics = _score(case, tmp_path, "out.mp4")
    out = tmp_path / "out.mp4"
    assert video_packet_hashes(out) == video_packet_hashes(case.path)  # hidden packets carried, still hidden
    assert _decoded_frames(out) == case.truth["frames"]
    durations = stream_durations(out)
    assert durations["video"] == pytest.approx(case.truth["duration_s"], abs=1e-6)
    assert abs(durations["audio"] - durations["video"]) <= 1 / 30
    assert metrics["duration_s"] == pytest.approx(case.truth["duration_s"], abs=1e-6)
    with pytest.raises(BadInput, match=r"Matroska .*edit list hiding .* write \.mp4, \.m4v or \.mov"):
        _score(case, tmp_path, "out.mkv")


@pytest.mark.parametrize("kind,out", [("late_video", "out.mkv"), ("mpegts", "out.mkv"), ("mpegts", "out.mp4")])
def test_a_picture_that_starts_late_gets_its_sound_in_sync(cases, tmp_path, kind, out):
    case = cases[kind]
    media = probe(case.path)
    assert media.start > 0.4
    _, metrics = _score(case, tmp_path, out, stems_dir=tmp_path / "stems")
    durations = stream_durations(tmp_path / out)
    assert abs(durations["audio_start"] - durations["video_start"]) <= 1 / 25  # the track on the first frame
    assert abs(durations["audio"] - durations["video"]) <= 1 / 25 and metrics["final_runs"] == 1
    assert durations["video"] == pytest.approx(3.0, abs=1e-3)
    original, rate = sf.read(tmp_path / "stems" / "original.wav")  # sample 0 = the first frame
    beep = np.flatnonzero(np.abs(original[:, 0]) > 0.3)[0] / rate
    assert beep == pytest.approx(case.truth["beep_s"], abs=0.01)


def test_sound_longer_than_the_picture_ends_with_it(cases, tmp_path):
    _score(cases["audio_longer"], tmp_path, "out.mp4")
    durations = stream_durations(tmp_path / "out.mp4")
    assert durations["video"] == pytest.approx(3.0, abs=1e-6) and abs(durations["audio"] - 3.0) <= 1 / 25


# --- every stream --------------------------------------------------------------------------------
def test_the_main_track_is_the_default_one_that_is_not_silent(cases):
    media = probe(cases["two_tracks"].path)
    assert media.main_audio == 1 and [a.silent for a in media.audio] == [True, False]
    assert probe(cases["two_tracks"].path, audio_track=0).main_audio == 0
    with pytest.raises(BadInput, match="no audio track 2"):
        probe(cases["two_tracks"].path, audio_track=2)


def test_every_stream_chapter_and_tag_is_kept(cases, tmp_path):
    case = cases["two_tracks"]
    media, metrics = _score(case, tmp_path, "out.mkv")
    out = probe(tmp_path / "out.mkv")
    assert [s.kind for s in out.streams] == case.truth["kinds"]
    assert [s.codec for s in out.streams] == ["h264", "aac", "aac", "subrip", "ttf"]
    assert [s.language for s in out.streams[1:4]] == ["eng", "fra", "fra"]
    assert [s.default for s in out.streams[1:3]] == [False, True]  # the scored track is the default
    assert out.chapters == 2 and f"title           : {case.truth['title']}" in _header(tmp_path / "out.mkv")
    assert "Commentary" in _header(tmp_path / "out.mkv")  # the replaced track's title stays on it
    assert [s["action"] for s in metrics["container"]["streams"]] == ["copy", "copy", "mix", "copy", "copy"]
    assert video_packet_hashes(tmp_path / "out.mkv") == video_packet_hashes(case.path)
    silent = run_ffmpeg(["-i", str(tmp_path / "out.mkv"), "-map", "0:a:0", "-c", "copy", "-f", "md5", "-"],
                        stdout=subprocess.PIPE).stdout
    assert silent == run_ffmpeg(["-i", str(case.path), "-map", "0:a:0", "-c", "copy", "-f", "md5", "-"],
                                stdout=subprocess.PIPE).stdout  # the other track: copied untouched
    with pytest.raises(BadInput, match=r"MP4 \(\.mp4\) cannot carry .*attachment .* write \.mkv instead"):
        _score(case, tmp_path, "out.mp4")


def test_a_phone_mov_keeps_rotation_timecode_creation_time_and_chapters(cases, tmp_path):
    case = cases["phone_mov"]
    assert probe(case.path).rotation == 90
    for name in ("out.mp4", "out.mov"):
        _score(case, tmp_path, name)
        out, header = probe(tmp_path / name), _header(tmp_path / name)
        assert out.rotation == 90 and out.chapters == 2, name
        assert case.truth["timecode"] in header and case.truth["creation_time"] in header, name
        assert any(s.tag == "tmcd" for s in out.streams), name
        data = (tmp_path / name).read_bytes()
        assert data.index(b"moov") < data.index(b"mdat"), name  # faststart


def test_webm_is_real_webm(cases, tmp_path):
    case = cases["webm"]
    assert container.choose(probe(case.path), input_name=str(case.path)).format.ext == ".webm"
    _score(case, tmp_path, "out.webm")
    out = probe(tmp_path / "out.webm")
    assert [s.codec for s in out.streams] == ["vp9", "opus"]
    assert b"webm" in (tmp_path / "out.webm").read_bytes()[:64]  # the EBML DocType
    durations = stream_durations(tmp_path / "out.webm")
    assert abs(durations["audio"] - durations["video"]) <= 1 / 25
    # an MKV holding VP9 and a second, AAC, track: WebM takes it, the AAC track re-encoded to Opus
    mkv = tmp_path / "two.mkv"
    run_ffmpeg(["-y", "-i", str(case.path), "-f", "lavfi", "-t", "3", "-i", "sine=r=48000", "-map", "0:v", "-map", "0:a",
                "-map", "1:a", "-c:v", "copy", "-c:a:0", "copy", "-c:a:1", "aac", str(mkv)])
    media = probe(mkv)
    plan = make_plan([0, media.duration])
    compose(mkv, media, plan, write_clips(plan, tmp_path / "c2"), tmp_path / "two.webm")
    assert [s.codec for s in probe(tmp_path / "two.webm").streams] == ["vp9", "opus", "opus"]


def _media(video_codec="h264", streams=(), hidden=0, container_name="mov,mp4,m4a,3gp,3g2,mj2") -> MediaInfo:
    listed = [StreamInfo(index=0, kind="video", codec=video_codec),
              StreamInfo(index=1, kind="audio", codec="aac", default=True), *streams]
    return MediaInfo(duration=3, width=320, height=180, fps=25, video_codec=video_codec, container=container_name,
                     audio=[AudioStreamInfo(index=0, codec="aac", sample_rate=48000, channels=2)],
                     streams=listed, hidden_frames=hidden)


def test_container_choices():
    with pytest.raises(BadInput, match=r"WebM \(\.webm\) cannot carry this video's h264 video: write .*\.mkv"):
        container.choose(_media(), requested=".webm")
    with pytest.raises(BadInput, match=r"must end in \.mp4, \.m4v, \.mov, \.mkv or \.webm"):
        container.format_for("x.avi")
    assert container.choose(_media(container_name="mpegts"), input_name="clip.ts").format.ext == ".mkv"
    assert container.choose(_media(), input_name="a.MOV").format.ext == ".mov"
    assert container.choose(_media("vp9"), input_name="a.webm", preview=True).format.ext == ".mkv"  # H.264 proxy
    assert container.choose(_media(hidden=3), input_name="cut.mkv").format.ext == ".mp4"  # keeps the frames hidden
    subs = (StreamInfo(index=2, kind="subtitle", codec="subrip"),)
    assert container.choose(_media(streams=subs), requested=".mp4").streams[2].codec == "mov_text"
    assert container.choose(_media("vp9", streams=subs), requested=".webm").streams[2].codec == "webvtt"
    with pytest.raises(BadInput, match="hdmv_pgs_subtitle subtitles"):
        container.choose(_media(streams=(StreamInfo(index=2, kind="subtitle", codec="hdmv_pgs_subtitle"),)),
                         requested=".mp4")
    gps = (StreamInfo(index=2, kind="data", codec="bin_data", tag="gpmd"),)
    assert container.choose(_media(streams=gps), input_name="GOPR.MP4").format.ext == ".mp4"
    with pytest.raises(BadInput, match="data stream"):
        container.choose(_media(streams=gps), requested=".mkv")


# --- ducking from the very first sample ----------------------------------------------------------
def test_a_span_starting_inside_the_attack_starts_with_the_video():
    plan = make_plan([0, 6.0], speech=[Region(start=0.06, end=2.0)], duck_attack_s=0.15)
    assert duck_spans(plan) == [(0.0, 2.0)]
    plan = make_plan([0, 6.0], speech=[Region(start=0.4, end=2.0)], duck_attack_s=0.15)
    assert duck_spans(plan) == [(0.4, 2.0)]  # there the attack fits before it


def test_source_music_is_ducked_from_sample_zero(tmp_path):
    wav = tmp_path / "src.wav"
    sf.write(wav, np.full((SR * 3, 2), 0.25, dtype=np.float32), SR)
    plan = make_plan([0, 3.0], source_music=[Region(start=0.1, end=3.0)], duck_attack_s=0.15)
    out = tmp_path / "ducked.wav"
    run_ffmpeg(["-y", "-i", str(wav), "-filter_complex",
                original_chain(plan, total=3 * SR, sample_rate=SR, input_index=0, source_db=12.0),
                "-map", "[orig]", "-c:a", "pcm_f32le", str(out)])
    x, _ = sf.read(out)
    first, later = np.abs(x[:480, 0]).mean(), np.abs(x[SR:2 * SR, 0]).mean()
    assert 20 * np.log10(first / later) == pytest.approx(0.0, abs=0.1)  # the first 10 ms as low as the rest


def test_music_reaching_into_the_first_second_starts_at_zero():
    music = np.array([False, False, True, True, True, True, True, False])
    tonal = np.array([True, True, True, True, True, True, True, True])
    _reach_edges(music, tonal, 4)
    assert music.all()
    music = np.array([False, False, True, True, True, True])
    _reach_edges(music, np.array([False, True, True, True, True, True]), 4)  # silence first: not music
    assert list(music) == [False, False, True, True, True, True]


def test_the_original_sound_starts_on_the_first_frame_and_uses_the_main_track():
    plan = make_plan([0, 3.0])
    chain = original_chain(plan, total=3 * SR, sample_rate=SR, input_index=0, track=1, lead_s=0.5)
    assert chain.startswith("[0:a:1]") and f"atrim=start_sample={SR // 2}" in chain
