"""Production (stages/compose/production.py + mixes.py) and the SoundFont choice (fonts.py): placement,
pump, mono safety, onsets kept, the tonal balance, determinism; the modulator baking on a built SoundFont."""

import struct

import numpy as np
import pretty_midi
import pytest

from musicvid_core.domain.styles import STYLES
from musicvid_core.metrics.sound_reference import REFERENCE
from musicvid_core.stages.compose import fonts, production, render
from musicvid_core.stages.compose.mixes import MIXES, Mix, Strip, mix_for

SR = 32000


def clicks(n=SR * 4, every=0.5, sr=SR, stereo=True):
    x = np.zeros(n, np.float32)
    x[(np.arange(0.25, n / sr, every) * sr).astype(int)] = 0.5
    return np.stack([x, x], axis=1) if stereo else x


def noise(n=SR * 4, seed=0):
    x = (np.random.default_rng(seed).standard_normal(n) * 0.05).astype(np.float32)
    return np.stack([x, x], axis=1)


def plain(**strip) -> Mix:
    """A mix that only runs one strip: no glue, no effects returns, a master that changes little."""
    return Mix({"part": Strip(**strip)}, glue=None, master=(0.0, 1.0, 1.0, 50.0), crest_db=40.0)


def test_every_style_has_a_mix_and_unknown_ones_get_plain_strips():
    assert set(MIXES) == set(STYLES)
    assert mix_for("no such style").strips["bass"] == mix_for("no such style").strips["bass"]


def test_pan_places_a_part_and_width_leaves_the_mono_fold_down_alone():
    left = production.produce({"part": noise()}, SR, plain(pan=-1.0), bpm=120)
    assert np.sqrt(np.mean(left[:, 1] ** 2)) < 1e-3 * np.sqrt(np.mean(left[:, 0] ** 2))
    x = noise().T.copy()
    narrow, wide = production._strip(x, SR, Strip(pan=0.0)), production._strip(x, SR, Strip(width=1.0))
    side = (wide[0] - wide[1]) / 2
    assert np.sqrt(np.mean(side ** 2)) == pytest.approx(production.WIDTH_GAIN * np.sqrt(np.mean(x[0] ** 2)), rel=0.01)
    np.testing.assert_allclose(wide.sum(axis=0), narrow.sum(axis=0), atol=1e-6)  # the mono fold-down: untouched
    stereo = np.stack([x[0], 0.5 * x[0]])
    narrowed = production._strip(stereo, SR, Strip(width=-1.0))  # a stereo sample made mono
    np.testing.assert_allclose(narrowed[0], narrowed[1])


def test_the_pump_ducks_after_each_kick_and_recovers():
    kicks = [0.5, 1.0, 1.5, 2.0]
    g = production._pump(kicks, SR * 3, SR, 6.0, 0.5)
    at = lambda t: float(g[round(t * SR)])  # noqa: E731
    assert at(0.2) == pytest.approx(1.0)
    assert at(0.51) == pytest.approx(10 ** (-6 / 20), abs=0.05)  # 6 dB down just after the kick
    assert at(0.95) > 0.9 and at(2.9) == pytest.approx(1.0, abs=5e-3)


def test_a_strip_keeps_onsets_where_they_were():
    x = clicks()
    y = production.produce({"snare": x}, SR, mix_for("rock"), bpm=120)
    want = render.onset_time(x[: SR // 2, 0], SR)
    assert abs(render.onset_time(y[: SR // 2].mean(axis=1), SR) - want) <= 0.002


@pytest.mark.parametrize("style", sorted(MIXES))
def test_production_is_deterministic_and_clean(style):
    stems = {"kick": clicks(every=0.5), "snare": clicks(every=1.0), "bass": noise(seed=1), "chords": noise(seed=2),
             "lead": noise(seed=3), "pad": noise(seed=4)}
    a = production.produce(stems, SR, mix_for(style), bpm=100, kicks=[0.25, 0.75, 1.25], seed=7)
    b = production.produce(stems, SR, mix_for(style), bpm=100, kicks=[0.25, 0.75, 1.25], seed=7)
    assert a.dtype == np.float32 and a.shape == (SR * 4, 2) and np.isfinite(a).all()
    assert a.tobytes() == b.tobytes()
    if mix_for(style).vinyl_db is not None:  # the vinyl noise follows the seed
        c = production.produce(stems, SR, mix_for(style), bpm=100, kicks=[0.25, 0.75, 1.25], seed=8)
        assert a.tobytes() != c.tobytes()


def test_stems_of_different_lengths_are_refused():
    with pytest.raises(ValueError):
        production.produce({"a": noise(SR), "b": noise(SR * 2)}, SR, mix_for("rock"), bpm=120)
    assert production.produce({}, SR, mix_for("rock"), bpm=120).shape == (0, 2)


def test_the_tone_eq_leans_towards_the_references():
    def band_noise(lo, hi):  # white noise with nothing outside lo..hi Hz
        spec = np.fft.rfft(np.random.default_rng(5).standard_normal(SR * 8))
        f = np.fft.rfftfreq(SR * 8, 1 / SR)
        x = np.fft.irfft(np.where((f >= lo) & (f < hi), spec, 0), SR * 8).astype(np.float32)
        return np.stack([x, x])

    dull = band_noise(30, 2000)
    gains = production.tone_gains(dull, SR, {})
    assert gains["air"] == production.TONE_MAX_DB and gains["presence"] == production.TONE_MAX_DB  # lift the top
    assert production.tone_gains(band_noise(30, 16000), SR, {})["air"] < 0  # white noise: far brighter than records
    assert production.tone_gains(np.zeros((2, SR)), SR, {}) == {}
    assert production.tone_gains(dull, SR, {"air": -6.0})["air"] <= gains["air"]
    assert set(REFERENCE["regions_db"]) == set(production.TONE_BANDS)


def test_the_rbj_prediction_matches_what_pedalboard_filters():
    impulse = np.zeros((1, SR), np.float32)
    impulse[0, 0] = 1.0
    freqs = np.fft.rfftfreq(SR, 1 / SR)
    for kind, hz, db, q in (("peak", 3500, -6, 0.9), ("high", 5500, 4, 0.7), ("low", 150, 3, 0.7)):
        h = production._board([production._band(kind, hz, db, q, SR)])(impulse, SR)[0]
        np.testing.assert_allclose(np.abs(np.fft.rfft(h)) ** 2, production._response(kind, hz, db, q, freqs, SR),
                                   rtol=5e-3, atol=1e-6)  # float32 coefficients: within 0.02 dB


def test_humanising_never_moves_a_beat_that_lands_on_a_cut():
    from musicvid_core.domain.plan import Plan, Segment
    from musicvid_core.stages.compose.composer import compose_segment

    accents = [2.5, 5.0, 7.0, 9.5]
    seg = Segment(index=0, start=0.0, end=12.0, prompt="rock", style="rock", mood="neutral", bpm=120.0,
                  key="A minor", energy=0.8, accents=accents)
    midi = compose_segment(Plan(duration=12.0, prompt="rock", segments=[seg]), 0, 3)
    window = 2 * STYLES["rock"].humanize_s
    near = [n.start for inst in midi.instruments if inst.name in ("drums", "bass") for n in inst.notes
            if any(abs(n.start - a) <= window for a in accents)]
    assert len(near) >= 8 and all(min(abs(t - a) for a in accents) < 1e-9 for t in near)
    loose = [n.start for inst in midi.instruments if inst.name == "drums" for n in inst.notes]
    assert any(abs(t * 8 - round(t * 8)) > 1e-6 for t in loose)  # elsewhere the groove is still humanised


# --- the SoundFont -------------------------------------------------------------------------
def _riff(cid: bytes, body: bytes) -> bytes:
    return cid + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def tiny_soundfont(modulators: list[tuple[int, int, int]], cutoff: int = 6000) -> bytes:
    """An SF2 skeleton (no sample data needed to test the generators): one preset whose zone carries
    ``modulators`` (source, destination, amount) and plays one instrument whose zone sets ``cutoff``."""
    phdr = struct.pack("<20sHHHIII", b"P", 0, 0, 0, 0, 0, 0) + struct.pack("<20sHHHIII", b"EOP", 0, 0, 1, 0, 0, 0)
    pbag = struct.pack("<HH", 0, 0) + struct.pack("<HH", 1, len(modulators))
    pmod = b"".join(struct.pack("<HHhHH", s, d, a, 0, 0) for s, d, a in modulators) + struct.pack("<HHhHH", 0, 0, 0, 0, 0)
    pgen = struct.pack("<Hh", 41, 0) + struct.pack("<Hh", 0, 0)
    inst = struct.pack("<20sH", b"I", 0) + struct.pack("<20sH", b"EOI", 1)
    ibag = struct.pack("<HH", 0, 0) + struct.pack("<HH", 2, 0)
    imod = struct.pack("<HHhHH", 0, 0, 0, 0, 0)
    igen = struct.pack("<Hh", 8, cutoff) + struct.pack("<Hh", 53, 0) + struct.pack("<Hh", 0, 0)
    shdr = struct.pack("<20sIIIIIBbHH", b"EOS", 0, 0, 0, 0, 0, 0, 0, 0, 0)
    pdta = b"pdta" + b"".join(_riff(c, b) for c, b in ((b"phdr", phdr), (b"pbag", pbag), (b"pmod", pmod),
                                                       (b"pgen", pgen), (b"inst", inst), (b"ibag", ibag),
                                                       (b"imod", imod), (b"igen", igen), (b"shdr", shdr)))
    body = b"sfbk" + _riff(b"LIST", b"INFO" + _riff(b"ifil", struct.pack("<HH", 2, 1))) + _riff(b"LIST", pdta)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def cutoff_of(raw: bytes) -> int:
    offset, _ = fonts._pdta(raw)["igen"]
    return struct.unpack_from("<Hh", raw, offset)[1]


def test_velocity_filter_modulators_are_baked_into_the_cutoff():
    raw = tiny_soundfont([(2, 8, 2400)])  # velocity (linear, unipolar) opens the filter by 2400 cents
    assert cutoff_of(fonts.bake_velocity_filters(raw)) == round(6000 + 2400 * 100 / 127)
    assert cutoff_of(fonts.bake_velocity_filters(raw, velocity=127)) == 8400
    reversed_ = tiny_soundfont([(2 | 0x100, 11, 3000)])  # D flag: the source runs max -> min
    assert cutoff_of(fonts.bake_velocity_filters(reversed_)) == round(6000 + 3000 * 27 / 127)
    capped = tiny_soundfont([(2, 8, 9000)], cutoff=12000)
    assert cutoff_of(fonts.bake_velocity_filters(capped)) == 13500  # SF2's "no filter"
    for untouched in (tiny_soundfont([]), tiny_soundfont([(2, 48, 960)]), tiny_soundfont([(2 | 0x80, 8, 2400)])):
        assert fonts.bake_velocity_filters(untouched) is untouched  # attenuation, a CC: not ours to bake
    with pytest.raises(ValueError):
        fonts.bake_velocity_filters(b"RIFF\0\0\0\0WAVEfmt ")


def test_the_default_soundfont_is_the_best_one_the_renderer_reads(settings, tmp_path, monkeypatch):
    sf3, sf2 = tmp_path / "MuseScore_General.sf3", tmp_path / "FluidR3_GM.sf2"
    sf3.write_bytes(b"x")
    sf2.write_bytes(b"x")
    monkeypatch.setattr(fonts, "CANDIDATES", (sf3, sf2, fonts.BUNDLED))
    monkeypatch.setattr(render, "RENDERERS", ("tinysoundfont",))
    assert render.find_soundfont(settings) == sf3
    monkeypatch.setattr(render, "RENDERERS", ("midirenderer",))  # a pip install: .sf2 only
    assert render.find_soundfont(settings) == sf2
    sf2.unlink()
    assert render.find_soundfont(settings) == fonts.BUNDLED
    own = tmp_path / "own.sf2"
    own.write_bytes(b"x")
    assert render.find_soundfont(settings.model_copy(update={"soundfont": own})) == own  # the setting wins


@pytest.mark.skipif(not fonts.MUSESCORE.is_file() or render.renderer() != "tinysoundfont",
                    reason="MuseScore General and tinysoundfont not both installed")
def test_musescore_piano_is_not_muffled_under_tinysoundfont():
    from musicvid_core.metrics.sound import region_levels, spectral_balance

    inst = pretty_midi.Instrument(0, name="chords")
    inst.notes = [pretty_midi.Note(90, 60 + k, k * 0.5, k * 0.5 + 0.45) for k in range(0, 12, 2)]
    audio = render._render_stem(inst, 48000, 4 * 48000, fonts.MUSESCORE, aligned=False)
    # its 2-6 kHz band read -50 dB (re the whole band) with the modulators ignored; FluidR3's piano -9
    assert region_levels(spectral_balance(audio, 48000))["presence"] > -25


class _Reads(dict):
    """A stem mapping that counts how often each stem is read and how many are out at once."""

    def __init__(self, stems):
        super().__init__(stems)
        self.reads: dict[str, int] = {}

    def __getitem__(self, name):
        self.reads[name] = self.reads.get(name, 0) + 1
        return super().__getitem__(name)


def test_the_mix_reads_each_stem_once_in_name_order():
    """render.lazy_stems renders a stem when it is read (issue 18: one stem held at a time), so the
    mix must read each stem exactly once; the result is the one a plain dict gives."""
    stems = {"snare": clicks(every=1.0), "bass": noise(seed=1), "kick": clicks(every=0.5), "pad": noise(seed=4)}
    counted = _Reads(stems)
    a = production.produce(counted, SR, mix_for("rock"), bpm=100, kicks=[0.25, 0.75], seed=3)
    assert counted.reads == dict.fromkeys(stems, 1)
    assert a.tobytes() == production.produce(dict(stems), SR, mix_for("rock"), bpm=100, kicks=[0.25, 0.75],
                                             seed=3).tobytes()


def test_lazy_stems_render_what_render_stems_renders():
    if render.renderer() != "tinysoundfont":
        pytest.skip("per-stem rendering is tinysoundfont's or midirenderer's")
    pm = pretty_midi.PrettyMIDI()
    for program, drum, name in ((0, False, "chords"), (33, False, "bass"), (0, True, "drums"), (4, False, "chords")):
        inst = pretty_midi.Instrument(program, is_drum=drum, name=name)
        inst.notes = [pretty_midi.Note(90, (36 + 2 * i) if drum else 48 + i, 0.25 * i, 0.25 * i + 0.3) for i in range(6)]
        pm.instruments.append(inst)
    eager = render.render_stems(pm, SR, SR * 2, fonts.BUNDLED)
    lazy = render.lazy_stems(pm, SR, SR * 2, fonts.BUNDLED)
    assert list(lazy) == list(eager) and "chords" in lazy and "kick" in lazy  # two instruments in one stem
    for name in eager:
        assert lazy[name].dtype == np.float32 and lazy[name].tobytes() == eager[name].tobytes()
    assert lazy["chords"] is not lazy["chords"]  # rendered on each read, held by nobody
