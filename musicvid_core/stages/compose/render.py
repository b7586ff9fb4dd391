"""MIDI -> stereo audio with a General MIDI SoundFont, offline.

Three renderers, the first installed one used (RENDERERS; docs/install.md says why):
tinysoundfont (TinySoundFont, a single-file C synthesizer: ~250x real time, sample-exact events,
reads .sf3) when a developer install put it there; midirenderer (RustySynth, ~15x, behind an abi3 wheel
with no dependencies: what ``pip install musicvid[local]`` brings); pyfluidsynth via pretty_midi
last (needs the system's libfluidsynth). tinysoundfont's parsed SoundFont -- cut down to the
presets the segments play and the zones their notes reach (fontsubset.py: TinySoundFont decodes
every sample it parses, ~1.27 GB for MuseScore General) -- is cached once per process; every
render works on its own clones (the native copy constructor shares the sample data), because a
synthesizer's voices are state that threads must not share. midirenderer takes a whole MIDI file
and the SoundFont's bytes per call: each stem becomes a one-instrument file whose ticks are 48 kHz samples.

Each instrument is rendered as its own stem and mixed here, because GM SoundFonts are not level-
matched: in TimGM6mb a harp note is ~18 dB louder than a piano note at the same velocity. Each
preset is measured once (a reference note at a fixed velocity) and scaled to a common level, then
the instrument's MIDI volume (CC7, the GM curve 40*log10(cc/127) dB) sets its place in the mix.
So the composer's balance means the same thing with any SoundFont.

Notes are also *onset-aligned*: a sample's attack takes time to build (a string section swells
for ~50 ms, a crash cymbal's noise for ~25 ms), so a note that starts on the beat is heard after
it. As a producer nudges a slow-attack track early, each preset (each drum sound of a kit) has its
onset lag measured once per process -- the peak of a spectral-flux onset function for one isolated
note, less the same function's peak for a click -- and its notes start that much early (at most
MAX_LEAD_S; the pyfluidsynth fallback plays them as written). See docs/music.md ("Onset alignment").
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import io
import logging
import struct
import threading
import wave
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pretty_midi

from musicvid_core.domain.errors import ConfigurationError, GenerationError
from musicvid_core.media import resample
from musicvid_core.stages.compose import fonts
from musicvid_core.stages.compose.fonts import BUNDLED, FLUID_R3, MUSESCORE  # noqa: F401  (the names callers use)
from musicvid_core.stages.compose.fontsubset import covers, hull
from musicvid_core.stages.compose.onsets import onset_time

log = logging.getLogger(__name__)

DRUM_CHANNEL = 9
VOLUME_CC = 7
PAN_CC = 10
DRUM_GROUPS = {"kick": (35, 36), "snare": (37, 38, 39, 40), "hats": (42, 44, 46), "toms": (41, 43, 45, 47, 48, 50),
               "cymbals": (49, 51, 52, 53, 55, 57, 59)}  # GM drum notes; the rest of a kit is "perc"
REFERENCE_DBFS = -20.0  # every preset's reference note is scaled to this short-term RMS
MAX_VOICES = 256  # per stem; past it the synth drops the voice furthest into its release
MAX_LEAD_S = 0.08  # the longest onset lag compensated (a pad's swell is not a beat anyway)
ONSET_PRE_S = 0.1  # silence before the measured note ...
ONSET_SPAN_S = 0.3  # ... and the length measured (a lead is at most MAX_LEAD_S)
RENDERERS = ("tinysoundfont", "midirenderer", "fluidsynth")  # the first that imports renders
READS_SF3 = {"tinysoundfont", "fluidsynth"}  # RustySynth (midirenderer) reads .sf2 only
RENDERER_FIX = "pip install midirenderer (it comes with musicvid[local])"
MIDI_RATE = 48000  # Hz: the one rate midirenderer renders at
MIDI_PPQ = 24000  # ticks per quarter note at 120 bpm: one tick is one 48 kHz sample
MIDI_BLOCK_S = 64 / MIDI_RATE  # RustySynth applies events at the start of its next 64-sample block ...
# ... so a stem's events go half a block early: each lands within +-0.7 ms of its time
MIDI_VOLUME = 64  # CC7 of every midirenderer render: ~9 dB under GM's default 100, because it returns
# 16-bit PCM and a six-note harp chord at full velocity peaks at -0.2 dBFS at 100. The preset gains,
# measured at the same CC7, take the level back; the 16-bit floor stays >= 55 dB under the reference note
END_CC = 110  # an undefined controller at the end of a stem's file: RustySynth stops at the last event

SUBSET_FONTS = True  # tinysoundfont parses a bank cut down to the presets played (fontsubset.py), not the bank
SUBSET_TEMPLATES = 2  # parsed subsets kept per process (most recently used); clones keep their own alive
UNION_PRESETS = 8  # a new preset set is merged into the newest subset up to this many presets: one
# style's roles (<= 6 presets) are merged, two styles' (a long-lived worker's next job) are not
KEY_MARGIN = 5  # keys kept either side of what a segment's notes (and the reference notes) play, and
VELOCITY_STEP = 32  # velocities kept in whole steps of this: the next segment of a plan, in another
# key or louder, mostly stays inside, so a job parses its subset a few times, not once per segment
# (each key of margin costs ~2 % more samples; MuseScore General's layers are keys, not velocities)
REFERENCE_VELOCITY = 100  # the velocity of the level and onset measurements' reference notes

_lock = threading.Lock()
_templates: dict[str, Any] = {}  # SoundFont path -> parsed tinysoundfont SoundFont (never played)
_subsets: dict[tuple[str, frozenset], Any] = {}  # (path, {(program, drum)}) -> (parsed subset, spans) or None, oldest first
_bank_sha: dict[tuple, str] = {}  # (path, size, mtime) -> SHA-256 of the bank's bytes
_font_bytes: dict[str, bytes] = {}  # SoundFont path -> its bytes, read once (midirenderer parses per call)
_preset_gains: dict[tuple, float] = {}  # (renderer, SoundFont, program, drum, rate) -> linear gain
_onset_leads: dict[tuple, float] = {}  # (renderer, SoundFont, program, drum, note or octave, rate) -> s
_click_onsets: dict[int, float] = {}  # sample rate -> onset_time of a click after ONSET_PRE_S


@functools.cache
def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except (ImportError, OSError):  # pyfluidsynth raises ImportError, some builds OSError, without libfluidsynth
        return False
    return True


def renderer() -> str | None:
    """The SoundFont renderer this process uses: the first of RENDERERS that imports, else None."""
    return next((name for name in RENDERERS if _importable(name)), None)


def find_soundfont(settings: Any = None) -> Path:
    """The SoundFont to render with: ``settings.soundfont`` (``$MUSICVID_SOUNDFONT``), else the first
    of ``fonts.CANDIDATES`` installed: MuseScore General (.sf3, when the renderer reads it), FluidR3
    GM, the TimGM6mb bundled with pretty_midi. A configured path that does not exist, or an .sf3
    the installed renderer cannot read, is skipped with a warning. Raises ConfigurationError when
    none exists."""
    if settings is None:
        from musicvid_core.settings import Settings

        settings = Settings()
    for path in [getattr(settings, "soundfont", None)]:
        if path is not None:
            path = Path(path).expanduser()
            if not path.is_file():
                log.warning("SoundFont %s does not exist; falling back to the default", path)
            elif path.suffix.lower() == ".sf3" and renderer() not in READS_SF3:
                log.warning("SoundFont %s is an .sf3, which %s cannot read (pip install --no-deps "
                            "tinysoundfont can); falling back to the default", path, renderer())
            else:
                return path
    found = fonts.candidates(renderer() in READS_SF3)
    if found:
        return found[0]
    raise ConfigurationError("no General MIDI SoundFont found: set MUSICVID_SOUNDFONT to an .sf2 file "
                             "or run make install")


def render_midi(pm: pretty_midi.PrettyMIDI, sample_rate: int, n_samples: int,
                soundfont: str | Path) -> np.ndarray:
    """Render ``pm`` to float32 stereo of exactly ``n_samples`` frames at ``sample_rate`` Hz
    (silence-padded or cut). Raises ConfigurationError when no renderer is installed and
    GenerationError when the synthesizer fails."""
    if renderer() in (None, "fluidsynth"):
        return _render_fluidsynth(pm, sample_rate, n_samples, soundfont)
    path = Path(soundfont)
    out = np.zeros((n_samples, 2), dtype=np.float32)
    _prepare_subset(path, pm)
    try:
        for inst in pm.instruments:
            if inst.notes:
                gain = _cc7_gain(inst) * _preset_gain(path, inst.program, inst.is_drum, sample_rate)
                out += _render_stem(inst, sample_rate, n_samples, path) * np.float32(gain)
    except (RuntimeError, ValueError, OSError) as exc:
        raise GenerationError(f"SoundFont rendering failed: {exc}", soundfont=str(soundfont)) from exc
    return out


def render_stems(pm: pretty_midi.PrettyMIDI, sample_rate: int, n_samples: int,
                 soundfont: str | Path) -> dict[str, np.ndarray]:
    """Each instrument of ``pm`` as its own float32 (n_samples, 2) stem at ``sample_rate`` Hz, named
    by the instrument's name (the composer's role), level-matched and at its CC7 level like
    :func:`render_midi`, but centred: its pan (CC10) is left to the mix (production.py). The drum
    kit comes as one stem per DRUM_GROUPS group (``kick``, ``snare``, ...; ``perc`` for the rest),
    so each can be placed and processed. Without a per-stem renderer (pyfluidsynth) there is one
    stem, ``mix``. Raises as :func:`render_midi`."""
    return dict(lazy_stems(pm, sample_rate, n_samples, soundfont).items())


def lazy_stems(pm: pretty_midi.PrettyMIDI, sample_rate: int, n_samples: int,
               soundfont: str | Path) -> Mapping[str, np.ndarray]:
    """:func:`render_stems` as a mapping that renders a stem when it is read and keeps none: a mixer
    that reads each stem once holds one at a time, not all of them (issue 18: a 16-second segment's
    six stems are 24 MB at 32 kHz, and two segments render at once). The same samples as
    :func:`render_stems` (the same parts, summed in the same order)."""
    if renderer() in (None, "fluidsynth"):
        return {"mix": _render_fluidsynth(pm, sample_rate, n_samples, soundfont)}
    path = Path(soundfont)
    _prepare_subset(path, pm)
    return _LazyStems(pm, sample_rate, n_samples, path)


class _LazyStems(Mapping):
    """Stem name -> float32 (n, 2), rendered on each read (:func:`lazy_stems`)."""

    def __init__(self, pm: pretty_midi.PrettyMIDI, sample_rate: int, n_samples: int, path: Path) -> None:
        self.sample_rate, self.n_samples, self.path = sample_rate, n_samples, path
        self.parts: dict[str, list[tuple[pretty_midi.Instrument, pretty_midi.Instrument]]] = {}
        for inst in pm.instruments:  # instrument order: a stem's parts are summed as render_stems did
            for name, part in _parts(inst):
                self.parts.setdefault(name, []).append((inst, part))

    def __getitem__(self, name: str) -> np.ndarray:
        path, sr, n = self.path, self.sample_rate, self.n_samples
        stem = None
        try:
            for inst, part in self.parts[name]:
                gain = np.float32(_cc7_gain(inst) * _preset_gain(path, inst.program, inst.is_drum, sr))
                audio = _render_stem(part, sr, n, path) * gain
                stem = audio if stem is None else stem + audio
        except (RuntimeError, ValueError, OSError) as exc:
            raise GenerationError(f"SoundFont rendering failed: {exc}", soundfont=str(path)) from exc
        return stem

    def __iter__(self):
        return iter(self.parts)

    def __len__(self) -> int:
        return len(self.parts)


def _parts(inst: pretty_midi.Instrument) -> list[tuple[str, pretty_midi.Instrument]]:
    """The instrument without its pan, split into DRUM_GROUPS for a kit: (stem name, instrument)."""
    ccs = [cc for cc in inst.control_changes if cc.number != PAN_CC]
    groups: dict[str, list[pretty_midi.Note]] = {}
    for n in inst.notes:
        name = next((g for g, notes in DRUM_GROUPS.items() if n.pitch in notes), "perc") if inst.is_drum \
            else inst.name or f"program{inst.program}"
        groups.setdefault(name, []).append(n)
    out = []
    for name, notes in groups.items():
        part = pretty_midi.Instrument(inst.program, is_drum=inst.is_drum, name=name)
        part.notes, part.control_changes, part.pitch_bends = notes, ccs, list(inst.pitch_bends)
        out.append((name, part))
    return out


def _render_stem(inst: pretty_midi.Instrument, sample_rate: int, n_samples: int, path: Path,
                 aligned: bool = True) -> np.ndarray:
    """One instrument alone as float32 (n_samples, 2) at ``sample_rate`` Hz, at the preset's own
    level (CC7 left to the mix), by the installed renderer; ``aligned``: notes start early by
    their onset lags."""
    if renderer() == "midirenderer":
        return _render_stem_midi(inst, sample_rate, n_samples, path, aligned)
    return _render_stem_tsf(inst, sample_rate, n_samples, path, aligned)


def _prepare_subset(path: Path, pm: pretty_midi.PrettyMIDI) -> None:
    """Parse (once per process) the subset of ``path`` holding the presets ``pm`` plays, with the
    zones its notes and the reference notes reach, which :func:`_synth` then prefers; built from
    the bank with its modulators baked in, cached on disk by (bank SHA-256, preset set, spans)
    (fontsubset.cached). A bank the subsetter cannot read is left whole."""
    if not SUBSET_FONTS or not pm.instruments or renderer() != "tinysoundfont":
        return
    _prepare(path, _need([pm]))


def prepare_fonts(pms: list[pretty_midi.PrettyMIDI], soundfont: str | Path) -> None:
    """Parse now one subset holding every preset and span ``pms`` play (a plan's segments), so that
    rendering them parses nothing more. Without it each segment that reaches past the subset before
    it parses a wider one: a 60 s plan's five segments parsed five, ~0.1 s of CPU each (issue 18).
    Left to the segments when the union has more than UNION_PRESETS presets: a plan that changes
    style holds its styles' subsets in turn, not all at once."""
    need = _need(pms) if SUBSET_FONTS and renderer() == "tinysoundfont" else {}
    if need and len(need) <= UNION_PRESETS:
        _prepare(Path(soundfont), need)


def _need(pms: list[pretty_midi.PrettyMIDI]) -> dict[tuple[int, bool], tuple[int, int, int, int]]:
    """(program, drum) -> the (lowest, highest key, lowest, highest velocity) ``pms`` play (_span)."""
    need: dict[tuple[int, bool], tuple[int, int, int, int]] = {}
    for pm in pms:
        for inst in pm.instruments:
            span, preset = _span(inst.program, inst.is_drum, inst.notes), (inst.program, inst.is_drum)
            need[preset] = hull(need[preset], span) if preset in need else span
    return need


def _prepare(path: Path, need: dict[tuple[int, bool], tuple[int, int, int, int]]) -> None:
    """:func:`_prepare_subset` for ``need`` ((program, drum) -> the keys and velocities played): a
    subset that holds it, else a new one for it widened (KEY_MARGIN, VELOCITY_STEP) and merged with
    the newest (presets and spans), which it replaces before it is parsed, so the two are never
    held at once (if it then fails, those presets play the whole bank)."""
    from tinysoundfont import _tinysoundfont as tsf

    from musicvid_core.stages.compose import fontsubset

    resolved = path.resolve()
    want = frozenset(need)
    spans = {p: (max(0, s[0] - KEY_MARGIN), min(127, s[1] + KEY_MARGIN), s[2] // VELOCITY_STEP * VELOCITY_STEP,
                 min(127, s[3] // VELOCITY_STEP * VELOCITY_STEP + VELOCITY_STEP - 1)) for p, s in need.items()}
    with _lock:  # one build per preset set, even with segments rendering in parallel threads
        same = [k for k in _subsets if k[0] == str(resolved) and _subsets[k] is not None]
        have = next((k for k in reversed(same) if want <= k[1] and covers(_subsets[k][1], need)), None)
        if have is None and _subsets.get((str(resolved), want), 0) is None:
            have = (str(resolved), want)  # a bank the subsetter could not read: tried once
        if have is not None:
            _subsets[have] = _subsets.pop(have)  # most recently used last
            return
        if same and len(same[-1][1] | want) <= UNION_PRESETS:
            # a plan's segments play overlapping sets (an intro without drums) and ranges: one subset of
            # their union, not one per segment
            want |= same[-1][1]
            old = _subsets[same[-1]][1]
            spans = {p: hull(old[p], spans[p]) if p in old and p in spans else old.get(p) or spans[p] for p in want}
        key = (str(resolved), want)
        for k in same:
            if k[1] <= want and covers(spans, _subsets[k][1]):
                del _subsets[k]  # the union holds it (clones in use keep the old one alive)
        try:
            stat = resolved.stat()
            ident = (key[0], stat.st_size, stat.st_mtime_ns)
            if ident not in _bank_sha:
                digest = hashlib.sha256()
                with resolved.open("rb") as f:  # streamed: the bank is read whole only on a miss
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
                _bank_sha[ident] = digest.hexdigest()
            sub = fontsubset.cached(resolved, key[1], lambda: fonts.baked_buffer(resolved),
                                    f"{_bank_sha[ident]}-v{fonts.BAKE_VELOCITY}", spans=spans)
            _subsets[key] = (tsf.SoundFont(sub.read_bytes()), spans)  # baked already: not fonts.load_tsf
            log.info("SoundFont %s: subset of %d presets parsed (%s)", path.name, len(spans), sorted(spans.items()))
        except (OSError, ValueError, RuntimeError, struct.error) as exc:
            log.warning("SoundFont %s: no subset (%s); loading the whole bank", path, exc)
            _subsets[key] = None
        while len(_subsets) > SUBSET_TEMPLATES:
            _subsets.pop(next(iter(_subsets)))


def release_fonts() -> None:
    """Drop the parsed SoundFonts this process keeps (subsets and whole banks): ~90 MB of samples
    for a plan's subset, freed once the synthesizers cloned from them are gone. The presets' gains
    and onset lags stay cached; the next render parses its subset again (from fontsubset's disk
    cache: no rebuild)."""
    with _lock:
        _subsets.clear()
        _templates.clear()


def _span(program: int, is_drum: bool, notes: list) -> tuple[int, int, int, int]:
    """(lowest key, highest key, lowest velocity, highest velocity) that ``notes`` of the preset and
    its reference notes (:func:`_preset_gain`'s, :func:`onset_lead`'s for each note) play."""
    keys = {n.pitch for n in notes} | {_onset_key(n.pitch, is_drum) for n in notes} | set(_gain_keys(program, is_drum))
    vels = {n.velocity for n in notes} | {REFERENCE_VELOCITY}
    return min(keys), max(keys), min(vels), max(vels)


def _synth(path: Path, sample_rate: int, preset: tuple[int, bool] | None = None,
           span: tuple[int, int, int, int] | None = None) -> Any:
    """A fresh tinysoundfont synthesizer on the cached, parsed SoundFont: the newest prepared subset
    holding ``preset`` ((program, drum)) and ``span`` (its keys and velocities; one holding only the
    preset is widened to it: a re-parse), else the whole bank."""
    # The public tinysoundfont.Synth re-parses the file for every synth; the binding's SoundFont
    # copy constructor ("load once, use for multiple independent playbacks") does not.
    from tinysoundfont import _tinysoundfont as tsf

    key = str(path.resolve())
    need = {preset: span} if preset is not None and span is not None else {}

    def newest() -> tuple[Any, bool]:  # (the template that plays it, whether a subset holds the preset)
        held = [entry for (p, presets), entry in reversed(_subsets.items())
                if entry is not None and p == key and preset in presets]
        return next((font for font, spans in held if covers(spans, need)), None), bool(held)

    with _lock:
        template, held = newest()
    if template is None and held:  # a note outside the kept keys (a caller that prepared no span)
        _prepare(path, {preset: span})
    with _lock:  # parsing once, and the clone bumps a shared, non-atomic reference count
        if template is None:
            template = newest()[0]
        if template is None:
            if key not in _templates:
                _templates[key] = fonts.load_tsf(Path(key))
            template = _templates[key]
        synth = tsf.SoundFont(template)
    synth.set_output(tsf.OutputMode.StereoInterleaved, sample_rate, 0.0)
    synth.set_max_voices(MAX_VOICES)
    return synth


def _preset_synth(path: Path, program: int, is_drum: bool, sample_rate: int,
                  span: tuple[int, int, int, int] | None = None) -> tuple[Any, int]:
    """A fresh synthesizer with the preset selected (for ``span``: :func:`_synth`), and its channel."""
    synth = _synth(path, sample_rate, (program, is_drum), span)
    ch = DRUM_CHANNEL if is_drum else 0
    synth.channel_set_preset_number(ch, program, is_drum)
    return synth, ch


def _render_stem_tsf(inst: pretty_midi.Instrument, sample_rate: int, n_samples: int, path: Path,
                     aligned: bool) -> np.ndarray:
    span = None
    if inst.notes:
        keys, vels = [n.pitch for n in inst.notes], [n.velocity for n in inst.notes]
        span = (min(keys), max(keys), min(vels), max(vels))
    synth, ch = _preset_synth(path, inst.program, inst.is_drum, sample_rate, span)
    out = np.zeros((n_samples, 2), dtype=np.float32)
    pos = 0
    for sample, action in _events(inst, ch, sample_rate, path if aligned else None):
        if sample >= n_samples:
            break
        if sample > pos:
            synth.render(out[pos:sample])  # C-contiguous rows: the interleaved layout it writes
            pos = sample
        action(synth)
    if pos < n_samples:
        synth.render(out[pos:])
    return out


def _events(inst: pretty_midi.Instrument, ch: int, sample_rate: int,
            path: Path | None = None) -> list[tuple[int, Any]]:
    """The instrument's MIDI events as (sample, action on a synthesizer), in time order. At one
    sample, controller changes come first and note-offs before note-ons, so a note re-struck on
    the beat is not cut by its predecessor's release. CC7 is left out: the mix applies it. With
    the SoundFont's ``path``, every note starts (and ends) early by its preset's onset lag."""
    events: list[tuple[int, int, int, Any]] = []
    for cc in inst.control_changes:
        if cc.number != VOLUME_CC:
            events.append((_at(cc.time, sample_rate), 0, cc.number,
                           lambda s, n=cc.number, v=cc.value: s.channel_midi_control(ch, n, v)))
    for pb in inst.pitch_bends:
        events.append((_at(pb.time, sample_rate), 1, 0,
                       lambda s, v=pb.pitch: s.channel_set_pitch_wheel(ch, v + 8192)))
    leads = _leads(inst, sample_rate, path)
    for n in inst.notes:
        lead = leads[n.pitch]
        events.append((_at(n.end - lead, sample_rate), 2, n.pitch, lambda s, p=n.pitch: s.channel_note_off(ch, p)))
        events.append((_at(n.start - lead, sample_rate), 3, n.pitch,
                       lambda s, p=n.pitch, v=n.velocity: s.channel_note_on(ch, p, v / 127.0)))
    events.sort(key=lambda e: e[:3])
    return [(sample, action) for sample, _order, _num, action in events]


def _leads(inst: pretty_midi.Instrument, sample_rate: int, path: Path | None) -> dict[int, float]:
    """Onset lag (seconds) of each pitch the instrument plays; all 0.0 without a SoundFont."""
    return {p: onset_lead(path, inst.program, inst.is_drum, p, sample_rate) if path else 0.0
            for p in {n.pitch for n in inst.notes}}


def _at(t: float, sample_rate: int) -> int:
    return max(0, round(t * sample_rate))


def _render_stem_midi(inst: pretty_midi.Instrument, sample_rate: int, n_samples: int, path: Path,
                      aligned: bool) -> np.ndarray:
    """:func:`_render_stem` by midirenderer: the instrument as a one-track MIDI file (CC7 fixed at
    MIDI_VOLUME, notes early by their onset lags and half a RustySynth block when ``aligned``),
    rendered at MIDI_RATE and resampled."""
    import midirenderer

    leads = _leads(inst, sample_rate, path if aligned else None)
    early = MIDI_BLOCK_S / 2 if aligned else 0.0
    one = pretty_midi.Instrument(inst.program, is_drum=inst.is_drum)
    for n in inst.notes:
        start, end = max(0.0, n.start - leads[n.pitch] - early), n.end - leads[n.pitch] - early
        if end > start:  # a note-off sorted before its note-on at one tick would hang the note
            one.notes.append(pretty_midi.Note(n.velocity, n.pitch, start, end))
    one.control_changes = [pretty_midi.ControlChange(VOLUME_CC, MIDI_VOLUME, 0.0),
                           *(cc for cc in inst.control_changes if cc.number != VOLUME_CC),
                           pretty_midi.ControlChange(END_CC, 0, n_samples / sample_rate + MIDI_BLOCK_S)]
    one.pitch_bends = list(inst.pitch_bends)
    pm = pretty_midi.PrettyMIDI(resolution=MIDI_PPQ, initial_tempo=120.0)
    pm.instruments.append(one)
    midi = io.BytesIO()
    pm.write(midi)
    with wave.open(io.BytesIO(midirenderer.render_wave_from(_soundfont_bytes(path), midi.getvalue()))) as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 2:
            raise RuntimeError(f"midirenderer returned {w.getnchannels()} channels of {8 * w.getsampwidth()} bits")
        rate, pcm = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    if np.abs(pcm.astype(np.int32)).max(initial=0) >= 32767:
        log.warning("midirenderer clipped program %d (drum %s) at CC7 %d", inst.program, inst.is_drum, MIDI_VOLUME)
    audio = resample(pcm.astype(np.float32) / np.float32(32768), rate, sample_rate)
    out = np.zeros((n_samples, 2), dtype=np.float32)
    n = min(n_samples, audio.shape[0])
    out[:n] = audio[:n]
    return out


def _soundfont_bytes(path: Path) -> bytes:
    key = str(path.resolve())
    with _lock:
        if key not in _font_bytes:
            _font_bytes[key] = Path(key).read_bytes()
        return _font_bytes[key]


def _cc7_gain(inst: pretty_midi.Instrument) -> float:
    """Linear gain of the instrument's first MIDI volume (CC7), by the GM curve; 1.0 when unset."""
    cc = next((c.value for c in inst.control_changes if c.number == VOLUME_CC), 127)
    return (max(0, min(127, cc)) / 127.0) ** 2


def _preset_gain(path: Path, program: int, is_drum: bool, sample_rate: int) -> float:
    """Gain that brings a preset's reference note (middle C; E2 for basses; kick then snare for a
    kit; velocity 100) to REFERENCE_DBFS loudest 50 ms RMS. Measured once per process."""
    key = (renderer(), str(path.resolve()), program, is_drum, sample_rate)
    with _lock:
        if key in _preset_gains:
            return _preset_gains[key]
    half = sample_rate // 2
    notes = list(zip(_gain_keys(program, is_drum), (0, half)))
    out = _reference(path, program, is_drum, notes, sample_rate, 4 * half)
    block = sample_rate // 20
    mono = out[: len(out) // block * block].mean(axis=1).reshape(-1, block)
    loudest = float(np.sqrt(np.mean(np.square(mono, dtype=np.float64), axis=1)).max())
    gain = 10 ** (REFERENCE_DBFS / 20) / loudest if loudest > 1e-6 else 1.0
    gain = min(20.0, max(0.05, gain))  # a broken or silent preset must not explode the mix
    with _lock:
        _preset_gains[key] = gain
    return gain


def _gain_keys(program: int, is_drum: bool) -> tuple[int, ...]:
    """The keys of :func:`_preset_gain`'s reference: kick then snare, E2 for a bass, middle C."""
    return (36, 38) if is_drum else (40 if 32 <= program <= 39 else 60,)


def _onset_key(pitch: int, is_drum: bool) -> int:
    """The key :func:`onset_lead` measures for ``pitch``: itself on a kit, else its octave's middle."""
    return pitch if is_drum else 12 * (pitch // 12) + 6


def onset_lead(path: Path, program: int, is_drum: bool, pitch: int, sample_rate: int) -> float:
    """Seconds a note of this preset is heard after its note-on, beyond a click's (0..MAX_LEAD_S):
    measured once per process per preset and octave (per note for a drum kit, whose notes are
    different sounds) on one isolated note at velocity 100, by :func:`onset_time`."""
    ref = _onset_key(pitch, is_drum)
    key = (renderer(), str(path), program, is_drum, ref, sample_rate)
    with _lock:
        if key in _onset_leads:
            return _onset_leads[key]
        if sample_rate not in _click_onsets:
            click = np.zeros(round(ONSET_SPAN_S * sample_rate))
            click[round(ONSET_PRE_S * sample_rate)] = 1.0
            _click_onsets[sample_rate] = onset_time(click, sample_rate)
    pre = round(ONSET_PRE_S * sample_rate)
    mono = _reference(path, program, is_drum, [(ref, pre)], sample_rate, round(ONSET_SPAN_S * sample_rate)).mean(axis=1)
    lead = 0.0
    if np.abs(mono).max() > 1e-6:
        lead = min(MAX_LEAD_S, max(0.0, onset_time(mono, sample_rate) - _click_onsets[sample_rate]))
    with _lock:
        _onset_leads[key] = lead
    return lead


def _reference(path: Path, program: int, is_drum: bool, notes: list[tuple[int, int]], sample_rate: int,
               n_samples: int) -> np.ndarray:
    """The preset alone playing ``notes`` ((pitch, start sample), REFERENCE_VELOCITY, held to the
    end), as written (no onset alignment): what the measurements above listen to."""
    inst = pretty_midi.Instrument(program, is_drum=is_drum)
    inst.notes = [pretty_midi.Note(REFERENCE_VELOCITY, pitch, at / sample_rate, n_samples / sample_rate) for pitch, at in notes]
    return _render_stem(inst, sample_rate, n_samples, path, aligned=False)


def _render_fluidsynth(pm: pretty_midi.PrettyMIDI, sample_rate: int, n_samples: int,
                       soundfont: str | Path) -> np.ndarray:
    try:
        import fluidsynth  # noqa: F401  (pretty_midi imports it lazily; fail here with a clear fix)
    except (ImportError, OSError):
        raise ConfigurationError(f"no SoundFont renderer installed: {RENDERER_FIX}") from None
    mono = pm.fluidsynth(fs=sample_rate, sf2_path=str(soundfont)).astype(np.float32)
    out = np.zeros((n_samples, 2), dtype=np.float32)
    n = min(n_samples, mono.shape[0])
    out[:n] = mono[:n, None]
    return out
