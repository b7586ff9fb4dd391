"""Real recordings in the pipeline (issue 15, phase 2): ``run --music`` / ``--library``, the plan fitted to
the edit, the clips as exact slices of it, regenerate and ``--segment N``, batch, and one-line errors.
Tracks are generated (musicvid_core.lab.tracks: known beats and bars); the library test uses the bundled
package and skips without it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from musicvid_core.cli import main
from musicvid_core.domain.errors import BadInput
from musicvid_core.domain.options import JobOptions
from musicvid_core.domain.plan import MusicChoice, Plan
from musicvid_core.lab.samples import make_video
from musicvid_core.lab.tracks import make_track
from musicvid_core.media import write_float_wav
from musicvid_core.metrics import measure_loudness
from musicvid_core.stages.mix.filtergraph import clip_chain, music_bus

SR = 48000
SCENES = (4, 4, 2, 6, 4, 4, 6)  # 30 s at 25 fps: cuts at 4, 8, 10, 16, 20, 24 s (on a 120 bpm grid)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A 30 s video (seven scenes, a quiet tone bed) and a 17 s generated track at 120 bpm, 44.1 kHz."""
    d = tmp_path_factory.mktemp("track-media")
    video = make_video(d / "v.mp4", SCENES, audio="tone")
    song = make_track(bpm=120, bars=8, seed=5)
    write_float_wav(d / "song.wav", song.audio, song.sample_rate)
    return {"video": video, "track": d / "song.wav", "dir": d}


@pytest.fixture
def cli(settings, capsys):
    """``musicvid ARGS`` in this process: (exit code, stdout, stderr)."""
    def call(*args):
        with pytest.raises(SystemExit) as ex:
            main([str(a) for a in args])
        out = capsys.readouterr()
        return ex.value.code, out.out, out.err

    return call


def _stem(services, result) -> np.ndarray:
    uri = result["metrics"]["stems"]["music"]
    data, rate = sf.read(services.objects.local_path(services.objects.key_from_uri(uri)), dtype="float32",
                         always_2d=True)
    assert rate == SR
    return data


def _edit(services, result):
    from musicvid_core.domain.layout import ArtifactLayout
    from musicvid_core.stages.compose.track.edit import Edit

    job = result["job"]
    key = ArtifactLayout(job["job_id"], job["attempt"]).edit
    return Edit.model_validate_json(services.objects.get_bytes(key))


# --- the option, the plan, the graph --------------------------------------------------------
def test_music_option_shape_and_errors():
    opts = JobOptions.parse({"music": {"kind": "track", "track": "uploads/u/a.mp3"}})
    assert opts.music.kind == "track" and opts.given() == {"music": {"kind": "track", "track": "uploads/u/a.mp3"}}
    assert JobOptions.parse({"music": {"kind": "library"}}).music.track is None
    assert JobOptions().music is None
    for bad in ({"kind": "track"}, {"kind": "vinyl"}, {"kind": "library", "bpm": 3}, "song.mp3",
                {"kind": "procedural", "track": "x"}):
        with pytest.raises(BadInput) as err:
            JobOptions.parse({"music": bad})
        assert "\n" not in str(err.value) and "music" in str(err.value)


def _track_plan(n: int = 3) -> Plan:
    bounds = [0.0, 8.0, 16.0, 24.0][:n + 1]
    segs = [dict(index=i, start=a, end=b, prompt="p", style="pop", mood="happy", bpm=120, key="C major", energy=0.5)
            for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]
    return Plan(duration=bounds[-1], prompt="p", segments=segs, fade_in_s=0, fade_out_s=0, crossfade_s=0,
                music=MusicChoice(kind="track", track="uploads/u/a.wav"))


def test_track_plan_clips_join_without_fades():
    plan = _track_plan()
    assert [plan.tail_s(i) for i in range(3)] == [0.0, 0.0, 0.0]
    assert plan.clip_samples(1, SR) == 8 * SR
    first, inner, last = (clip_chain(plan, i, sample_rate=SR, input_index=i) for i in range(3))
    assert "afade=t=in:ss=0:ns=480" in first and "afade=t=out" not in first
    assert "afade" not in inner and "afade" not in last
    assert "afade" not in music_bus(plan, total=24 * SR, sample_rate=SR, clip_inputs=[0, 1, 2]).split("[c2]")[-1]
    # a composed plan keeps its fades (the rule is the recording's only)
    composed = plan.model_copy(update={"music": None, "crossfade_s": 0.35})
    assert "curve=qsin" in clip_chain(composed, 1, sample_rate=SR, input_index=1)


@pytest.fixture(scope="module")
def pop():
    """A 120 bpm track with a 0.3 s offset and a one-beat pickup, analysed, and its source at SR."""
    from musicvid_core.media import resample
    from musicvid_core.metrics.music import _analysis_mono
    from musicvid_core.stages.compose.track.analysis import analyse_audio

    synth = make_track(bpm=120, bars=8, offset_s=0.3, pickup_beats=1, seed=1)
    analysis = analyse_audio(_analysis_mono(synth.audio, synth.sample_rate), sha256="ab" * 32, name="pop")
    return analysis, resample(synth.audio, synth.sample_rate, SR)


def test_fit_plan_snaps_segments_and_render_span_is_the_slice(pop):
    from musicvid_core.domain.features import Cut, MediaInfo, VideoFeatures
    from musicvid_core.lab.tracks import irregular_cuts
    from musicvid_core.stages.compose.track.fit import fit_plan, segment_samples
    from musicvid_core.stages.compose.track.render import render_edit, render_span

    analysis, source = pop
    cuts, _ = irregular_cuts(40.0, 2)
    media = MediaInfo(duration=40.0, width=320, height=180, fps=25, video_codec="h264")
    features = VideoFeatures(media=media, cuts=[Cut(time=t, strength=1.0) for t in cuts])
    bounds = [0.0, 12.3, 12.9, 27.0, 40.0]  # the two close boundaries meet on one bar line
    segs = [dict(index=i, start=a, end=b, prompt="p", style="pop", mood="happy", bpm=90, key="A minor", energy=0.5,
                 gain_db=-3.0) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]
    plan = Plan(duration=40.0, prompt="p", segments=segs, cuts=cuts, hits=[20.0])
    fitted, edit = fit_plan(plan, features, analysis, MusicChoice(kind="library", track="pop", why="test"),
                            sample_rate=SR, seed=4)
    assert edit.n_samples == 40 * SR and 20.0 in edit.hits
    assert len(fitted.segments) == 3 and fitted.music.key == analysis.key and fitted.music.sha256 == "ab" * 32
    assert fitted.fade_in_s == fitted.fade_out_s == fitted.crossfade_s == 0
    lines = edit.bar_lines
    assert min(abs(t - 20.0) for t in lines) <= 0.07  # the hit is a bar line
    for seg in fitted.segments:
        assert seg.gain_db == 0 and seg.key == analysis.key and seg.bpm == pytest.approx(120, rel=0.01)
        assert seg.start == 0 or min(abs(seg.start - t) for t in lines) < 1e-9
    full = render_edit(edit, source)
    spans = [segment_samples(fitted, i, SR) for i in range(len(fitted.segments))]
    assert sum(b - a for a, b in spans) == full.shape[0]
    for a, b in [*spans, (0, 1000), (12345, 12345 + SR), (full.shape[0] - 5000, full.shape[0]), (7, 7)]:
        assert np.array_equal(render_span(edit, source, a, b), full[a:b]), (a, b)
    with pytest.raises(BadInput):
        render_span(edit, source, 0, full.shape[0] + 1)
    # a re-roll re-edits one segment's bars, keeps the plan's boundaries and every sample outside it
    for n, (a, b) in enumerate(spans):
        again, reedited = fit_plan(fitted, features, analysis, fitted.music, sample_rate=SR, seed=99,
                                   previous=edit, reroll=n)
        assert [s.start for s in again.segments] == [s.start for s in fitted.segments]
        other = render_edit(reedited, source)
        assert np.array_equal(other[:a], full[:a]) and np.array_equal(other[b:], full[b:]), n
        assert not np.array_equal(other[a:b], full[a:b]), n


# --- bad input: one line, exit 2, before anything runs ----------------------------------------
@pytest.mark.parametrize("kind", ["text", "silent", "short", "missing", "both", "unknown-library-track"])
def test_unusable_music_exits_2_with_one_line(cli, short_video, tmp_path, kind):
    music = tmp_path / "m.wav"
    args = ["run", short_video.path, "--out", tmp_path / "o.mp4"]
    if kind == "text":
        music = tmp_path / "m.mp3"
        music.write_text("not audio\n" * 100)
    elif kind == "silent":
        write_float_wav(music, np.zeros((SR * 10, 2), np.float32), SR)
    elif kind == "short":
        write_float_wav(music, make_track(bpm=120, bars=2).audio, 44100)
    elif kind == "both":
        write_float_wav(music, make_track(bpm=120, bars=6).audio, 44100)
        args += ["--library"]
    if kind == "unknown-library-track":
        pytest.importorskip("immich_memories_music")
        args += ["--library-track", "no_such_track"]
    else:
        args += ["--music", music]
    code, out, err = cli(*args)
    assert code == 2 and out == ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert not (tmp_path / "o.mp4").exists()


def test_python_api_music_and_library_arguments_are_checked_first(services, short_video, tmp_path):
    from musicvid_core import score

    song = tmp_path / "s.wav"
    write_float_wav(song, make_track(bpm=120, bars=6).audio, 44100)
    for kwargs, message in [({"music": song, "library": True}, "not both"), ({}, "a prompt is needed"),
                            ({"music": tmp_path / "none.mp3"}, "music file not found")]:
        with pytest.raises(BadInput, match=message):
            score(short_video.path, **kwargs, services=services)
    assert services.jobs.list_for_user(services.settings.user, limit=10)[0] == []  # no job was made


def test_prompt_is_needed_without_a_recording(cli, short_video):
    code, _, err = cli("run", short_video.path)
    assert code == 2 and "prompt" in err and len(err.strip().splitlines()) == 1


# --- end to end -------------------------------------------------------------------------------
def _run_music(cli, media, tmp_path, *extra):
    code, out, err = cli("run", media["video"].path, "--music", media["track"], "--json", "--stems",
                         tmp_path / "stems", "--out", tmp_path / "o.mp4", *extra)
    assert code == 0, err
    return json.loads(out)


@pytest.mark.slow
def test_run_music_end_to_end(cli, services, media, tmp_path):
    from musicvid_core.stages.compose.track.audio import load_track
    from musicvid_core.stages.compose.track.render import render_edit

    result = _run_music(cli, media, tmp_path)
    plan, metrics = result["plan"], result["metrics"]
    assert plan["music"]["kind"] == "track" and plan["music"]["why"] and plan["music"]["key"] == "C major"
    assert plan["music"]["title"] == "song.wav"  # the file's name, not its upload key (a uuid)
    code, out, _ = cli("jobs", "show", result["job"]["job_id"])  # its summary names the track
    assert code == 0 and "Cut from song.wav" in out
    assert plan["music"]["bpm"] == pytest.approx(120, rel=0.01)
    assert plan["fade_in_s"] == plan["fade_out_s"] == plan["crossfade_s"] == 0
    # the output's sound is exactly as long as the picture (one frame at 25 fps), on the loudness target
    assert abs(metrics["audio_duration_s"] - metrics["duration_s"]) <= 1 / 25
    assert abs(measure_loudness(tmp_path / "o.mp4").integrated_lufs + 14.0) <= 0.5
    edit = _edit(services, result)
    # segments are whole bars of the edit; the strong cut at 16 s (a plan boundary) is a bar line
    lines = edit.bar_lines
    for seg in plan["segments"][1:]:
        assert min(abs(seg["start"] - t) for t in lines) < 1e-9
    figures = metrics["music_edit"]
    assert figures["length_error_samples"] == 0 and figures["max_stretch"] <= 0.06
    assert figures["measured"]["exact_length"]
    assert figures["cut_beat_hit_rate"] >= 0.8, figures  # re-detected on the music, +-70 ms
    assert figures["strong_downbeat_hit_rate"] in (None, 1.0), figures
    # the music stem is the edit itself: the clips sum to it bit for bit (past the first 10 ms' declick)
    stem = _stem(services, result)
    full = render_edit(edit, load_track(media["track"], SR))
    assert stem.shape == full.shape
    assert np.array_equal(stem[480:], full[480:])


@pytest.mark.slow
def test_same_seed_same_music_regenerate_and_segment(cli, services, media, tmp_path):
    first = _run_music(cli, media, tmp_path / "a")
    again = _run_music(cli, media, tmp_path / "b")
    assert np.array_equal(_stem(services, first), _stem(services, again))  # exact per seed
    job, bars = first["job"]["job_id"], _edit(services, first).bars
    # regenerate with another seed: another edit of the same track (a finished attempt replaces the older)
    code, out, err = cli("regenerate", job, "--seed", "3", "--json")
    assert code == 0, err
    regen = json.loads(out)
    assert regen["plan"]["music"]["sha256"] == first["plan"]["music"]["sha256"]
    assert _edit(services, regen).bars != bars
    before, regen_bars = _stem(services, regen), _edit(services, regen).bars
    # re-roll the last segment: every sample outside it is identical
    n = len(regen["plan"]["segments"]) - 1
    assert n >= 1
    code, out, err = cli("regenerate", job, "--segment", n, "--json")
    assert code == 0, err
    rolled = json.loads(out)
    assert [s["start"] for s in rolled["plan"]["segments"]] == [s["start"] for s in regen["plan"]["segments"]]
    after = _stem(services, rolled)
    seg = rolled["plan"]["segments"][n]
    a, b = round(seg["start"] * SR), round(seg["end"] * SR)
    assert np.array_equal(before[:a], after[:a]) and np.array_equal(before[b:], after[b:])
    assert not np.array_equal(before[a:b], after[a:b])
    assert _edit(services, rolled).bars != regen_bars


@pytest.mark.slow
def test_library_track_end_to_end(cli, services, tmp_path):
    pytest.importorskip("immich_memories_music")
    video = make_video(tmp_path / "v.mp4", (5, 6, 5, 4), audio="tone")
    code, out, err = cli("run", video.path, "--library", "--library-track", "energetic_acoustic_1",
                         "--prompt", "energetic acoustic", "--json", "--out", tmp_path / "o.mp4")
    assert code == 0, err
    result = json.loads(out)
    music = result["plan"]["music"]
    assert music["kind"] == "library" and music["track"] == "energetic_acoustic_1" and music["why"]
    figures = result["metrics"]["music_edit"]
    assert figures["length_error_samples"] == 0 and figures["measured"]["exact_length"]
    assert abs(result["metrics"]["audio_duration_s"] - result["metrics"]["duration_s"]) <= 1 / 25


@pytest.mark.slow
def test_batch_manifest_music_column(services, media, short_video, tmp_path):
    from musicvid_core.lab.batch import load_manifest, run_batch

    manifest = tmp_path / "m.csv"
    manifest.write_text(f"video,music,prompt\n{short_video.path},{media['track']},\n"
                        f"{short_video.path},{tmp_path / 'missing.wav'},\n")
    items = load_manifest(manifest)
    assert items[0].music == str(media["track"]) and items[0].prompt
    result = run_batch(services, items, tmp_path / "out", progress=False, measure_music=False)
    ok, missing = result.rows
    assert ok["status"] == "COMPLETED", ok
    assert missing["status"] != "COMPLETED" and "not found" in str(missing.get("error_message", missing))


@pytest.mark.slow
def test_regenerate_segment_with_a_hit_end_to_end(cli, services, media, tmp_path):
    """``musicvid regenerate JOB --segment N --hit S``: the music stem has a bar line at S and is
    identical outside segment N (tests/test_track_regen_hit.py: the edit's side, the refusals)."""
    from musicvid_core.stages.compose.track.analysis import analyse_file
    from musicvid_core.stages.compose.track.fit import HIT_TOLERANCE_S, fit_plan
    from musicvid_core.workflow.music_source import RESEED, _cache

    first = _run_music(cli, media, tmp_path / "a")
    job, edit, before = first["job"]["job_id"], _edit(services, first), _stem(services, first)
    plan = Plan.parse(json.dumps(first["plan"]))
    assert len(plan.segments) >= 2
    analysis = analyse_file(media["track"], cache_dir=_cache(services))

    def reachable(n: int, hit: float) -> bool:  # as the Analyzer of attempt 2 will re-edit it
        try:
            fit_plan(plan.model_copy(update={"hits": [hit]}), None, analysis, plan.music, sample_rate=SR,
                     seed=2 * RESEED, previous=edit, reroll=n)
        except BadInput:
            return False
        return True

    lines = edit.bar_lines
    found = [(n, h) for n, seg in enumerate(plan.segments) for t in lines if seg.start + 1 < t < seg.end - 1
             for h in (round(t + 0.15, 3), round(t - 0.15, 3)) if reachable(n, h)]
    assert found, "no reachable hit in this edit"
    n, hit = found[0]
    code, out, err = cli("regenerate", job, "--segment", n, "--hit", hit, "--json")
    assert code == 0, err
    rolled = json.loads(out)
    after = _stem(services, rolled)
    new = _edit(services, rolled)
    assert min(abs(hit - t) for t in new.bar_lines) <= HIT_TOLERANCE_S
    seg = rolled["plan"]["segments"][n]
    assert seg["hits"] == [hit] and rolled["plan"]["hits"] == [hit]
    a, b = round(seg["start"] * SR), round(seg["end"] * SR)
    assert np.array_equal(before[:a], after[:a]) and np.array_equal(before[b:], after[b:])
    assert not np.array_equal(before[a:b], after[a:b])
