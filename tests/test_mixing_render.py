"""The block mixer (stages/mix/render.py) against the filter graph's music bus: the same samples."""

import itertools

import numpy as np
import pytest
import soundfile as sf

from musicvid_core.domain import Plan, Segment
from musicvid_core.domain.plan import MusicChoice
from musicvid_core.media import run_ffmpeg
from musicvid_core.stages.mix import render
from musicvid_core.stages.mix.filtergraph import music_bus, samples
from musicvid_core.stages.mix.render import render_music

SR = 48000


def make_plan(bounds, gains, **kw) -> Plan:
    segs = [Segment(index=i, start=a, end=b, prompt="p", style="cinematic", mood="calm", bpm=96, key="A minor",
                    energy=0.5, gain_db=g) for i, ((a, b), g) in enumerate(zip(itertools.pairwise(bounds), gains))]
    return Plan(duration=bounds[-1], prompt="p", segments=segs, **kw)


def write_clips(plan, folder, *, odd: bool = False):
    """Noise clips, exactly clip_samples long; with ``odd`` the second one is mono at 44.1 kHz (converted)."""
    rng = np.random.default_rng(3)
    paths = []
    for i in range(len(plan.segments)):
        rate, channels = (44100, 1) if odd and i == 1 else (SR, 2)
        n = plan.clip_samples(i, rate)
        x = (0.2 * rng.standard_normal((n, channels))).astype(np.float32)
        path = folder / f"c{i}.wav"
        sf.write(path, x, rate, subtype="FLOAT")
        paths.append(path)
    return paths


def graph_bus(plan, clips, dest, total):
    graph = music_bus(plan, total=total, sample_rate=SR, clip_inputs=range(len(clips)))
    run_ffmpeg(["-y", *[a for c in clips for a in ("-i", str(c))], "-filter_complex", graph, "-map", "[music]",
                "-c:a", "pcm_f32le", str(dest)])
    return sf.read(dest, dtype="float32")[0]


@pytest.mark.parametrize("case", ["tails", "real_recording", "converted"])
def test_block_mix_equals_the_filter_graph(tmp_path, case, monkeypatch):
    monkeypatch.setattr(render, "BLOCK_SAMPLES", 10_000)  # many block edges inside clips and fades
    kw = {"music": MusicChoice(kind="library", track="t")} if case == "real_recording" else {}
    plan = make_plan([0.0, 1.01234, 2.5, 4.0], [0.0, -6.0, 3.0], fade_in_s=0.3, fade_out_s=1.0, **kw)
    clips = write_clips(plan, tmp_path, odd=case == "converted")
    total = samples(plan.duration, SR)
    ours = sf.read(render_music(plan, clips, tmp_path / "ours.wav", sample_rate=SR, total=total, work=tmp_path,
                                timeout=60), dtype="float32")[0]
    theirs = graph_bus(plan, clips, tmp_path / "theirs.wav", total)
    assert ours.shape == theirs.shape == (total, 2)
    assert np.max(np.abs(ours - theirs)) < 1e-4
    assert np.max(np.abs(ours)) > 0.1  # not trivially equal


def test_real_recording_joins_have_no_fade(tmp_path):
    """A real recording's contiguous slices sum back to the signal at every join (no dip)."""
    plan = make_plan([0.0, 1.5, 3.0], [0.0, 0.0], fade_out_s=0.0, music=MusicChoice(kind="library", track="t"))
    signal = np.full((samples(3.0, SR), 2), 0.5, dtype=np.float32)
    clips = []
    for i, seg in enumerate(plan.segments):
        a, n = samples(seg.start, SR), plan.clip_samples(i, SR)
        clips.append(tmp_path / f"c{i}.wav")
        sf.write(clips[-1], signal[a:a + n], SR, subtype="FLOAT")
    out = sf.read(render_music(plan, clips, tmp_path / "m.wav", sample_rate=SR, total=len(signal),
                               work=tmp_path, timeout=60), dtype="float32")[0]
    declick = samples(0.010, SR)
    assert np.allclose(out[declick:], 0.5, atol=1e-6)  # the join at 1.5 s included


def test_numpy_ducking_equals_the_graphs_expression(tmp_path):
    """premaster.mix_premaster ducks the music with filtergraph.duck_chain's gain, frame for frame
    (its music tap; without an original the premaster is that ducked music)."""
    from musicvid_core.domain.features import Region
    from musicvid_core.stages.mix.filtergraph import duck_chain
    from musicvid_core.stages.mix.premaster import mix_premaster

    speech = [Region(start=0.05, end=0.9), Region(start=1.2, end=1.6), Region(start=3.0, end=3.4)]
    plan = make_plan([0.0, 4.0], [0.0], speech=speech)
    src = tmp_path / "m.wav"
    sf.write(src, np.full((samples(4.0, SR), 2), 0.5, dtype=np.float32), SR, subtype="FLOAT")
    mix_premaster(plan, src, None, tmp_path / "p.wav", sample_rate=SR, duck_db=15.0,
                  stems={"music": tmp_path / "d.wav"})
    ours, premaster = (sf.read(tmp_path / name, dtype="float32")[0] for name in ("d.wav", "p.wav"))
    run_ffmpeg(["-y", "-i", str(src), "-af", f"asetpts=N/SR/TB,{duck_chain(plan, 15.0)}", "-c:a", "pcm_f32le",
                str(tmp_path / "g.wav")])
    theirs = sf.read(tmp_path / "g.wav", dtype="float32")[0]
    assert ours.shape == theirs.shape
    assert np.max(np.abs(ours - theirs)) < 1e-6
    assert ours.min() < 0.5 * 10 ** (-14 / 20)  # ducked by the depth somewhere
    assert np.array_equal(ours, premaster)


@pytest.mark.parametrize("source_db", [0.0, 9.0, float("inf")])
def test_the_numpy_premaster_is_the_filter_graphs(tmp_path, monkeypatch, source_db):
    """premaster.mix_premaster mixes what the filter graph's premaster (filtergraph.build_graph, the
    bus inputs) mixes, sample for sample: the music ducked under speech, the original lowered (or
    muted) during its own music, both taps; its loudness within 0.1 LU of ebur128's, its sample
    peak ebur128's, and its K-weighted energies limiter.analyse's."""
    from musicvid_core.domain.features import Region
    from musicvid_core.metrics.loudness import parse_ebur128_summary
    from musicvid_core.stages.mix import limiter, premaster
    from musicvid_core.stages.mix.filtergraph import GraphInputs, build_graph

    monkeypatch.setattr(premaster, "BLOCK_CHUNKS", 1000)  # many block edges inside the ramps
    plan = make_plan([0.0, 9.0], [0.0], speech=[Region(start=1.0, end=2.5), Region(start=6.0, end=6.4)],
                     source_music=[Region(start=3.5, end=5.0)])
    n = samples(9.0, SR)
    rng = np.random.default_rng(5)
    t = np.arange(n) / SR
    buses = {"music": np.stack([0.3 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1),
             "original": 0.1 * rng.standard_normal((n, 2))}
    for name, x in buses.items():
        sf.write(tmp_path / f"{name}.wav", x.astype(np.float32), SR, subtype="FLOAT")
    graph = build_graph(plan, duration=9.0, sample_rate=SR, meter=True, sample_peak=True, duck_db=12.0,
                        source_db=source_db, stems={"music", "original"},
                        inputs=GraphInputs(clips=(), music=1, original=0, original_bus=True))
    proc = run_ffmpeg(["-y", "-i", str(tmp_path / "original.wav"), "-i", str(tmp_path / "music.wav"),
                       "-filter_complex", graph, "-map", "[out]", "-c:a", "pcm_f32le", str(tmp_path / "g.wav"),
                       *[a for s in ("music", "original") for a in ("-map", f"[stem_{s}]", "-c:a", "pcm_f32le",
                                                                    str(tmp_path / f"g_{s}.wav"))]])
    theirs = parse_ebur128_summary(proc.stderr)
    ours = premaster.mix_premaster(plan, tmp_path / "music.wav", tmp_path / "original.wav", tmp_path / "p.wav",
                                   sample_rate=SR, duck_db=12.0, source_db=source_db,
                                   stems={"music": tmp_path / "p_music.wav", "original": tmp_path / "p_original.wav",
                                          "master": tmp_path / "not_this_pass.wav"})
    for mine, graphs in (("p", "g"), ("p_music", "g_music"), ("p_original", "g_original")):
        a, b = (sf.read(tmp_path / f"{name}.wav", dtype="float32")[0] for name in (mine, graphs))
        assert a.shape == b.shape == (n, 2)
        assert np.max(np.abs(a - b)) < 1e-6, mine
    assert not (tmp_path / "not_this_pass.wav").exists()
    assert abs(ours.integrated_lufs - theirs.integrated_lufs) <= 0.1
    assert abs(ours.sample_peak_db - theirs.true_peak_dbtp) <= 0.051  # ebur128 prints 0.1 dB
    assert np.allclose(ours.energy, limiter.analyse(tmp_path / "p.wav").energy, rtol=1e-6)
    original = sf.read(tmp_path / "p_original.wav")[0]
    during, before = (np.abs(original[round(a * SR):round(b * SR)]).max() for a, b in ((4.2, 4.8), (0.2, 0.8)))
    if source_db == float("inf"):
        assert during == 0.0
    else:
        assert (during < 0.5 * before) if source_db else (during > 0.5 * before)


def test_the_premaster_refuses_buses_of_different_lengths(tmp_path):
    from musicvid_core.domain.errors import MediaToolError
    from musicvid_core.stages.mix.premaster import mix_premaster

    for name, seconds in (("m", 2.0), ("o", 1.5)):
        sf.write(tmp_path / f"{name}.wav", np.zeros((samples(seconds, SR), 2), np.float32), SR, subtype="FLOAT")
    with pytest.raises(MediaToolError, match="differ"):
        mix_premaster(make_plan([0.0, 2.0], [0.0]), tmp_path / "m.wav", tmp_path / "o.wav", tmp_path / "p.wav",
                      sample_rate=SR)


def steady_peaks(lufs: float, peak_db: float, seconds: float = 10.0, *, chunk: int = 32):
    """limiter.Peaks of a steady premaster: ``lufs`` loud, every chunk's true peak at ``peak_db``."""
    from musicvid_core.stages.mix.limiter import Peaks

    n = int(seconds * SR) // chunk
    power = 10 ** ((lufs + 0.691) / 10) * chunk
    return Peaks(np.full(n, peak_db, np.float32), np.full(n, power), chunk, SR, n * chunk)


def steady_premaster(lufs: float, sample_peak_db: float):
    """A premaster.Premaster's figures (no file: _fit_gain reads the loudness and the sample peak)."""
    from musicvid_core.stages.mix.premaster import Premaster

    return Premaster(None, lufs, sample_peak_db, None, 32)


def test_the_gain_is_fitted_on_the_limiters_estimate_then_written_once():
    """compose._fit_gain: the limiter's own estimate (limiter.fit, no pass over the audio) finds the
    gain; the final run then runs once when the estimate was right, and keeps correcting when the
    measured output says it was not."""
    from musicvid_core.metrics.loudness import report
    from musicvid_core.stages.mix.compose import _fit_gain

    peaks = steady_peaks(-24.0, -6.0)  # +10 dB of gain puts every peak 5 dB over a -1 ceiling

    def metered(offset):
        calls = []

        def meter(gain):  # what the estimate predicts, off by ``offset`` LU
            from musicvid_core.stages.mix import limiter

            calls.append(gain)
            return report(limiter.loudness(peaks, gain, limiter.curve(peaks, gain, -2.0)) + offset, -2.0, 5.0)
        return meter, calls

    premaster = steady_premaster(-24.0, -6.0)
    master, mastered = metered(0.05)
    gain, passes = _fit_gain(master, premaster, target_lufs=-14.0, limit_db=-2.0, peaks=lambda: peaks)
    assert len(mastered) == 1 and passes == 2
    assert gain > 10.0 + 1.0  # the limiter takes what it must over the ceiling; the gain makes it up
    master, mastered = metered(-1.0)  # the estimate reads 1 LU too loud: measurement corrects it
    gain2, passes = _fit_gain(master, premaster, target_lufs=-14.0, limit_db=-2.0, peaks=lambda: peaks)
    assert len(mastered) >= 2 and passes == 1 + len(mastered) and gain2 > gain
    master, mastered = metered(-1.0)  # a preview: no correction
    assert _fit_gain(master, premaster, target_lufs=-14.0, limit_db=-2.0, peaks=lambda: peaks,
                     corrections=0) == (gain, 2) and len(mastered) == 1


def test_the_premasters_true_peaks_are_read_only_when_its_sample_peak_leaves_the_limiter_open():
    """The premaster pass meters the sample peak. INTERSAMPLE_MARGIN_DB or more under the ceiling
    (after the gain), no true peak can reach it: linear, nothing read. Otherwise the true peaks are
    read (limiter.analyse) and decide: under, linear; over, the limiter and its fit."""
    from musicvid_core.metrics.loudness import report
    from musicvid_core.stages.mix.compose import INTERSAMPLE_MARGIN_DB, LIMITER_HEADROOM_DB, _fit_gain

    ceiling = -2.0 - LIMITER_HEADROOM_DB  # limit_db -2, gain +10 (premaster -24 LUFS, target -14)

    def fit(sample_peak, true_peak_db):
        read, mastered = [], []

        def peaks():
            read.append(1)
            return steady_peaks(-24.0, true_peak_db)

        def master(gain):
            mastered.append(gain)
            return report(-14.0, -1.5, 5.0)

        gain, passes = _fit_gain(master, steady_premaster(-24.0, sample_peak - 10.0), target_lufs=-14.0,
                                 limit_db=-2.0, peaks=peaks)
        return len(read), passes, round(gain, 6)

    assert fit(ceiling - INTERSAMPLE_MARGIN_DB - 0.5, None) == (0, 1, 10.0)  # far under: linear
    assert fit(ceiling - 1.0, ceiling - 0.8 - 10.0) == (1, 1, 10.0)  # between, the true peak under: linear
    read, passes, gain = fit(ceiling - 1.0, ceiling + 0.3 - 10.0)  # between, the true peak over: limited
    assert (read, passes) == (1, 2) and gain > 10.0
    read, passes, gain = fit(ceiling + 0.5, ceiling + 1.0 - 10.0)  # over by its samples already
    assert (read, passes) == (1, 2) and gain > 10.0


def test_the_original_bus_is_the_graphs_original_from_the_video(tmp_path):
    """compose._bus_pass decodes the video's sound into the original bus the filter graph makes of
    it (filtergraph.original_chain: resampled, downmixed, cut to the first frame, gain, exact
    length), sample for sample; the premaster mixed from it is the graph's premaster from the video."""
    from musicvid_core.domain.features import Region
    from musicvid_core.lab.samples import make_video
    from musicvid_core.stages.analyse.probe import probe
    from musicvid_core.stages.mix.compose import _bus_pass
    from musicvid_core.stages.mix.filtergraph import GraphInputs, build_graph
    from musicvid_core.stages.mix.premaster import mix_premaster
    from tests.test_mixing_compose import make_plan as plan_of

    sample = make_video(tmp_path / "v.mp4", (3, 3), audio="tone")
    media = probe(sample.path)
    plan = plan_of([0, media.duration], speech=[Region(start=1.0, end=2.5)], source_music=[Region(start=3.5, end=5.0)],
                   original_gain_db=-3.0)
    total = round(media.duration * SR)
    t = np.arange(total) / SR
    music = tmp_path / "music.wav"
    sf.write(music, np.stack([0.2 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1).astype(np.float32), SR, subtype="FLOAT")
    original = tmp_path / "original.wav"
    _bus_pass(sample.path, media, plan, original, sample_rate=SR, timeout=120)
    graph = build_graph(plan, duration=media.duration, sample_rate=SR, duck_db=10.0, source_db=9.0,
                        stems={"original"}, inputs=GraphInputs(clips=(), music=1, original=0, track=media.main_track,
                                                               lead_s=media.start))
    run_ffmpeg(["-y", "-vn", "-i", str(sample.path), "-i", str(music), "-filter_complex", graph,
                "-map", "[out]", "-c:a", "pcm_f32le", str(tmp_path / "g.wav"),
                "-map", "[stem_original]", "-c:a", "pcm_f32le", str(tmp_path / "g_original.wav")])
    mix_premaster(plan, music, original, tmp_path / "p.wav", sample_rate=SR, duck_db=10.0, source_db=9.0,
                  stems={"original": tmp_path / "p_original.wav"})
    bus = sf.read(original, dtype="float32")[0]
    assert bus.shape == (total, 2) and np.abs(bus).max() > 0.01  # the quiet tone, not silence
    for mine, graphs in (("p", "g"), ("p_original", "g_original")):
        a, b = (sf.read(tmp_path / f"{name}.wav", dtype="float32")[0] for name in (mine, graphs))
        assert a.shape == b.shape == (total, 2)
        assert np.max(np.abs(a - b)) < 1e-6, mine
