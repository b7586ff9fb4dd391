"""Synthetic sample videos with known truth, made offline with ffmpeg lavfi (and espeak-ng).

Used by ``musicvid demo``, ``data/make_samples.py``, the tests and the benchmarks. Every video is a
sequence of visually distinct scenes, so the cut times are known exactly: the cumulative scene
durations (each a whole number of frames).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from musicvid_core.media import run_ffmpeg

# Distinct, moving lavfi sources: consecutive scenes differ strongly, so cuts are unambiguous.
SCENE_SOURCES = (
    "testsrc2=size={w}x{h}:rate={fps}",
    "life=size={w}x{h}:rate={fps}:mold=10:ratio=0.3:death_color=#202060:life_color=#f0c040",
    "smptehdbars=size={w}x{h}:rate={fps}",
    "mandelbrot=size={w}x{h}:rate={fps}:maxiter=64",
    "cellauto=size={w}x{h}:rate={fps}:rule=110",
    "rgbtestsrc=size={w}x{h}:rate={fps}",
)

AudioKind = Literal["none", "tone", "speech", "music", "5.1", "silence"]


@dataclass(frozen=True)
class Sample:
    path: Path
    cuts: list[float]  # seconds, the exact scene boundaries (excluding 0 and the end)
    duration: float
    speech: list[tuple[float, float]]  # approximate speech regions (seconds), if any


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None or shutil.which("espeak") is not None


def make_speech_wav(text: str, dest: Path, *, voice: str = "en-us", speed: int = 150) -> Path:
    """Speak ``text`` to a WAV with espeak-ng; ConfigurationError-free: caller checks availability."""
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", str(dest), text],
                   check=True, capture_output=True, timeout=60)
    return dest


def make_video(dest: str | Path, scene_durations: Sequence[float] = (3, 4, 3), *,
               size: tuple[int, int] = (320, 180), fps: float = 25, audio: AudioKind = "tone",
               speech_text: str | None = None, speech_at: float = 1.0,
               crf: int = 28, preset: str = "veryfast") -> Sample:
    """Write an H.264 MP4 made of distinct scenes and return its known truth.

    ``scene_durations`` are in seconds (rounded to whole frames). ``audio``: none (no audio
    stream), tone (quiet stereo sine bed), speech (espeak-ng speech over a quiet bed; falls back to
    tone when espeak-ng is missing), music (a chord progression, i.e. music in the source),
    5.1 (six-channel tones), silence (a stereo track of digital silence).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    frames = [max(1, round(d * fps)) for d in scene_durations]
    durs = [f / fps for f in frames]
    total = sum(durs)
    args: list[str] = []
    for i, d in enumerate(durs):
        src = SCENE_SOURCES[i % len(SCENE_SOURCES)].format(w=w, h=h, fps=fps)
        args += ["-f", "lavfi", "-t", f"{d:.6f}", "-i", src]
    n = len(durs)
    vgraph = "".join(f"[{i}:v]setsar=1,format=yuv420p[v{i}];" for i in range(n))
    vgraph += "".join(f"[v{i}]" for i in range(n)) + f"concat=n={n}:v=1:a=0[vout]"
    maps = ["-map", "[vout]"]
    speech: list[tuple[float, float]] = []
    tmp = Path(tempfile.mkdtemp(prefix="mv-sample-"))
    try:
        agraph = ""
        if audio == "speech" and not espeak_available():
            audio = "tone"
        if audio == "tone":
            args += ["-f", "lavfi", "-t", f"{total:.6f}", "-i",
                     "aevalsrc=0.05*sin(2*PI*220*t)|0.05*sin(2*PI*330*t):s=48000:c=stereo"]
            agraph = f";[{n}:a]anull[aout]"
        elif audio == "silence":
            args += ["-f", "lavfi", "-t", f"{total:.6f}", "-i", "anullsrc=r=48000:cl=stereo"]
            agraph = f";[{n}:a]anull[aout]"
        elif audio == "5.1":
            expr = "|".join(f"0.05*sin(2*PI*{f}*t)" for f in (220, 277, 330, 60, 440, 554))
            args += ["-f", "lavfi", "-t", f"{total:.6f}", "-i", f"aevalsrc={expr}:s=48000:c=5.1"]
            agraph = f";[{n}:a]anull[aout]"
        elif audio == "music":
            # A I-V-vi-IV progression of sine triads, 2 s per chord: tonal, steady, clearly music.
            chords = [(261.63, 329.63, 392.0), (196.0, 246.94, 392.0), (220.0, 261.63, 329.63),
                      (174.61, 220.0, 349.23)]
            terms = []
            for k, ch in enumerate(chords):
                gate = f"between(mod(t\\,8)\\,{2 * k}\\,{2 * k + 2})"
                terms += [f"{gate}*0.08*sin(2*PI*{f}*t)" for f in ch]
            e = "+".join(terms)
            args += ["-f", "lavfi", "-t", f"{total:.6f}", "-i", f"aevalsrc={e}|{e}:s=48000"]
            agraph = f";[{n}:a]anull[aout]"
        elif audio == "speech":
            text = speech_text or ("Welcome to the harbour. Every morning the boats come in, "
                                   "and the market opens before the sun is up.")
            wav = make_speech_wav(text, tmp / "speech.wav")
            args += ["-f", "lavfi", "-t", f"{total:.6f}", "-i",
                     "aevalsrc=0.01*sin(2*PI*110*t):s=48000:c=stereo", "-i", str(wav)]
            ms = int(speech_at * 1000)
            agraph = (f";[{n + 1}:a]aresample=48000,aformat=channel_layouts=stereo,"
                      f"adelay={ms}|{ms}[sp];[{n}:a][sp]amix=inputs=2:normalize=0:duration=first[aout]")
            speech_len = _wav_seconds(wav)
            speech = [(speech_at, min(total, speech_at + speech_len))]
        if agraph:
            maps += ["-map", "[aout]", "-c:a", "aac", "-b:a", "128k"]
        run_ffmpeg(["-y", *args, "-filter_complex", vgraph + agraph, *maps,
                    "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-g", str(int(fps * 2)),
                    "-pix_fmt", "yuv420p", "-t", f"{total:.6f}", str(dest)],
                   what="sample video", timeout=3600)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cuts = []
    acc = 0.0
    for d in durs[:-1]:
        acc += d
        cuts.append(round(acc, 6))
    return Sample(path=dest, cuts=cuts, duration=total, speech=speech)


def _wav_seconds(path: Path) -> float:
    import wave

    with wave.open(str(path)) as w:
        return w.getnframes() / float(w.getframerate())


def make_long_video(dest: str | Path, seconds: float, *, size=(1280, 720), fps: float = 30,
                    scene_s: float = 4.0, audio: AudioKind = "tone", preset: str = "veryfast",
                    crf: int = 23) -> Sample:
    """A long benchmark input: scenes of ``scene_s`` seconds cycling through the sources.

    The default encode (x264 veryfast, CRF 23: CABAC, deblocking, B-frames) decodes like a phone or
    camera upload; ``preset="ultrafast"`` (no CABAC, no deblocking, no B-frames) decodes unusually
    cheaply, which makes any fixed cost look larger next to one decode pass."""
    n = max(1, round(seconds / scene_s))
    return make_video(dest, [seconds / n] * n, size=size, fps=fps, audio=audio, preset=preset, crf=crf)


# --- a hostile corpus ----------------------------------------------------------------------------
# Inputs a server meets sooner or later. Each is cheap to make (seconds) and deterministic. The
# expected outcome is what a person would want: a scored video where the input is a usable video,
# else a FAILED job whose reason says what is wrong with the file (never a hang, never a crash).
HOSTILE_KINDS: dict[str, str] = {
    "zero_bytes": "fail",          # an empty file
    "truncated": "fail",           # an MP4 cut off before its index (moov at the end)
    "truncated_faststart": "fail", # index first, media data cut short: refused as truncated, not half-scored
    "random_bytes": "fail",        # noise named .mp4
    "audio_only": "fail",          # an M4A named .mp4
    "still_image": "fail",         # a PNG: one picture, no duration
    "huge_dimensions": "fail",     # a header declaring 12000x12000 (over our 8192 px limit)
    "impossible_dimensions": "fail",  # a header declaring 30000x30000 (over ffmpeg's own limit)
    "zero_duration": "fail",       # a container cut at 0 s: no stream, no frame
    "vfr": "ok",                   # variable frame rate
    "rotated": "ok",               # a display matrix turning the picture 90 degrees
    "surround": "ok",              # 5.1 sound
    "mono": "ok",                  # one-channel sound
    "decode_errors": "ok",         # damaged packets inside a well-formed file
}


def make_hostile(kind: str, dest_dir: str | Path) -> Path:
    """Write one input of the hostile corpus (see HOSTILE_KINDS) into ``dest_dir``; returns its path."""
    import random

    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(kind)
    lavfi_video = ["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25"]
    x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if kind == "zero_bytes":
        path = dest_dir / "zero.mp4"
        path.write_bytes(b"")
    elif kind in ("truncated", "truncated_faststart"):
        full = dest_dir / f"{kind}_full.mp4"
        flags = ["-movflags", "+faststart"] if kind == "truncated_faststart" else []
        run_ffmpeg(["-y", *lavfi_video, "-f", "lavfi", "-i", "sine=f=440:r=48000", "-t", "4", *x264,
                    "-c:a", "aac", *flags, str(full)], what="hostile sample")
        data = full.read_bytes()
        full.unlink()
        path = dest_dir / f"{kind}.mp4"
        path.write_bytes(data[: len(data) * 6 // 10])
    elif kind == "random_bytes":
        path = dest_dir / "random.mp4"
        path.write_bytes(rng.randbytes(64 * 1024))
    elif kind == "audio_only":
        path = dest_dir / "audio_only.mp4"
        run_ffmpeg(["-y", "-f", "lavfi", "-i", "sine=f=440:r=48000", "-t", "3", "-c:a", "aac", str(path)],
                   what="hostile sample")
    elif kind == "still_image":
        path = dest_dir / "still.png"
        run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=320x180", "-frames:v", "1", str(path)],
                   what="hostile sample")
    elif kind in ("huge_dimensions", "impossible_dimensions"):
        # A Y4M stream header promising enormous 4:2:0 frames, followed by a few bytes: the declared
        # size is what a careless decoder would allocate.
        side = b"12000" if kind == "huge_dimensions" else b"30000"
        path = dest_dir / f"{kind}.y4m"
        path.write_bytes(b"YUV4MPEG2 W" + side + b" H" + side + b" F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(4096))
    elif kind == "zero_duration":
        path = dest_dir / "zero_duration.mp4"
        run_ffmpeg(["-y", *lavfi_video, "-f", "lavfi", "-i", "sine=r=48000", "-t", "0", *x264, "-c:a", "aac",
                    str(path)], what="hostile sample")
    elif kind == "vfr":
        path = dest_dir / "vfr.mp4"
        # frame intervals alternate 20 ms / 60 ms / 40 ms: timestamps, not a rate, place the frames
        run_ffmpeg(["-y", *lavfi_video, "-f", "lavfi", "-i", "sine=f=330:r=48000", "-t", "4",
                    "-vf", "setpts='(N*0.04+0.02*mod(N\\,3)-0.02)/TB'", "-fps_mode", "vfr", *x264,
                    "-c:a", "aac", "-shortest", str(path)], what="hostile sample")
    elif kind == "rotated":
        plain = dest_dir / "rotated_src.mp4"
        run_ffmpeg(["-y", *lavfi_video, "-f", "lavfi", "-i", "sine=r=48000", "-t", "3", *x264, "-c:a", "aac",
                    str(plain)], what="hostile sample")
        path = dest_dir / "rotated.mp4"
        run_ffmpeg(["-y", "-display_rotation", "90", "-i", str(plain), "-c", "copy", str(path)], what="hostile sample")
        plain.unlink()
    elif kind in ("surround", "mono"):
        path = dest_dir / f"{kind}.mp4"
        layout = "5.1" if kind == "surround" else "mono"
        run_ffmpeg(["-y", *lavfi_video, "-f", "lavfi", "-i", f"sine=f=220:r=48000,aformat=channel_layouts={layout}",
                    "-t", "3", *x264, "-c:a", "aac", str(path)], what="hostile sample")
    elif kind == "decode_errors":
        path = dest_dir / "damaged.mp4"
        run_ffmpeg(["-y", *lavfi_video, "-f", "lavfi", "-i", "sine=r=48000", "-t", "4", *x264, "-g", "250",
                    "-c:a", "aac", "-movflags", "+faststart", str(path)], what="hostile sample")
        data = bytearray(path.read_bytes())
        start = data.find(b"mdat") + 4 + len(data) // 3  # well inside the media data, index intact
        for offset in range(start, min(len(data), start + 20000), 97):
            data[offset] = rng.randrange(256)
        path.write_bytes(bytes(data))
    else:
        raise ValueError(f"unknown hostile kind {kind!r}; one of {', '.join(HOSTILE_KINDS)}")
    return path


# Real-world file shapes (issue 17: edit lists, several tracks and subtitles, WebM, phone MOVs,
# offsets, MPEG-TS) and scene changes of every kind live in realworld.py; here for one import path.
from musicvid_core.lab.realworld import (  # noqa: E402,F401
    CUT_KINDS,
    REAL_WORLD_CASES,
    Case,
    CutVideo,
    make_case,
    make_cut_video,
    measure_cuts,
    tricky_name,
)
