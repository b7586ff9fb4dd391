"""Compose: put the rendered clips under the video, mastered to a loudness target, in one remux.

Flow (see docs/mixing.md). The video's sound is decoded once, the output is read once, and the
mix itself is numpy, block by block (memory flat at any length):

0. The music bus and the original bus, at once: the clips summed into one music-bus WAV (render.py,
   numpy) while ffmpeg decodes the video's main audio track into the original bus (stereo at the
   mix rate, sample 0 at the first shown frame, exactly the video's length). With speech, both
   are metered during it; the ducking depth is the plan's ``duck_db``, deepened so the music ends
   at least SPEECH_CLEARANCE_LU under the speech (likewise the source's own music, its policy).
1. Premaster (premaster.py, one numpy pass): the music ducked, the original lowered during its
   own music, the bus stems tapped, the sum written to a float WAV in a temporary folder next to
   ``out`` and metered in the same pass: integrated loudness, sample peak, and the K-weighted
   energies the limiter needs. Make-up gain = target - measured; silence (below -60 LUFS) gets
   no gain at all. The speech report (metrics.speech, on the bus stems) runs beside the final run.
2. Only when the limiter will act (the premaster's true peak plus the gain reaches its ceiling):
   the premaster is read once more in numpy (limiter.py: per 0.67 ms chunk its true peak, 4x
   oversampled; its K-weighted energies came with it), and the gain is fitted on those arrays: the limiter's
   gain curve and the loudness it leaves are computed for each gain tried, no pass over the audio.
   The master (premaster x gain x the limiter's curve) streams into the final run's encoder; when
   the output is not within 0.2 LU of the target the gain is corrected and the final run repeated
   (the secant, from the slope measured between runs). Otherwise the chain is linear: the gain
   alone, in the final run. No master WAV is written (issue 18), and no ffmpeg pass fits the gain.
3. Final run: video packets copied, the premaster through its gain (and limiter) encoded to AAC
   (Opus in WebM) in place of the main audio track, every other stream kept (container.py), cut to
   the video's end, written to a temporary file. A long MP4/MOV mix is encoded beforehand in two
   halves at once and copied here (split.py). The same run decodes the encoded packets it muxes
   (a loopback decoder) through the ebur128 meter: the loudness and true peak of the output's
   audio, not of the signal before the encoder, so the inter-sample peaks AAC adds are seen. A
   copied track is metered on the written file instead, in the run that measures its durations.
4. The temporary file's durations are measured (a packet scan, the audio decoded). If AAC encoding
   pushed the true peak over the target anyway, the final run is repeated with the limiter's
   ceiling lowered by the overshoot. Then it is renamed over ``out`` and the measured figures are
   returned.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from musicvid_core import heap
from musicvid_core.domain.errors import BadInput, MediaToolError, MixError
from musicvid_core.domain.features import MediaInfo
from musicvid_core.domain.plan import SPEECH_CLEARANCE_LU, Plan
from musicvid_core.media import PROXY_DECODE_ARGS, run_ffmpeg
from musicvid_core.metrics.loudness import EBUR128_FILTER, LoudnessReport, parse_ebur128_summary
from musicvid_core.metrics.speech import loudness_over, speech_music_difference
from musicvid_core.metrics.streams import framehash, measure_output, stream_durations
from musicvid_core.stages.mix import container as containers
from musicvid_core.stages.mix import limiter, split
from musicvid_core.stages.mix.filtergraph import db, duck_spans, original_chain, samples, source_music_spans
from musicvid_core.stages.mix.premaster import Premaster, mix_premaster
from musicvid_core.stages.mix.render import render_music
from musicvid_core.stages.mix.sizes import work_bytes  # noqa: F401  (re-exported: the disk this stage needs)

# Output container per extension (container.FORMATS: .mp4 .m4v .mov .mkv .webm).
MUXERS = {ext: fmt.muxer for ext, fmt in containers.FORMATS.items()}
SILENCE_GATE_LUFS = -60.0  # below this the mix is (near) silence: raising it would only raise noise
LOUDNESS_TOLERANCE_LU = 0.2
MAX_CORRECTIONS = 4  # gain corrections after the first mastered final run (each an AAC encode)
MAX_STEP_DB = 12.0  # a single gain correction never moves further than this
# The limiter's ceiling starts this far under the true-peak target: AAC encoding adds inter-sample
# peaks the limiter cannot see.
LIMITER_MARGIN_DB = 1.0
# The limiter is left out when the peak after gain stays this far under the limiter's ceiling:
# the limiter then never acts, the chain is linear and the premaster pass plus the gain is exact.
LIMITER_HEADROOM_DB = 0.1
# The premaster pass meters the sample peak (the true peak's 4x oversampling was 1.5 of its ~3.8 s
# on 15 minutes, issue 18). A true peak lies over the sample peak by the inter-sample overshoot:
# this far under the ceiling, the limiter cannot act; otherwise the premaster's true peaks are read
# (limiter.analyse, which the gain's fit needs anyway) and decide.
INTERSAMPLE_MARGIN_DB = 3.0
# How far above the linear gain the limiter's fit is expected to go (limiting takes loudness away,
# so the gain rises by about what it takes): the analysis computes exact true peaks down to the
# ceiling less that gain; under it a bound stands in (safe, a little more cautious; limiter.analyse).
FIT_RANGE_DB = 3.0
MAX_PEAK_RETRIES = 2  # final runs repeated with a lower ceiling when the encoded peak overshoots
PEAK_RETRY_EXTRA_DB = 0.2  # lower the ceiling by the overshoot plus this
# A margin over SPEECH_CLEARANCE_LU (domain/plan.py) for what the measurement cannot see: the
# limiter and AAC act on the sum, not on each bus.
DUCK_MARGIN_LU = 1.0
MAX_DUCK_DB = 40.0  # Plan.duck_db's upper bound: deeper than this the music is simply gone
# Music already in the original sound (policy "duck"): at least this far down, and deeper when
# measurement shows it would sit less than SOURCE_MUSIC_CLEARANCE_LU under ours there.
SOURCE_MUSIC_MIN_DB = 12.0
SOURCE_MUSIC_CLEARANCE_LU = 10.0
# Preview (compose(preview=True)): a small proxy for iteration. With ``picture`` (the job's proxy,
# media.make_proxy) its packets are copied; without, the video is re-encoded the same way here
# (container.PREVIEW_ENCODE).
PREVIEW_DECODE_ARGS = PROXY_DECODE_ARGS
# Previews mix at half the rate: every audio pass costs about half, and 24 kHz keeps what a
# preview is for (balance, timing, ducking) up to 12 kHz.
PREVIEW_SAMPLE_RATE = 24000
# Where the first shown frame lands in the output is read from this much of a packet copy (s).
LANDING_SCAN_S = 2.0
PREVIEW_AUDIO_BITRATE = "128k"


def output_suffix(video: str | Path, media: MediaInfo | None = None, *, preview: bool = False) -> str:
    """The extension an output for ``video`` gets. With its ``media``: the input's own format where
    it can carry the result, else ``.mkv`` (container.choose). By name alone: the input's for
    mp4/m4v/mov/mkv, else ``.mkv`` (a .webm named file may hold codecs WebM does not allow)."""
    if media is not None:
        return containers.choose(media, input_name=str(video), preview=preview).format.ext
    suffix = Path(video).suffix.lower()
    return suffix if suffix in MUXERS and suffix != ".webm" else ".mkv"


def compose(video: Path, media: MediaInfo, plan: Plan, clips: list[Path], out: Path, *,
            target_lufs: float = -14.0, true_peak_dbtp: float = -1.0, sample_rate: int = 48000,
            audio_bitrate: str = "256k", timeout: float = 1800.0, stems_dir: Path | None = None,
            preview: bool = False, picture: Path | None = None,
            streams: containers.StreamPlan | None = None) -> dict:
    """Mix ``clips`` (one WAV per plan segment, clip i starting at segment i's start) under ``video``
    and write ``out``: the video stream copied packet for packet, the main audio track replaced by
    the music plus that track's sound, mastered to ``target_lufs`` (LUFS) under ``true_peak_dbtp``
    (dBTP), starting on the first shown frame and exactly as long as the video stream
    (``media.duration`` seconds); every other stream, the chapters and the metadata kept.

    The container follows ``out``'s extension (.mp4 .m4v .mov .mkv .webm, see container.py; BadInput
    for another, or for a stream the format cannot carry), unless ``streams`` (container.choose's
    plan) says what to write. ``timeout``
    bounds the whole call in seconds. With ``stems_dir``, float WAVs of the music bus, the original
    bus (both before mastering) and the master (as fed to the AAC encoder) are written there too.
    Under ``plan.speech`` the music is ducked (see filtergraph.duck_chain) by at least plan.duck_db,
    deeper when needed to keep it SPEECH_CLEARANCE_LU under the speech. During plan.source_music
    the original is ducked ("duck", by :func:`source_depth`), muted ("replace") or kept.

    ``preview``: a fast proxy with the same mix: AAC at PREVIEW_AUDIO_BITRATE with the fast coder,
    and the picture either copied from ``picture`` (the job's proxy, see media.make_proxy: the
    iteration case, no video encode at all) or, without one, re-encoded small here
    (container.PREVIEW_ENCODE). Either way its packets are NOT the input's. ``picture`` must come from
    ``video`` (same frames and timestamps); the sound is always mixed from ``video``.

    Returns the output's measured metrics: container (container.StreamPlan.summary: format and each
    stream's fate), duration_s (video stream), audio_duration_s (decoded samples), integrated_lufs,
    true_peak_dbtp, lra_lu (the encoded audio decoded, ebur128), gain_db (make-up gain applied),
    premaster_lufs, target_lufs, passes (the premaster pass plus the final runs mastered through the
    limiter), final_runs (1, more when the limited output missed the loudness target or AAC pushed
    the true peak over its target and the limiter was lowered), limit_dbfs (the limiter's final
    ceiling), compose_s (wall seconds), stems (name ->
    path) when asked, and with speech under sound: duck_db (the depth used) and speech_music
    (metrics.speech.speech_music_difference on the bus stems). Raises MixError when an input is
    missing or ffmpeg fails, BadInput when the format cannot carry the video's streams; no partial
    output or temporary file is left behind.
    """
    started = time.monotonic()
    video, out = Path(video), Path(out)
    clips = [Path(c) for c in clips]
    _check_inputs(video, plan, clips)
    if streams is None:
        streams = containers.choose(media, requested=out.suffix, preview=preview)

    def remaining() -> float:
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            raise MediaToolError(f"compose ran past its {timeout:.0f} s budget")
        return left

    out.parent.mkdir(parents=True, exist_ok=True)
    limit_db = true_peak_dbtp - LIMITER_MARGIN_DB
    stems = _stem_paths(stems_dir, media) if stems_dir is not None else {}
    try:
        # Everything temporary lives in one hidden folder next to ``out`` (same file system, so the
        # final rename is atomic) and goes with it whatever happens. ``side`` runs the speech report
        # beside the final run (it reads the bus stems only); it is done before the folder goes.
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as work, \
                ThreadPoolExecutor(1) as side:
            premaster_wav = Path(work, "premaster.wav")
            tmp = Path(work, "out" + out.suffix)
            total = samples(media.duration, sample_rate)
            # The original bus (the video's sound as mixed: ffmpeg decodes and resamples it) is
            # written beside the clips being summed into the music bus (numpy, render.py); every
            # pass after them reads these two files.
            spans = duck_spans(plan) if media.has_audio else []  # no sound, no speech to protect
            policy = plan.source_music_policy
            music_spans = source_music_spans(plan) if media.has_audio and policy != "keep" else []
            original = Path(work, "original.wav") if media.has_audio else None

            def original_bus() -> dict[str, float]:
                """Write the original bus; its loudness during speech and during its own music."""
                _bus_pass(video, media, plan, original, sample_rate=sample_rate, timeout=remaining())
                return {"speech": loudness_over(original, spans) if spans else None,
                        "source": loudness_over(original, music_spans) if music_spans else None}

            levels = side.submit(original_bus) if original is not None else None
            music = render_music(plan, clips, Path(work, "music_bus.wav"), sample_rate=sample_rate, total=total,
                                 work=Path(work), timeout=remaining())
            # The music metered unducked (to set the depths) while the original bus is still being written.
            music_speech = loudness_over(music, spans) if spans else None
            music_source = loudness_over(music, music_spans) if music_spans else None
            heard = levels.result() if levels is not None else {}
            duck_db, bus_stems, source_db, source = 0.0, stems, 0.0, {}
            if spans:
                duck_db = duck_depth(plan, speech_lufs=heard["speech"], music_lufs=music_speech)
                bus_stems = {"music": Path(work, "music.wav"), **stems}  # the ducked music, tapped for the report
            if music_spans:
                source = {"original_lufs": heard["source"], "music_lufs": music_source}
                source_db = source_depth(**source) if policy == "duck" else float("inf")  # "replace": muted
            # Ducked, summed and metered in numpy in one pass (premaster.py).
            premaster = mix_premaster(plan, music, original, premaster_wav, sample_rate=sample_rate,
                                      duck_db=duck_db, source_db=source_db, stems=bus_stems)

            offset, runs, analysed = _landing(video, media, streams, timeout=remaining()), [], []
            report = None  # the speech report's future, started with the first final run
            # The gain a linear chain needs; the limiter's analysis reads exact true peaks down to the
            # ceiling less this gain and FIT_RANGE_DB more (limiter.analyse).
            start_gain = 0.0 if premaster.integrated_lufs <= SILENCE_GATE_LUFS else target_lufs - premaster.integrated_lufs

            def peaks() -> limiter.Peaks:
                """The premaster's true peaks and K-weighted energies, read once (limiter.analyse)."""
                if not analysed:
                    analysed.append(limiter.analyse(premaster_wav, floor_db=limit_db - start_gain - FIT_RANGE_DB,
                                                    energy=premaster.energy))
                    heap.trim()  # the analysis threads' blocks leave the process, not only their arenas
                return analysed[0]

            # Long MP4/MOV mixes: the AAC encode in two halves on the two cores (split.py).
            halves = split.worth_splitting(muxer=streams.format.muxer, codec=streams.format.mix_codec,
                                           seconds=media.duration, preview=preview) and "master" not in stems

            def final(gain_db: float, limiter_on: bool = True) -> LoudnessReport:
                """One final run, the premaster through ``gain_db`` (and the limiter at the ceiling
                of the moment, ``limit_db``: the master streamed in, limiter.master_blocks); the
                output's audio as metered in that run."""
                nonlocal report
                audio: Path | Iterator[bytes] = premaster_wav
                reduction, chunk, encoded = None, limiter.CHUNK_MAX, None
                if limiter_on:
                    found = peaks()
                    reduction, chunk = limiter.curve(found, gain_db, limit_db), found.chunk

                def master(start: int = 0, stop: int | None = None) -> Iterator[bytes]:
                    return limiter.master_blocks(premaster_wav, gain_db, reduction, chunk=chunk, start=start,
                                                 stop=stop)

                bitrate = PREVIEW_AUDIO_BITRATE if preview else audio_bitrate
                if halves:
                    encoded = split.encode(master, total, Path(work, "scored.aac"), bitrate=bitrate,
                                           sample_rate=sample_rate, timeout=remaining())
                    audio = encoded.path
                    heap.trim()  # the feeding threads' blocks, likewise
                elif limiter_on:
                    audio = master()
                if spans and report is None:
                    # The speech report (it reads the bus stems only) beside the final run: a single
                    # encode, or the mux and the meter of a split one, leaves a core idle there.
                    report = side.submit(speech_music_difference, original, bus_stems["music"], plan.speech,
                                         unducked_music=music)
                metered = _final_run(video, audio, tmp, gain_db=None if limiter_on or halves else gain_db,
                                     master_stem=stems.get("master"), media=media, streams=streams,
                                     timeout=remaining(), offset=offset, audio_bitrate=bitrate,
                                     preview=preview, picture=picture, encoded=encoded)
                lengths = None
                if metered is None:  # a copied track: metered on the written file, durations with it
                    metered, lengths = measure_output(tmp, timeout=remaining(), audio=streams.mix_audio_ordinal)
                runs.append((metered, lengths))
                return metered

            # ``final`` is the metered master: each of _fit_gain's calls is a final run, the last one
            # with the gain returned. A linear chain needs none of them: one run, gain only. A
            # preview takes the gain its estimate gives and is not corrected by measurement.
            gain, passes = _fit_gain(final, premaster, target_lufs=target_lufs, limit_db=limit_db, peaks=peaks,
                                     corrections=0 if preview else MAX_CORRECTIONS)
            if passes == 1:
                final(gain, limiter_on=False)
            elif preview:
                passes = 1
            for _ in range(MAX_PEAK_RETRIES):
                overshoot = runs[-1][0].true_peak_dbtp - true_peak_dbtp
                if overshoot <= 0:
                    break
                limit_db -= overshoot + PEAK_RETRY_EXTRA_DB
                if premaster.integrated_lufs > SILENCE_GATE_LUFS:
                    # The lower ceiling takes loudness: the gain is fitted again on the limiter's
                    # estimate (no pass over the audio), so the retry stays on the target.
                    gain, _ = limiter.fit(peaks(), target_lufs=target_lufs, ceiling_db=limit_db, gain_db=gain)
                final(gain)
                passes += 0 if preview else 1
            loudness, lengths = runs[-1]  # the last final run's figures: durations where it measured them
            if lengths is None:
                lengths = stream_durations(tmp, timeout=remaining(), audio=streams.mix_audio_ordinal)
            final_runs = len(runs)
            if spans:
                speech_music = report.result()
            os.replace(tmp, out)
    except MediaToolError as exc:
        raise MixError(f"mixing failed: {exc.message}", **{"video": str(video), **exc.context}) from exc
    return {
        "container": streams.summary(),
        "duration_s": lengths["video"],
        "audio_duration_s": lengths["audio"],
        **loudness.as_dict(),
        "gain_db": round(gain, 2),
        "premaster_lufs": premaster.integrated_lufs,
        "target_lufs": target_lufs,
        "passes": passes,
        "final_runs": final_runs,
        "limit_dbfs": round(limit_db, 2),
        "compose_s": round(time.monotonic() - started, 2),
        **({"preview": True} if preview else {}),
        **({"stems": {name: str(path) for name, path in stems.items()}} if stems else {}),
        **({"duck_db": round(duck_db, 2), "speech_music": speech_music} if spans else {}),
        **({"source_music": {"policy": policy, "regions_s": round(sum(e - s for s, e in music_spans), 2),
                             "duck_db": None if source_db == float("inf") else round(source_db, 2),
                             **source}} if music_spans else {}),
    }


def source_depth(*, original_lufs: float, music_lufs: float) -> float:
    """How far (dB) the original is lowered during its own music (policy "duck"): at least
    SOURCE_MUSIC_MIN_DB, deeper so that it ends SOURCE_MUSIC_CLEARANCE_LU + DUCK_MARGIN_LU under our
    music there (both unducked, measured over the source-music spans), at most MAX_DUCK_DB. Our
    music silent there (below the gate): nothing to lead, the minimum depth."""
    if original_lufs <= SILENCE_GATE_LUFS or music_lufs <= SILENCE_GATE_LUFS:
        return SOURCE_MUSIC_MIN_DB
    needed = original_lufs - music_lufs + SOURCE_MUSIC_CLEARANCE_LU + DUCK_MARGIN_LU
    return min(MAX_DUCK_DB, max(SOURCE_MUSIC_MIN_DB, needed))


def duck_depth(plan: Plan, *, speech_lufs: float, music_lufs: float) -> float:
    """The ducking depth (dB): plan.duck_db, deepened so that the music (``music_lufs``, unducked,
    during speech) ends SPEECH_CLEARANCE_LU + DUCK_MARGIN_LU under the speech (``speech_lufs``),
    at most MAX_DUCK_DB. Speech below the silence gate has nothing to protect: plan.duck_db."""
    if speech_lufs <= SILENCE_GATE_LUFS:
        return plan.duck_db
    needed = music_lufs - speech_lufs + SPEECH_CLEARANCE_LU + DUCK_MARGIN_LU
    return min(MAX_DUCK_DB, max(plan.duck_db, needed))


def _check_inputs(video: Path, plan: Plan, clips: list[Path]) -> None:
    if not video.is_file():
        raise MixError(f"video not found: {video.name}", video=str(video))
    if len(clips) != len(plan.segments):
        raise MixError(f"{len(clips)} clips for {len(plan.segments)} segments",
                       clips=len(clips), segments=len(plan.segments))
    for i, clip in enumerate(clips):
        if not clip.is_file():
            raise MixError(f"clip for segment {i} not found: {clip.name}", clip=str(clip), segment=i)


def _fit_gain(meter: Callable[[float], LoudnessReport], premaster: Premaster, *, target_lufs: float,
              limit_db: float, peaks: Callable[[], limiter.Peaks],
              corrections: int = MAX_CORRECTIONS) -> tuple[float, int]:
    """The make-up gain in dB that brings the mastered mix to ``target_lufs``, and the number of
    passes run (premaster pass included). ``meter(gain)`` masters the mix with ``gain`` through the
    limiter and meters it (compose: a final run, metered on its encoded output); when it ran, its
    last call was with the gain returned.

    ``premaster`` (premaster.mix_premaster) gives the loudness and the sample peak (dBFS).
    INTERSAMPLE_MARGIN_DB or more under the limiter's ceiling after the gain, no true peak can
    reach it: the chain is linear, nothing is metered (1 pass). Otherwise ``peaks()``
    (limiter.analyse) gives the true peaks: still under, linear; over, the gain is fitted on the
    limiter's own estimate (limiter.fit: no pass over the audio) and ``meter`` runs once to write
    and check it, again (at most ``corrections`` more times) while the output misses the target by
    more than LOUDNESS_TOLERANCE_LU."""
    if premaster.integrated_lufs <= SILENCE_GATE_LUFS:
        return 0.0, 1
    gain = target_lufs - premaster.integrated_lufs
    ceiling = limit_db - LIMITER_HEADROOM_DB
    if premaster.sample_peak_db + gain <= ceiling - INTERSAMPLE_MARGIN_DB:
        return gain, 1
    found = peaks()
    if found.true_peak_db + gain <= ceiling:
        return gain, 1
    gain, _ = limiter.fit(found, target_lufs=target_lufs, ceiling_db=limit_db, gain_db=gain)
    gain, passes = _secant(meter, gain, target_lufs=target_lufs, corrections=corrections)
    return gain, 1 + passes


def _secant(meter: Callable[[float], LoudnessReport], gain: float, *, target_lufs: float,
            corrections: int = MAX_CORRECTIONS) -> tuple[float, int]:
    """Correct ``gain`` (dB) until ``meter(gain)`` reads within LOUDNESS_TOLERANCE_LU of the target
    (at most ``corrections`` corrections); the gain of the last call, and the number of calls."""
    passes, previous = 0, None
    for correction in range(corrections + 1):
        level = meter(gain).integrated_lufs
        passes += 1
        residual = target_lufs - level
        if abs(residual) <= LOUDNESS_TOLERANCE_LU or correction == corrections:
            break
        # Secant step: loudness grows with gain at 1 LU/dB until the limiter acts, then slower.
        slope = 1.0
        if previous is not None and gain != previous[0]:
            slope = min(1.0, max(0.1, (level - previous[1]) / (gain - previous[0])))
        previous = (gain, level)
        gain += max(-MAX_STEP_DB, min(MAX_STEP_DB, residual / slope))
    return gain, passes


def _wav_args(dest: Path) -> list[str]:
    """Write float WAV (exact for the fltp the filters produce); RF64 past 4 GB (~3 h of stereo)."""
    return ["-c:a", "pcm_f32le", "-rf64", "auto", str(dest)]


def _bus_pass(video: Path, media: MediaInfo, plan: Plan, dest: Path, *, sample_rate: int, timeout: float) -> None:
    """Write the original bus (filtergraph.original_chain: the video's main audio track as mixed,
    stereo at ``sample_rate``, sample 0 at the first shown frame, at plan.original_gain_db, exactly the
    video's length) to ``dest``, a float WAV. The video's sound is decoded here only: no video."""
    graph = original_chain(plan, total=samples(media.duration, sample_rate), sample_rate=sample_rate,
                           input_index=0, track=media.main_track, lead_s=media.start)
    run_ffmpeg(["-y", "-vn", "-sn", "-dn", "-i", str(video), "-filter_complex", graph, "-map", "[orig]",
                *_wav_args(dest)], timeout=timeout, what="original bus")


def _stem_paths(stems_dir: Path, media: MediaInfo) -> dict[str, Path]:
    stems_dir = Path(stems_dir)
    stems_dir.mkdir(parents=True, exist_ok=True)
    names = ["music", "original", "master"] if media.has_audio else ["music", "master"]
    return {name: stems_dir / f"{name}.wav" for name in names}


def _landing(video: Path, media: MediaInfo, streams: containers.StreamPlan, *, timeout: float) -> float:
    """Seconds into the output where the first shown frame lands: where the scored track's sample
    0 goes. Usually ``media.start``, but ffmpeg re-bases an MPEG-TS input's clock on the streams it
    maps, and the final run does not map the main audio track: so the input's streams are copied
    as the final run maps them, for LANDING_SCAN_S, and the picture's first shown pts is read."""
    maps = [arg for s in streams.streams if s.source is not None and s.action in ("copy", "convert", "encode")
            for arg in ("-map", f"0:{s.source}")]
    if not maps or media.start == 0 and not media.container.startswith(("mpegts", "mpeg")):
        return media.start  # nothing re-based: the container's own start is the output's
    picture = next((i for i, s in enumerate(streams.streams) if s.kind == "video" and s.action == "copy"), None)
    if picture is None:  # a preview's picture comes from elsewhere
        return media.start
    scans, _ = framehash(video, [*maps, "-c", "copy", "-t", f"{LANDING_SCAN_S}"], timeout, "landing scan",
                         muxer="framecrc")
    scan = scans.get(sum(1 for s in streams.streams[:picture] if s.source is not None
                         and s.action in ("copy", "convert", "encode")))
    shown = scan.shown if scan is not None else []
    return max(0.0, float(min(p.pts for p in shown) * scan.time_base)) if shown else media.start


def _final_run(video: Path, audio: Path | Iterator[bytes], dest: Path, *, gain_db: float | None,
               master_stem: Path | None, media: MediaInfo, streams: containers.StreamPlan, audio_bitrate: str,
               timeout: float, offset: float = 0.0, preview: bool = False,
               picture: Path | None = None, encoded: split.Encoded | None = None) -> LoudnessReport | None:
    """Mux: every stream of ``video`` as ``streams`` plans it (the picture's packets copied), the WAV
    ``audio`` encoded in place of the main audio track (with ``gain_db`` applied first when given:
    the linear case). ``audio`` is a file, or the master as a WAV byte stream
    (limiter.master_blocks), fed to ffmpeg's stdin as it is computed; or, with ``encoded``, the
    scored track already encoded (split.encode: ADTS at ``audio``), copied: shifted back by its
    priming, its last frame given its real duration. The audio's sample 0 is
    placed ``offset`` seconds into the output (where the first shown frame lands: ``media.start``)
    and everything ends with the last frame. No mixing happens here.

    Returns the loudness (LUFS, LU) and true peak (dBTP) of the encoded track: a loopback decoder
    (``-dec``) decodes the very packets the muxer writes and feeds them to ebur128 in the same run,
    so the check sees what AAC did to the peaks (the decoder drops the encoder's priming; it keeps
    the last frame's padding, a few ms past the end: a peak there counts too). A copied track is
    not metered here (None): compose meters the written file (metrics.streams.measure_output),
    whose decode counts the durations too, so the track is decoded once, not twice. Raises
    MediaToolError when ffmpeg fails; a stream the muxer still refuses is BadInput (one line), like
    the formats container.choose refuses."""
    chain = [f"volume={db(gain_db)}"] if gain_db is not None else []
    filters: list[str] = []
    mix = "1:a:0"
    if master_stem is not None:
        filters = ["-filter_complex", "[1:a]" + ",".join([*chain, "asplit=2[out][stem_master]"])]
        mix = "[out]"
    elif chain:
        filters = ["-filter_complex", "[1:a]" + ",".join(chain) + "[out]"]
        mix = "[out]"
    reencode = preview and picture is None
    shift = ["-itsoffset", f"{offset:.6f}"] if offset else []
    fed = not isinstance(audio, (str, Path))
    # A streamed WAV cannot say its size past 4 GB (limiter.wav_header): read to the end instead.
    source = ["-f", "wav", "-ignore_length", "1", "-i", "pipe:0"] if fed else ["-i", str(audio)]
    if encoded is not None:
        # The packets shifted back by the priming: MP4/MOV write the edit list a single encode has.
        # (Never a preview: no picture input to shift.)
        source = ["-itsoffset", f"{offset - encoded.priming_s:.9f}", "-f", "aac", "-i", str(audio)]
    inputs = [*(PREVIEW_DECODE_ARGS if reencode else []), "-i", str(video),
              *(shift if encoded is None else []), *source]
    if picture is not None:  # the job's proxy: normalised to start at 0 like any input, so offset too
        inputs += [*shift, "-i", str(picture)]
    out_args = containers.output_args(streams, mix=mix, picture="2:v:0" if picture is not None else None,
                                      bitrate=audio_bitrate, fast=preview, reencode=reencode,
                                      end_s=offset + media.duration,
                                      copy_mix=None if encoded is None else encoded.last_frame_bsf() or "")
    stem_args = ["-map", "[stem_master]", *_wav_args(master_stem)] if master_stem is not None else []
    # Output 0's scored track, decoded again as it was encoded, metered into a null output.
    meter = ["-dec", f"0:{streams.mix_position}", "-filter_complex", f"[dec:0]{EBUR128_FILTER}[meter]",
             "-map", "[meter]", "-f", "null", "-"]
    if encoded is not None:  # nothing is encoded here: the written file is metered afterwards
        meter = []
    try:
        proc = run_ffmpeg(["-y", *inputs, *filters, *out_args, str(dest), *stem_args, *meter], timeout=timeout,
                          what="compose", feed=audio if fed else None)
    except MediaToolError as exc:
        tail = str(exc.context.get("stderr_tail", ""))
        if any(marker in tail for marker in _REFUSED_BY_MUXER):
            raise BadInput(f"{streams.format.label} ({streams.format.ext}) cannot carry one of the video's streams "
                           f"({exc.message.split(': ', 1)[-1]}): write .mkv or .mov instead") from None
        raise
    return parse_ebur128_summary(proc.stderr) if meter else None


# What a muxer says of a stream it cannot hold (container.py's tables missed it).
_REFUSED_BY_MUXER = ("not currently supported in container", "Could not find tag for codec",
                     "Only audio, video, and subtitles are supported")
