"""Every installed SoundFont renderer (stages/compose/render.py) against the same measured promises:
exact length, deterministic, preset levels matched, slow attacks played early so onsets land on time.
midirenderer is what `pip install musicvid[local]` renders with; tinysoundfont what `make install` adds."""

import importlib.util

import numpy as np
import pretty_midi
import pytest

from musicvid_core.domain.errors import ConfigurationError
from musicvid_core.domain.plan import Plan, Segment
from musicvid_core.stages.compose import render
from musicvid_core.stages.compose.composer import compose_segment
from musicvid_core.stages.compose.procedural import ProceduralGenerator

SR = 32000
INSTALLED = [name for name in ("tinysoundfont", "midirenderer") if importlib.util.find_spec(name)]


@pytest.fixture(params=INSTALLED or [pytest.param("none", marks=pytest.mark.skip("no SoundFont renderer installed"))])
def renderer(request, monkeypatch):
    monkeypatch.setattr(render, "RENDERERS", (request.param,))
    return request.param


def test_midirenderer_is_what_a_pip_install_renders_with():
    pytest.importorskip("midirenderer")  # [local] pulls it in: a plain `pip install` has a renderer
    assert "midirenderer" in render.RENDERERS and render._importable("midirenderer")


def segment_midi(style="rock", end=4.0, seed=1):
    seg = Segment(index=0, start=0.0, end=end, prompt=style, style=style, mood="neutral", bpm=120.0,
                  key="A minor", energy=0.7)
    return compose_segment(Plan(duration=end, prompt="t", segments=[seg]), 0, seed)


def test_renders_exact_length_and_deterministic(renderer):
    assert render.renderer() == renderer
    pm, sf = segment_midi(), render.find_soundfont(None)
    for n in (SR, 5 * SR):  # cut short and padded with silence
        audio = render.render_midi(pm, SR, n, sf)
        assert audio.shape == (n, 2) and audio.dtype == np.float32 and np.isfinite(audio).all()
        assert np.abs(audio[: SR // 2]).max() > 1e-3  # it plays from the start
    assert np.array_equal(render.render_midi(pm, SR, 5 * SR, sf), audio)


def loudest_50ms_dbfs(x, sr):
    block = sr // 20
    mono = x[: len(x) // block * block].mean(axis=1).reshape(-1, block)
    return 20 * np.log10(np.sqrt(np.mean(np.square(mono, dtype=np.float64), axis=1)).max())


@pytest.mark.parametrize(("program", "drum", "pitch"), [(0, False, 60), (46, False, 60), (33, False, 40)])
def test_preset_levels_are_matched(renderer, program, drum, pitch):
    # GM presets differ by ~18 dB (TimGM6mb's harp vs its piano); the measured gain evens them out
    sf = render.find_soundfont(None)
    raw = render._reference(sf, program, drum, [(pitch, 0)], SR, SR)
    gain = render._preset_gain(sf, program, drum, SR)
    assert abs(loudest_50ms_dbfs(raw * gain, SR) - render.REFERENCE_DBFS) < 0.1


def test_slow_attacks_are_measured_and_played_early(renderer):
    sf = render.find_soundfont(None)
    kick = render.onset_lead(sf, 0, True, 36, SR)
    strings = render.onset_lead(sf, 48, False, 60, SR)
    assert 0.0 <= kick < strings <= render.MAX_LEAD_S and strings >= 0.015
    click = render._click_onsets[SR]
    for program, drum, pitch in ((0, True, 36), (0, False, 60), (33, False, 40)):
        for t0 in (1.0, 1.0 + 37 / 48000, 1.0123):  # on and off midirenderer's 64-sample blocks
            inst = pretty_midi.Instrument(program, is_drum=drum)
            inst.notes.append(pretty_midi.Note(100, pitch, t0, t0 + 0.5))
            mono = render._render_stem(inst, SR, round(1.6 * SR), sf).mean(axis=1)
            start = round((t0 - render.ONSET_PRE_S) * SR)
            onset = render.onset_time(mono[start:start + round(render.ONSET_SPAN_S * SR)], SR)
            heard = start / SR + render.ONSET_PRE_S + onset - click  # the click measures the method
            assert abs(heard - t0) <= 0.005, (program, drum, t0, heard)


def test_the_procedural_generator_renders_with_it(renderer, settings):
    gen = ProceduralGenerator(settings)
    seg = Segment(index=0, start=0.0, end=3.0, prompt="piano", style="piano", mood="calm", bpm=90.0,
                  key="C major", energy=0.5)
    plan = Plan(duration=3.0, prompt="t", segments=[seg])
    clip = gen.generate(plan, 0, 0)
    assert clip.shape == (plan.clip_samples(0, gen.sample_rate), 2) and np.abs(clip).max() > 0.01
    assert np.array_equal(clip, gen.generate(plan, 0, 0))  # same seed, same music


def test_no_renderer_is_a_configuration_error_naming_the_fix(monkeypatch):
    monkeypatch.setattr(render, "RENDERERS", ("musicvid_no_such_renderer",))
    assert render.renderer() is None
    with pytest.raises(ConfigurationError, match="pip install midirenderer"):
        render.render_midi(segment_midi(), SR, SR, render.BUNDLED)


def test_an_sf3_is_skipped_when_the_renderer_cannot_read_it(settings, tmp_path, monkeypatch):
    sf3 = tmp_path / "big.sf3"
    sf3.write_bytes(b"RIFF")
    settings.soundfont = sf3
    monkeypatch.setattr(render, "RENDERERS", ("midirenderer",))
    monkeypatch.setattr(render, "_importable", lambda name: True)
    assert render.find_soundfont(settings) != sf3 and render.find_soundfont(settings).is_file()
    monkeypatch.setattr(render, "RENDERERS", ("tinysoundfont",))
    assert render.find_soundfont(settings) == sf3


@pytest.mark.slow
def test_cut_locked_music_keeps_its_beats_on_the_cuts(renderer, settings):
    # the same promise tests/test_metrics_music.py checks on the default install, per renderer
    from musicvid_core.domain.features import Cut, MediaInfo, VideoFeatures
    from musicvid_core.metrics import music as mm
    from musicvid_core.stages.plan.planner import RulePlanner

    media = MediaInfo(duration=16.0, width=320, height=180, fps=25, video_codec="h264")
    feats = VideoFeatures(media=media, cuts=[Cut(time=t, strength=1.0) for t in (2.0, 4.0, 8.0, 10.0, 14.0)])
    plan = RulePlanner().plan(feats, "rock in a major key", 0)
    gen = ProceduralGenerator(settings)
    music = mm.assemble_music([gen.generate(plan, i, 0) for i in range(len(plan.segments))], plan, gen.sample_rate)
    report = mm.music_report(music, gen.sample_rate, plan)
    assert report["cuts"] == 5 and report["cut_beat_hit_rate"] >= 0.8
    assert report["clipped_samples"] == 0 and report["boundary_clicks"] == 0
    assert all(abs(s["tempo_error"]) <= 0.02 for s in report["segments"])
