"""fontsubset: a bank cut down to a plan's presets sounds as the whole bank does, and is smaller."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from musicvid_core.stages.compose import fonts, fontsubset

tsf = pytest.importorskip("tinysoundfont._tinysoundfont")

PLAN = [(0, False), (33, False), (0, True)]  # piano, finger bass, standard kit: a 3-preset plan
BANKS = [pytest.param(fonts.BUNDLED, id="TimGM6mb"),
         pytest.param(fonts.MUSESCORE, id="MuseScore", marks=pytest.mark.skipif(
             not fonts.MUSESCORE.is_file(), reason="MuseScore General not installed"))]


_parsed: dict[int, tuple] = {}  # id of a bank's bytes -> its parsed SoundFont (MuseScore takes seconds)


@pytest.fixture(scope="module", params=BANKS)
def bank(request) -> bytes:
    return fonts.bake_velocity_filters(request.param.read_bytes())


def _render(font: bytes, program: int, drum: bool, notes: list[int], rate: int = 48000,
            velocity: float = 0.8) -> np.ndarray:
    """Each note held 0.1 s, one every 0.1 s, then 0.5 s of release, stereo float32."""
    if id(font) not in _parsed:
        if len(_parsed) > 2:  # keep the whole bank (the largest) parsed: MuseScore's takes seconds
            del _parsed[min(_parsed, key=lambda k: len(_parsed[k][0]))]
        _parsed[id(font)] = (font, tsf.SoundFont(font))  # the bytes too, so the id stays theirs
    synth = tsf.SoundFont(_parsed[id(font)][1])  # a clone: shares the parsed samples
    synth.set_output(tsf.OutputMode.StereoInterleaved, rate, 0.0)
    ch = 9 if drum else 0
    synth.channel_set_preset_number(ch, program, drum)
    step = rate // 10
    out = np.zeros((step * len(notes) + rate // 2, 2), np.float32)
    for i, pitch in enumerate(notes):
        synth.channel_note_on(ch, pitch, velocity)
        synth.render(out[i * step:(i + 1) * step])
        synth.channel_note_off(ch, pitch)
    synth.render(out[len(notes) * step:])
    return out


def _notes(drum: bool) -> list[int]:
    return list(range(35, 82)) if drum else list(range(28, 100, 5))


def _presets(raw: bytes) -> dict[tuple[int, int], list]:
    """(bank, preset) -> what it plays: per preset zone its generators, the instrument's zones with
    their generators and each sample's header (offsets made relative) and data; indices resolved."""
    chunks = fonts._pdta(raw)
    rec = {n: fontsubset._records(raw, *chunks[n], f) for n, f in fontsubset.FORMATS.items()}
    lists = {raw[o:o + 4]: (o, s) for cid, o, s in fonts._chunks(raw, 12, len(raw)) if cid == b"LIST"}
    smpl_at = next(o for cid, o, _ in fontsubset._sub(raw, lists[b"sdta"]) if cid == b"smpl")
    shdr = rec["shdr"]

    def sample(s: int) -> tuple:
        name, start, end, ls, le, rate, pitch, corr, _link, kind = shdr[s]
        if kind & fontsubset.COMPRESSED:
            return name, raw[smpl_at + start:smpl_at + end], ls, le, rate, pitch, corr, kind
        data = raw[smpl_at + 2 * start:smpl_at + 2 * end]
        return name, data, ls - start, le - start, rate, pitch, corr, kind

    def zones(bag: list, gen: list, bags: range, link: int, resolve) -> list:
        return [[(o, resolve(a) if o == link else a) for o, a in gen[slice(*(bag[b][0], bag[b + 1][0]))]]
                for b in bags]

    def instrument(i: int) -> list:
        inst = rec["inst"]
        return [inst[i][0], zones(rec["ibag"], rec["igen"], range(inst[i][1], inst[i + 1][1]),
                                  fontsubset.GEN_SAMPLE, sample)]

    phdr = rec["phdr"]
    return {(h[2], h[1]): zones(rec["pbag"], rec["pgen"], range(h[3], phdr[p + 1][3]), fontsubset.GEN_INSTRUMENT,
                                instrument) for p, h in enumerate(phdr[:-1])}


def test_subset_keeps_the_presets_exactly_and_is_much_smaller(bank):
    sub = fontsubset.subset(bank, PLAN)
    full, kept = _presets(bank), _presets(sub)
    assert set(kept) == {(0, 0), (0, 33), (128, 0)}
    for key in kept:  # the same generators on the same sample bytes
        assert kept[key] == full[key]
    assert len(sub) < len(bank) / 3


@pytest.mark.parametrize("program,drum", PLAN)
def test_subset_renders_as_the_whole_bank(bank, program, drum):
    """Sample for sample up to the synthesizer's phase rounding: TinySoundFont keeps a voice's
    position as a double index into the whole bank's samples, so a sample that moves rounds its
    phase steps a little differently (measured <= 1e-6 re full scale here); a wrong sample or
    generator differs by orders of magnitude more."""
    sub = fontsubset.subset(bank, PLAN)
    a, b = _render(bank, program, drum, _notes(drum)), _render(sub, program, drum, _notes(drum))
    assert np.abs(a).max() > 0.01
    np.testing.assert_allclose(b, a, rtol=0, atol=2e-5)


def test_pitch_ratio_one_is_bit_identical(bank):
    """Where the phase step is exactly one sample (unpitched drums at the sample's own rate) the
    rounding above cannot happen, and the subset's output equals the bank's bit for bit."""
    sub = fontsubset.subset(bank, [(0, True)])
    shdr = fontsubset._records(sub, *fonts._pdta(sub)["shdr"], fontsubset.FORMATS["shdr"])
    rate = max((row[5] for row in shdr[:-1]), key=[row[5] for row in shdr].count)  # the kit's usual rate
    same = [np.array_equal(_render(bank, 0, True, [p], rate), _render(sub, 0, True, [p], rate)) for p in range(35, 60)]
    assert sum(same) >= 3


def test_unknown_programs_fall_back_as_the_whole_bank(bank):
    small = fontsubset.subset(bank, [(0, False), (0, True)])  # a bank of two presets
    for font in (small, fontsubset.subset(small, [(25, True), (5, False)])):
        synth = tsf.SoundFont(font)
        with pytest.raises(RuntimeError):  # no bank 0 program 5, as in the two-preset bank
            synth.channel_set_preset_number(0, 5, False)
    kit = fontsubset.subset(small, [(25, True)])  # an unknown kit: the standard kit (128, 0)
    assert set(_presets(kit)) == {(128, 0)}
    np.testing.assert_allclose(_render(kit, 25, True, [36, 38]), _render(small, 25, True, [36, 38]), atol=2e-5)
    assert set(_presets(fontsubset.subset(small, [(5, False)]))) == set()


def test_not_a_soundfont_is_a_value_error():
    with pytest.raises(ValueError):
        fontsubset.subset(b"RIFF\0\0\0\0WAVE", PLAN)
    with pytest.raises(ValueError):
        fontsubset.subset(b"RIFF" + struct.pack("<I", 4) + b"sfbk", PLAN)


def test_cached_builds_once(tmp_path):
    raw = fonts.BUNDLED.read_bytes()
    calls = []

    def load() -> bytes:
        calls.append(1)
        return raw

    first = fontsubset.cached(fonts.BUNDLED, PLAN, load, "abc", cache_dir=tmp_path)
    again = fontsubset.cached(fonts.BUNDLED, list(reversed(PLAN)), load, "abc", cache_dir=tmp_path)
    assert first == again and len(calls) == 1 and first.read_bytes() == fontsubset.subset(raw, PLAN)
    assert fontsubset.cached(fonts.BUNDLED, PLAN[:1], load, "abc", cache_dir=tmp_path) != first


def test_the_renderer_plays_a_plans_subset(tmp_path, monkeypatch):
    import pretty_midi

    from musicvid_core.stages.compose import render

    if render.renderer() != "tinysoundfont":
        pytest.skip("the subset is tinysoundfont's")
    monkeypatch.setattr(fontsubset, "CACHE_DIR", tmp_path)
    monkeypatch.setattr(render, "_subsets", {})
    pm = pretty_midi.PrettyMIDI()
    for program, drum in PLAN:
        inst = pretty_midi.Instrument(program, is_drum=drum, name=f"p{program}{drum}")
        inst.notes = [pretty_midi.Note(90, 36 + 3 * i if drum else 48 + i, 0.25 * i, 0.25 * i + 0.4) for i in range(8)]
        pm.instruments.append(inst)
    monkeypatch.setattr(render, "SUBSET_FONTS", False)
    whole = render.render_stems(pm, 32000, 96000, fonts.BUNDLED)
    assert not render._subsets
    monkeypatch.setattr(render, "SUBSET_FONTS", True)
    part = render.render_stems(pm, 32000, 96000, fonts.BUNDLED)
    assert [presets for _path, presets in render._subsets] == [frozenset(PLAN)]
    assert len(list(tmp_path.iterdir())) == 1
    assert whole.keys() == part.keys()
    for name in whole:
        assert np.abs(whole[name]).max() > 0.01
        np.testing.assert_allclose(part[name], whole[name], rtol=0, atol=2e-5)


def test_a_plans_segments_share_one_subset(tmp_path, monkeypatch):
    import pretty_midi

    from musicvid_core.stages.compose import render

    if render.renderer() != "tinysoundfont":
        pytest.skip("the subset is tinysoundfont's")
    monkeypatch.setattr(fontsubset, "CACHE_DIR", tmp_path)
    monkeypatch.setattr(render, "_subsets", {})

    def segment(presets) -> pretty_midi.PrettyMIDI:
        pm = pretty_midi.PrettyMIDI()
        for program, drum in presets:
            inst = pretty_midi.Instrument(program, is_drum=drum)
            inst.notes = [pretty_midi.Note(90, 40, 0.0, 0.2)]
            pm.instruments.append(inst)
        return pm

    for presets in (PLAN[:1], PLAN[1:], PLAN[:2]):  # an intro, the body, a bridge
        render.render_stems(segment(presets), 32000, 16000, fonts.BUNDLED)
    assert [presets for _path, presets in render._subsets] == [frozenset(PLAN)]



def test_a_plan_parses_one_subset_before_its_first_segment(settings, tmp_path, monkeypatch, caplog):
    """ProceduralGenerator parses the subset of the whole plan (every segment's presets, keys and
    velocities) once, before the first segment renders: not a wider one each time a segment reaches
    past the last (five parses for the 60 s bench's five segments, issue 18). The bytes then do not
    depend on the order the segments render in."""
    import logging

    from musicvid_core.domain.plan import Plan, Segment
    from musicvid_core.stages.compose import render
    from musicvid_core.stages.compose.composer import compose_arranged
    from musicvid_core.stages.compose.procedural import ProceduralGenerator

    if render.renderer() != "tinysoundfont":
        pytest.skip("the subset is tinysoundfont's")
    monkeypatch.setattr(fontsubset, "CACHE_DIR", tmp_path)
    monkeypatch.setattr(render, "_subsets", {})
    # Another key, register and energy in every segment: each one alone would widen the subset.
    segs = [Segment(index=i, start=4.0 * i, end=4.0 * (i + 1), prompt="pop", style="pop", mood="neutral",
                    bpm=110.0, key=key, energy=energy)
            for i, (key, energy) in enumerate([("C major", 0.2), ("F# major", 0.6), ("A minor", 1.0)])]
    plan = Plan(duration=12.0, prompt="pop", segments=segs)
    gen = ProceduralGenerator(settings)
    with caplog.at_level(logging.INFO, logger=render.__name__):
        forward = [gen.generate(plan, i, 3) for i in range(3)]
    assert sum("subset of" in r.getMessage() for r in caplog.records) == 1
    gen.release()
    assert not render._subsets
    backward = [gen.generate(plan, i, 3) for i in reversed(range(3))][::-1]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(forward, backward))
    # One segment's needs alone fit in a narrower subset than the plan's (what the test guards).
    alone = render._need([compose_arranged(plan, 0, 3)[0]])
    whole = render._need([compose_arranged(plan, i, 3)[0] for i in range(3)])
    assert alone != whole


def _zone_counts(raw: bytes) -> tuple[int, int]:
    """(instrument zones, samples) of a bank."""
    chunks = fonts._pdta(raw)
    return chunks["ibag"][1] // 4 - 1, chunks["shdr"][1] // 46 - 1


SPANS = {(0, False): (48, 64, 0, 127), (33, False): (28, 40, 0, 127), (0, True): (36, 42, 0, 127)}
ZONE_NOTES = {(0, False): [48, 55, 60, 64], (33, False): [28, 33, 40], (0, True): [36, 38, 42]}


@pytest.mark.parametrize("program,drum", PLAN)
def test_zone_subset_renders_as_the_whole_bank_within_its_spans(bank, program, drum):
    """Zones whose key range misses every span go, with their samples; the notes inside the spans
    (at their edges too) sound as with the whole bank, to the phase rounding above."""
    sub = fontsubset.subset(bank, PLAN, SPANS)
    assert all(z < w for z, w in zip(_zone_counts(sub), _zone_counts(fontsubset.subset(bank, PLAN))))
    notes = ZONE_NOTES[(program, drum)]
    a, b = _render(bank, program, drum, notes), _render(sub, program, drum, notes)
    assert np.abs(a).max() > 0.01
    np.testing.assert_allclose(b, a, rtol=0, atol=2e-5)
    outside = {(0, False): [100], (33, False): [60], (0, True): [81]}[(program, drum)]  # no kept zone plays it
    assert np.abs(_render(sub, program, drum, outside)).max() == 0.0 < np.abs(_render(bank, program, drum, outside)).max()


def _velocity_layered(raw: bytes) -> bytes:
    """TimGM6mb's two-preset subset with its piano's key splits turned into velocity layers, in place:
    each instrument zone's key range (generator 43) becomes a velocity range (44) of the same bounds
    (TimGM6mb has no velocity layers of its own)."""
    small = bytearray(fontsubset.subset(raw, [(0, False), (0, True)]))
    chunks = fonts._pdta(bytes(small))
    rec = {n: fontsubset._records(bytes(small), *chunks[n], fontsubset.FORMATS[n]) for n in ("phdr", "pbag", "pgen",
                                                                                             "inst", "ibag", "igen")}
    piano = next(p for p, h in enumerate(rec["phdr"][:-1]) if (h[2], h[1]) == (0, 0))
    insts = {a for b in range(rec["phdr"][piano][3], rec["phdr"][piano + 1][3])
             for o, a in rec["pgen"][rec["pbag"][b][0]:rec["pbag"][b + 1][0]] if o == fontsubset.GEN_INSTRUMENT}
    for i in insts:
        for b in range(rec["inst"][i][1], rec["inst"][i + 1][1]):
            for g in range(rec["ibag"][b][0], rec["ibag"][b + 1][0]):
                if rec["igen"][g][0] == fontsubset.GEN_KEY_RANGE:
                    struct.pack_into("<H", small, chunks["igen"][0] + 4 * g, fontsubset.GEN_VEL_RANGE)
    return bytes(small)


def test_zone_subset_keeps_the_velocity_layers_played():
    """As tsf.h selects a layer: by (short)(velocity / 127 * 127), the MIDI velocity itself, and
    baking velocity modulators (fonts.BAKE_VELOCITY) moves no range."""
    layered = _velocity_layered(fonts.bake_velocity_filters(fonts.BUNDLED.read_bytes()))
    sub = fontsubset.subset(layered, [(0, False)], {(0, False): (0, 127, 60, 80)})
    assert _zone_counts(sub)[0] < _zone_counts(fontsubset.subset(layered, [(0, False)]))[0]
    for velocity in (60, 67, 80):
        a = _render(layered, 0, False, [60, 72], velocity=velocity / 127.0)
        assert np.abs(a).max() > 0.01
        np.testing.assert_allclose(_render(sub, 0, False, [60, 72], velocity=velocity / 127.0), a, rtol=0, atol=2e-5)
    assert np.abs(_render(sub, 0, False, [60], velocity=100 / 127.0)).max() == 0.0


def test_cached_keys_the_spans(tmp_path):
    raw = fonts.BUNDLED.read_bytes()
    first = fontsubset.cached(fonts.BUNDLED, PLAN, lambda: bytearray(raw), "abc", cache_dir=tmp_path, spans=SPANS)
    assert first.read_bytes() == fontsubset.subset(raw, PLAN, SPANS)  # a bytearray (fonts.baked_buffer) as bytes
    assert first != fontsubset.cached(fonts.BUNDLED, PLAN, lambda: raw, "abc", cache_dir=tmp_path)
    wider = {**SPANS, (0, False): (48, 70, 0, 127)}
    assert first != fontsubset.cached(fonts.BUNDLED, PLAN, lambda: raw, "abc", cache_dir=tmp_path, spans=wider)


def test_a_note_outside_the_kept_keys_widens_the_subset(tmp_path, monkeypatch):
    """A later segment (or a stem rendered without preparing) that plays outside the kept keys gets
    a re-subset of the union, never a silent note: each render equals the whole bank's."""
    import pretty_midi

    from musicvid_core.stages.compose import render

    if render.renderer() != "tinysoundfont":
        pytest.skip("the subset is tinysoundfont's")
    monkeypatch.setattr(fontsubset, "CACHE_DIR", tmp_path)

    def segment(pitches) -> pretty_midi.PrettyMIDI:
        pm = pretty_midi.PrettyMIDI()
        inst = pretty_midi.Instrument(0, name="piano")
        inst.notes = [pretty_midi.Note(70 + 5 * i, p, 0.2 * i, 0.2 * i + 0.3) for i, p in enumerate(pitches)]
        pm.instruments.append(inst)
        return pm

    low, high, top = segment([48, 50, 52]), segment([88, 91, 95]), segment([106, 110])
    monkeypatch.setattr(render, "_subsets", {})
    monkeypatch.setattr(render, "SUBSET_FONTS", False)
    whole = [render.render_stems(pm, 32000, 48000, fonts.BUNDLED)["piano"] for pm in (low, high)]
    whole_top = render._render_stem(top.instruments[0], 32000, 48000, fonts.BUNDLED)
    monkeypatch.setattr(render, "SUBSET_FONTS", True)
    for pm, ref in zip((low, high), whole):
        np.testing.assert_allclose(render.render_stems(pm, 32000, 48000, fonts.BUNDLED)["piano"], ref, rtol=0, atol=2e-5)
    (_, spans), = render._subsets.values()  # one subset, of the union
    assert spans[(0, False)][0] <= 48 and spans[(0, False)][1] >= 95
    assert spans[(0, False)][1] < 106  # the top notes are outside it, then ...
    top_stem = render._render_stem(top.instruments[0], 32000, 48000, fonts.BUNDLED)
    assert np.abs(top_stem).max() > 0.01
    np.testing.assert_allclose(top_stem, whole_top, rtol=0, atol=2e-5)
    (_, spans), = render._subsets.values()  # ... widened to them
    assert spans[(0, False)][1] >= 110


def test_baked_buffer_bakes_in_place_as_bake_velocity_filters(tmp_path):
    """The bank read into one buffer and baked there (what a subset is cut from) equals the baked
    bytes; a file that is no SoundFont comes back as read, as from :func:`fonts.baked_bytes`."""
    bank = bytearray(fonts.BUNDLED.read_bytes())
    chunks = fonts._pdta(bytes(bank))
    imod = fontsubset._records(bytes(bank), *chunks["imod"], fontsubset.FORMATS["imod"])
    # TimGM6mb's velocity -> cutoff modulators all have a second source (not baked): make them plain
    for m, (src, dest, _amount, _amount_src, trans) in enumerate(imod[:-1]):
        if dest == 8:
            struct.pack_into("<HHhHH", bank, chunks["imod"][0] + 10 * m, src, dest, -2400, 0, trans)
    path = tmp_path / "velocity.sf2"
    path.write_bytes(bank)
    baked = fonts.bake_velocity_filters(bytes(bank))
    assert baked != bytes(bank) and bytes(fonts.baked_buffer(path)) == baked
    junk = tmp_path / "x.sf2"
    junk.write_bytes(b"RIFF\0\0\0\0WAVE")
    assert bytes(fonts.baked_buffer(junk)) == b"RIFF\0\0\0\0WAVE"
