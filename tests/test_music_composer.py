import numpy as np
import pretty_midi
import pytest

from musicvid_core.domain.errors import GenerationError
from musicvid_core.domain.plan import Plan, Segment
from musicvid_core.domain.styles import STYLES
from musicvid_core.stages.compose import render
from musicvid_core.stages.compose.composer import compose_segment
from musicvid_core.stages.compose.fx import limit, measure_lufs, polish
from musicvid_core.stages.compose.grid import beat_grid
from musicvid_core.stages.compose.harmony import SCALES, chord_from_numeral, parse_key, voice_chord
from musicvid_core.stages.compose.procedural import ProceduralGenerator

SR = 48000


def seg(index=0, start=0.0, end=4.0, style="cinematic", key="A minor", bpm=100.0, energy=0.6, **kw):
    return Segment(index=index, start=start, end=end, prompt=style, style=style, mood="neutral",
                   bpm=bpm, key=key, energy=energy, **kw)


def plan_of(*segments):
    return Plan(duration=segments[-1].end, prompt="test", segments=list(segments))


@pytest.fixture
def gen(settings):
    return ProceduralGenerator(settings)


@pytest.mark.parametrize("style", sorted(STYLES))
def test_every_style_renders_a_clean_clip(gen, style):
    s = STYLES[style]
    plan = plan_of(seg(style=style, bpm=s.default_bpm, key=f"D {s.default_mode}"))
    audio = gen.generate(plan, 0, seed=1)
    assert audio.dtype == np.float32 and audio.shape == (plan.clip_samples(0, SR), 2)
    assert np.isfinite(audio).all()
    assert np.abs(audio).max() <= 1.0
    assert np.sqrt(np.mean(audio ** 2)) > 0.02  # music, not silence


def test_same_seed_same_bytes_other_seed_other_music(gen):
    plan = plan_of(seg(style="jazz", energy=0.7))
    a = gen.generate(plan, 0, seed=5)
    assert a.tobytes() == gen.generate(plan, 0, seed=5).tobytes()
    b = gen.generate(plan, 0, seed=6)
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_midi_is_deterministic_and_seed_dependent():
    plan = plan_of(seg(style="acoustic", end=8.0))

    def notes(seed):
        return [(i.program, n.pitch, n.start, n.velocity) for i in compose_segment(plan, 0, seed).instruments
                for n in i.notes]

    assert notes(3) == notes(3)
    assert notes(3) != notes(4)


@pytest.mark.parametrize("style", ["rock", "cinematic", "piano"])
def test_energy_changes_density_and_loudness(gen, style):
    def render_at(energy):
        plan = plan_of(seg(style=style, end=6.0, energy=energy))
        n_notes = sum(len(i.notes) for i in compose_segment(plan, 0, 1).instruments)
        return n_notes, measure_lufs(gen.generate(plan, 0, 1), SR)

    quiet_notes, quiet_lufs = render_at(0.1)
    loud_notes, loud_lufs = render_at(0.9)
    assert loud_notes > quiet_notes * 1.2
    assert loud_lufs - quiet_lufs > 2.5


def test_energy_curve_is_followed_per_bar():
    # 120 bpm: 2 s bars. Drums only in the bars whose energy lets them in.
    plan = plan_of(seg(style="electronic", bpm=120, end=8.0, energy_curve=[0.05, 0.05, 0.9, 0.9]))
    drums = next(i for i in compose_segment(plan, 0, 2).instruments if i.is_drum)
    assert drums.notes and min(n.start for n in drums.notes) >= 4.0 - 0.05


def test_named_instruments_take_their_roles():
    plan = plan_of(seg(style="cinematic", energy=0.1, instruments=["flute", "harp", "kazoo"]))
    programs = {i.name: i.program for i in compose_segment(plan, 0, 1).instruments}
    # Named instruments play even where the energy would rest their role; unknown names are skipped.
    assert programs["lead"] == 73 and programs["chords"] == 46


def test_notes_stay_inside_the_segment_and_time_zero_is_its_start():
    first, second = seg(0, 0.0, 4.0), seg(1, 4.0, 9.0, accents=[6.0])
    plan = plan_of(first, second)
    pm = compose_segment(plan, 1, 1)
    notes = [n for i in pm.instruments for n in i.notes]
    assert min(n.start for n in notes) < 0.05
    assert all(0.0 <= n.start < n.end <= second.duration + 1e-9 for n in notes)
    assert pm.get_tempo_changes()[1][0] == pytest.approx(100.0)
    crashes = sorted(n.start for i in pm.instruments if i.is_drum for n in i.notes if n.pitch == 49)
    assert crashes[0] == pytest.approx(0.0) and any(abs(t - 2.0) < 1e-6 for t in crashes)


def test_release_tail_is_rendered(gen):
    plan = plan_of(seg(0, 0.0, 3.0, style="ambient"), seg(1, 3.0, 6.0, style="ambient"))
    audio = gen.generate(plan, 0, 1)
    tail = round(plan.tail_s(0) * SR)
    assert audio.shape[0] == round(3.0 * SR) + tail == plan.clip_samples(0, SR)
    assert np.abs(audio[-tail:-tail // 2]).max() > 1e-3  # the release rings into the tail
    assert gen.generate(plan, 1, 1).shape[0] == round(3.0 * SR)  # last segment: no tail


def test_odd_lengths_and_sample_rates(settings):
    settings.sample_rate = 44100
    g = ProceduralGenerator(settings)
    plan = plan_of(seg(0, 0.0, 1.337), seg(1, 1.337, 1.5))
    for i in range(2):
        assert g.generate(plan, i, 0).shape == (plan.clip_samples(i, 44100), 2)


def test_pitched_parts_stay_in_key():
    plan = plan_of(seg(style="corporate", key="D major", end=10.0, energy=0.9))
    scale = {(2 + s) % 12 for s in SCALES["major"]}
    for inst in compose_segment(plan, 0, 7).instruments:
        if inst.name in ("chords", "pad", "lead"):
            assert {n.pitch % 12 for n in inst.notes} <= scale, inst.name


@pytest.mark.parametrize("style", sorted(STYLES))
def test_parts_stay_in_their_registers(style):
    s = STYLES[style]
    for key in ("F# minor", "Bb major"):
        plan = plan_of(seg(0, 0.0, 2.0, style=style), seg(1, 2.0, 12.0, style=style, key=key,
                                                           bpm=s.default_bpm, energy=0.9, accents=[5.0]))
        for inst in compose_segment(plan, 1, 3).instruments:
            if inst.is_drum:
                continue
            lo, hi = s.register(inst.name)
            lo -= 12 if inst.name == "chords" and s.spread == "wide" else 0  # doubled root below
            lo -= 1 if inst.name == "bass" else 0  # a chromatic approach from below
            assert all(lo <= n.pitch <= hi for n in inst.notes), inst.name


def test_a_style_word_instead_of_a_style_key():
    plan = plan_of(seg(style="deep house"))
    drums = next(i for i in compose_segment(plan, 0, 1).instruments if i.is_drum)
    assert drums.program == STYLES["electronic"].instruments["drums"]


@pytest.mark.parametrize("index", [-1, 1, "0", True])
def test_bad_index_is_a_generation_error(gen, index):
    with pytest.raises(GenerationError):
        gen.generate(plan_of(seg()), index, 0)


def test_beat_grid():
    g = beat_grid(120, 4.1)
    assert g.beats == (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
    assert g.bars == (0.0, 2.0, 4.0) and g.step_s == 0.125
    with pytest.raises(ValueError):
        beat_grid(0, 1)


def test_harmony_helpers():
    tonic, mode = parse_key("A minor")
    chord = chord_from_numeral("V7", tonic, mode)  # harmonic-minor dominant: E G# B D
    assert {(chord.root + i) % 12 for i in chord.intervals} == {4, 8, 11, 2}
    assert chord_from_numeral("bVII", 0, "major").root == 10
    voicing = voice_chord(chord, (52, 76), "close")
    assert all(52 <= p <= 76 for p in voicing) and len(voicing) == 4
    with pytest.raises(GenerationError):
        parse_key("H minor")


def test_render_midi_is_exact_length():
    plan = plan_of(seg(end=3.0))
    pm = compose_segment(plan, 0, 1)
    sf = render.find_soundfont(None)
    for n in (SR, 5 * SR):  # cut short and padded with silence
        audio = render.render_midi(pm, SR, n, sf)
        assert audio.shape == (n, 2) and audio.dtype == np.float32


def test_find_soundfont_falls_back(settings, tmp_path, monkeypatch):
    settings.soundfont = tmp_path / "missing.sf2"
    assert render.find_soundfont(settings).is_file()
    custom = tmp_path / "mine.sf2"
    custom.write_bytes(render.BUNDLED.read_bytes())
    monkeypatch.setenv("MUSICVID_SOUNDFONT", str(custom))
    assert render.find_soundfont(None) == custom  # no settings given: read through Settings
    assert render.find_soundfont(settings.model_copy(update={"soundfont": custom})) == custom


def test_fx_guards_silence_and_limits_peaks():
    silent = polish(np.zeros((SR, 2), np.float32), SR, reverb=0.5, energy=0.5, body_samples=SR)
    assert np.isfinite(silent).all() and not silent.any()
    t = np.arange(SR) / SR
    loud = np.stack([3 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1).astype(np.float32)
    limited = limit(loud, SR)
    assert np.abs(limited).max() <= 10 ** (-1 / 20) + 1e-6
    assert polish(loud[:100], SR, reverb=0.3, energy=0.5, body_samples=100).shape == (100, 2)


def test_fills_play_on_the_beat_in_fast_cutting_and_in_16ths_otherwise():
    beat = 0.6  # 100 bpm

    def tom_offsets(accent_beats):
        plan = plan_of(seg(0, 0.0, 14 * beat, style="rock", bpm=100.0, energy=0.9,
                           accents=[k * beat for k in accent_beats]))
        drums = next(i for i in compose_segment(plan, 0, 3).instruments if i.is_drum)
        toms = [n.start for n in drums.notes if n.pitch in (47, 50)]  # rock's fill toms (not in its grooves)
        assert toms
        return [abs(t / beat - round(t / beat)) for t in toms]

    assert max(tom_offsets([2, 3, 5, 6, 8, 9, 11, 12])) < 1e-6  # a cut every 1-2 beats: one note a beat
    assert max(tom_offsets([4, 8, 12])) > 0.2  # sparse cuts: a 16th-note roll


def test_onset_time_finds_a_click_to_the_millisecond():
    sr = 32000
    clicks = []
    for at in (0.1, 0.12):
        x = np.zeros(sr // 2)
        x[round(at * sr)] = 1.0
        clicks.append(render.onset_time(x, sr))
    assert abs(clicks[1] - clicks[0] - 0.02) <= 0.0025


def test_slow_attacks_are_played_early_so_their_onsets_land_on_the_note_time():
    sf, sr = render.find_soundfont(), 32000
    kick = render.onset_lead(sf, 0, True, 36, sr)
    strings = render.onset_lead(sf, 48, False, 60, sr)
    assert 0.0 <= kick < strings <= render.MAX_LEAD_S and strings >= 0.015
    inst = pretty_midi.Instrument(48)
    inst.notes.append(pretty_midi.Note(100, 60, 1.0, 2.0))
    on, off = [s for s, _ in render._events(inst, 0, sr, sf)]
    assert on == round((1.0 - strings) * sr) and off == round((2.0 - strings) * sr)
    assert [s for s, _ in render._events(inst, 0, sr)] == [round(1.0 * sr), round(2.0 * sr)]  # no SoundFont: as written
