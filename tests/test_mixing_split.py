"""The split AAC encode (stages/mix/split.py): two halves at once, spliced, muxed by copy, decode as
one encode would: the same length, the same alignment, the same samples up to the splice."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicvid_core.media import run_ffmpeg
from musicvid_core.stages.mix import compose as compose_mod
from musicvid_core.stages.mix import limiter, split
from musicvid_core.stages.mix.compose import compose
from tests.test_mixing_compose import assert_well_formed, make_plan, media_of, videos, write_clips  # noqa: F401

SR = 48000


def decoded(path: Path) -> np.ndarray:
    proc = run_ffmpeg(["-i", str(path), "-map", "0:a:0", "-f", "f32le", "-ac", "2", "-"], stdout=-1)
    return np.frombuffer(proc.stdout, dtype=np.float32).reshape(-1, 2)


def lag(decoded_audio: np.ndarray, source: np.ndarray, at: int) -> int:
    """Where ``source[at: at + 1 s]`` sits in ``decoded_audio``, in samples from where it should."""
    window = source[at:at + SR, 0]
    return max(range(-2048, 2049), key=lambda k: float(np.dot(decoded_audio[at + k:at + k + SR, 0], window)))


@pytest.mark.parametrize("ext", [".mp4", ".mov"])
def test_the_spliced_stream_decodes_as_one_encode(tmp_path, ext):
    rng = np.random.default_rng(7)
    n = 20 * SR + 517  # not a whole number of frames
    t = np.arange(n) / SR
    x = (0.2 * np.sin(2 * np.pi * 220 * t)[:, None] + 0.05 * rng.standard_normal((n, 2))).astype(np.float32)
    src = tmp_path / "master.wav"
    sf.write(src, x, SR, subtype="FLOAT")
    encoded = split.encode(lambda a, b: limiter.master_blocks(src, 0.0, start=a, stop=b), n,
                           tmp_path / "scored.aac", bitrate="256k", sample_rate=SR, timeout=120)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["master.wav", "scored.aac"]  # the halves are gone
    one, two = tmp_path / f"one{ext}", tmp_path / f"two{ext}"
    run_ffmpeg(["-y", "-i", str(src), "-c:a", "aac", "-b:a", "256k", str(one)])
    run_ffmpeg(["-y", "-itsoffset", f"{-encoded.priming_s:.9f}", "-f", "aac", "-i", str(encoded.path), "-c:a", "copy",
                "-bsf:a", encoded.last_frame_bsf(), str(two)])
    a, b = decoded(one), decoded(two)
    assert len(a) == len(b) == n
    assert lag(a, x, 5 * SR) == lag(b, x, 5 * SR) == lag(b, x, 15 * SR) == 0
    _, _, middle = split.halves(n)
    differs = np.flatnonzero(np.abs(a - b).max(axis=1) > 0)
    assert differs[0] >= middle - split.FRAME  # A's frames are the single encode's, up to the splice
    noise = [10 * np.log10(np.mean((y - x) ** 2) / np.mean(x ** 2)) for y in (a, b)]
    assert abs(noise[0] - noise[1]) < 0.5  # the same coding noise overall
    around = slice(middle - 2048, middle + 2048)
    assert np.sqrt(np.mean((b[around] - x[around]) ** 2)) < 2 * np.sqrt(np.mean((a[around] - x[around]) ** 2))


def test_adts_frames_refuses_what_is_not_adts():
    from musicvid_core.domain.errors import MediaToolError

    with pytest.raises(MediaToolError, match="not ADTS"):
        split.adts_frames(b"\x00" * 64)
    assert split.adts_frames(b"") == []


def test_who_splits():
    assert split.worth_splitting(muxer="mp4", codec="aac", seconds=900, preview=False)
    assert split.worth_splitting(muxer="mov", codec="aac", seconds=split.SPLIT_MIN_S, preview=False)
    assert not split.worth_splitting(muxer="matroska", codec="aac", seconds=900, preview=False)  # priming as samples
    assert not split.worth_splitting(muxer="webm", codec="libopus", seconds=900, preview=False)
    assert not split.worth_splitting(muxer="mp4", codec="aac", seconds=60, preview=False)
    assert not split.worth_splitting(muxer="mp4", codec="aac", seconds=900, preview=True)


@pytest.mark.parametrize("ext", [".mp4", ".mov"])
def test_compose_split_output_matches_the_single_encode(videos, tmp_path, monkeypatch, ext):  # noqa: F811
    """With the threshold lowered, a 6 s mix is encoded in halves: the output is well formed (video
    copied, durations, loudness), and its sound is the single encode's: the same length and the
    clips' impulses on the same samples."""
    plan = make_plan([0, 2.0, 4.0, 6.0])
    clips = write_clips(plan, tmp_path / "clips", kind="hits")
    media = media_of(videos["tone.mp4"], 2)
    calls = []
    real = split.run_ffmpeg
    monkeypatch.setattr(split, "run_ffmpeg", lambda args, **kw: calls.append(kw.get("what")) or real(args, **kw))
    outs = {}
    for name, threshold in (("single", 1e9), ("split", 0.0)):
        monkeypatch.setattr(split, "SPLIT_MIN_S", threshold)
        out = tmp_path / f"{name}{ext}"
        metrics = compose(videos["tone.mp4"], media, plan, clips, out)
        assert_well_formed(out, videos["tone.mp4"], metrics, -14.0)
        assert metrics["true_peak_dbtp"] <= -1.0
        outs[name] = decoded(out)
    assert calls == ["AAC encode"] * 2 * metrics["final_runs"]
    single, halves = outs["single"], outs["split"]
    assert len(single) == len(halves)
    assert lag(halves, single, SR) == lag(halves, single, 4 * SR) == 0


def test_compose_keeps_one_encode_where_the_priming_would_be_lost(videos, tmp_path, monkeypatch):  # noqa: F811
    """Matroska keeps a copied stream's priming as samples (21 ms late): its mix is never split."""
    monkeypatch.setattr(split, "SPLIT_MIN_S", 0.0)
    calls = []
    real = split.run_ffmpeg
    monkeypatch.setattr(split, "run_ffmpeg", lambda args, **kw: calls.append(kw.get("what")) or real(args, **kw))
    plan = make_plan([0, 3.0, 6.0])
    out = tmp_path / "out.mkv"
    metrics = compose(videos["tone.mkv"], media_of(videos["tone.mkv"], 2), plan,
                      write_clips(plan, tmp_path / "clips"), out)
    assert calls == [] and metrics["final_runs"] >= 1
    assert compose_mod.split is split


def test_a_late_picture_keeps_its_sound_in_sync_when_split(tmp_path, tmp_path_factory, monkeypatch):
    """An MPEG-TS camera file whose picture starts 0.5 s in, scored into .mp4 in two halves: the
    copied track is shifted by the landing offset less the priming, so it starts on the first
    frame and ends with the last, as the single encode's does (tests/test_realworld.py)."""
    from musicvid_core.lab.samples import make_case
    from musicvid_core.metrics import stream_durations
    from musicvid_core.stages.analyse.probe import probe

    monkeypatch.setattr(split, "SPLIT_MIN_S", 0.0)
    calls = []
    real = split.run_ffmpeg
    monkeypatch.setattr(split, "run_ffmpeg", lambda args, **kw: calls.append(kw.get("what")) or real(args, **kw))
    case = make_case("mpegts", tmp_path_factory.mktemp("ts"))
    media = probe(case.path)
    assert media.start > 0.4
    plan = make_plan([0, media.duration])
    out = tmp_path / "out.mp4"
    metrics = compose(case.path, media, plan, write_clips(plan, tmp_path / "clips"), out)
    assert calls == ["AAC encode"] * 2 * metrics["final_runs"]
    durations = stream_durations(out)
    assert abs(durations["audio_start"] - durations["video_start"]) <= 1 / 25
    assert abs(durations["audio"] - durations["video"]) <= 1 / 25
