"""MIDI -> stereo audio with a General MIDI SoundFont, offline.

tinysoundfont (TinySoundFont, a single-file C synthesizer) renders ~100x real time with no system
library; pyfluidsynth via pretty_midi is the fallback. The parsed SoundFont is cached once per
process; every render works on its own clones (the native copy constructor shares the sample
data), because a synthesizer's voices are state that threads must not share.

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

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pretty_midi

from musicvid_core.domain.errors import ConfigurationError, GenerationError

log = logging.getLogger(__name__)

FLUID_R3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
BUNDLED = Path(pretty_midi.__file__).resolve().parent / "TimGM6mb.sf2"
DRUM_CHANNEL = 9
VOLUME_CC = 7
REFERENCE_DBFS = -20.0  # every preset's reference note is scaled to this short-term RMS
MAX_VOICES = 256  # per stem; past it the synth drops the voice furthest into its release
MAX_LEAD_S = 0.08  # the longest onset lag compensated (a pad's swell is not a beat anyway)
ONSET_PRE_S = 0.1  # silence before the measured note ...
ONSET_SPAN_S = 0.3  # ... and the length measured (a lead is at most MAX_LEAD_S)
ONSET_WINDOW_S = 0.093  # STFT window of the onset function (librosa's 2048 samples at 22.05 kHz) ...
ONSET_LAG_S = 0.0116  # ... and the frame distance its flux differences (its 256-sample hop)
ONSET_HOP_S = 0.002  # this measurement's hop: 2 ms resolution
ONSET_RANGE_DB = 30.0  # levels more than this below the note's peak count as the peak less this: in a
# mix a note is heard when it rises out of the rest; from digital silence the log spectrum jumps
# the moment the window's edge touches the attack, and every sound would measure as a click
ONSET_BANDS = 40  # log-spaced from 30 Hz to Nyquist

_lock = threading.Lock()
_templates: dict[str, Any] = {}  # SoundFont path -> parsed tinysoundfont SoundFont (never played)
_preset_gains: dict[tuple[str, int, bool, int], float] = {}
_onset_leads: dict[tuple, float] = {}  # (SoundFont, program, drum, note or octave, rate) -> seconds
_click_onsets: dict[int, float] = {}  # sample rate -> onset_time of a click after ONSET_PRE_S


def find_soundfont(settings: Any = None) -> Path:
    """The .sf2 to render with: ``settings.soundfont``, else ``$MUSICVID_SOUNDFONT``, else Debian's
    FluidR3_GM, else the TimGM6mb bundled with pretty_midi. A configured path that does not exist
    is skipped with a warning. Raises ConfigurationError when none exists."""
    if settings is None:
        from musicvid_core.settings import Settings

        settings = Settings()
    for path in [getattr(settings, "soundfont", None)]:
        if path is not None:
            path = Path(path).expanduser()
            if path.is_file():
                return path
            log.warning("SoundFont %s does not exist; falling back to the default", path)
    for path in (FLUID_R3, BUNDLED):
        if path.is_file():
            return path
    raise ConfigurationError("no General MIDI SoundFont found: set MUSICVID_SOUNDFONT to an .sf2 file "
                             "or run make install")


def render_midi(pm: pretty_midi.PrettyMIDI, sample_rate: int, n_samples: int,
                soundfont: str | Path) -> np.ndarray:
    """Render ``pm`` to float32 stereo of exactly ``n_samples`` frames at ``sample_rate`` Hz
    (silence-padded or cut). Raises ConfigurationError when no renderer is installed and
    GenerationError when the synthesizer fails."""
    try:
        import tinysoundfont  # noqa: F401  (only to learn whether it is installed)
    except ImportError:
        return _render_fluidsynth(pm, sample_rate, n_samples, soundfont)
    path = Path(soundfont)
    out = np.zeros((n_samples, 2), dtype=np.float32)
    try:
        for inst in pm.instruments:
            if inst.notes:
                gain = _cc7_gain(inst) * _preset_gain(path, inst.program, inst.is_drum, sample_rate)
                out += _render_stem(inst, sample_rate, n_samples, path) * np.float32(gain)
    except (RuntimeError, ValueError, OSError) as exc:
        raise GenerationError(f"SoundFont rendering failed: {exc}", soundfont=str(soundfont)) from exc
    return out


def _synth(path: Path, sample_rate: int) -> Any:
    """A fresh tinysoundfont synthesizer on the cached, parsed SoundFont."""
    # The public tinysoundfont.Synth re-parses the file for every synth; the binding's SoundFont
    # copy constructor ("load once, use for multiple independent playbacks") does not.
    from tinysoundfont import _tinysoundfont as tsf

    key = str(path.resolve())
    with _lock:  # parsing once, and the clone bumps a shared, non-atomic reference count
        if key not in _templates:
            _templates[key] = tsf.SoundFont(key)
        synth = tsf.SoundFont(_templates[key])
    synth.set_output(tsf.OutputMode.StereoInterleaved, sample_rate, 0.0)
    synth.set_max_voices(MAX_VOICES)
    return synth


def _preset_synth(path: Path, program: int, is_drum: bool, sample_rate: int) -> tuple[Any, int]:
    """A fresh synthesizer with the preset selected, and the channel to play it on."""
    synth = _synth(path, sample_rate)
    ch = DRUM_CHANNEL if is_drum else 0
    synth.channel_set_preset_number(ch, program, is_drum)
    return synth, ch


def _render_stem(inst: pretty_midi.Instrument, sample_rate: int, n_samples: int, path: Path) -> np.ndarray:
    synth, ch = _preset_synth(path, inst.program, inst.is_drum, sample_rate)
    out = np.zeros((n_samples, 2), dtype=np.float32)
    pos = 0
    for sample, action in _events(inst, ch, sample_rate, path):
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
    leads = {p: onset_lead(path, inst.program, inst.is_drum, p, sample_rate) if path else 0.0
             for p in {n.pitch for n in inst.notes}}
    for n in inst.notes:
        lead = leads[n.pitch]
        events.append((_at(n.end - lead, sample_rate), 2, n.pitch, lambda s, p=n.pitch: s.channel_note_off(ch, p)))
        events.append((_at(n.start - lead, sample_rate), 3, n.pitch,
                       lambda s, p=n.pitch, v=n.velocity: s.channel_note_on(ch, p, v / 127.0)))
    events.sort(key=lambda e: e[:3])
    return [(sample, action) for sample, _order, _num, action in events]


def _at(t: float, sample_rate: int) -> int:
    return max(0, round(t * sample_rate))


def _cc7_gain(inst: pretty_midi.Instrument) -> float:
    """Linear gain of the instrument's first MIDI volume (CC7), by the GM curve; 1.0 when unset."""
    cc = next((c.value for c in inst.control_changes if c.number == VOLUME_CC), 127)
    return (max(0, min(127, cc)) / 127.0) ** 2


def _preset_gain(path: Path, program: int, is_drum: bool, sample_rate: int) -> float:
    """Gain that brings a preset's reference note (middle C; E2 for basses; kick then snare for a
    kit; velocity 100) to REFERENCE_DBFS loudest 50 ms RMS. Measured once per process."""
    key = (str(path.resolve()), program, is_drum, sample_rate)
    with _lock:
        if key in _preset_gains:
            return _preset_gains[key]
    synth, ch = _preset_synth(path, program, is_drum, sample_rate)
    half = sample_rate // 2
    out = np.zeros((4 * half, 2), dtype=np.float32)
    first, second = (36, 38) if is_drum else ((40, None) if 32 <= program <= 39 else (60, None))
    synth.channel_note_on(ch, first, 100 / 127)
    synth.render(out[:half])
    if second is not None:
        synth.channel_note_on(ch, second, 100 / 127)
    synth.render(out[half:])
    block = sample_rate // 20
    mono = out[: len(out) // block * block].mean(axis=1).reshape(-1, block)
    loudest = float(np.sqrt(np.mean(np.square(mono, dtype=np.float64), axis=1)).max())
    gain = 10 ** (REFERENCE_DBFS / 20) / loudest if loudest > 1e-6 else 1.0
    gain = min(20.0, max(0.05, gain))  # a broken or silent preset must not explode the mix
    with _lock:
        _preset_gains[key] = gain
    return gain


def onset_lead(path: Path, program: int, is_drum: bool, pitch: int, sample_rate: int) -> float:
    """Seconds a note of this preset is heard after its note-on, beyond a click's (0..MAX_LEAD_S):
    measured once per process per preset and octave (per note for a drum kit, whose notes are
    different sounds) on one isolated note at velocity 100, by :func:`onset_time`."""
    ref = pitch if is_drum else 12 * (pitch // 12) + 6  # the middle of the note's octave
    key = (str(path), program, is_drum, ref, sample_rate)
    with _lock:
        if key in _onset_leads:
            return _onset_leads[key]
        if sample_rate not in _click_onsets:
            click = np.zeros(round(ONSET_SPAN_S * sample_rate))
            click[round(ONSET_PRE_S * sample_rate)] = 1.0
            _click_onsets[sample_rate] = onset_time(click, sample_rate)
    synth, ch = _preset_synth(path, program, is_drum, sample_rate)
    pre, out = round(ONSET_PRE_S * sample_rate), np.zeros((round(ONSET_SPAN_S * sample_rate), 2), np.float32)
    synth.channel_note_on(ch, ref, 100 / 127)
    synth.render(out[pre:])
    mono = out.mean(axis=1)
    lead = 0.0
    if np.abs(mono).max() > 1e-6:
        lead = min(MAX_LEAD_S, max(0.0, onset_time(mono, sample_rate) - _click_onsets[sample_rate]))
    with _lock:
        _onset_leads[key] = lead
    return lead


def onset_time(mono: np.ndarray, sample_rate: int) -> float:
    """Time (seconds) of the peak of a spectral-flux onset function of ``mono``: log-power spectra
    (Hann window ONSET_WINDOW_S, ONSET_BANDS bands, floored ONSET_RANGE_DB below the peak) every
    ONSET_HOP_S, the mean over bands of the rise since ONSET_LAG_S before, half-wave rectified:
    the standard onset model of music information retrieval (as librosa's onset_strength), at a
    finer hop."""
    n_fft = round(ONSET_WINDOW_S * sample_rate)
    hop = max(1, round(ONSET_HOP_S * sample_rate))
    x = np.pad(mono.astype(np.float64), n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    edges = np.geomspace(30.0, sample_rate / 2, ONSET_BANDS + 1)
    band = np.digitize(freqs, edges) - 1
    ok = (band >= 0) & (band < ONSET_BANDS)
    bands = np.zeros((power.shape[0], ONSET_BANDS))
    np.add.at(bands.T, band[ok], power[:, ok].T)
    db = 10 * np.log10(np.maximum(bands, 1e-10))
    db = np.maximum(db, db.max() - ONSET_RANGE_DB)
    lag = max(1, round(ONSET_LAG_S / ONSET_HOP_S))
    flux = np.maximum(0.0, db[lag:] - db[:-lag]).mean(axis=1)
    return (int(np.argmax(flux)) + lag) * hop / sample_rate


def _render_fluidsynth(pm: pretty_midi.PrettyMIDI, sample_rate: int, n_samples: int,
                       soundfont: str | Path) -> np.ndarray:
    try:
        import fluidsynth  # noqa: F401  (pretty_midi imports it lazily; fail here with a clear fix)
    except ImportError:
        raise ConfigurationError("no SoundFont renderer installed (tinysoundfont or pyfluidsynth); "
                                 "run make install") from None
    mono = pm.fluidsynth(fs=sample_rate, sf2_path=str(soundfont)).astype(np.float32)
    out = np.zeros((n_samples, 2), dtype=np.float32)
    n = min(n_samples, mono.shape[0])
    out[:n] = mono[:n, None]
    return out
