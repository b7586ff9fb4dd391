"""A SoundFont cut down to the presets one plan plays: same samples, same generators, so the same sound.

TinySoundFont decodes a whole bank when it parses it: MuseScore General's Vorbis samples become
~1.27 GB of floats, though a plan plays five or six of its presets. :func:`subset` copies the
chosen presets, the instruments their zones name and the samples those play into a new, valid
RIFF ``sfbk`` file (INFO as it was; ``sdta`` holding only those samples; ``pdta`` re-indexed), so
memory follows what is played. Given each preset's *span* (the keys and velocities its notes
play), the zones whose key range (generator 43) and velocity range (44) miss the span go too, and
their samples with them: a piano keeps the two octaves a part plays, not 88 keys of samples.
:func:`cached` builds it once per (bank SHA-256, preset set, spans) on disk.

Why by hand: no maintained PyPI library both reads and writes .sf2/.sf3 (sf2utils reads .sf2 only,
sf2-loader plays through fluidsynth); the format is nine fixed-size record lists (docs/music.md).

What keeps it identical (checked against tsf.h, the renderer's loader):
- **Zones.** ``tsf_note_on`` plays every region whose key and velocity ranges hold the note
  (velocity ``(short)(vel * 127)`` of the float ``n / 127``: ``n`` again for every MIDI velocity);
  a region is a preset zone's range intersected with an instrument zone's, so a zone whose own
  range misses the span can never sound for a note in it and is dropped (a zone without a range
  covers all and stays). A zone with no instrument (sample) link is a global zone when first and
  ignored elsewhere: the first one stays, the others go. Baking velocity modulators
  (fonts.BAKE_VELOCITY) changes cutoff generators only, never a range.
- **Lookup.** A program resolves as ``tsf_channel_set_presetnumber`` does on a channel at bank 0
  (:func:`lookup_chain`); every preset on that chain up to the first that exists is kept, in the
  bank's order, so an unknown program falls back to the same preset (or to none).
- **.sf3.** A compressed sample's ``start``/``end`` are byte offsets of its own Ogg stream in
  ``smpl`` and its loop points count decoded frames from its start: the blobs are copied as they
  are and only start/end move. The loader decodes samples back to back and a voice reads up to two
  frames past a sample's end, so each kept sample's successor in the bank is kept too (and its
  predecessor where an address offset reaches back).
- **.sf2.** Each sample is copied with its loop, any address-offset reach and PAD_FRAMES after it
  (the spec's 46 zero frames, which the voice's interpolation reads).
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from musicvid_core.stages.compose.fonts import _chunks

FORMATS = {"phdr": "<20sHHHIII", "pbag": "<HH", "pmod": "<HHhHH", "pgen": "<HH", "inst": "<20sH",
           "ibag": "<HH", "imod": "<HHhHH", "igen": "<HH", "shdr": "<20sIIIIIBbHH"}  # pdta, in file order
PAD_FRAMES = 46  # zero frames the SF2 spec puts after every sample
COMPRESSED = 0x30  # shdr sampleType bits that mark an .sf3 (Ogg Vorbis) sample, as tsf.h tests them
GEN_INSTRUMENT, GEN_SAMPLE = 41, 53
# address-offset generators: (fine, coarse) for start, end, loop start, loop end; a coarse unit is 32768 frames
_START, _END, _LOOP_START, _LOOP_END = (0, 4), (1, 12), (2, 45), (3, 50)
DRUM_BANK = 128
GEN_KEY_RANGE, GEN_VEL_RANGE = 43, 44  # amount: low byte the lowest, high byte the highest (inclusive)
FULL_SPAN = (0, 127, 0, 127)  # (lowest key, highest key, lowest velocity, highest velocity): all notes
VERSION = 2  # part of the cache key: bump when the output of subset() changes (2: zone spans)
CACHE_DIR = Path(tempfile.gettempdir()) / "musicvid-soundfonts"  # /tmp: the only writable place on Lambda


def lookup_chain(program: int, is_drum: bool) -> list[tuple[int, int]]:
    """(bank, preset) keys TinySoundFont tries, in order, for ``program`` on a channel at bank 0."""
    return [(DRUM_BANK, program), (DRUM_BANK, 0), (0, program)] if is_drum else [(0, program)]


def subset(raw: bytes | bytearray, presets: Iterable[tuple[int, bool]],
           spans: Mapping[tuple[int, bool], tuple[int, int, int, int]] | None = None) -> bytes:
    """The SoundFont ``raw`` (.sf2 or .sf3 bytes or bytearray) with only what ``presets`` ((GM
    program, is drum kit) pairs) play; with ``spans`` ((program, drum) -> (lowest key, highest key,
    lowest velocity, highest velocity), MIDI numbers, inclusive), only the zones of each preset that
    a note in its span plays (a preset without a span keeps every zone). Raises ValueError for bytes
    that are no RIFF sfbk file with sdta/smpl and the nine pdta lists, or for a bank that mixes
    compressed and plain samples."""
    if raw[:4] != b"RIFF" or raw[8:12] != b"sfbk":
        raise ValueError("not a RIFF sfbk SoundFont")
    lists = {bytes(raw[off:off + 4]): (off, size) for cid, off, size in _chunks(raw, 12, len(raw)) if cid == b"LIST"}
    if not {b"sdta", b"pdta"} <= lists.keys():
        raise ValueError("SoundFont without sdta/pdta lists")
    smpl = {cid: (o, s) for cid, o, s in _sub(raw, lists[b"sdta"])}.get(b"smpl")
    pdta = {cid.decode("latin-1"): (o, s) for cid, o, s in _sub(raw, lists[b"pdta"])}
    if smpl is None or not FORMATS.keys() <= pdta.keys():
        raise ValueError("SoundFont without smpl or one of the pdta lists")
    rec = {name: _records(raw, *pdta[name], fmt) for name, fmt in FORMATS.items()}
    phdr, pbag, pgen, inst, ibag, igen, shdr = (rec[n] for n in ("phdr", "pbag", "pgen", "inst", "ibag", "igen",
                                                                  "shdr"))
    keys = _kept_keys(phdr, presets, spans)
    kept_presets = [p for p in range(len(phdr) - 1) if (phdr[p][2], phdr[p][1]) in keys]
    # per kept preset its kept bags; per instrument the spans (a preset's, within the zone's range) it plays
    pbags, inst_spans = {}, {}
    for p in kept_presets:
        pbags[p] = _kept_bags(pbag, pgen, range(phdr[p][3], phdr[p + 1][3]), GEN_INSTRUMENT,
                              *keys[(phdr[p][2], phdr[p][1])])
        for b, span in pbags[p]:
            i = _link_of(pgen, pbag, b, GEN_INSTRUMENT)
            if span is not None and i is not None and i < len(inst) - 1:
                inst_spans.setdefault(i, []).append(span)
    kept_inst = sorted(inst_spans)
    ibags = {i: [b for b, _ in _kept_bags(ibag, igen, range(inst[i][1], inst[i + 1][1]), GEN_SAMPLE, *inst_spans[i])]
             for i in kept_inst}
    reach: dict[int, list[int]] = {}  # sample -> [most frames before start, most after end] an offset reaches
    for i in kept_inst:
        bags = range(inst[i][1], inst[i + 1][1])
        glob = _offsets(igen, ibag, bags[0]) if bags and not _sample_of(igen, ibag, bags[0]) else {}
        for b in ibags[i]:
            s = _sample_of(igen, ibag, b)
            if s is not None and s < len(shdr) - 1:
                offs = {**glob, **_offsets(igen, ibag, b)}
                r = reach.setdefault(s, [0, 0])
                r[0] = max(r[0], -min(0, offs.get(_START, 0), offs.get(_LOOP_START, 0)))
                r[1] = max(r[1], offs.get(_END, 0), offs.get(_LOOP_END, 0))
    for s in list(reach):  # a stereo sample's partner, so every link stays valid
        if shdr[s][8] < len(shdr) - 1:
            reach.setdefault(shdr[s][8], [0, 0])
    compressed = {bool(shdr[s][9] & COMPRESSED) for s in range(len(shdr) - 1)}
    if len(compressed) > 1:
        raise ValueError("SoundFont mixes compressed and plain samples")
    sf3 = compressed == {True}
    kept = set(reach)
    if sf3:  # the decoded neighbours a voice's interpolation (or a negative offset) reads
        kept |= {s + 1 for s in reach if s + 1 < len(shdr) - 1}
        kept |= {s - 1 for s, r in reach.items() if r[0] and s > 0}
    samples = sorted(kept)
    smpl_data, new_shdr = _samples(memoryview(raw)[smpl[0]:smpl[0] + smpl[1]], shdr, samples, reach, sf3)  # no copy
    inst_map = {old: new for new, old in enumerate(kept_inst)}
    sample_map = {old: new for new, old in enumerate(samples)}
    out = {name: bytearray() for name in FORMATS}
    for p in kept_presets:
        out["phdr"] += struct.pack(FORMATS["phdr"], *phdr[p][:3], len(out["pbag"]) // 4, *phdr[p][4:])
        _zones(out, rec, "p", [b for b, _ in pbags[p]], GEN_INSTRUMENT, inst_map)
    end = phdr[-1]
    out["phdr"] += struct.pack(FORMATS["phdr"], *end[:3], len(out["pbag"]) // 4, *end[4:])
    out["pbag"] += struct.pack("<HH", len(out["pgen"]) // 4, len(out["pmod"]) // 10)
    for i in kept_inst:
        out["inst"] += struct.pack("<20sH", inst[i][0], len(out["ibag"]) // 4)
        _zones(out, rec, "i", ibags[i], GEN_SAMPLE, sample_map)
    out["inst"] += struct.pack("<20sH", inst[-1][0], len(out["ibag"]) // 4)
    out["ibag"] += struct.pack("<HH", len(out["igen"]) // 4, len(out["imod"]) // 10)
    for name in ("pmod", "pgen", "imod", "igen"):
        out[name] += bytes(struct.calcsize(FORMATS[name]))  # the terminal record
    for s, row in zip(samples, new_shdr):
        link = sample_map.get(shdr[s][8], 0)
        out["shdr"] += struct.pack(FORMATS["shdr"], *row[:8], link, row[9])
    out["shdr"] += struct.pack(FORMATS["shdr"], *shdr[-1])
    info = raw[lists[b"INFO"][0] - 8:lists[b"INFO"][0] + lists[b"INFO"][1]] if b"INFO" in lists else b""
    sdta = _list(b"sdta", _chunk(b"smpl", smpl_data))
    pdta_out = _list(b"pdta", b"".join(_chunk(name.encode(), bytes(out[name])) for name in FORMATS))
    body = b"sfbk" + bytes(info) + sdta + pdta_out
    return b"RIFF" + struct.pack("<I", len(body)) + body


def cached(path: Path, presets: Iterable[tuple[int, bool]], load: Callable[[], bytes | bytearray], sha256: str,
           cache_dir: Path | None = None,
           spans: Mapping[tuple[int, bool], tuple[int, int, int, int]] | None = None) -> Path:
    """The file of :func:`subset` of the bank ``load()`` returns (``path``'s bytes, e.g. with its
    modulators baked in; ``sha256`` names those bytes), built once per (``sha256``, preset set,
    ``spans``, VERSION) in ``cache_dir`` (default CACHE_DIR) and written atomically, so ``load`` only runs on a miss.
    Raises OSError when unreadable or unwritable, ValueError as :func:`subset`."""
    chosen = sorted({(int(p), bool(d)) for p, d in presets})
    spans = {(int(p), bool(d)): tuple(int(v) for v in s) for (p, d), s in (spans or {}).items()}
    cache_dir = CACHE_DIR if cache_dir is None else cache_dir
    tag = hashlib.sha256(repr((VERSION, sha256, chosen, sorted(spans.items()))).encode()).hexdigest()[:24]
    target = cache_dir / f"{sha256[:16]}-{tag}{path.suffix.lower() or '.sf2'}"
    if target.is_file():
        return target
    data = subset(load(), chosen, spans or None)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)  # atomic: another process building the same subset writes the same bytes
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def hull(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The smallest span holding spans ``a`` and ``b``."""
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def covers(have: Mapping[tuple[int, bool], tuple], need: Mapping[tuple[int, bool], tuple]) -> bool:
    """Whether spans ``have`` hold every preset of ``need`` with its whole span."""
    return all(p in have and have[p][0] <= s[0] and s[1] <= have[p][1] and have[p][2] <= s[2] and s[3] <= have[p][3]
               for p, s in need.items())


def _kept_keys(phdr: list[tuple], presets: Iterable[tuple[int, bool]],
               spans: Mapping[tuple[int, bool], tuple[int, int, int, int]] | None) -> dict[tuple[int, int], list]:
    """(bank, preset) keys to keep, each chain's first the bank has, -> the spans its notes play
    (the full span for a program without one in ``spans``)."""
    have = {(h[2], h[1]) for h in phdr[:-1]}
    keys: dict[tuple[int, int], list] = {}
    for program, is_drum in presets:
        found = next((k for k in lookup_chain(int(program), bool(is_drum)) if k in have), None)
        if found is not None:
            span = FULL_SPAN if spans is None else spans.get((program, is_drum), FULL_SPAN)
            keys.setdefault(found, []).append(tuple(span))
    return keys


def _kept_bags(bag: list[tuple], gen: list[tuple], bags: range, link_gen: int,
               *spans: tuple[int, int, int, int]) -> list[tuple[int, tuple | None]]:
    """(bag, the part of ``spans``' hull within its ranges; None for a global zone) of each zone of
    ``bags`` that a note in one of ``spans`` plays (as tsf.h selects: the zone's own key and
    velocity ranges, all keys and velocities without), and the first bag when it is a global zone."""
    kept: list[tuple[int, tuple | None]] = []
    for b in bags:
        if _link_of(gen, bag, b, link_gen) is None:
            if b == bags[0]:
                kept.append((b, None))  # the global zone; one elsewhere is ignored by the loader
            continue
        own = {oper: (amount & 0xFF, amount >> 8) for oper, amount in (gen[g] for g in range(bag[b][0], bag[b + 1][0]))
               if oper in (GEN_KEY_RANGE, GEN_VEL_RANGE)}
        key, vel = own.get(GEN_KEY_RANGE, (0, 127)), own.get(GEN_VEL_RANGE, (0, 127))
        hits = [(max(s[0], key[0]), min(s[1], key[1]), max(s[2], vel[0]), min(s[3], vel[1])) for s in spans]
        hits = [h for h in hits if h[0] <= h[1] and h[2] <= h[3]]
        if hits:
            kept.append((b, (min(h[0] for h in hits), max(h[1] for h in hits), min(h[2] for h in hits),
                             max(h[3] for h in hits))))
    return kept


def _link_of(gen: list[tuple], bag: list[tuple], b: int, link_gen: int) -> int | None:
    return next((gen[g][1] for g in range(bag[b][0], bag[b + 1][0]) if gen[g][0] == link_gen), None)


def _zones(out: dict[str, bytearray], rec: dict[str, list[tuple]], p: str, bags: Iterable[int], link_gen: int,
           index: dict[int, int]) -> None:
    """Append the bags ``bags`` of the ``p`` ('p' preset or 'i' instrument) lists with their
    modulators and generators, the ``link_gen`` generator's amount re-indexed by ``index``."""
    bag, mod, gen = rec[p + "bag"], rec[p + "mod"], rec[p + "gen"]
    for b in bags:
        out[p + "bag"] += struct.pack("<HH", len(out[p + "gen"]) // 4, len(out[p + "mod"]) // 10)
        for m in range(bag[b][1], bag[b + 1][1]):
            out[p + "mod"] += struct.pack(FORMATS["pmod"], *mod[m])
        for g in range(bag[b][0], bag[b + 1][0]):
            oper, amount = gen[g]
            if oper == link_gen:
                if amount not in index:
                    continue  # a zone naming a terminal or missing record: the loader skips it too
                amount = index[amount]
            out[p + "gen"] += struct.pack("<HH", oper, amount)


def _samples(data: memoryview, shdr: list[tuple], samples: list[int], reach: dict[int, list[int]],
             sf3: bool) -> tuple[bytes, list[list]]:
    """The new smpl bytes and shdr rows (lists) of ``samples``, in order."""
    blob, rows, placed = bytearray(), [], {}
    frames = len(data) // 2
    for s in samples:
        name, start, end, loop_start, loop_end, *rest = shdr[s]
        if sf3:  # byte offsets of the sample's own Ogg stream; loops count decoded frames from its start
            if (start, end) not in placed:
                placed[(start, end)] = len(blob)
                blob += data[start:end]
            at = placed[(start, end)]
            rows.append([name, at, at + end - start, loop_start, loop_end, *rest])
            continue
        before, after = reach.get(s, [0, 0])
        lo = max(0, start - before)
        hi = min(frames, max(end, loop_end) + after + PAD_FRAMES)
        shift = len(blob) // 2 - lo
        blob += data[2 * lo:2 * hi]
        rows.append([name, start + shift, end + shift, loop_start + shift, loop_end + shift, *rest])
    if len(blob) % 2:
        blob += b"\0"  # keep the chunk even (RIFF pads odd chunks, and smpl is 16-bit words in .sf2)
    return bytes(blob), rows


def _sample_of(igen: list[tuple], ibag: list[tuple], b: int) -> int | None:
    return next((igen[g][1] for g in range(ibag[b][0], ibag[b + 1][0]) if igen[g][0] == GEN_SAMPLE), None)


def _offsets(igen: list[tuple], ibag: list[tuple], b: int) -> dict[tuple[int, int], int]:
    """Frames each address-offset pair (fine, coarse) of bag ``b`` moves its point by."""
    got = {oper: struct.unpack("<h", struct.pack("<H", amount))[0] for oper, amount in
           (igen[g] for g in range(ibag[b][0], ibag[b + 1][0]))}
    return {pair: got.get(pair[0], 0) + 32768 * got.get(pair[1], 0) for pair in (_START, _END, _LOOP_START, _LOOP_END)
            if pair[0] in got or pair[1] in got}


def _records(raw: bytes, offset: int, size: int, fmt: str) -> list[tuple]:
    n = struct.calcsize(fmt)
    return [struct.unpack_from(fmt, raw, offset + i) for i in range(0, size - size % n, n)]


def _sub(raw: bytes, where: tuple[int, int]):
    off, size = where
    return _chunks(raw, off + 4, off + size)


def _chunk(cid: bytes, data: bytes) -> bytes:
    return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def _list(kind: bytes, data: bytes) -> bytes:
    return _chunk(b"LIST", kind + data)
