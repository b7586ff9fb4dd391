"""Issue 16: arrangement (sections, ending, speech), performance (pedal, strum, ghosts, legato) and
the exciter. MIDI-level tests: no rendering except the exciter's signal test."""

import numpy as np
import pytest

from musicvid_core.domain.features import Region
from musicvid_core.domain.plan import Plan, Segment
from musicvid_core.stages.compose import performance
from musicvid_core.stages.compose.arrangement import SECTIONS, arrange, ride_gain
from musicvid_core.stages.compose.composer import compose_arranged, compose_segment
from musicvid_core.stages.compose.grid import beat_grid
from musicvid_core.stages.compose.harmony import chord_from_numeral, parse_key
from musicvid_core.stages.compose.production import _excite


def seg(index=0, start=0.0, end=8.0, style="rock", key="A minor", bpm=120.0, energy=0.7, **kw):
    return Segment(index=index, start=start, end=end, prompt=style, style=style, mood="neutral",
                   bpm=bpm, key=key, energy=energy, **kw)


def plan_of(*segments, **kw):
    return Plan(duration=segments[-1].end, prompt="test", segments=list(segments), **kw)


def rising_plan(style="rock", **kw):
    # 120 bpm: a bar is 2 s. Low, then rising to a peak in the second segment, then falling.
    return plan_of(seg(0, 0.0, 16.0, style=style, energy=0.5, energy_curve=[0.4, 0.45, 0.5, 0.5, 0.55, 0.6, 0.6, 0.6]),
                   seg(1, 16.0, 32.0, style=style, energy=0.8, energy_curve=[0.6, 0.7, 0.95, 1.0, 0.9, 0.7, 0.6, 0.5]),
                   **kw)


def test_sections_follow_the_plans_energy():
    plan = rising_plan()
    names0 = [s.name for s in arrange(plan, 0, beat_grid(120.0, 16.0)).sections]
    arr1 = arrange(plan, 1, beat_grid(120.0, 16.0))
    names1 = [s.name for s in arr1.sections]
    assert names0[0] == "intro" and "peak" not in names0
    assert names0[-1] == "build"  # into the next segment's peak
    assert names1[:4] == ["peak"] * 4  # the highest phrase, whole (sections last a phrase)
    assert "peak" not in names1[4:]  # the falling bars are not
    assert names1[-1] == "end" and "outro" in names1  # the last segment thins out and ends
    assert SECTIONS["peak"].lift > 0 and SECTIONS["peak"].ride_db > SECTIONS["A"].ride_db > SECTIONS["intro"].ride_db


def test_the_final_chord_rings_out_on_the_last_frame():
    plan = rising_plan()
    pm, spans = compose_arranged(plan, 1, 3)
    end_at = next(a for a, _, s in spans if s.name == "end")
    assert plan.fade_out_s <= 16.0 - end_at <= plan.fade_out_s + 2.0 + 1e-6  # at most the fade-out + a bar
    tonic, mode = parse_key("A minor")
    triad = {(tonic + i) % 12 for i in chord_from_numeral("i", tonic, mode).intervals}
    melodic = [n for inst in pm.instruments if not inst.is_drum for n in inst.notes]
    after = [n for n in melodic if n.start >= end_at - 1e-6]
    assert after and all(abs(n.start - end_at) < 1e-6 for n in after)  # nothing else starts after it
    assert {n.pitch % 12 for n in after} <= triad  # the tonic chord
    assert all(n.end > 16.0 - 0.02 for n in after)  # held to the video's last frame: the fade catches it ringing
    assert all(n.end <= end_at + 1e-6 for n in melodic if n.start < end_at - 1e-6)  # the groove stops under it
    # a segment that is not the last one has no ending
    assert "end" not in {s.name for _, _, s in compose_arranged(plan, 0, 3)[1]}


def test_music_under_speech_thins_its_arrangement():
    quiet = rising_plan(style="corporate")
    talk = rising_plan(style="corporate", speech=[Region(start=16.0, end=26.0)])
    names = {i.name for i in compose_segment(quiet, 1, 2).instruments}
    assert {"pad", "lead"} <= names
    pm = compose_segment(talk, 1, 2)
    parts = {i.name: i for i in pm.instruments}
    under = lambda inst: [n for n in inst.notes if n.start < 9.9]  # noqa: E731 (segment-relative)
    assert not under(parts.get("pad") or _empty()) and not under(parts.get("lead") or _empty())
    assert under(parts["bass"]) and under(parts["drums"])  # the rhythm section keeps going
    loud = {i.name: i for i in compose_segment(quiet, 1, 2).instruments}
    assert len(under(parts["chords"])) < len(under(loud["chords"]))  # light keys, not the full pattern
    after = [n for n in parts.get("lead", _empty()).notes if n.start >= 10.0]
    assert after or "lead" not in loud  # the melody comes back after the words


class _empty:
    notes = ()


def test_the_motif_returns_across_segments():
    plan = plan_of(seg(0, 0.0, 16.0, style="corporate", energy=1.0), seg(1, 16.0, 40.0, style="corporate", energy=1.0))

    def phrase_rhythms(index):
        lead = next(i for i in compose_segment(plan, index, 4).instruments if i.name == "lead")
        grid = beat_grid(120.0, plan.segments[index].duration)
        out = {}
        for bar in range(0, len(grid.bars), 4):  # the first bar of each phrase states the theme
            steps = tuple(round((n.start - grid.bars[bar]) / grid.step_s) for n in lead.notes
                          if grid.bars[bar] - 0.02 <= n.start < grid.bars[bar] + 2.0 - 0.05)
            out[bar] = steps
        return out

    a, b = phrase_rhythms(0), phrase_rhythms(1)
    stated = [r for r in list(a.values()) + list(b.values()) if r]
    assert len(stated) >= 3 and len(set(stated)) == 1


def test_piano_sustain_pedal_holds_note_offs_to_the_pedal_up():
    plan = plan_of(seg(style="piano", bpm=72.0, key="C major", energy=0.6, end=12.0), seg(1, 12.0, 20.0, style="piano",
                                                                                       bpm=72.0, key="C major"))
    pm = compose_segment(plan, 0, 1)
    for inst in pm.instruments:
        cc = [c for c in inst.control_changes if c.number == 64]
        downs, ups = [c.time for c in cc if c.value >= 64], [c.time for c in cc if c.value < 64]
        assert downs and len(downs) == len(ups) and all(u > d for d, u in zip(downs, ups))
        for n in inst.notes:  # a note sounds until the pedal comes up (or the same key is struck again)
            restruck = any(m.pitch == n.pitch and abs(m.start - n.end) < 1e-9 for m in inst.notes)
            up = min((u for u in ups if u > n.start + performance.PEDAL_LIFT_S), default=12.0)
            assert restruck or n.end >= up - 1e-6
        assert any(n.end - n.start > 1.0 for n in inst.notes)


def test_strums_spread_low_to_high_within_10_to_30_ms():
    import random
    rng = random.Random(0)
    for v in (40, 80, 120):
        offs = performance.strum_offsets(6, v, rng)
        assert offs[0] == 0 and offs == sorted(offs) and 0.010 - 1e-9 <= offs[-1] <= 0.030 + 1e-9
    plan = plan_of(seg(style="acoustic", bpm=96.0, key="G major", energy=0.8, end=10.0))
    chords = next(i for i in compose_segment(plan, 0, 2).instruments if i.name == "chords")
    starts = sorted(chords.notes, key=lambda n: n.start)
    groups, cur = [], [starts[0]]
    for n in starts[1:]:
        (cur.append(n) if n.start - cur[0].start < 0.035 else (groups.append(cur), cur := [n]))
    spreads = [g[-1].start - g[0].start for g in groups if len(g) >= 4]
    assert spreads and all(0.009 <= s <= 0.031 for s in spreads)
    downs = [g for g in groups if len(g) >= 4]
    assert any([n.pitch for n in sorted(g, key=lambda n: n.start)] == sorted(n.pitch for n in g) for g in downs)


def test_ghost_notes_and_fills():
    plan = rising_plan()
    drums = next(i for i in compose_segment(plan, 1, 5).instruments if i.is_drum)
    snares = [n for n in drums.notes if n.pitch == 38]
    assert any(n.velocity <= performance.GHOST_VELOCITY[1] for n in snares)  # ghost strokes
    assert any(n.velocity > 80 for n in snares)  # and the backbeat
    # a fill (toms) leads from the build into the peak: two beats at the end of the first segment
    first = next(i for i in compose_segment(plan, 0, 5).instruments if i.is_drum)
    assert any(n.pitch in (43, 47, 50) and 15.0 <= n.start < 16.0 for n in first.notes)


def test_legato_overlaps_a_bowed_line():
    import pretty_midi
    inst = pretty_midi.Instrument(40, name="lead")
    inst.notes = [pretty_midi.Note(90, 60, 0.0, 0.4), pretty_midi.Note(90, 62, 0.5, 0.9), pretty_midi.Note(90, 64, 3.0, 3.4)]
    performance.legato(inst, beat_s=0.5)
    assert inst.notes[0].end == pytest.approx(0.5 + performance.LEGATO_OVERLAP_S)
    assert inst.notes[1].end == pytest.approx(0.9)  # a rest of more than a beat stays a rest


def test_ride_gain_rides_sections_and_ramps_a_build():
    spans = [(0.0, 2.0, SECTIONS["A"]), (2.0, 4.0, SECTIONS["build"]), (4.0, 6.0, SECTIONS["peak"])]
    g = 20 * np.log10(ride_gain(spans, 6 * 1000, 1000))
    assert g[500] == pytest.approx(SECTIONS["A"].ride_db, abs=1e-4)
    assert g[2100] < g[3000] < g[3900]  # the build rises into the peak
    assert g[5000] == pytest.approx(SECTIONS["peak"].ride_db, abs=1e-4)


def test_exciter_writes_air_deterministically():
    sr = 32000
    t = np.arange(sr) / sr
    x = np.stack([0.3 * np.sin(2 * np.pi * 1000 * t) + 0.1 * np.sin(2 * np.pi * 3100 * t)] * 2).astype(np.float32)
    y = _excite(x, sr, -18.0)

    def air(z):
        spec = np.abs(np.fft.rfft(z[0])) ** 2
        f = np.fft.rfftfreq(z.shape[1], 1 / sr)
        return 10 * np.log10(spec[f >= 6000].sum() / spec.sum() + 1e-20)

    assert air(y) > air(x) + 20 and -22 < air(y) < -14
    assert np.array_equal(y, _excite(x, sr, -18.0))
