"""The music bus summed in numpy, block by block, into one float WAV (issue 18).

The filter graph's music bus (filtergraph.music_bus) gives ffmpeg one input per segment, each
delayed to its start with ``adelay``: every clip then streams silence from the video's start to its
own, so ``amix`` sums N full-length streams and a 15-minute video with 113 segments cost 20-30 s
per pass (twice with speech). Here each clip is added only where it plays: the cost is one read of
the clips and one write of the bus, about 1 s for 15 minutes, and memory stays at one block
(BLOCK_SAMPLES) whatever the duration.

Same figures as the graph (filtergraph.clip_shape gives both the placement, the fades and the
gains): clip i cut to its length, faded in linearly (afade's ``tri``), faded out with a quarter
sine (``qsin``) over its release tail, scaled, placed on its first sample; the sum faded out
linearly over plan.fade_out_s before the end and exactly ``total`` samples long. A real
recording's plan (``plan.music``) keeps its contiguous clips without fades at the joins
(clip_shape). Tested equal to the graph's music bus (tests/test_mixing_render.py).
"""

from __future__ import annotations

import math
from pathlib import Path

from musicvid_core.domain.plan import Plan
from musicvid_core.media import run_ffmpeg
from musicvid_core.stages.mix.filtergraph import clip_shape, samples, stereo_format

BLOCK_SAMPLES = 1 << 17  # 2.7 s at 48 kHz: 1 MB of float stereo per block
WAV_LIMIT_BYTES = 0xFFFFFFFF - 1024  # past this a RIFF WAV cannot say its size: RF64


def render_music(plan: Plan, clips: list[Path], dest: Path, *, sample_rate: int, total: int, work: Path,
                 timeout: float) -> Path:
    """Write the plan's music bus to ``dest``: a float stereo WAV of exactly ``total`` samples at
    ``sample_rate`` Hz, made of ``clips`` (one audio file per segment). Clips in another rate or
    channel layout are first converted by ffmpeg in one run (the graph's own ``aformat``: the same
    resampler and channel mapping), into ``work``. Returns ``dest``. Raises MediaToolError when
    that conversion fails or runs past ``timeout`` seconds."""
    import numpy as np
    import soundfile as sf

    clips = _conformed(clips, sample_rate=sample_rate, work=work, timeout=timeout)
    shapes = [clip_shape(plan, i, sample_rate) for i in range(len(clips))]
    order = sorted(range(len(clips)), key=lambda i: shapes[i][4])
    fade_out = min(samples(plan.fade_out_s, sample_rate), total)
    fmt = "RF64" if total * 8 > WAV_LIMIT_BYTES else "WAV"
    open_files: dict[int, sf.SoundFile] = {}
    waiting = list(order)
    try:
        with sf.SoundFile(str(dest), "w", samplerate=sample_rate, channels=2, subtype="FLOAT", format=fmt) as out:
            for b0 in range(0, total, BLOCK_SAMPLES):
                b1 = min(total, b0 + BLOCK_SAMPLES)
                block = np.zeros((b1 - b0, 2), dtype=np.float32)
                while waiting and shapes[waiting[0]][4] < b1:  # clips that start in this block
                    i = waiting.pop(0)
                    open_files[i] = sf.SoundFile(str(clips[i]))
                for i in list(open_files):
                    length, fade_in, fade_out_i, gain_db, delay = shapes[i]
                    end = delay + min(length, open_files[i].frames)
                    lo, hi = max(b0, delay), min(b1, end)
                    if hi > lo:
                        f = open_files[i]
                        f.seek(lo - delay)
                        x = f.read(hi - lo, dtype="float32", always_2d=True)
                        k = np.arange(lo - delay, lo - delay + len(x))
                        g = np.full(len(x), 10 ** (gain_db / 20), dtype=np.float64)
                        if fade_in:
                            g *= np.clip(k / fade_in, 0.0, 1.0)  # afade tri: sample k at k/n
                        if fade_out_i:  # afade qsin over the last n samples: sin(pi/2 x samples left / n)
                            g *= np.sin(math.pi / 2 * np.clip((length - k) / fade_out_i, 0.0, 1.0))
                        block[lo - b0:lo - b0 + len(x)] += (x * g[:, None]).astype(np.float32)
                    if end <= b1:
                        open_files.pop(i).close()
                if fade_out and b1 > total - fade_out:
                    k = np.arange(b0, b1) - (total - fade_out)
                    block *= np.clip((fade_out - k) / fade_out, 0.0, 1.0).astype(np.float32)[:, None]
                out.write(block)
    finally:
        for f in open_files.values():
            f.close()
    return dest


def _conformed(clips: list[Path], *, sample_rate: int, work: Path, timeout: float) -> list[Path]:
    """The clips as stereo at ``sample_rate``: those already so as they are, the others converted in
    one ffmpeg run (the filter graph's aformat) into ``work``."""
    import soundfile as sf

    odd = []
    for i, clip in enumerate(clips):
        try:
            info = sf.info(str(clip))
            if info.samplerate == sample_rate and info.channels == 2:
                continue
        except RuntimeError:  # a format libsndfile does not read: ffmpeg converts it
            pass
        odd.append(i)
    if not odd:
        return list(clips)
    out = list(clips)
    args: list[str] = ["-y"]
    for i in odd:
        args += ["-i", str(clips[i])]
    for n, i in enumerate(odd):
        out[i] = Path(work, f"clip{i}.wav")
        args += ["-map", f"{n}:a:0", "-af", stereo_format(sample_rate), "-c:a", "pcm_f32le", str(out[i])]
    run_ffmpeg(args, timeout=timeout, what="clip conversion")
    return out
