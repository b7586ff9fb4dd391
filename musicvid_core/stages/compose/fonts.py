"""Which General MIDI SoundFont renders the procedural music, and how TinySoundFont loads it.

The default is the best freely licensed bank installed (``CANDIDATES``, first found wins):
MuseScore General (MIT; Debian ``musescore-general-soundfont``, an .sf3 of Vorbis-compressed
samples: ``make system-deps`` installs it), then FluidR3 GM (``fluid-soundfont-gm``), then the
TimGM6mb that pretty_midi bundles. An .sf3 is only a candidate for a renderer that reads it
(midirenderer reads .sf2 only, so a pip user falls back to the best .sf2). docs/music.md
("SoundFont") has the measurements behind the order.

**Modulators.** TinySoundFont ignores SF2 modulators. MuseScore General's grand piano (and a few
more of its presets) sets a low-pass near 300 Hz and opens it with velocity modulators
(velocity -> filter cutoff, velocity -> mod-envelope-to-cutoff); played without them the piano
sounds as if under a blanket (its 2-6 kHz band 34 dB under FluidR3's). :func:`bake_velocity_filters`
folds every such modulator into the cutoff generator at velocity ``BAKE_VELOCITY``, in place
(same sizes, so the file stays valid), before TinySoundFont parses the bytes.
"""

from __future__ import annotations

import logging
import struct
import time
from pathlib import Path

import pretty_midi

log = logging.getLogger(__name__)

SF3_DIR = Path("/usr/share/sounds/sf3")
SF2_DIR = Path("/usr/share/sounds/sf2")
MUSESCORE = SF3_DIR / "MuseScore_General.sf3"  # Debian's alternatives link: the Full (HQ) or Lite bank
FLUID_R3 = SF2_DIR / "FluidR3_GM.sf2"
BUNDLED = Path(pretty_midi.__file__).resolve().parent / "TimGM6mb.sf2"
CANDIDATES = (MUSESCORE, SF3_DIR / "MuseScore_General_Full.sf3", SF3_DIR / "MuseScore_General_Lite.sf3",
              SF2_DIR / "MuseScore_General.sf2",  # musescore-general-soundfont-lossless
              FLUID_R3, BUNDLED)

BAKE_VELOCITY = 100  # the velocity whose filter opening is baked in (the composer's parts play ~70-110)
_GEN_FC, _GEN_MODENV_FC, _GEN_INSTRUMENT, _GEN_SAMPLE = 8, 11, 41, 53
_FC_OPEN = 13500  # absolute cents: the SF2 value meaning "no filter" (~20 kHz)
_VELOCITY_SOURCE = 2  # a modulator source's index for note-on velocity (when its CC bit is clear)


def candidates(reads_sf3: bool) -> list[Path]:
    """The default SoundFonts in order of preference that exist here (.sf3 ones only if ``reads_sf3``)."""
    return [p for p in CANDIDATES if p.is_file() and (reads_sf3 or p.suffix.lower() != ".sf3")]


def load_tsf(path: Path):
    """A parsed tinysoundfont SoundFont of ``path`` with its velocity filter modulators baked in
    (:func:`bake_velocity_filters`). Costs once per process: ~5 s of CPU and ~1 GB of memory for
    MuseScore General Full (Vorbis decoding into float samples), ~0.3 s / 0.4 GB for FluidR3,
    ~0.02 s for TimGM6mb. Raises OSError when unreadable, RuntimeError when it is no SoundFont."""
    from tinysoundfont import _tinysoundfont as tsf

    t0 = time.process_time()
    font = tsf.SoundFont(baked_bytes(path))
    log.info("SoundFont %s loaded in %.2f s of CPU", path, time.process_time() - t0)
    return font


def baked_bytes(path: Path, raw: bytes | None = None) -> bytes:
    """The bytes of ``path`` (``raw`` when already read) with :func:`bake_velocity_filters` applied;
    as read when that fails (a malformed font: TinySoundFont decides). Raises OSError when unreadable."""
    raw = path.read_bytes() if raw is None else raw
    try:
        return bake_velocity_filters(raw)
    except (struct.error, ValueError, IndexError, KeyError) as exc:
        log.warning("SoundFont %s: modulators not baked in (%s)", path, exc)
        return raw


def baked_buffer(path: Path) -> bytes | bytearray:
    """:func:`baked_bytes` of ``path`` read into one bytearray and baked there, so the bank is held
    once, not three times (fontsubset reads any bytes-like; TinySoundFont's loader wants bytes).
    Raises OSError when unreadable."""
    buf = bytearray(path.stat().st_size)
    with path.open("rb") as f:
        f.readinto(buf)
    return baked_bytes(path, buf)


def bake_velocity_filters(raw: bytes | bytearray, velocity: int = BAKE_VELOCITY) -> bytes | bytearray:
    """``raw`` SoundFont bytes with every velocity modulator aimed at the filter cutoff (generator 8)
    or the mod envelope's depth on it (11) added to the instrument zones' cutoff generator, as the
    modulator would set it at ``velocity`` (a unipolar or bipolar, normal or reversed linear source;
    modulators with a second amount source are left out). Preset-level modulators count for the
    instruments their zones play. Returns ``raw`` unchanged when nothing needed baking; a bytearray
    is baked in place. Raises ValueError (or struct.error) for a file without the SF2 ``pdta``
    lists, before anything is written."""
    chunks = _pdta(raw)
    if not chunks:
        raise ValueError("no pdta list: not a SoundFont")

    def records(name: str, fmt: str) -> list[tuple]:
        offset, size = chunks[name]
        n = struct.calcsize(fmt)
        return [struct.unpack_from(fmt, raw, offset + i) for i in range(0, size - size % n, n)]

    pbag, pgen, pmod = records("pbag", "<HH"), records("pgen", "<Hh"), records("pmod", "<HHhHH")
    inst, ibag, igen, imod = records("inst", "<20sH"), records("ibag", "<HH"), records("igen", "<Hh"), \
        records("imod", "<HHhHH")
    amount = float(velocity) / 127.0
    from_presets: dict[int, float] = {}  # instrument -> cents its presets' modulators add
    for b in range(len(pbag) - 1):
        cents = _filter_cents([pmod[m] for m in range(pbag[b][1], pbag[b + 1][1])], amount)
        for g in range(pbag[b][0], pbag[b + 1][0]):
            if pgen[g][0] == _GEN_INSTRUMENT and cents:
                from_presets[pgen[g][1] & 0xFFFF] = max(from_presets.get(pgen[g][1] & 0xFFFF, 0.0), cents)
    writes: list[tuple[int, int]] = []  # (offset, cutoff): written once all is read, so an error leaves raw as it was
    for i in range(len(inst) - 1):
        bags = range(inst[i][1], inst[i + 1][1])
        glob = [imod[m] for m in range(ibag[bags[0]][1], ibag[bags[0] + 1][1])] if bags and not any(
            igen[g][0] == _GEN_SAMPLE for g in range(ibag[bags[0]][0], ibag[bags[0] + 1][0])) else []
        for b in bags:
            cents = from_presets.get(i, 0.0) + _filter_cents(glob + [imod[m] for m in range(ibag[b][1], ibag[b + 1][1])],
                                                             amount)
            if not cents:
                continue
            for g in range(ibag[b][0], ibag[b + 1][0]):
                if igen[g][0] == _GEN_FC:
                    writes.append((chunks["igen"][0] + 4 * g, int(round(min(_FC_OPEN, igen[g][1] + cents)))))
    if not writes:
        return raw
    out = raw if isinstance(raw, bytearray) else bytearray(raw)
    for offset, value in writes:
        struct.pack_into("<Hh", out, offset, _GEN_FC, value)
    return out if out is raw else bytes(out)


def _filter_cents(mods: list[tuple], amount: float) -> float:
    """Cents that velocity modulators among ``mods`` add to the cutoff at velocity fraction ``amount``
    (each distinct source/destination pair once, its largest)."""
    best: dict[tuple[int, int], float] = {}
    for src, dest, cents, amount_src, _ in mods:
        if dest not in (_GEN_FC, _GEN_MODENV_FC) or amount_src != 0 or src & 0x80 or src & 0x7F != _VELOCITY_SOURCE:
            continue
        v = 1.0 - amount if src & 0x100 else amount  # D: the source runs max -> min
        v = 2.0 * v - 1.0 if src & 0x200 else v  # P: bipolar
        best[(src, dest)] = max(best.get((src, dest), -1e9), cents * v)
    return sum(best.values())


def _pdta(raw: bytes) -> dict[str, tuple[int, int]]:
    """Offsets and sizes of the sub-chunks of a RIFF sfbk file's ``pdta`` list."""
    out: dict[str, tuple[int, int]] = {}
    if raw[:4] != b"RIFF" or raw[8:12] != b"sfbk":
        return out
    for cid, off, size in _chunks(raw, 12, len(raw)):
        if cid == b"LIST" and raw[off:off + 4] == b"pdta":
            out = {sub.decode("latin-1"): (o, s) for sub, o, s in _chunks(raw, off + 4, off + size)}
    return out


def _chunks(raw: bytes, offset: int, end: int):
    while offset + 8 <= end:
        cid, size = struct.unpack_from("<4sI", raw, offset)
        yield cid, offset + 8, size
        # RIFF pads odd chunks to even sizes, but some .sf3 writers (MuseScore General Lite's sdta) do not
        pad = size & 1 and raw[offset + 8 + size:offset + 12 + size] not in (b"LIST", b"pdta")
        offset += 8 + size + pad
