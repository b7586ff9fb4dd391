"""Real-world file shapes with known truth (issue 17), small and lavfi-made, for tests and figures.

Each generator writes one file a new user might have and returns it with what a player shows:

- ``edit_list``: an MP4 losslessly trimmed (``-ss 2.3 -c copy``): its first GOP starts before the
  edit point, so an edit list hides the lead-in frames (decoded, never shown);
- ``two_tracks``: an MKV whose default audio track is silent and whose second is speech (French,
  titled), with SubRip subtitles, a font attachment, two chapters and a title;
- ``webm``: VP9 + Opus WebM;
- ``phone_mov``: a MOV as a phone writes it: a 90-degree display matrix, a timecode track, a
  creation time and chapters;
- ``late_video``: an MKV whose picture starts 0.5 s after its sound; the sound holds a 1 kHz beep
  1.0 s after the first frame (``beep_s``) to find the alignment by ear and by measurement;
- ``mpegts``: the same, remuxed to MPEG-TS (a clock that starts at 1.4 s);
- ``audio_longer``: an MP4 whose sound runs 1.5 s past its picture.

``make_cut_kinds`` writes one video per kind of scene change (hard cuts between busy patterns,
between similar shots, through a white flash frame, a flash inside one shot, fades through black,
dissolves) with the truth frame of each change; ``measure_cuts`` runs the analysis over them and
says how many frames off each detected cut is. ``tricky_name`` copies a file to a name with
spaces, quotes, non-ASCII letters and a leading dash.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from musicvid_core.media import run_ffmpeg

REAL_WORLD_CASES: dict[str, str] = {
    "edit_list": "MP4 trimmed losslessly: an edit list hides its first GOP's lead-in",
    "two_tracks": "MKV: silent default track + speech track, subtitles, font attachment, chapters",
    "webm": "WebM: VP9 video, Opus sound",
    "phone_mov": "MOV: 90-degree rotation, timecode track, creation time, chapters",
    "late_video": "MKV whose picture starts 0.5 s after its sound",
    "mpegts": "MPEG-TS whose picture starts after its sound (clock from 1.4 s)",
    "audio_longer": "MP4 whose sound runs 1.5 s past the picture",
}
SIZE = "320x180"
_X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
CREATION_TIME = "2024-05-01T10:00:00.000000Z"


@dataclass(frozen=True)
class Case:
    path: Path
    truth: dict = field(default_factory=dict)  # what a player shows: duration_s, start_s, streams ...


def make_case(kind: str, dest_dir: str | Path) -> Case:
    """Write the real-world case ``kind`` (see REAL_WORLD_CASES) into ``dest_dir``."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    makers = {"edit_list": _edit_list, "two_tracks": _two_tracks, "webm": _webm, "phone_mov": _phone_mov,
              "late_video": _late_video, "mpegts": _mpegts, "audio_longer": _audio_longer}
    if kind not in makers:
        raise ValueError(f"unknown case {kind!r}; one of {', '.join(REAL_WORLD_CASES)}")
    with tempfile.TemporaryDirectory(prefix="mv-case-") as work:
        return makers[kind](dest_dir, Path(work))


def _video(seconds: float, fps: int = 30, source: str = "testsrc2") -> list[str]:
    return ["-f", "lavfi", "-t", f"{seconds}", "-i", f"{source}=size={SIZE}:rate={fps}"]


def _tone(seconds: float, freq: float = 330) -> list[str]:
    return ["-f", "lavfi", "-t", f"{seconds}", "-i", f"sine=f={freq}:r=48000"]


def _chapters(work: Path, seconds: float) -> Path:
    """An Ogg file whose comments name two chapters (the allowed way to hand ffmpeg chapters)."""
    path = work / "chapters.ogg"
    half = seconds / 2
    run_ffmpeg(["-y", "-f", "lavfi", "-t", f"{seconds}", "-i", "anullsrc=r=48000:cl=mono", "-c:a", "libopus",
                "-metadata", "CHAPTER001=00:00:00.000", "-metadata", "CHAPTER001NAME=Opening",
                "-metadata", f"CHAPTER002=00:00:{half:06.3f}", "-metadata", "CHAPTER002NAME=Main", str(path)],
               what="sample chapters")
    return path


def _edit_list(dest: Path, work: Path) -> Case:
    src = work / "src.mp4"
    run_ffmpeg(["-y", *_video(8), *_tone(8), *_X264, "-g", "60", "-c:a", "aac", str(src)], what="sample")
    path = dest / "trimmed.mp4"
    run_ffmpeg(["-y", "-ss", "2.3", "-i", str(src), "-t", "4", "-c", "copy", str(path)], what="sample trim")
    shown = _decoded_frames(path)
    return Case(path, {"duration_s": shown / 30, "frames": shown, "fps": 30})


def _decoded_frames(path: Path) -> int:
    """Frames a player shows: decoded, counted (an edit list's hidden frames are dropped by the decoder)."""
    proc = run_ffmpeg(["-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "framecrc", "-"],
                      what="frame count", stdout=-1)
    return sum(1 for line in proc.stdout.decode().splitlines() if line and not line.startswith("#"))


def _two_tracks(dest: Path, work: Path) -> Case:
    seconds = 4.0
    srt = work / "subs.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:02,000\nBonjour\n\n2\n00:00:02,500 --> 00:00:03,500\nEncore\n")
    font = work / "font.ttf"
    font.write_bytes(b"\x00\x01\x00\x00" + bytes(60))  # an attachment's bytes need not be a real font
    espeak = shutil.which("espeak-ng") or shutil.which("espeak")
    if espeak:  # (samples.make_speech_wav, which imports this module: no import circle)
        wav = work / "speech.wav"
        subprocess.run([espeak, "-v", "fr", "-s", "150", "-w", str(wav),
                        "Bonjour, voici le marché du port. Les bateaux rentrent."],
                       check=True, capture_output=True, timeout=60)
        speech = ["-i", str(wav)]
    else:  # a syllable-like amplitude-modulated tone: what the VAD calls speech is not needed here
        speech = ["-f", "lavfi", "-t", f"{seconds}", "-i", "aevalsrc=0.3*sin(2*PI*220*t)*(0.5+0.5*sin(2*PI*4*t)):s=22050"]
    path = dest / "two_tracks.mkv"
    graph = f"[2:a]aresample=48000,adelay=500:all=1,apad,atrim=0:{seconds}[sp]"
    run_ffmpeg(["-y", *_video(seconds, 25), "-f", "lavfi", "-t", f"{seconds}", "-i", "anullsrc=r=48000:cl=stereo",
                *speech, "-i", str(srt), "-i", str(_chapters(work, seconds)),
                "-filter_complex", graph, "-map", "0:v", "-map", "1:a", "-map", "[sp]", "-map", "3:s",
                "-map_chapters", "4", *_X264, "-c:a", "aac", "-c:s", "srt",
                "-attach", str(font), "-metadata:s:t", "mimetype=application/x-truetype-font",
                "-metadata", "title=Harbour walk", "-metadata:s:a:0", "language=eng",
                "-metadata:s:a:1", "language=fra", "-metadata:s:a:1", "title=Commentary",
                "-metadata:s:s:0", "language=fra", "-disposition:a:0", "default", "-disposition:a:1", "0",
                "-t", f"{seconds}", str(path)], what="sample two tracks")
    return Case(path, {"duration_s": seconds, "main_track": 1, "speech_from_s": 0.5,
                       "kinds": ["video", "audio", "audio", "subtitle", "attachment"], "chapters": 2,
                       "title": "Harbour walk"})


def _webm(dest: Path, work: Path) -> Case:
    path = dest / "clip.webm"
    run_ffmpeg(["-y", *_video(3, 25), *_tone(3), "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
                "-b:v", "300k", "-c:a", "libopus", str(path)], what="sample webm")
    return Case(path, {"duration_s": 3.0, "video_codec": "vp9"})


def _phone_mov(dest: Path, work: Path) -> Case:
    plain = work / "plain.mov"
    run_ffmpeg(["-y", *_video(3, 30), *_tone(3), *_X264, "-c:a", "aac", str(plain)], what="sample")
    path = dest / "IMG_0001.MOV"
    # a portrait phone clip: stored landscape, turned 90 degrees clockwise for display
    run_ffmpeg(["-y", "-display_rotation", "-90", "-i", str(plain), "-i", str(_chapters(work, 3)),
                "-map", "0:v", "-map", "0:a", "-map_chapters", "1", "-c", "copy", "-timecode", "01:00:00:00",
                "-metadata", f"creation_time={CREATION_TIME}", "-f", "mov", str(path)], what="sample phone")
    return Case(path, {"duration_s": 3.0, "rotation": 90, "timecode": "01:00:00:00",
                       "creation_time": CREATION_TIME, "chapters": 2})


def _late_source(work: Path, beep_s: float, lead_s: float) -> tuple[Path, Path]:
    """A picture (3 s) and a sound (lead_s + 3 s, a quiet bed with a 50 ms 1 kHz beep at
    lead_s + beep_s) as separate files."""
    picture, sound = work / "picture.mkv", work / "sound.mka"
    run_ffmpeg(["-y", *_video(3, 25), *_X264, str(picture)], what="sample")
    at = lead_s + beep_s
    expr = f"0.02*sin(2*PI*220*t)+0.8*between(t\\,{at}\\,{at + 0.05})*sin(2*PI*1000*t)"
    run_ffmpeg(["-y", "-f", "lavfi", "-t", f"{lead_s + 3}", "-i", f"aevalsrc={expr}:s=48000", "-c:a", "aac",
                str(sound)], what="sample")
    return picture, sound


def _late_video(dest: Path, work: Path) -> Case:
    picture, sound = _late_source(work, beep_s=1.0, lead_s=0.5)
    path = dest / "late_video.mkv"
    run_ffmpeg(["-y", "-itsoffset", "0.5", "-i", str(picture), "-i", str(sound), "-map", "0:v", "-map", "1:a",
                "-c", "copy", str(path)], what="sample late video")
    return Case(path, {"duration_s": 3.0, "start_s": 0.5, "beep_s": 1.0})


def _mpegts(dest: Path, work: Path) -> Case:
    late = _late_video(work, work).path
    path = dest / "camera.ts"
    run_ffmpeg(["-y", "-i", str(late), "-c", "copy", "-f", "mpegts", str(path)], what="sample ts")
    return Case(path, {"duration_s": 3.0, "beep_s": 1.0})


def _audio_longer(dest: Path, work: Path) -> Case:
    path = dest / "long_sound.mp4"
    run_ffmpeg(["-y", *_video(3, 25), *_tone(4.5), *_X264, "-c:a", "aac", str(path)], what="sample")
    return Case(path, {"duration_s": 3.0})


def tricky_name(src: str | Path, dest_dir: str | Path) -> Path:
    """A copy of ``src`` under a name with spaces, quotes, non-ASCII letters and a leading dash."""
    dest = Path(dest_dir) / f"-my clip 'quoted' \"twice\" été 東京{Path(src).suffix}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return dest


# --- scene changes of every kind ------------------------------------------------------------------
CUT_KINDS = ("hard_busy", "similar", "flash_cut", "flash_in_shot", "fade", "dissolve")
_BUSY = ("life=size={s}:rate={r}:mold=10:ratio=0.3:death_color=#202060:life_color=#f0c040:seed=1",
         "cellauto=size={s}:rate={r}:rule=110:seed=2",
         "color=c=gray:size={s}:rate={r},noise=alls=60:allf=t:all_seed=3",
         "color=c=0x805030:size={s}:rate={r},noise=alls=60:allf=t:all_seed=4",
         "testsrc2=size={s}:rate={r}",
         "mandelbrot=size={s}:rate={r}:maxiter=64")


@dataclass(frozen=True)
class CutVideo:
    kind: str
    path: Path
    fps: int
    changes: list[int]  # truth: the first frame of each new shot (the flash frame for a flash cut)


def make_cut_video(kind: str, dest_dir: str | Path, *, fps: int = 30) -> CutVideo:
    """One video (320x180, x264) of scene changes of ``kind`` (CUT_KINDS) at known frames; shots
    last odd numbers of frames (53, 67, ...) so no change falls on a keyframe interval."""
    dest = Path(dest_dir) / f"cuts_{kind}.mp4"
    dest.parent.mkdir(parents=True, exist_ok=True)
    lengths = [53, 67, 59, 71, 61, 57]
    sources = [b.format(s=SIZE, r=fps) for b in _BUSY]
    if kind == "similar":  # one scene from shifted, zoomed, re-graded viewpoints
        sources = [f"testsrc2=size=480x270:rate={fps},crop=320:180:{x}:{y},eq=brightness={b}:saturation={c}"
                   for x, y, b, c in ((0, 0, 0, 1), (60, 30, 0.05, 1.2), (120, 60, -0.05, 0.9), (30, 80, 0.08, 1.1),
                                      (150, 20, 0, 1.3), (90, 90, -0.08, 1))]
    inputs, parts, labels, changes, at = [], [], [], [], 0
    for i, n in enumerate(lengths):
        inputs += ["-f", "lavfi", "-i", sources[i % len(sources)] if kind != "flash_in_shot" else sources[4]]
        chain = f"[{i}:v]trim=start_frame={at if kind == 'flash_in_shot' else 0}:end_frame=" \
                f"{(at if kind == 'flash_in_shot' else 0) + n},setpts=PTS-STARTPTS,setsar=1,format=yuv420p"
        if kind in ("flash_cut", "flash_in_shot") and i:
            chain += ",drawbox=c=white:t=fill:enable='lt(n\\,2)'" if kind == "flash_in_shot" else \
                     ",drawbox=c=white:t=fill:enable='eq(n\\,0)'"
        if kind == "fade":  # out to black over 12 frames, in from black over 12 (not at the very ends)
            fade_in = ",fade=t=in:st=0:d=0.4" if i else ""
            fade_out = f",fade=t=out:st={(n - 12) / fps:.4f}:d=0.4" if i < len(lengths) - 1 else ""
            chain += fade_in + fade_out
        parts.append(chain + f"[v{i}]")
        labels.append(f"[v{i}]")
        if i:
            changes.append(at)
        at += n
    if kind == "dissolve":  # 15-frame crossfades: the change is the dissolve's middle frame
        graph, last, offset, changes = ";".join(parts), "[v0]", 0, []
        for i in range(1, len(lengths)):
            offset += lengths[i - 1] - (15 if i > 1 else 0)
            start = offset - 15
            graph += f";{last}[v{i}]xfade=transition=fade:duration=0.5:offset={start / fps:.6f}[x{i}]"
            last = f"[x{i}]"
            changes.append(start + 7)
        out = last
    else:
        graph = ";".join(parts) + ";" + "".join(labels) + f"concat=n={len(lengths)}:v=1:a=0[out]"
        out = "[out]"
    if kind == "flash_in_shot":
        changes = []  # a flash inside one continuous shot: no scene change at all
    run_ffmpeg(["-y", *inputs, "-filter_complex", graph, "-map", out, "-c:v", "libx264", "-preset", "veryfast",
                "-crf", "23", "-pix_fmt", "yuv420p", "-r", str(fps), str(dest)], what="cut sample", timeout=600)
    return CutVideo(kind, dest, fps, changes)


def measure_cuts(video: CutVideo) -> dict:
    """The analysis's cuts against the truth: per truth change the signed frames off of the
    nearest detected cut (None: missed, nothing within 15 frames) and the detected cuts matching
    no change (``extra``)."""
    from musicvid_core.stages.analyse.features import analyze

    found = [round(c.time * video.fps) for c in analyze(video.path).cuts]
    off, used = [], set()
    for truth in video.changes:
        near = min(found, key=lambda f: abs(f - truth), default=None)
        if near is not None and abs(near - truth) <= 15:
            off.append(near - truth)
            used.add(near)
        else:
            off.append(None)
    return {"kind": video.kind, "changes": len(video.changes), "frames_off": off,
            "missed": sum(o is None for o in off), "extra": len([f for f in found if f not in used])}
