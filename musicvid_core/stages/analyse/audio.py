"""Audio features of the source's first audio stream: loudness (BS.1770) and speech regions.

Both come out of the single analysis decode (see features.py), which sends the audio through
ffmpeg's ``ebur128`` meter (its per-100 ms readings written to a text file) and on to a 16 kHz mono
WAV for the voice activity detector. This module builds that audio branch and reads its outputs.

Loudness is measured by ffmpeg on the original channels, before any downmix: BS.1770 weights
channels (surrounds +1.5 dB, LFE excluded) and sums their power, which a mono downmix cannot
reproduce (identical L/R read 3 dB lower once averaged). The meter agrees with pyloudnorm to
~0.1 dB (a test checks it).
"""

from __future__ import annotations

import math
from array import array
from pathlib import Path

import numpy as np

from musicvid_core.domain.features import Curve, Region

SILENCE_LUFS = -70.0  # floor for every loudness value (BS.1770's absolute gate)
LOUDNESS_HZ = 2.0  # short-term curve rate
SHORT_TERM_S = 3.0  # short-term window (EBU R128)
_MOMENTARY_S = 0.4  # ebur128's momentary window; its readings come every 100 ms
_METER_STEP_S = 0.1

VAD_RATE = 16000
VAD_FRAME_S = 0.03  # webrtcvad accepts 10, 20 or 30 ms frames
VAD_AGGRESSIVENESS = 3  # 0..3; 3 rejects steady tones and music beds best
SPEECH_MERGE_GAP_S = 0.3  # pauses between words and phrases stay inside one region
SPEECH_MIN_S = 0.2  # shorter blips are clicks and plosive-like noise, not speech
SPEECH_MODULATION_DB = 3.0  # level swing (std over ~0.5 s) below which "speech" is a steady sound
_MODULATION_FRAMES = 17  # 0.51 s at 30 ms: about two syllables


def audio_output_args(loudness_file: str, wav_file: str, track: int = 0) -> list[str]:
    """ffmpeg output options (for audio track ``track``, the main one: ``0:a:track``) writing the
    loudness readings and the VAD's 16 kHz mono s16 WAV. ``aresample=async=1:first_pts=0`` pads or
    trims the start so WAV sample 0 is the output timeline's 0 s, the same origin as the video
    frames' timestamps."""
    chain = (f"ebur128=metadata=1,ametadata=mode=print:file={loudness_file},"
             f"aresample={VAD_RATE}:async=1:first_pts=0")
    return ["-map", f"0:a:{track}", "-af", chain, "-ac", "1", "-c:a", "pcm_s16le", "-f", "wav", wav_file]


def read_loudness(path: str | Path, origin: float, duration: float) -> tuple[Curve, float]:
    """The short-term loudness curve (LUFS at ``LOUDNESS_HZ``, 3 s windows centred on each time,
    -70 for silence) and the integrated loudness (LUFS, -70 floor) of an audio stream.

    ``origin`` is the output-timeline time (s) of the first video frame; returned times are seconds
    from that frame, within [0, duration]. Each curve point averages the power of the 400 ms
    momentary readings inside its window, so clips shorter than 3 s still get honest values. A
    stream too short for one reading (or that decoded to nothing) measures as silence.
    """
    ends, momentary, integrated = _meter_readings(Path(path))
    ends = [end - origin for end in ends]
    count = max(1, math.floor(duration * LOUDNESS_HZ + 1e-9) + 1)
    times = [min(duration, i / LOUDNESS_HZ) for i in range(count)]
    if not ends:
        return Curve(times=times, values=[SILENCE_LUFS] * count), integrated
    end_arr = np.asarray(ends)
    # power (not dB) so windows average like the meter does; -120.7 readings are digital silence
    power = np.where(np.asarray(momentary) <= -120.0, 0.0, 10.0 ** ((np.asarray(momentary) + 0.691) / 10))
    cumulative = np.concatenate([[0.0], np.cumsum(power)])
    values = []
    for t in times:
        lo = max(0.0, t - SHORT_TERM_S / 2) + _MOMENTARY_S
        hi = min(duration, t + SHORT_TERM_S / 2)
        a, b = np.searchsorted(end_arr, [lo - 1e-6, hi + 1e-6])
        if b <= a:  # window shorter than one momentary reading: take the nearest one
            a = int(min(len(end_arr) - 1, np.searchsorted(end_arr, t)))
            b = a + 1
        mean_power = (cumulative[b] - cumulative[a]) / (b - a)
        values.append(_floor(-0.691 + 10 * math.log10(mean_power)) if mean_power > 0 else SILENCE_LUFS)
    return Curve(times=times, values=values), integrated


def _meter_readings(path: Path) -> tuple[list[float], list[float], float]:
    """(end times on the output timeline, momentary LUFS, final integrated LUFS) from ebur128's
    per-100 ms metadata as ametadata prints it (``frame:N pts:P pts_time:T`` then ``key=value``)."""
    ends: list[float] = []
    momentary: list[float] = []
    integrated = SILENCE_LUFS
    if not path.is_file():  # the stream decoded to nothing
        return ends, momentary, integrated
    frame_time: float | None = None
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("frame:"):
                frame_time = float(line.rsplit("pts_time:", 1)[1])
            elif line.startswith("lavfi.r128.M=") and frame_time is not None:
                end = frame_time + _METER_STEP_S
                if end >= _MOMENTARY_S - 1e-6:  # before 400 ms of audio the meter has no reading
                    ends.append(end)
                    momentary.append(float(line.split("=", 1)[1]))
            elif line.startswith("lavfi.r128.I="):
                integrated = _floor(float(line.split("=", 1)[1]))
    return ends, momentary, integrated


def _floor(lufs: float) -> float:
    return SILENCE_LUFS if not math.isfinite(lufs) else max(SILENCE_LUFS, round(lufs, 2))


def speech_regions(wav: str | Path, origin: float, duration: float, *,
                   aggressiveness: int = VAD_AGGRESSIVENESS) -> list[Region]:
    """Speech activity (seconds from the first video frame, within [0, duration]) in a 16 kHz mono
    s16 WAV whose sample 0 is output time 0; ``origin`` is the first video frame's output time.

    A 30 ms frame is speech when webrtcvad says so AND the level around it moves like speech does:
    webrtcvad alone calls a steady tone or a held chord speech, but syllables make the level swing
    by 5-10 dB within half a second while a tone or a music bed stays within ~1 dB. The WAV is read
    in blocks; per frame only two numbers are kept, so memory stays small for hours of audio.
    """
    import soundfile as sf
    import webrtcvad

    if not Path(wav).is_file():  # the stream decoded to nothing
        return []
    vad = webrtcvad.Vad(aggressiveness)
    frame = round(VAD_RATE * VAD_FRAME_S)
    skip = max(0, round(origin * VAD_RATE))
    voiced = array("b")
    level = array("d")  # frame energy, dB re 1 LSB^2
    with sf.SoundFile(str(wav)) as f:
        if f.samplerate != VAD_RATE or f.channels != 1:
            raise ValueError(f"VAD needs {VAD_RATE} Hz mono audio, got {f.samplerate} Hz x{f.channels}")
        f.seek(min(skip, f.frames))
        for block in f.blocks(blocksize=frame * 200, dtype="int16",
                              frames=max(0, min(f.frames - skip, round(duration * VAD_RATE)))):
            for i in range(0, len(block) - frame + 1, frame):
                chunk = block[i:i + frame]
                voiced.append(vad.is_speech(chunk.tobytes(), VAD_RATE))
                level.append(10 * math.log10(float(np.mean(chunk.astype(np.float64) ** 2)) + 1.0))
    if not voiced:
        return []
    speech = np.frombuffer(voiced, dtype=np.int8).astype(bool) & (_rolling_std(level) >= SPEECH_MODULATION_DB)
    return _regions(speech, VAD_FRAME_S, merge_gap_s=SPEECH_MERGE_GAP_S, min_s=SPEECH_MIN_S,
                    duration=duration)


def _rolling_std(values: array) -> np.ndarray:
    """Standard deviation of each value's centred window of ``_MODULATION_FRAMES`` (edges held)."""
    half = _MODULATION_FRAMES // 2
    x = np.pad(np.frombuffer(values, dtype=np.float64), half, mode="edge")
    c1 = np.concatenate([[0.0], np.cumsum(x)])
    c2 = np.concatenate([[0.0], np.cumsum(x * x)])
    n = _MODULATION_FRAMES
    mean = (c1[n:] - c1[:-n]) / n
    return np.sqrt(np.maximum(0.0, (c2[n:] - c2[:-n]) / n - mean * mean))


# --- music in the source ---------------------------------------------------------------------
MUSIC_FRAME_S = 0.25  # analysis frames (4000 samples at 16 kHz, FFT of 4096)
MUSIC_FLOOR_DBFS = -50.0  # quieter frames are silence, not music
MUSIC_FLATNESS_MAX = 0.3  # spectral flatness (80-4000 Hz power) under this: tonal, not noise
MUSIC_STABLE_COS = 0.9  # chroma of consecutive frames this similar: a held note or chord
MUSIC_STABLE_FRACTION = 0.6  # of the frame pairs within +-1 s (speech glides; music holds)
MUSIC_CHANGE_COS = 0.8  # some chroma within +-4 s this different: the harmony moves
MUSIC_CHANGE_WINDOW_S = 4.0
MUSIC_MERGE_GAP_S = 1.0
MUSIC_MIN_S = 2.0
MUSIC_BLOCK_FRAMES = 240  # frames analysed per block (60 s)
# The first and last second lack the context the tests need (+-1 s of held notes), and the VAD
# often hears a song's first notes as a short "speech" blip: a music region reaching into that
# edge, over sound that is tonal all the way, is taken to the edge (issue 17: the first half second
# of a song played 4-5 dB over the rest).
MUSIC_EDGE_S = 1.0


def music_regions(wav: str | Path, origin: float, duration: float,
                  speech: list[Region] | None = None) -> list[Region]:
    """Music in the source's own sound (seconds from the first video frame, within [0, duration]),
    from the analysis's 16 kHz mono WAV (sample 0 = output time 0, ``origin`` = the first video frame).

    A 0.25 s frame is music when it is all of:

    - not silent: RMS above MUSIC_FLOOR_DBFS;
    - tonal: spectral flatness (geometric / arithmetic mean of the 80-4000 Hz power) below
      MUSIC_FLATNESS_MAX (noise, wind and traffic are flat);
    - held: its 12-bin chroma (pitch-class energy, 80-2000 Hz) is nearly the same as the next
      frame's for most frame pairs within +-1 s (speech pitch glides all the time, notes are held);
    - moving: within +-4 s some frame's chroma differs clearly from it (a chord or melody change).
      A steady sine bed or hum is tonal and held but never changes: it is not music;
    - not speech (``speech``, the VAD's regions).

    Frames then merge across gaps under MUSIC_MERGE_GAP_S; regions shorter than MUSIC_MIN_S are
    dropped. Pure numpy on 4096-point FFTs: about 1 ms per second of audio. A song that holds one
    chord for more than 8 s is not seen as music during that chord (a known limit).
    """
    import soundfile as sf

    if not Path(wav).is_file():
        return []
    frame = round(VAD_RATE * MUSIC_FRAME_S)
    skip = max(0, round(origin * VAD_RATE))
    nfft = 4096
    freqs = np.fft.rfftfreq(nfft, 1 / VAD_RATE)
    band = (freqs >= 80) & (freqs <= 4000)
    cband = (freqs >= 80) & (freqs <= 2000)
    pitch_class = np.round(12 * np.log2(freqs[cband] / 440.0)).astype(int) % 12
    window = np.hanning(frame)
    levels, flatnesses, chromas = [], [], []
    # Block by block (MUSIC_BLOCK_FRAMES at a time), keeping three numbers and a chroma per frame:
    # memory stays flat however long the video (a whole 30 min spectrum would be ~0.5 GB).
    with sf.SoundFile(str(wav)) as f:
        f.seek(min(skip, f.frames))
        left = max(0, min(f.frames - skip, round(duration * VAD_RATE)))
        while left >= frame:
            x = f.read(min(left, MUSIC_BLOCK_FRAMES * frame), dtype="float32")
            left -= len(x)
            k = len(x) // frame
            if k == 0:
                break
            frames = x[:k * frame].reshape(k, frame).astype(np.float64)
            levels.append(10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12))
            power = np.abs(np.fft.rfft(frames * window, n=nfft, axis=1)) ** 2
            p = power[:, band] + 1e-12
            flatnesses.append(np.exp(np.mean(np.log(p), axis=1)) / np.mean(p, axis=1))
            cpower = np.sqrt(power[:, cband])
            chroma = np.stack([np.sum(cpower[:, pitch_class == pc], axis=1) for pc in range(12)], axis=1)
            chromas.append(chroma / (np.linalg.norm(chroma, axis=1, keepdims=True) + 1e-12))
    n = sum(len(v) for v in levels)
    if n < 3:
        return []
    level, flatness, chroma = np.concatenate(levels), np.concatenate(flatnesses), np.concatenate(chromas)
    times = np.arange(n) * MUSIC_FRAME_S
    tonal = (level > MUSIC_FLOOR_DBFS) & (flatness < MUSIC_FLATNESS_MAX)
    candidate = tonal.copy()
    for region in speech or []:
        candidate &= ~((times + MUSIC_FRAME_S > region.start) & (times < region.end))
    similar = np.sum(chroma[1:] * chroma[:-1], axis=1) >= MUSIC_STABLE_COS  # pair (i, i+1)
    reach = round(1.0 / MUSIC_FRAME_S)
    change = round(MUSIC_CHANGE_WINDOW_S / MUSIC_FRAME_S)
    music = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(candidate):
        pairs = similar[max(0, i - reach):min(n - 1, i + reach)]
        if not len(pairs) or pairs.mean() < MUSIC_STABLE_FRACTION:
            continue
        lo, hi = max(0, i - change), min(n, i + change + 1)
        # the harmony moves: another music-like frame nearby (not speech, not silence) differs
        others = chroma[lo:hi][candidate[lo:hi]]
        music[i] = bool(np.min(others @ chroma[i]) < MUSIC_CHANGE_COS)
    _reach_edges(music, tonal, round(MUSIC_EDGE_S / MUSIC_FRAME_S))
    regions = _regions(music, MUSIC_FRAME_S, merge_gap_s=MUSIC_MERGE_GAP_S, min_s=MUSIC_MIN_S,
                       duration=duration)
    if regions and music[-1] and duration - regions[-1].end < MUSIC_FRAME_S:
        regions[-1] = Region(start=regions[-1].start, end=round(duration, 3))  # the partial last frame too
    return regions


def _reach_edges(music: np.ndarray, tonal: np.ndarray, edge: int) -> None:
    """Extend (in place) the first music frame back to frame 0 and the last forward to the end
    when they lie within ``edge`` frames of it and every frame between is ``tonal``."""
    found = np.flatnonzero(music)
    if not len(found):
        return
    first, last = found[0], found[-1]
    if 0 < first <= edge and tonal[:first].all():
        music[:first] = True
    if 0 < len(music) - 1 - last <= edge and tonal[last + 1:].all():
        music[last + 1:] = True


def _regions(flags: np.ndarray, frame_s: float, *, merge_gap_s: float, min_s: float,
             duration: float) -> list[Region]:
    """Regions (seconds) covered by the set frames of ``flags`` (frame i spans i*frame_s onwards):
    neighbours closer than ``merge_gap_s`` merge, regions shorter than ``min_s`` are dropped,
    ends are clipped to ``duration``."""
    regions: list[tuple[float, float]] = []
    for index in np.flatnonzero(flags):
        start = index * frame_s
        if regions and start - regions[-1][1] < merge_gap_s:
            regions[-1] = (regions[-1][0], start + frame_s)
        else:
            regions.append((start, start + frame_s))
    return [Region(start=round(a, 3), end=round(min(b, duration), 3)) for a, b in regions
            if b - a >= min_s]
