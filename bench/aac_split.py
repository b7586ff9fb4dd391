"""Benchmark (issue 18): can the final run's AAC encode be split in two halves, encoded at once on
the two cores and spliced, without a trace at the splice? A measurement, not a pipeline change.

    python bench/aac_split.py                     # 15 minutes of library music, 256 kbit/s
    python bench/aac_split.py --minutes 5 --preroll 2 4 8
    python bench/aac_split.py --final-run         # the split's speed with the final run's whole work

The encode is ffmpeg's native AAC (the coder and bitrate the mix stage uses), one process per
half. Half A codes samples [0, S + P) and half B [S - P, N): S a whole number of 1024-sample
frames, P the pre-roll (frames). Both are written as ADTS; the spliced stream is A's frames up to
sample S and B's from sample S on (each decoded frame overlap-adds the one before it: at the
splice, A's last frame and B's first one, coded by two encoders from the same samples). Each
stream is decoded by ffmpeg and compared with the input (aligned by the encoder's 1024-sample
priming):

- **speed**: wall seconds of the single encode and of the two halves run together;
- **coding noise**: the error (decoded - input) in dB under the signal, whole file;
- **the splice**: the error's RMS in the 4096 samples around S, split vs single, and where the
  split's splice window ranks among the single encode's windows at every other frame boundary
  (a percentile: ~50 means the splice is as noisy as any other stretch of the coded music);
  the largest sample step across S in the decoded split against the single's largest there;
- **A's frames**: how many of A's kept frames are byte-identical to the single encode's (the
  encoder is causal: all of them, measured). So a splice anywhere can be tested cheaply: the
  single encode's frames up to S, then a short half B (its pre-roll and 4 s): ``--points``
  splices spread over the file, each ranked as above and against the single at the same place
  (the excess, dB).

With ``--final-run``, only the speed, single against two halves (128 frames of pre-roll), of three
workloads: the encode alone; the master chain (make-up gain, the limiter at 4x the rate:
``master_chain`` below, as the final run had it before the limiter moved in process, with a gain
that makes it act) and the encode; and that plus the
loopback decoder and the true-peak meter that the mix stage's final run adds (``-dec``, ebur128).

The input is the bundled library's tracks played one after another to the length asked (real
music: cymbals, bass, transients), at 48 kHz stereo. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from musicvid_core.media import ffmpeg_exe
from musicvid_core.stages.compose.track.audio import load_track
from musicvid_core.stages.compose.track.library import list_tracks
from musicvid_core.stages.mix.split import adts_frames

SR = 48000
FRAME = 1024
PRIMING = 1024  # ffmpeg's native AAC encoder delay (initial_padding)
BITRATE = "256k"
WINDOW = 4096


def library_music(seconds: float) -> np.ndarray:
    """The bundled tracks one after another, float32 (samples, 2), exactly ``seconds`` long."""
    parts, total, need = [], 0, int(seconds * SR)
    tracks = [t.path for t in list_tracks() if t.bundled]
    while total < need:
        for p in tracks:
            x = load_track(p, SR)
            parts.append(x)
            total += x.shape[0]
            if total >= need:
                break
    return np.concatenate(parts)[:need].astype(np.float32)


def encode(ff: str, pcm: Path, start: int, stop: int, dest: Path, *, chain: str = "",
           meter: bool = False) -> subprocess.Popen:
    """Start one encode of samples [start, stop) of the raw float file ``pcm`` to ADTS; ``chain``:
    an audio filter chain first; ``meter``: the encoded packets decoded again and metered (ebur128
    with true peak), as compose's final run does."""
    from musicvid_core.metrics.loudness import EBUR128_FILTER

    return subprocess.Popen([ff, "-hide_banner", "-nostdin", "-v", "error", "-f", "f32le", "-ar", str(SR), "-ac", "2",
                             "-ss", f"{start / SR:.9f}", "-t", f"{(stop - start) / SR:.9f}", "-i", str(pcm),
                             *(["-af", chain] if chain else []),
                             "-c:a", "aac", "-b:a", BITRATE, "-f", "adts", "-y", str(dest),
                             *(["-dec", "0:0", "-filter_complex", f"[dec:0]{EBUR128_FILTER}[meter]", "-map", "[meter]",
                                "-f", "null", "-"] if meter else [])])


def final_run_speeds(ff: str, pcm: Path, n: int, split: int, tmp: str, preroll: int = 128) -> None:
    """Wall seconds of one process against two halves run together, for the three workloads."""
    p = preroll * FRAME
    for label, chain, meter in (("encode alone", False, False), ("master chain + encode", True, False),
                                ("master chain + encode + meter (the final run's work)", True, True)):
        def one(start: int, stop: int, name: str, chain: bool = chain, meter: bool = meter) -> subprocess.Popen:
            text = master_chain(6.0, limit_db=-1.5, total=stop - start) if chain else ""
            return encode(ff, pcm, start, stop, Path(tmp, name), chain=text, meter=meter)

        t0 = time.perf_counter()
        finish(one(0, n, "single.aac"))
        single_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        finish(one(0, split + p, "a.aac"), one(split - p, n, "b.aac"))
        both_s = time.perf_counter() - t0
        print(f"{label}: single {single_s:.2f} s, two halves together {both_s:.2f} s ({both_s / single_s:.2f}x)",
              flush=True)


def master_chain(gain_db: float, *, limit_db: float, total: int) -> str:
    """The master chain the final run carried before the in-process limiter (stages/mix/limiter.py):
    the make-up gain, ``alimiter`` at 4x the rate (its sample peaks are true peaks there), back to the
    mix rate, exactly ``total`` samples. Kept here to measure what that work cost beside the encode."""
    limit = min(1.0, 10 ** (limit_db / 20))
    return (f"volume={gain_db}dB,aresample={4 * SR},alimiter=limit={limit:.6f}:attack=5:release=80"
            f":level=disabled:latency=1,aresample={SR},apad=whole_len={total},atrim=end_sample={total}")


def finish(*procs: subprocess.Popen) -> None:
    """Wait for the encodes; a failed one stops the bench (a stale file would be measured instead)."""
    for proc in procs:
        if proc.wait():
            raise SystemExit(f"an encode failed: {' '.join(map(str, proc.args))}")


def window_sequence(frame: bytes) -> int:
    """The first channel element's window_sequence (0 long, 1 long-start, 2 eight short, 3 long-stop)."""
    header = 7 if frame[1] & 0x01 else 9  # protection_absent: no CRC
    bits = int.from_bytes(frame[header:header + 4], "big")
    pos = 32
    def take(n: int) -> int:
        nonlocal pos
        pos -= n
        return (bits >> pos) & ((1 << n) - 1)
    element = take(3)
    take(4)  # instance tag
    if element == 1 and take(1):  # a CPE with a common window: ics_info follows at once
        take(1)
        return take(2)
    take(8)  # global_gain, then ics_info
    take(1)
    return take(2)


def decode(ff: str, adts: Path, n: int) -> np.ndarray:
    """The decoded samples that line up with input samples [0, n): the priming dropped."""
    raw = subprocess.run([ff, "-hide_banner", "-nostdin", "-v", "error", "-f", "aac", "-i", str(adts),
                          "-f", "f32le", "-ac", "2", "-ar", str(SR), "-"], check=True, capture_output=True).stdout
    x = np.frombuffer(raw, dtype=np.float32).reshape(-1, 2)[PRIMING:PRIMING + n]
    return np.pad(x, ((0, n - x.shape[0]), (0, 0))) if x.shape[0] < n else x


def window_rms(err: np.ndarray, centres: np.ndarray) -> np.ndarray:
    e2 = np.concatenate([[0.0], np.cumsum((err.astype(np.float64) ** 2).sum(axis=1))])
    a = np.clip(centres - WINDOW // 2, 0, err.shape[0])
    b = np.clip(centres + WINDOW // 2, 0, err.shape[0])
    return np.sqrt((e2[b] - e2[a]) / np.maximum(1, 2 * (b - a)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--preroll", type=int, nargs="+", default=[8, 32, 64], help="pre-roll of half B, frames")
    ap.add_argument("--points", type=int, default=40, help="further splice points tested (short half B)")
    ap.add_argument("--verbose", action="store_true", help="each splice point's figures")
    ap.add_argument("--final-run", action="store_true",
                    help="only the speed of the split with the final run's whole work (limiter, meter)")
    args = ap.parse_args()
    ff = ffmpeg_exe()
    x = library_music(args.minutes * 60)
    n = x.shape[0]
    split = (n // 2) // FRAME * FRAME
    with tempfile.TemporaryDirectory() as tmp:
        pcm = Path(tmp, "in.f32")
        x.tofile(pcm)
        if args.final_run:
            print(f"{args.minutes:g} min of library music, {BITRATE} AAC (ffmpeg native), split at {split / SR:.2f} s")
            final_run_speeds(ff, pcm, n, split, tmp)
            return
        t0 = time.perf_counter()
        finish(encode(ff, pcm, 0, n, Path(tmp, "single.aac")))
        single_s = time.perf_counter() - t0
        single_frames = adts_frames(Path(tmp, "single.aac").read_bytes())
        ref = decode(ff, Path(tmp, "single.aac"), n)
        err_single = ref - x
        boundaries = np.arange(WINDOW, n - WINDOW, FRAME)
        boundaries = boundaries[np.abs(boundaries - split) > 4 * WINDOW]
        single_windows = window_rms(err_single, boundaries)
        signal_db = 10 * np.log10(np.mean(x.astype(np.float64) ** 2))
        print(f"{args.minutes:g} min of library music, {BITRATE} AAC (ffmpeg native), split at sample {split} "
              f"({split / SR:.2f} s)")
        print(f"single encode: {single_s:.2f} s wall; coding noise "
              f"{10 * np.log10(np.mean(err_single.astype(np.float64) ** 2)) - signal_db:.1f} dB under the signal")
        step_single = float(np.abs(ref[split] - ref[split - 1]).max())
        for pre in args.preroll:
            p = pre * FRAME
            t0 = time.perf_counter()
            a = encode(ff, pcm, 0, split + p, Path(tmp, "a.aac"))
            b = encode(ff, pcm, split - p, n, Path(tmp, "b.aac"))
            finish(a, b)
            both_s = time.perf_counter() - t0
            fa = adts_frames(Path(tmp, "a.aac").read_bytes())
            fb = adts_frames(Path(tmp, "b.aac").read_bytes())
            # frame k decodes (with k - 1) the block of input samples [(k - 1) * FRAME, k * FRAME)
            keep_a = split // FRAME + 1  # frames 0 .. split / FRAME
            skip_b = p // FRAME + 1
            spliced = Path(tmp, "spliced.aac")
            spliced.write_bytes(b"".join(fa[:keep_a] + fb[skip_b:]))
            out = decode(ff, spliced, n)
            err = out - x
            at = window_rms(err, np.array([split]))[0]
            at_single = window_rms(err_single, np.array([split]))[0]
            rank = float(np.mean(single_windows <= at) * 100)
            same = sum(fa[k] == single_frames[k] for k in range(keep_a))
            step = float(np.abs(out[split] - out[split - 1]).max())
            whole = 10 * np.log10(np.mean(err.astype(np.float64) ** 2)) - signal_db
            print(f"pre-roll {pre} frames: two halves {both_s:.2f} s wall ({both_s / single_s:.2f}x the single); "
                  f"coding noise {whole:.1f} dB under the signal; splice window error {20 * np.log10(at):.1f} dBFS "
                  f"(single there {20 * np.log10(at_single):.1f}; percentile {rank:.0f} of the single's windows); "
                  f"step across the splice {step:.4f} (single {step_single:.4f}); "
                  f"A's kept frames identical to the single's: {same} of {keep_a}; "
                  f"frames {len(fa[:keep_a]) + len(fb[skip_b:])} vs {len(single_frames)}")
        rng = np.random.default_rng(0)
        points = np.sort(rng.integers(4 * WINDOW // FRAME, (n - 6 * SR) // FRAME, args.points)) * FRAME
        for pre in args.preroll:
            p = pre * FRAME
            ranks, excess = [], []
            for at in points:
                start = max(0, at - p)
                finish(encode(ff, pcm, start, min(n, at + 4 * SR), Path(tmp, "b.aac")))
                fb = adts_frames(Path(tmp, "b.aac").read_bytes())
                skip_b = (at - start) // FRAME + 1
                part = Path(tmp, "part.aac")
                lo = at // FRAME - 8  # a few frames of the single before the splice suffice to decode it
                part.write_bytes(b"".join(single_frames[lo:at // FRAME + 1] + fb[skip_b:skip_b + 16]))
                got = decode(ff, part, (at // FRAME + 1 - lo + 16) * FRAME)
                # block j of ``part`` (after the priming the decoder drops) is input block lo + j
                base = lo * FRAME
                seg = got[:min(got.shape[0], n - base)]
                err = seg - x[base:base + seg.shape[0]]
                local = window_rms(err, np.array([at - base]))[0]
                single_here = window_rms(err_single, np.array([at]))[0]
                ranks.append(float(np.mean(single_windows <= local) * 100))
                excess.append(20 * np.log10(local / single_here))
                seqs = (window_sequence(single_frames[at // FRAME]), window_sequence(fb[skip_b]),
                        window_sequence(single_frames[at // FRAME + 1]))
                if args.verbose:
                    print(f"   at {at / SR:8.2f} s: excess {excess[-1]:+5.1f} dB, percentile {ranks[-1]:3.0f}; "
                          f"window sequences: A's last {seqs[0]}, B's first {seqs[1]}, single's there {seqs[2]}")
            print(f"pre-roll {pre} frames, {len(points)} splice points: percentile among the single's windows "
                  f"median {np.median(ranks):.0f}, largest {max(ranks):.0f}; error over the single's at the same "
                  f"place median {np.median(excess):+.1f} dB, largest {max(excess):+.1f} dB")


if __name__ == "__main__":
    main()
