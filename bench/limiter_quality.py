"""Benchmark (issue 18): the in-process true-peak limiter (stages/mix/limiter.py) against the chain
it replaced (``alimiter`` at 4x the rate inside the final run), on the same premaster at the same
make-up gain. A measurement, not a test.

    python bench/limiter_quality.py                 # 5 minutes of library music, gains +8, +10, +12 dB
    python bench/limiter_quality.py --premaster FILE.wav --gains 5.6

The premaster is the bundled library's tracks one after another (real music: drums, bass,
transients), normalised to -20 LUFS, 48 kHz stereo; or a premaster WAV you give (e.g. one kept from
a `musicvid run`). For each make-up gain and each limiter, with the ceiling at -2 dBFS (the mix
stage's: the -1 dBTP target less its 1 dB margin for AAC):

- **loudness** (LUFS) and **true peak** (dBTP) of the master, by ffmpeg's ebur128;
- **true peak after AAC** (256 kbit/s, the mix stage's coder), decoded and metered;
- **what the limiter changed**: the master minus the premaster times the gain (the alimiter master
  aligned by cross-correlation), its energy against the master's (dB; lower: less altered), and
  how much of the time the gain is more than 1 dB and 3 dB down;
- **CPU seconds**: ffmpeg's whole chain (resample, alimiter, resample) against limiter.analyse
  plus the curve and the streamed master (one gain).

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from musicvid_core.media import ffmpeg_exe
from musicvid_core.metrics.loudness import parse_ebur128_summary
from musicvid_core.stages.mix import limiter

SR = 48000
CEILING_DB = -2.0


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def ffmpeg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-y", *args], check=True,
                          capture_output=True, text=True)


def meter(path: Path) -> tuple[float, float]:
    report = parse_ebur128_summary(ffmpeg("-i", str(path), "-af", "ebur128=peak=true", "-f", "null", "-").stderr)
    return report.integrated_lufs, report.true_peak_dbtp


def after_aac(path: Path, tmp: Path) -> float:
    ffmpeg("-i", str(path), "-c:a", "aac", "-b:a", "256k", str(tmp / "x.m4a"))
    return meter(tmp / "x.m4a")[1]


def alimiter_master(premaster: Path, gain_db: float, dest: Path) -> float:
    """The old final run's chain (aac_split.master_chain), written to a WAV; its CPU seconds."""
    from aac_split import master_chain  # this folder, on the path when run as a script

    before = children_cpu()
    ffmpeg("-i", str(premaster), "-af",
           master_chain(gain_db, limit_db=CEILING_DB, total=sf.info(str(premaster)).frames),
           "-c:a", "pcm_f32le", str(dest))
    return children_cpu() - before


def ours_master(premaster: Path, gain_db: float, dest: Path) -> float:
    """limiter.analyse, the curve and the streamed master, written to a WAV; its CPU seconds."""
    before = time.process_time()
    peaks = limiter.analyse(premaster, floor_db=CEILING_DB - gain_db - 3.0)
    data = b"".join(limiter.master_blocks(premaster, gain_db, limiter.curve(peaks, gain_db, CEILING_DB),
                                                 chunk=peaks.chunk))
    spent = time.process_time() - before
    dest.write_bytes(data)
    return spent


def altered(premaster: np.ndarray, master: np.ndarray, gain_db: float) -> tuple[float, float, float]:
    """(energy of master - gain x premaster against the master's, dB; share of samples more than 1 dB
    and 3 dB down). The master is first aligned to the premaster (alimiter's latency compensation
    is whole samples at 4x the rate)."""
    linear = premaster * 10 ** (gain_db / 20)
    probe = slice(SR, SR + SR * 4)
    lags = range(-8, 9)
    best = max(lags, key=lambda k: float(np.dot(np.roll(master[:, 0], -k)[probe], linear[probe, 0])))
    master = np.roll(master, -best, axis=0)
    err = master - linear
    level = 10 * np.log10(max(float(np.sum(err ** 2)), 1e-30) / np.sum(master ** 2))  # -300: untouched
    loud = np.abs(linear).max(axis=1) > 1e-3
    ratio = np.abs(master).max(axis=1)[loud] / np.abs(linear).max(axis=1)[loud]
    return float(level), float(np.mean(ratio < 10 ** (-1 / 20))), float(np.mean(ratio < 10 ** (-3 / 20)))


def library_premaster(minutes: float, dest: Path) -> Path:
    import pyloudnorm
    from aac_split import library_music  # this folder, on the path when run as a script

    x = library_music(minutes * 60).astype(np.float64)
    x *= 10 ** ((-20.0 - pyloudnorm.Meter(SR).integrated_loudness(x)) / 20)
    sf.write(dest, x.astype(np.float32), SR, subtype="FLOAT")
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--premaster", type=Path)
    parser.add_argument("--gains", type=float, nargs="+", default=[8.0, 10.0, 12.0])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        premaster = args.premaster or library_premaster(args.minutes, tmp / "premaster.wav")
        dry = sf.read(str(premaster), dtype="float32", always_2d=True)[0]
        loud, peak = meter(premaster)
        print(f"premaster: {len(dry) / SR / 60:.1f} min, {loud:.1f} LUFS, true peak {peak:.1f} dBTP; "
              f"ceiling {CEILING_DB} dBFS", flush=True)
        print("gain | limiter | LUFS | dBTP | dBTP after AAC | altered (dB) | >1 dB down | >3 dB down | CPU s")
        for gain in args.gains:
            for name, make in (("alimiter 4x", alimiter_master), ("in process", ours_master)):
                dest = tmp / f"{name[:2]}.wav"
                cpu = make(premaster, gain, dest)
                lufs, tp = meter(dest)
                master = sf.read(str(dest), dtype="float32", always_2d=True)[0]
                level, down1, down3 = altered(dry, master, gain)
                print(f"+{gain:g} dB | {name} | {lufs:.1f} | {tp:.1f} | {after_aac(dest, tmp):.1f} | {level:.1f} | "
                      f"{100 * down1:.1f} % | {100 * down3:.1f} % | {cpu:.2f}", flush=True)


if __name__ == "__main__":
    main()
