"""The output's container: which format, what each stream of the input becomes in it, and the ffmpeg
arguments that keep every stream (issue 17).

The format is chosen by the output's extension (``.mp4 .m4v .mov .mkv .webm``), each written as its
real format with codecs it allows; without one asked for, the input's own container where it can
carry the result, else Matroska. Every stream of the input is kept, in the input's order:

- the main video: packets copied (a codec the format cannot carry is refused: BadInput naming the
  formats that can);
- the main audio track (MediaInfo.main_track): replaced by the scored mix (AAC; Opus in WebM), at
  the same position, with its language, title and default flag;
- other audio tracks: copied untouched, or re-encoded to the format's audio codec where it cannot
  carry theirs (AAC in WebM is not WebM);
- subtitles: copied, text ones converted where the format has its own text codec (SubRip or ASS
  into MP4's mov_text, into WebM's WebVTT); bitmap subtitles a format cannot carry are refused;
- data (timecode, GPS) and attachments (fonts): copied where the format carries them. A QuickTime
  timecode track is rewritten by the MP4/MOV muxer from the video's ``timecode`` tag (ffmpeg cannot
  copy the track itself); Matroska keeps that tag on the video stream. A MOV/MP4 chapter track
  (listed as a ``text`` data stream) is the chapters, written anew by every muxer;
- chapters and global and per-stream metadata (language, title, creation time), the display matrix
  (rotation) and HDR side data (carried with the copied video stream).

An input whose edit list hides frames (a lossless trim's lead-in, MediaInfo.hidden_frames) keeps
them hidden only in MP4/MOV, which write the same edit list; Matroska and WebM would show them, so
they are refused for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from musicvid_core.domain.errors import BadInput
from musicvid_core.domain.features import MediaInfo, StreamInfo
from musicvid_core.media import PROXY_FILTER


@dataclass(frozen=True)
class Format:
    """What one output format carries. ``video``/``audio``: codecs copied (None: any)."""

    ext: str
    muxer: str
    label: str
    video: frozenset[str] | None
    audio: frozenset[str] | None
    mix_codec: str  # the encoder of the scored track (and of audio tracks it cannot copy)
    subtitles: frozenset[str]  # subtitle codecs copied as they are
    text_subtitles: str | None  # the encoder text subtitles are converted to (None: not carried)
    data: bool = False
    attachments: bool = False
    cover_art: frozenset[str] = frozenset()  # attached-picture codecs carried
    hides_frames: bool = False  # writes edit lists, so frames the input hides stay hidden
    faststart: bool = False


_TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"})
_MP4_VIDEO = frozenset({"h264", "hevc", "av1", "vp9", "vvc", "mpeg4", "mpeg2video", "mpeg1video", "mjpeg",
                        "png", "h263"})
_MP4_AUDIO = frozenset({"aac", "mp3", "mp2", "ac3", "eac3", "opus", "flac", "alac", "dts", "truehd"})
_MOV_EXTRA_VIDEO = frozenset({"prores", "dnxhd", "qtrle", "rawvideo", "dvvideo", "cfhd", "hap", "v210",
                              "utvideo", "ffv1"})
_PCM = frozenset({"pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_s32le", "pcm_s32be", "pcm_f32le",
                  "pcm_f32be", "pcm_u8", "pcm_alaw", "pcm_mulaw"})

_MP4 = dict(muxer="mp4", video=_MP4_VIDEO, audio=_MP4_AUDIO, mix_codec="aac",
            subtitles=frozenset({"mov_text", "dvd_subtitle"}), text_subtitles="mov_text", data=True,
            cover_art=frozenset({"mjpeg", "png"}), hides_frames=True, faststart=True)
FORMATS: dict[str, Format] = {
    ".mp4": Format(ext=".mp4", label="MP4", **_MP4),
    ".m4v": Format(ext=".m4v", label="MP4 (.m4v)", **_MP4),
    ".mov": Format(ext=".mov", muxer="mov", label="QuickTime MOV", video=_MP4_VIDEO | _MOV_EXTRA_VIDEO,
                   audio=_MP4_AUDIO | _PCM, mix_codec="aac", subtitles=frozenset({"mov_text"}),
                   text_subtitles="mov_text", data=True, cover_art=frozenset({"mjpeg", "png"}),
                   hides_frames=True, faststart=True),
    ".mkv": Format(ext=".mkv", muxer="matroska", label="Matroska", video=None, audio=None, mix_codec="aac",
                   subtitles=frozenset({"subrip", "ass", "ssa", "webvtt", "hdmv_pgs_subtitle", "dvd_subtitle",
                                        "dvb_subtitle"}),
                   text_subtitles="srt", attachments=True, cover_art=frozenset({"mjpeg", "png"})),
    ".webm": Format(ext=".webm", muxer="webm", label="WebM", video=frozenset({"vp8", "vp9", "av1"}),
                    audio=frozenset({"opus", "vorbis"}), mix_codec="libopus", subtitles=frozenset({"webvtt"}),
                    text_subtitles="webvtt"),
}
EXTENSIONS = tuple(FORMATS)
# Where no format is asked for and the input's own cannot carry the result: Matroska takes most.
FALLBACK = (".mkv", ".mp4", ".mov")
PREVIEW_CODEC = "h264"  # a preview's picture (media.make_proxy, or PREVIEW_ENCODE here)
# A preview without a proxy re-encodes the picture as make_proxy does; ``{k}`` is its output index.
PREVIEW_ENCODE = ("-filter:{k}", PROXY_FILTER, "-c:{k}", "libx264", "-preset:{k}", "ultrafast", "-crf:{k}", "30",
                  "-pix_fmt:{k}", "yuv420p")
OTHER_AUDIO_BITRATE = "192k"  # an audio track re-encoded because the format cannot carry its codec
_TIMECODE_TAG = "tmcd"
_CHAPTER_TAG = "text"  # MOV/MP4 store chapters as a text track, which ffmpeg lists as a data stream


@dataclass
class OutStream:
    """One stream of the output: the input stream it comes from (``source``, an index; for the mix
    the track it replaces, for a preview's picture the video it shows; None: none), what happens to
    it (copy, mix, picture, convert, encode), the encoder when it is encoded, and whether it is
    an audio track that carried the default flag (the scored mix takes it over)."""

    source: int | None
    kind: str
    action: str
    codec: str = ""
    default: bool = False


@dataclass
class StreamPlan:
    format: Format
    streams: list[OutStream] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what this format cannot carry
    write_timecode: bool = False  # a tmcd track rewritten by the muxer

    @property
    def mix_position(self) -> int:
        """Output stream index of the scored mix."""
        return next(i for i, s in enumerate(self.streams) if s.action == "mix")

    @property
    def mix_audio_ordinal(self) -> int:
        """The scored mix as an audio ordinal of the output (``0:a:N``)."""
        audio = [s for s in self.streams if s.kind == "audio"]
        return next(i for i, s in enumerate(audio) if s.action == "mix")

    def summary(self) -> dict:
        """What the JSON reports: format, and per stream its kind and fate."""
        return {"format": self.format.ext.lstrip("."), "muxer": self.format.muxer,
                "streams": [{"kind": s.kind, "action": s.action, **({"codec": s.codec} if s.codec else {}),
                             **({"source": s.source} if s.source is not None else {})} for s in self.streams],
                **({"left_out": self.problems} if self.problems else {})}


def format_for(name: str | Path) -> Format:
    """The format an output named ``name`` (a path, or an extension such as ``.webm``) is written
    in. BadInput for any other extension."""
    text = str(name).lower()
    ext = text if text.startswith(".") and text.count(".") == 1 and "/" not in text else Path(text).suffix
    if ext not in FORMATS:
        raise BadInput(f"cannot write {ext or 'a file without an extension'}: the output must end in "
                       f"{_either(list(EXTENSIONS))}")
    return FORMATS[ext]


def main_video(media: MediaInfo) -> int | None:
    """Input stream index of the picture the music goes under (the first video that is not cover art)."""
    return next((s.index for s in media.streams if s.kind == "video" and not s.attached_pic), None)


def plan_streams(fmt: Format, media: MediaInfo, *, preview: bool = False) -> StreamPlan:
    """What each input stream becomes in ``fmt`` (and what ``fmt`` cannot carry, in ``problems``).
    ``preview``: the picture is the H.264 proxy, not the input's."""
    plan = StreamPlan(format=fmt)
    video = main_video(media)
    audio_streams = [s for s in media.streams if s.kind == "audio"]
    main_audio = audio_streams[media.main_track].index if len(audio_streams) > media.main_track else None
    if not preview and media.hidden_frames and not fmt.hides_frames:
        plan.problems.append(f"edit list hiding {media.hidden_frames} frames (a lossless trim's lead-in, "
                             "which it would show)")
    if not media.streams:  # a MediaInfo made without the stream list: the picture and the mix
        plan.streams = [OutStream(None, "video", "picture" if preview else "copy"),
                        OutStream(None, "audio", "mix", fmt.mix_codec)]
        return plan
    for stream in media.streams:
        out = _fate(fmt, stream, is_video=stream.index == video, is_main_audio=stream.index == main_audio,
                    preview=preview, plan=plan, chapters=media.chapters > 0)
        if out is not None:
            plan.streams.append(out)
    if main_audio is None:  # no sound in the input: the mix is a new track after the picture
        at = next((i + 1 for i, s in enumerate(plan.streams) if s.kind == "video"), 0)
        plan.streams.insert(at, OutStream(None, "audio", "mix", fmt.mix_codec))
    return plan


def _fate(fmt: Format, stream: StreamInfo, *, is_video: bool, is_main_audio: bool, preview: bool,
          plan: StreamPlan, chapters: bool = False) -> OutStream | None:
    kind, codec = stream.kind, stream.codec
    if is_video:
        codec = PREVIEW_CODEC if preview else codec
        if fmt.video is not None and codec not in fmt.video:
            plan.problems.append(f"{codec} video")
        return OutStream(stream.index, kind, "picture" if preview else "copy")
    if is_main_audio:
        return OutStream(stream.index, kind, "mix", fmt.mix_codec)
    if kind == "video":
        allowed = fmt.cover_art if stream.attached_pic else fmt.video
        if allowed is not None and codec not in allowed:
            plan.problems.append(f"{'cover art' if stream.attached_pic else 'second video stream'} ({codec})")
        return OutStream(stream.index, kind, "copy")
    if kind == "audio":
        if fmt.audio is None or codec in fmt.audio:
            return OutStream(stream.index, kind, "copy", default=stream.default)
        return OutStream(stream.index, kind, "encode", fmt.mix_codec, default=stream.default)
    if kind == "subtitle":
        if codec in fmt.subtitles:
            return OutStream(stream.index, kind, "copy")
        if codec in _TEXT_SUBTITLES and fmt.text_subtitles:
            return OutStream(stream.index, kind, "convert", fmt.text_subtitles)
        plan.problems.append(f"{codec} subtitles")
        return None
    if kind == "data":
        if stream.tag == _TIMECODE_TAG:  # the muxer rewrites it from the video's timecode tag
            plan.write_timecode = fmt.data
            return None
        if stream.tag == _CHAPTER_TAG and chapters:  # QuickTime's chapter track: kept as the chapters
            return None
        if not fmt.data:
            plan.problems.append(f"data stream ({stream.tag or codec}, e.g. GPS)")
        return OutStream(stream.index, kind, "copy") if fmt.data else None
    if kind == "attachment":
        if not fmt.attachments:
            plan.problems.append(f"attachment ({codec}, e.g. a font)")
            return None
        return OutStream(stream.index, kind, "copy")
    return None  # a kind ffmpeg cannot map (unknown): nothing a player uses


def choose(media: MediaInfo, *, requested: str | None = None, input_name: str = "",
           preview: bool = False) -> StreamPlan:
    """The output format and its stream plan.

    ``requested`` (an extension, e.g. ``".webm"``): that format, or BadInput naming the formats that
    can carry everything when it cannot. None: the input's own format (by ``input_name``'s extension,
    else its container) where it can carry the result, else the first of FALLBACK that can; when
    none can, Matroska with the streams it cannot carry left out (reported in the plan's problems).
    """
    if requested is not None:
        fmt = format_for(requested)
        plan = plan_streams(fmt, media, preview=preview)
        if plan.problems:
            able = [f.ext for f in FORMATS.values() if not plan_streams(f, media, preview=preview).problems]
            where = f"write {_either(able)} instead" if able else "no output format here carries all of it"
            raise BadInput(f"{fmt.label} ({fmt.ext}) cannot carry this video's {'; '.join(plan.problems)}: {where}")
        return plan
    for ext in dict.fromkeys([_own_ext(media, input_name), *FALLBACK]):
        if ext is None:
            continue
        plan = plan_streams(FORMATS[ext], media, preview=preview)
        if not plan.problems:
            return plan
    return plan_streams(FORMATS[".mkv"], media, preview=preview)


def _either(exts: list[str]) -> str:
    return exts[0] if len(exts) == 1 else f"{', '.join(exts[:-1])} or {exts[-1]}"


def _own_ext(media: MediaInfo, input_name: str) -> str | None:
    ext = Path(input_name).suffix.lower()
    if ext in FORMATS:
        return ext
    demuxer = media.container.split(",")[0]
    return {"mov": ".mp4", "matroska": ".mkv"}.get(demuxer)


def output_args(plan: StreamPlan, *, mix: str, picture: str | None, bitrate: str, fast: bool,
                reencode: bool, end_s: float, copy_mix: str | None = None) -> list[str]:
    """ffmpeg output options (up to the muxer name; the caller adds the file) mapping every stream
    of ``plan`` from input 0 (the video) in order: the scored mix from ``mix`` (a map target:
    ``1:a:0`` or a filter label) encoded at ``bitrate`` (AAC's fast coder with ``fast``), a
    preview's picture from ``picture`` (a map target; None: the input's own, re-encoded small with
    ``reencode``), everything else copied or converted as planned. The output is cut at ``end_s``
    seconds (the end of the last shown frame on the output timeline); global, chapter and
    per-stream metadata are kept (ffmpeg drops creation_time unless the global map is explicit).
    ``copy_mix``: the scored track comes already encoded (compose's split encode) and is copied,
    through that bitstream filter when the string is not empty."""
    fmt = plan.format
    args: list[str] = ["-map_metadata", "0", "-map_chapters", "0"]
    for k, stream in enumerate(plan.streams):
        own = "0:V:0" if stream.source is None else f"0:{stream.source}"
        if stream.action == "mix" and copy_mix is not None:
            args += ["-map", mix, f"-c:{k}", "copy", *([f"-bsf:{k}", copy_mix] if copy_mix else []),
                     f"-disposition:{k}", "default"]
        elif stream.action == "mix":
            args += ["-map", mix, f"-c:{k}", stream.codec, f"-b:{k}", bitrate]
            if fast and stream.codec == "aac":
                args += [f"-aac_coder:{k}", "fast"]
            # The scored track is what a player should play: the default, whichever track had the
            # flag (a silent default track is why another became the main one).
            args += [f"-disposition:{k}", "default"]
        elif stream.action == "picture":
            args += ["-map", picture or own,
                     *([opt.replace("{k}", str(k)) for opt in PREVIEW_ENCODE] if reencode else [f"-c:{k}", "copy"])]
        elif stream.action == "copy":
            args += ["-map", own, f"-c:{k}", "copy"]
        else:  # convert (text subtitles) or encode (an audio codec the format cannot carry)
            args += ["-map", own, f"-c:{k}", stream.codec]
            if stream.action == "encode":
                args += [f"-b:{k}", OTHER_AUDIO_BITRATE]
        if stream.kind == "audio" and stream.action != "mix" and stream.default:
            args += [f"-disposition:{k}", "-default"]  # its other flags (comment, dub ...) stay
        if stream.source is not None:  # language, title, creation time ... of the stream it stands for
            args += [f"-map_metadata:s:{k}", f"0:s:{stream.source}"]
    args += ["-t", f"{end_s:.6f}"]
    if fmt.faststart:
        # moov first so players start before the download ends; a timecode track only where the
        # input had one (the muxer writes it from the video's timecode tag).
        args += ["-movflags", "+faststart", "-write_tmcd", "1" if plan.write_timecode else "0"]
    return [*args, "-f", fmt.muxer]
