"""The compose filtergraph as a string: sample-exact placement, exact lengths, well-formed wiring."""

import re

import pytest

from musicvid_core.domain import Plan, Segment
from musicvid_core.stages.mix.filtergraph import (
    DECLICK_S,
    GraphInputs,
    build_graph,
    clip_chain,
    music_bus,
    original_chain,
)

SR = 48000


def make_plan(bounds, gains=None, **kw) -> Plan:
    gains = gains or [0.0] * (len(bounds) - 1)
    segs = [Segment(index=i, start=a, end=b, prompt="warm piano", style="ambient", mood="calm", bpm=90,
                    key="A minor", energy=0.5, gain_db=g)
            for i, (a, b, g) in enumerate(zip(bounds, bounds[1:], gains))]
    return Plan(duration=bounds[-1], prompt="warm piano", segments=segs, **kw)


def option(chain: str, filt: str, name: str) -> str:
    """The value of option ``name`` of the first filter in ``chain`` that starts with ``filt``
    (e.g. ``afade=t=out``)."""
    m = re.search(rf"(?:^|[,\]]){re.escape(filt)}[^,;\[]*", chain)
    assert m, f"no {filt} in {chain}"
    args = m.group(0).lstrip(",]").split("=", 1)[1]
    return dict(kv.split("=", 1) for kv in args.split(":") if "=" in kv)[name]


def labels(graph: str):
    """(produced, consumed) pad labels of a filtergraph; input pads like [0:a] are not labels."""
    produced, consumed = [], []
    for chain in graph.split(";"):
        head = re.match(r"^((?:\[[^\]]+\])*)", chain).group(1)
        tail = re.search(r"((?:\[[^\]]+\])*)$", chain).group(1)
        consumed += [x for x in re.findall(r"\[([^\]]+)\]", head) if ":" not in x]
        produced += re.findall(r"\[([^\]]+)\]", tail)
    return produced, consumed


def test_clips_are_placed_on_their_exact_first_sample():
    plan = make_plan([0, 2.01234, 4.5, 6.0])
    for i, seg in enumerate(plan.segments):
        chain = clip_chain(plan, i, sample_rate=SR, input_index=i + 1)
        assert chain.startswith(f"[{i + 1}:a]") and chain.endswith(f"[c{i}]")
        if i == 0:
            assert "adelay" not in chain
        else:
            assert option(chain, "adelay", "delays") == f"{round(seg.start * SR)}S"
            assert option(chain, "adelay", "all") == "1"
    # 2.01234 s is not a whole number of samples: it rounds the way Plan.clip_samples rounds.
    assert option(clip_chain(plan, 1, sample_rate=SR, input_index=2), "adelay", "delays") == "96592S"


def test_clip_is_trimmed_to_its_length_and_faded_over_its_release():
    plan = make_plan([0, 2.0, 4.0, 6.0], fade_in_s=0.5, crossfade_s=0.35)
    first = clip_chain(plan, 0, sample_rate=SR, input_index=1)
    middle = clip_chain(plan, 1, sample_rate=SR, input_index=2)
    last = clip_chain(plan, 2, sample_rate=SR, input_index=3)
    length = plan.clip_samples(1, SR)
    assert length == 2 * SR + round(0.35 * SR)
    assert option(middle, "atrim", "end_sample") == str(length)
    # fade-in: the plan's on the first clip, a 10 ms declick at internal boundaries
    assert option(first, "afade=t=in", "ns") == str(round(0.5 * SR))
    assert option(middle, "afade=t=in", "ns") == str(round(DECLICK_S * SR))
    # fade-out: equal-power over the release tail, ending on the clip's last sample
    tail = round(0.35 * SR)
    assert option(middle, "afade=t=out", "ss") == str(length - tail)
    assert option(middle, "afade=t=out", "ns") == str(tail)
    assert option(middle, "afade=t=out", "curve") == "qsin"
    # the last clip has no release: only a declick at its end
    assert option(last, "afade=t=out", "ns") == str(round(DECLICK_S * SR))
    assert option(last, "atrim", "end_sample") == str(2 * SR)
    # timestamps renumbered by sample count before any timestamp-positioned fade
    assert first.index("asetpts=N/SR/TB") < first.index("afade")


def test_fades_never_exceed_a_short_clip():
    plan = make_plan([0, 0.2], fade_in_s=1.0)
    chain = clip_chain(plan, 0, sample_rate=SR, input_index=0)
    assert option(chain, "afade=t=in", "ns") == str(round(0.2 * SR))


def test_clip_gain_is_segment_plus_music_gain():
    plan = make_plan([0, 3.0, 6.0], music_gain_db=-3.0, gains=[0.0, -2.5])
    assert "volume=-3.0000dB" in clip_chain(plan, 0, sample_rate=SR, input_index=1)
    assert "volume=-5.5000dB" in clip_chain(plan, 1, sample_rate=SR, input_index=2)


def test_music_bus_sums_without_normalising_and_is_exactly_the_video_length():
    plan = make_plan([0, 2.0, 4.0, 6.0], fade_out_s=2.0)
    total = 6 * SR
    bus = music_bus(plan, total=total, sample_rate=SR, clip_inputs=[1, 2, 3])
    mix = bus.split(";")[-1]
    assert mix.startswith("[c0][c1][c2]amix=inputs=3:normalize=0") and mix.endswith("[music]")
    assert option(mix, "afade=t=out", "ss") == str(total - 2 * SR)
    assert option(mix, "afade=t=out", "ns") == str(2 * SR)
    assert mix.endswith(f"apad=whole_len={total},atrim=end_sample={total}[music]")
    # one clip: no amix at all
    single = music_bus(make_plan([0, 6.0]), total=total, sample_rate=SR, clip_inputs=[1])
    assert "amix" not in single and f"atrim=end_sample={total}[music]" in single


def test_original_sound_is_downmixed_and_cut_to_length():
    plan = make_plan([0, 6.0], original_gain_db=-6.0)
    chain = original_chain(plan, total=288000, sample_rate=SR, input_index=0)
    assert chain.startswith("[0:a:0]aresample=") and chain.endswith("[orig]")
    assert option(chain, "aresample", "ochl") == "stereo"
    assert option(chain, "aresample", "lfe_mix_level") == "0"
    assert float(option(chain, "aresample", "clev")) == pytest.approx(2 ** -0.5, abs=1e-4)
    assert "volume=-6.0000dB" in chain and chain.endswith("atrim=end_sample=288000[orig]")


@pytest.mark.parametrize("original", [None, 0])
@pytest.mark.parametrize("stems", [False, True])
@pytest.mark.parametrize("meter", [False, True])
def test_graph_wiring_is_complete(original, stems, meter):
    plan = make_plan([0, 2.0, 4.0, 6.0])
    clips = [1, 2, 3] if original == 0 else [0, 1, 2]
    graph = build_graph(plan, duration=6.0, sample_rate=SR, inputs=GraphInputs(clips, original),
                        meter=meter, stems={"music", "original"} if stems else ())
    produced, consumed = labels(graph)
    assert len(produced) == len(set(produced)), "a label is produced twice"
    outputs = {"out"} | ({"stem_music"} | ({"stem_original"} if original == 0 else set()) if stems else set())
    assert set(produced) - set(consumed) == outputs
    assert set(consumed) <= set(produced)
    assert ("[0:a:0]" in graph) == (original == 0)
    assert ("amix=inputs=2:normalize=0:weights='1 1'" in graph) == (original == 0)
    assert "alimiter" not in graph  # the graph is the premaster; mastering runs on its WAV
    assert ("ebur128=peak=true" in graph) == meter
    for i in clips:
        assert f"[{i}:a]" in graph


def test_every_bus_has_the_video_duration_in_samples():
    fps = 30000 / 1001
    duration = 150 / fps  # 150 frames at 29.97 fps: 5.005 s
    plan = make_plan([0, 2.5, duration])
    graph = build_graph(plan, duration=duration, sample_rate=SR, inputs=GraphInputs([1, 2], 0))
    total = round(duration * SR)
    assert total == 240240
    # music bus and original bus each end exactly there (the master chain: see its own test)
    assert graph.count(f"apad=whole_len={total},atrim=end_sample={total}") == 2
