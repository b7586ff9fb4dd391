"""Compose: put the rendered clips under the video, mastered to a loudness target, in one remux.

Flow (see docs/mixing.md); the mix graph runs once (twice with speech), the video is read once, the
output is read once:

0. Only when the plan has speech and the video has sound: a measuring pass writes the unducked music
   and original buses to float WAVs and meters both during speech; the ducking depth is the plan's
   ``duck_db``, deepened so the music ends at least SPEECH_CLEARANCE_LU under the speech.
1. Premaster pass, audio only: the mix (music + original sound) through ffmpeg's ebur128 meter into a
   float WAV in a temporary folder next to ``out``. Make-up gain = target - measured; silence (below
   -60 LUFS) gets no gain at all.
2. Only when the limiter will act (the measured true peak plus the gain reaches its ceiling): master
   passes read the premaster WAV, apply gain + limiter, meter the result and write it as the master
   WAV, correcting the gain until it is within 0.2 LU of the target (limiting lowers loudness, so
   the first correction assumes 1 LU per dB and later ones use the slope measured between passes).
   Otherwise the chain is linear and the gain is applied in the final run.
3. Final run: video packets copied, the master (or the premaster with its gain) encoded to AAC, cut
   to the video's duration, written to a temporary file.
4. The temporary file is measured (loudness, durations) in one run by the independent meters of
   :mod:`musicvid_core.metrics`. If AAC encoding pushed the true peak over the target anyway, a
   master pass with the limiter's ceiling lowered by the overshoot and the final run are repeated.
   Then it is renamed over ``out`` and the measured figures are returned.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from musicvid_core.domain.errors import MediaToolError, MixError
from musicvid_core.domain.features import MediaInfo
from musicvid_core.domain.plan import SPEECH_CLEARANCE_LU, Plan
from musicvid_core.media import PROXY_DECODE_ARGS, PROXY_FILTER, run_ffmpeg
from musicvid_core.metrics.loudness import EBUR128_FILTER, LoudnessReport, parse_ebur128_summary
from musicvid_core.metrics.speech import loudness_over, speech_music_difference
from musicvid_core.metrics.streams import measure_output
from musicvid_core.stages.mix.filtergraph import (
    GraphInputs,
    build_graph,
    db,
    duck_spans,
    master_chain,
    samples,
    source_music_spans,
)

# Output container per extension; anything else is written as Matroska, which takes any codec.
MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
SILENCE_GATE_LUFS = -60.0  # below this the mix is (near) silence: raising it would only raise noise
LOUDNESS_TOLERANCE_LU = 0.2
MAX_CORRECTIONS = 4  # gain corrections after the first master pass; a pass costs ~1% of the duration
MAX_STEP_DB = 12.0  # a single gain correction never moves further than this
# The limiter's ceiling starts this far under the true-peak target: AAC encoding adds inter-sample
# peaks the limiter cannot see, and going back from 4x to 1x the rate adds a little more.
LIMITER_MARGIN_DB = 1.0
# Master passes are skipped when the peak after gain stays this far under the limiter's ceiling:
# the limiter then never acts, the chain is linear and the premaster pass plus the gain is exact.
LIMITER_HEADROOM_DB = 0.1
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
# media.make_proxy) its packets are copied; without, the video is re-encoded the same way here.
PREVIEW_VIDEO_ARGS = ["-vf", PROXY_FILTER, "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30",
                      "-pix_fmt", "yuv420p"]
PREVIEW_DECODE_ARGS = PROXY_DECODE_ARGS
# Previews mix at half the rate: every audio pass costs about half, and 24 kHz keeps what a
# preview is for (balance, timing, ducking) up to 12 kHz.
PREVIEW_SAMPLE_RATE = 24000
PREVIEW_AUDIO_BITRATE = "128k"


def output_suffix(video: str | Path) -> str:
    """The extension an output for ``video`` gets: the input's for mp4/m4v/mov/mkv, else ``.mkv``."""
    suffix = Path(video).suffix.lower()
    return suffix if suffix in MUXERS else ".mkv"


def compose(video: Path, media: MediaInfo, plan: Plan, clips: list[Path], out: Path, *,
            target_lufs: float = -14.0, true_peak_dbtp: float = -1.0, sample_rate: int = 48000,
            audio_bitrate: str = "256k", timeout: float = 1800.0, stems_dir: Path | None = None,
            preview: bool = False, picture: Path | None = None) -> dict:
    """Mix ``clips`` (one WAV per plan segment, clip i starting at segment i's start) under ``video``
    and write ``out``: the video stream copied packet for packet, one AAC audio track (the music plus
    the original sound) mastered to ``target_lufs`` (LUFS) under ``true_peak_dbtp`` (dBTP), exactly as
    long as the video stream (``media.duration`` seconds).

    The container follows ``out``'s extension (mp4/m4v/mov/mkv; anything else is Matroska). ``timeout``
    bounds the whole call in seconds. With ``stems_dir``, float WAVs of the music bus, the original
    bus (both before mastering) and the master (as fed to the AAC encoder) are written there too.
    Under ``plan.speech`` the music is ducked (see filtergraph.duck_chain) by at least plan.duck_db,
    deeper when needed to keep it SPEECH_CLEARANCE_LU under the speech. During plan.source_music
    the original is ducked ("duck", by :func:`source_depth`), muted ("replace") or kept.

    ``preview``: a fast proxy with the same mix: AAC at PREVIEW_AUDIO_BITRATE with the fast coder,
    and the picture either copied from ``picture`` (the job's proxy, see media.make_proxy: the
    iteration case, no video encode at all) or, without one, re-encoded small here
    (PREVIEW_VIDEO_ARGS). Either way its packets are NOT the input's. ``picture`` must come from
    ``video`` (same frames and timestamps); the sound is always mixed from ``video``.

    Returns the output's measured metrics: duration_s (video stream), audio_duration_s (decoded
    samples), integrated_lufs, true_peak_dbtp, lra_lu (decoded output, ebur128), gain_db (make-up gain
    applied), premaster_lufs, target_lufs, passes (audio-only passes run: the premaster pass and the
    master passes), final_runs (1, more when AAC pushed the true peak over the target and the limiter
    was lowered), limit_dbfs (the limiter's final ceiling), compose_s (wall seconds), stems
    (name -> path) when asked, and with speech under sound: duck_db (the depth used) and
    speech_music (metrics.speech.speech_music_difference on the bus stems). Raises MixError when an
    input is missing or ffmpeg fails; no partial output or temporary file is left behind.
    """
    started = time.monotonic()
    video, out = Path(video), Path(out)
    clips = [Path(c) for c in clips]
    _check_inputs(video, plan, clips)

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
        # final rename is atomic) and goes with it whatever happens.
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as work:
            premaster_wav, master_wav = Path(work, "premaster.wav"), Path(work, "master.wav")
            tmp = Path(work, "out" + out.suffix)
            spans = duck_spans(plan) if media.has_audio else []  # no sound, no speech to protect
            policy = plan.source_music_policy
            music_spans = source_music_spans(plan) if media.has_audio and policy != "keep" else []
            duck_db, bus_stems, source_db, source = 0.0, stems, 0.0, {}
            if spans or (music_spans and policy == "duck"):
                # Speech and music are metered on their own buses: first unducked, to set the depth,
                # then (tapped from the premaster pass) ducked, for the report. Without stems_dir
                # the taps go to the temporary folder.
                dry = {"music": Path(work, "music_unducked.wav"), "original": Path(work, "original.wav")}
                _bus_pass(video, media, plan, clips, dry, sample_rate=sample_rate, timeout=remaining())
                if spans:
                    duck_db = duck_depth(plan, speech_lufs=loudness_over(dry["original"], spans),
                                         music_lufs=loudness_over(dry["music"], spans))
                    bus_stems = {"music": Path(work, "music.wav"), **stems}
                if music_spans:
                    source = {"original_lufs": loudness_over(dry["original"], music_spans),
                              "music_lufs": loudness_over(dry["music"], music_spans)}
                    source_db = source_depth(**source)
            if music_spans and policy == "replace":
                source_db = float("inf")
            premaster = _premaster_pass(video, media, plan, clips, premaster_wav, bus_stems,
                                        sample_rate=sample_rate, timeout=remaining(), duck_db=duck_db,
                                        source_db=source_db)
            if spans:
                speech_music = speech_music_difference(dry["original"], bus_stems["music"], plan.speech,
                                                       unducked_music=dry["music"])

            def master(gain_db: float) -> LoudnessReport:
                return _master_pass(premaster_wav, master_wav, gain_db, limit_db=limit_db,
                                    total=total, sample_rate=sample_rate, timeout=remaining())

            total = samples(media.duration, sample_rate)
            if preview:
                # One estimate, no metered master pass: the gain from the premaster's loudness and the
                # limiter run inside the final encode. Off by what the limiter takes (a few tenths of
                # a LU on a music mix); the output is metered below all the same.
                gain = 0.0 if premaster.integrated_lufs <= SILENCE_GATE_LUFS else target_lufs - premaster.integrated_lufs
                passes, limited = 1, False
            else:
                gain, passes = _fit_gain(master, premaster, target_lufs=target_lufs, limit_db=limit_db)
                limited = passes > 1  # the master WAV holds the mastered mix at ``gain``
            final_runs = 0
            while True:
                inline = master_chain(gain, limit_db=limit_db, sample_rate=sample_rate, total=total) if preview else None
                _final_run(picture or video, master_wav if limited else premaster_wav, tmp,
                           gain_db=None if limited else gain, chain=inline, master_stem=stems.get("master"),
                           duration=media.duration, muxer=_muxer(out), timeout=remaining(),
                           audio_bitrate=PREVIEW_AUDIO_BITRATE if preview else audio_bitrate,
                           preview=preview, reencode=preview and picture is None)
                final_runs += 1
                loudness, durations = measure_output(tmp, timeout=remaining())
                overshoot = loudness.true_peak_dbtp - true_peak_dbtp
                if overshoot <= 0 or final_runs > MAX_PEAK_RETRIES:
                    break
                limit_db -= overshoot + PEAK_RETRY_EXTRA_DB
                if not preview:
                    master(gain)
                    passes += 1
                    limited = True
            os.replace(tmp, out)
    except MediaToolError as exc:
        raise MixError(f"mixing failed: {exc.message}", **{"video": str(video), **exc.context}) from exc
    return {
        "duration_s": durations["video"],
        "audio_duration_s": durations["audio"],
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


def _fit_gain(meter: Callable[[float], LoudnessReport], premaster: LoudnessReport, *, target_lufs: float,
              limit_db: float) -> tuple[float, int]:
    """The make-up gain in dB that brings the mastered mix to ``target_lufs``, and the number of
    audio-only passes run (premaster pass included). ``meter(gain)`` masters the mix with ``gain``
    and meters it; when it ran, its last call was with the gain returned."""
    if premaster.integrated_lufs <= SILENCE_GATE_LUFS:
        return 0.0, 1
    gain = target_lufs - premaster.integrated_lufs
    if premaster.true_peak_dbtp + gain <= limit_db - LIMITER_HEADROOM_DB:
        return gain, 1
    passes, previous = 1, None
    for correction in range(MAX_CORRECTIONS + 1):
        level = meter(gain).integrated_lufs
        passes += 1
        residual = target_lufs - level
        if abs(residual) <= LOUDNESS_TOLERANCE_LU or correction == MAX_CORRECTIONS:
            break
        # Secant step: loudness grows with gain at 1 LU/dB until the limiter acts, then slower.
        slope = 1.0
        if previous is not None and gain != previous[0]:
            slope = min(1.0, max(0.1, (level - previous[1]) / (gain - previous[0])))
        previous = (gain, level)
        gain += max(-MAX_STEP_DB, min(MAX_STEP_DB, residual / slope))
    return gain, passes


def _muxer(out: Path) -> str:
    return MUXERS.get(out.suffix.lower(), "matroska")


def _clip_args(clips: list[Path]) -> list[str]:
    return [arg for clip in clips for arg in ("-i", str(clip))]


def _wav_args(dest: Path) -> list[str]:
    """Write float WAV (exact for the fltp the filters produce); RF64 past 4 GB (~3 h of stereo)."""
    return ["-c:a", "pcm_f32le", "-rf64", "auto", str(dest)]


def _graph_args(video: Path, media: MediaInfo, plan: Plan, clips: list[Path], stems: dict[str, Path], *,
                sample_rate: int, meter: bool, duck_db: float, source_db: float = 0.0) -> list[str]:
    """ffmpeg inputs and the mix graph, plus the outputs of the bus stems named in ``stems``. The video
    file is opened audio-only (-vn) and only when it has sound to mix: no video is decoded."""
    video_args = ["-vn", "-sn", "-dn", "-i", str(video)] if media.has_audio else []
    first_clip = 1 if media.has_audio else 0
    inputs = GraphInputs(clips=range(first_clip, first_clip + len(clips)),
                         original=0 if media.has_audio else None)
    bus_stems = {name: path for name, path in stems.items() if name != "master"}
    graph = build_graph(plan, duration=media.duration, sample_rate=sample_rate, inputs=inputs, meter=meter,
                        stems=set(bus_stems), duck_db=duck_db, source_db=source_db)
    stem_args = [arg for name, path in bus_stems.items() for arg in ("-map", f"[stem_{name}]", *_wav_args(path))]
    return ["-y", *video_args, *_clip_args(clips), "-filter_complex", graph, *stem_args]


def _bus_pass(video: Path, media: MediaInfo, plan: Plan, clips: list[Path], stems: dict[str, Path], *,
              sample_rate: int, timeout: float) -> None:
    """Write the unducked music and original buses (``stems``: music, original) to float WAVs."""
    args = _graph_args(video, media, plan, clips, stems, sample_rate=sample_rate, meter=False, duck_db=0.0)
    run_ffmpeg([*args, "-map", "[out]", "-f", "null", "-"], timeout=timeout, what="measuring pass")


def _premaster_pass(video: Path, media: MediaInfo, plan: Plan, clips: list[Path], dest: Path,
                    stems: dict[str, Path], *, sample_rate: int, timeout: float,
                    duck_db: float = 0.0, source_db: float = 0.0) -> LoudnessReport:
    """Mix the premaster (music ducked by ``duck_db`` dB under speech) into ``dest`` (float WAV) and
    meter it, without touching the video stream. The bus stems are tapped here too."""
    args = _graph_args(video, media, plan, clips, stems, sample_rate=sample_rate, meter=True, duck_db=duck_db,
                       source_db=source_db)
    proc = run_ffmpeg([*args, "-map", "[out]", *_wav_args(dest)], timeout=timeout, what="premaster pass")
    return parse_ebur128_summary(proc.stderr)


def _master_pass(premaster: Path, dest: Path, gain_db: float, *, limit_db: float, total: int,
                 sample_rate: int, timeout: float) -> LoudnessReport:
    """Master the premaster WAV (gain, true-peak limiter) into ``dest`` and meter the result."""
    chain = master_chain(gain_db, limit_db=limit_db, sample_rate=sample_rate, total=total)
    proc = run_ffmpeg(["-y", "-i", str(premaster), "-af", f"{chain},{EBUR128_FILTER}",
                       *_wav_args(dest)], timeout=timeout, what="master pass")
    return parse_ebur128_summary(proc.stderr)


def _stem_paths(stems_dir: Path, media: MediaInfo) -> dict[str, Path]:
    stems_dir = Path(stems_dir)
    stems_dir.mkdir(parents=True, exist_ok=True)
    names = ["music", "original", "master"] if media.has_audio else ["music", "master"]
    return {name: stems_dir / f"{name}.wav" for name in names}


def _final_run(video: Path, audio: Path, dest: Path, *, gain_db: float | None, master_stem: Path | None,
               duration: float, audio_bitrate: str, muxer: str, timeout: float, preview: bool = False,
               reencode: bool = False, chain: str | None = None) -> None:
    """Mux: the video's packets copied, the WAV ``audio`` encoded to AAC (with ``gain_db`` applied
    first when given: the linear case, where no master WAV was written; or the filter ``chain``, a
    preview's whole mastering, instead). No mixing happens here."""
    chain = [chain] if chain else [f"volume={db(gain_db)}"] if gain_db is not None else []
    if master_stem is not None:
        chain.append("asplit=2[out][stem_master]")
        audio_map = ["-filter_complex", "[1:a]" + ",".join(chain), "-map", "0:v:0", "-map", "[out]"]
    elif chain:
        audio_map = ["-filter_complex", "[1:a]" + ",".join(chain) + "[out]", "-map", "0:v:0", "-map", "[out]"]
    else:
        audio_map = ["-map", "0:v:0", "-map", "1:a:0"]
    # Only the first video stream and the new soundtrack are mapped: the original audio tracks,
    # data (timecode, GPS) and subtitle streams are not carried over. Stream copy keeps the display
    # matrix (rotation) and the codec tag.
    video_args = PREVIEW_VIDEO_ARGS if reencode else ["-c:v", "copy"]
    audio_args = ["-c:a", "aac", "-b:a", audio_bitrate, *(["-aac_coder", "fast"] if preview else [])]
    out_args = [*audio_map, *video_args, *audio_args, "-t", f"{duration:.6f}"]
    if muxer in ("mp4", "mov"):
        # moov atom first so players can start before the download ends; no tmcd track from a
        # source's timecode tag.
        out_args += ["-movflags", "+faststart", "-write_tmcd", "0"]
    stem_args = ["-map", "[stem_master]", *_wav_args(master_stem)] if master_stem is not None else []
    decode = PREVIEW_DECODE_ARGS if reencode else []
    run_ffmpeg(["-y", *decode, "-i", str(video), "-i", str(audio), *out_args, "-f", muxer, str(dest), *stem_args],
               timeout=timeout, what="compose")
