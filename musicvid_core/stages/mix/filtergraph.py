"""The ffmpeg ``-filter_complex`` graph that puts the music under the video, built as plain strings.

Pure functions of the plan and a few numbers, so the graph is unit-tested without running ffmpeg.
Every position and length is an integer number of samples at the mix rate, so a clip lands on the
exact sample its segment starts at and the soundtrack is exactly as long as the video stream::

    clip i: aformat, atrim to its length, fade in, qsin fade-out over its release, volume, adelay
    all clips: amix(normalize=0), global fade-out, apad+atrim to the video's length,
               ducking under speech (a gain envelope over the plan's speech regions) -> [music]
    original: downmix to stereo, volume, apad+atrim                                   -> [orig]
    [music] + [orig]: amix(normalize=0)                         -> [mix], the premaster: [out]

The mastering chain (master gain, alimiter at 4x the rate, apad+atrim) is separate: compose runs it
on the premaster written to a WAV by the graph above, so the mix itself is computed only once.

Labels: each clip chain ends in ``[c{i}]``; buses are ``[music]``, ``[orig]``, ``[mix]``; the graph's
output is ``[out]``. ``stems`` names the buses also tapped: ``music`` to ``[stem_music]``,
``original`` to ``[stem_original]``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from musicvid_core.domain.plan import Plan
from musicvid_core.metrics.loudness import EBUR128_FILTER, SAMPLE_PEAK_FILTER

# Fade-in at internal segment boundaries: long enough to avoid a click, short enough that the
# downbeat a clip starts on stays crisp. Also the shortest fade anywhere (first clip, clip ends).
DECLICK_S = 0.010
# Ducking: speech regions closer than this (or than attack + release) are ducked as one, so the
# music does not bob up between words and phrases (pumping).
DUCK_BRIDGE_S = 0.5
# The ducking gain is evaluated once per audio frame; frames of 128 samples (2.7 ms at 48 kHz) make
# a 150 ms, 12 dB raised-cosine ramp 56 steps of at most 0.34 dB (pi/2 x the mean step), too fine to
# hear as zipper noise. Afterwards the frames go back to 1024 samples: the filters downstream (amix,
# the meter) pay per frame.
DUCK_FRAME_SAMPLES = 128


@dataclass(frozen=True)
class GraphInputs:
    """Which ffmpeg inputs feed the graph: one per clip, in segment order, and the input whose audio
    track ``track`` (``a:N``, the main one) is the original sound (None when the video has no
    audio). ``lead_s``: seconds of that sound before the first shown frame (a video that starts
    after the container does), cut so that sample 0 is the first frame."""

    clips: Sequence[int]
    original: int | None = None
    track: int = 0
    lead_s: float = 0.0
    # The input holding the music bus already summed (render.render_music: clips placed, faded and
    # scaled, the global fade-out applied, exactly the video's length): then ``clips`` is unused
    # and only the ducking is applied here.
    music: int | None = None
    # ``original`` is the original bus a measuring pass wrote (stereo at the mix rate, sample 0 at the
    # first shown frame, at plan.original_gain_db, exactly the video's length), not the video: only
    # the source-music chain is applied (``track`` and ``lead_s`` are unused).
    original_bus: bool = False


def samples(seconds: float, sample_rate: int) -> int:
    """Seconds to a whole number of samples, rounded the way Plan.clip_samples rounds."""
    return round(seconds * sample_rate)


def db(value: float) -> str:
    return f"{value:.4f}dB"


def pad_trim(total: int) -> str:
    """Pad with silence and cut so the stream is exactly ``total`` samples long."""
    return f"apad=whole_len={total},atrim=end_sample={total}"


def stereo_format(sample_rate: int) -> str:
    return f"aformat=sample_fmts=fltp:sample_rates={sample_rate}:channel_layouts=stereo"


def sample_clock() -> str:
    """Renumber timestamps by sample count. afade positions by timestamp, and amix's output timestamps
    depend on when its inputs happen to reach their end (thread timing): measured, the global fade
    moved by a few samples in one run out of five and ``-t`` then cut audio. Counted samples are exact."""
    return "asetpts=N/SR/TB"


def amix(inputs: int, extra: str = "") -> str:
    """A plain sum of ``inputs`` streams (amix's default normalisation divides by their number),
    timestamps renumbered by sample count."""
    return f"amix=inputs={inputs}:normalize=0{extra},{sample_clock()}"


def clip_shape(plan: Plan, index: int, sample_rate: int) -> tuple[int, int, int, float, int]:
    """How segment ``index``'s clip is placed, in samples at ``sample_rate``: (length, fade-in, fade-out,
    gain in dB, first sample in the mix). The one source of these figures for both mixers: the
    filter graph (:func:`clip_chain`) and the block mixer (render.py)."""
    seg = plan.segments[index]
    length = plan.clip_samples(index, sample_rate)
    if plan.music is not None:
        fade_in, fade_out = (samples(DECLICK_S, sample_rate) if index == 0 else 0), 0
    else:
        fade_in = samples(max(plan.fade_in_s if index == 0 else 0.0, DECLICK_S), sample_rate)
        fade_out = samples(max(plan.tail_s(index), DECLICK_S), sample_rate)
    fade_in, fade_out = min(fade_in, length), min(fade_out, length)
    return length, fade_in, fade_out, seg.gain_db + plan.music_gain_db, samples(seg.start, sample_rate)


def clip_chain(plan: Plan, index: int, *, sample_rate: int, input_index: int) -> str:
    """Filter chain for segment ``index``'s clip, from ffmpeg input ``input_index`` to ``[c{index}]``.

    The clip is cut to Plan.clip_samples (a longer file must not spill past its release), faded in
    (plan.fade_in_s on the first clip, DECLICK_S elsewhere), faded out with an equal-power quarter
    sine over its release tail (DECLICK_S when it has none), scaled by the segment's gain plus the
    plan's music gain and delayed to its segment's first sample.

    A real recording's plan (``plan.music``) is one continuous edit sliced into contiguous clips:
    no fade at any join (the sum of the clips is the edit), a DECLICK_S fade-in on the first clip
    only, and none out (the edit's own ending reaches silence on its last sample).
    """
    length, fade_in, fade_out, gain_db, delay = clip_shape(plan, index, sample_rate)
    chain = [
        stereo_format(sample_rate),
        sample_clock(),
        f"atrim=end_sample={length}",
        *([f"afade=t=in:ss=0:ns={fade_in}"] if fade_in else []),
        *([f"afade=t=out:ss={length - fade_out}:ns={fade_out}:curve=qsin"] if fade_out else []),
        f"volume={db(gain_db)}",
    ]
    if delay:
        chain.append(f"adelay=delays={delay}S:all=1")
    return f"[{input_index}:a]" + ",".join(chain) + f"[c{index}]"


def duck_spans(plan: Plan) -> list[tuple[float, float]]:
    """The plan's speech regions (seconds) merged where the gap between two is shorter than
    DUCK_BRIDGE_S or than attack + release: the music stays down across it instead of pumping, and
    the ramps of the spans left never overlap."""
    return _merged(plan, plan.speech)


def source_music_spans(plan: Plan) -> list[tuple[float, float]]:
    """The plan's source-music regions (seconds), merged as :func:`duck_spans` merges speech."""
    return _merged(plan, plan.source_music)


def _merged(plan: Plan, regions) -> list[tuple[float, float]]:
    bridge = max(DUCK_BRIDGE_S, plan.duck_attack_s + plan.duck_release_s)
    spans: list[tuple[float, float]] = []
    for region in sorted(regions, key=lambda r: r.start):
        if spans and region.start - spans[-1][1] < bridge:
            spans[-1] = (spans[-1][0], max(spans[-1][1], region.end))
        else:
            spans.append((region.start, region.end))
    if spans and 0 < spans[0][0] < plan.duck_attack_s:
        # Its attack would have begun before the video does, so the first samples would play part
        # way up: a span starting that early starts with the video, fully down from sample 0.
        spans[0] = (0.0, spans[0][1])
    return spans


def duck_chain(plan: Plan, depth_db: float) -> str | None:
    """A ``volume`` filter lowering the music by ``depth_db`` dB under the plan's speech, or None when
    there is nothing to duck.

    The gain (in dB) is -depth x the sum over the ducked spans of a raised-cosine envelope that rises
    from 0 to 1 over plan.duck_attack_s *before* the span starts (the music is fully down when the
    first word arrives), holds to the span's end and falls back to 0 over plan.duck_release_s. The
    spans are at least attack + release apart, so the envelopes never overlap and the sum is <= 1.
    A deterministic function of the plan: unlike a sidechain compressor keyed by the original, it does
    not react to noise, music or effects in the original sound, and it is unit-testable.
    """
    spans = duck_spans(plan)
    if depth_db <= 0 or not spans:
        return None
    return _gain_chain(f"pow(10,-{depth_db:.4f}*({_envelope(plan, spans)})/20)")


def source_music_chain(plan: Plan, depth_db: float) -> str | None:
    """A ``volume`` filter for the original sound during its own music (plan.source_music): lowered
    by ``depth_db`` dB, or muted when ``depth_db`` is infinite (policy "replace": the gain is then
    1 - E, exactly 0 inside the regions), with the same raised-cosine ramps as :func:`duck_chain`.
    None when there is nothing to do (no regions, depth 0)."""
    spans = source_music_spans(plan)
    if depth_db <= 0 or not spans:
        return None
    envelope = _envelope(plan, spans)
    if depth_db == float("inf"):
        return _gain_chain(f"max(0,1-({envelope}))")
    return _gain_chain(f"pow(10,-{depth_db:.4f}*({envelope})/20)")


def _envelope(plan: Plan, spans: list[tuple[float, float]]) -> str:
    """Sum over ``spans`` of a raised cosine rising over plan.duck_attack_s before each span,
    holding 1 to its end and falling over plan.duck_release_s (spans are merged so they never overlap)."""
    a, r = plan.duck_attack_s, plan.duck_release_s

    def rise(x: str) -> str:
        return f"(0.5-0.5*cos(PI*clip({x},0,1)))"

    terms = [f"min({rise(f'(t-{s - a:.4f})/{a:.4f}')},{rise(f'({e + r:.4f}-t)/{r:.4f}')})" for s, e in spans]
    return "+".join(terms)


def _gain_chain(expression: str) -> str:
    return (f"asetnsamples=n={DUCK_FRAME_SAMPLES}:p=0,"
            f"volume=volume='{expression}':eval=frame,"
            "asetnsamples=n=1024:p=0")


def music_bus(plan: Plan, *, total: int, sample_rate: int, clip_inputs: Sequence[int],
              duck_db: float = 0.0) -> str:
    """All clips summed (no normalisation) into ``[music]``, faded out over plan.fade_out_s before
    the end, made exactly ``total`` samples long and ducked by ``duck_db`` dB under speech."""
    n = len(plan.segments)
    parts = [clip_chain(plan, i, sample_rate=sample_rate, input_index=clip_inputs[i]) for i in range(n)]
    labels = "".join(f"[c{i}]" for i in range(n))
    chain = [amix(n, ":duration=longest")] if n > 1 else []
    fade_out = min(samples(plan.fade_out_s, sample_rate), total)
    if fade_out:
        chain.append(f"afade=t=out:ss={total - fade_out}:ns={fade_out}")
    chain.append(pad_trim(total))
    duck = duck_chain(plan, duck_db)
    if duck:
        chain.append(duck)
    parts.append(labels + ",".join(chain) + "[music]")
    return ";".join(parts)


def original_chain(plan: Plan, *, total: int, sample_rate: int, input_index: int,
                   source_db: float = 0.0, track: int = 0, lead_s: float = 0.0, bus: bool = False) -> str:
    """The video's own sound (its audio track ``track``, the main one) into ``[orig]``: stereo at
    the mix rate, at plan.original_gain_db, exactly ``total`` samples long, sample 0 at the first
    shown frame (``lead_s`` seconds after the container's start, which is the track's sample 0).

    Surround is folded down with the ITU-R BS.775 coefficients (centre and surrounds at -3 dB, LFE
    dropped); mono goes to both sides at -3 dB. ``async=1:first_pts=0`` pads a late-starting or
    gappy track with silence so it stays in sync with the video instead of sliding earlier.
    During the original's own music (plan.source_music) it is lowered by ``source_db`` dB (infinite:
    muted), see :func:`source_music_chain`. ``bus``: the input is that chain's output already (a
    measuring pass's original bus, GraphInputs.original_bus): only the source-music chain is applied.
    """
    source = source_music_chain(plan, source_db)
    if bus:
        chain = [stereo_format(sample_rate), sample_clock(), pad_trim(total), *([source] if source else [])]
        return f"[{input_index}:a]" + ",".join(chain) + "[orig]"
    resample = (f"aresample=osr={sample_rate}:ochl=stereo:clev=0.7071:slev=0.7071:lfe_mix_level=0"
                f":async=1:first_pts=0")
    lead = samples(lead_s, sample_rate)
    skip = [f"atrim=start_sample={lead}", sample_clock()] if lead > 0 else []
    chain = [resample, stereo_format(sample_rate), *skip, f"volume={db(plan.original_gain_db)}", pad_trim(total)]
    if source:
        chain.append(source)
    return f"[{input_index}:a:{track}]" + ",".join(chain) + "[orig]"


def build_graph(plan: Plan, *, duration: float, sample_rate: int, inputs: GraphInputs, meter: bool = False,
                stems: Collection[str] = (), duck_db: float = 0.0, source_db: float = 0.0,
                sample_peak: bool = False) -> str:
    """The whole ``-filter_complex`` graph of the premaster mix, ending in ``[out]``.

    ``duration`` is the video stream's duration in seconds: every bus is exactly that long, rounded to
    whole samples. ``meter`` appends ffmpeg's ebur128 meter (its summary goes to stderr; the audio
    passes through unchanged), with the true peak, or with ``sample_peak`` the sample peak.
    ``stems`` names the buses tapped to ``[stem_*]`` (module docstring).
    ``duck_db`` is the depth (dB) of the music's ducking under the plan's speech regions (0: none);
    ``source_db`` the original's, during its own music (0: none, infinite: muted).
    """
    total = samples(duration, sample_rate)
    if inputs.music is not None:
        duck = duck_chain(plan, duck_db)
        parts = [f"[{inputs.music}:a]" + ",".join([stereo_format(sample_rate), sample_clock(), pad_trim(total),
                                                   *([duck] if duck else [])]) + "[music]"]
    else:
        parts = [music_bus(plan, total=total, sample_rate=sample_rate, clip_inputs=inputs.clips, duck_db=duck_db)]
    music, orig = "[music]", "[orig]"
    if "music" in stems:
        parts.append("[music]asplit=2[music_mix][stem_music]")
        music = "[music_mix]"
    if inputs.original is None:
        mix = music
    else:
        parts.append(original_chain(plan, total=total, sample_rate=sample_rate, input_index=inputs.original,
                                    source_db=source_db, track=inputs.track, lead_s=inputs.lead_s,
                                    bus=inputs.original_bus))
        if "original" in stems:
            parts.append("[orig]asplit=2[orig_mix][stem_original]")
            orig = "[orig_mix]"
        # Gains are applied on each bus (in dB, readable); the weights stay explicit at unity.
        parts.append(f"{music}{orig}" + amix(2, ":weights='1 1':duration=first") + "[mix]")
        mix = "[mix]"
    parts.append(mix + ((SAMPLE_PEAK_FILTER if sample_peak else EBUR128_FILTER) if meter else "anull") + "[out]")
    return ";".join(parts)
