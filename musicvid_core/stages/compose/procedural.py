"""The default generator: the procedural composer, rendered with a General MIDI SoundFont as stems,
mixed per style (production.py) and levelled by energy (fx.finish).

Royalty-free, offline, deterministic per seed and fast (see docs/music.md for the measured speed).
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np

from musicvid_core.domain.errors import GenerationError
from musicvid_core.domain.plan import Plan
from musicvid_core.media import resample
from musicvid_core.stages.compose.arrangement import ride_gain
from musicvid_core.stages.compose.composer import compose_arranged
from musicvid_core.stages.compose.fx import finish
from musicvid_core.stages.compose.mixes import mix_for
from musicvid_core.stages.compose.production import produce
from musicvid_core.stages.compose.render import find_soundfont, lazy_stems, prepare_fonts, release_fonts
from musicvid_core.stages.plan.prompt import resolve_style

KICKS = (35, 36)  # GM drum notes of the kick: the house pump's key
SYNTH_RATE = 32000  # Hz: 16 kHz of bandwidth; the GM SoundFonts' samples mostly carry less


def _resample(audio: np.ndarray, rate: int, target: int, n: int) -> np.ndarray:
    """(m, 2) float32 at ``rate`` Hz -> exactly ``n`` frames at ``target`` Hz (polyphase FIR),
    peaks kept within [-1, 1]."""
    out = resample(audio, rate, target)
    if out.shape[0] < n:
        out = np.concatenate([out, np.zeros((n - out.shape[0], out.shape[1]), np.float32)])
    return np.clip(out[:n], -1.0, 1.0)


class ProceduralGenerator:
    name = "procedural"
    is_async = False  # renders in the call (ports.MusicGenerator)

    def __init__(self, settings) -> None:
        self.sample_rate = int(settings.sample_rate)
        # Synthesis and production run at SYNTH_RATE (never above the output rate), then one polyphase
        # resample: a third less work than at 48 kHz (see docs/music.md, "Speed").
        self.synth_rate = min(self.sample_rate, SYNTH_RATE)
        self.soundfont = find_soundfont(settings)  # ConfigurationError now, not mid-pipeline
        self._prepared: set[tuple[str, int]] = set()  # (plan digest, seed) whose SoundFont subset is parsed
        self._preparing = threading.Lock()

    def mixdown(self, midi, seg, rate: int, n: int, noise_seed: int, sections=()) -> np.ndarray:
        """The segment's MIDI rendered as stems and produced by its style's mix (production.py),
        float32 (n, 2) at ``rate`` Hz, unnormalised. ``noise_seed`` seeds the vinyl noise;
        ``sections`` ((start s, end s, Section) per bar) set the fader rides."""
        stems = lazy_stems(midi, rate, n, self.soundfont)  # rendered as the mix reads them
        kicks = [note.start for inst in midi.instruments if inst.is_drum for note in inst.notes
                 if note.pitch in KICKS]
        return produce(stems, rate, mix_for(resolve_style(seg.style, seg.prompt).name), bpm=seg.bpm,
                       kicks=kicks, seed=noise_seed, ride=ride_gain(list(sections), n, rate) if sections else None)

    def release(self) -> None:
        """Let go of the parsed SoundFont subsets (render.release_fonts); the next segment parses
        its subset again from the disk cache."""
        with self._preparing:
            self._prepared.clear()
            release_fonts()

    def _prepare(self, plan: Plan, seed: int) -> None:
        """Once per plan and seed: the SoundFont subset of every segment's presets and spans
        (render.prepare_fonts), parsed before the first segment renders. Each segment's MIDI is
        composed for it (~1 ms a segment); the segment rendering in parallel waits for it."""
        key = (hashlib.sha256(plan.model_dump_json().encode()).hexdigest(), seed)
        with self._preparing:
            if key not in self._prepared:
                prepare_fonts([compose_arranged(plan, i, seed)[0] for i in range(len(plan.segments))],
                              self.soundfont)
                self._prepared.add(key)

    def generate(self, plan: Plan, index: int, seed: int) -> np.ndarray:
        """Segment ``index`` of ``plan`` as float32 (samples, 2) at ``sample_rate`` Hz, exactly
        ``plan.clip_samples(index, sample_rate)`` long (the segment plus its release tail), finite,
        peaks <= 1.0. Raises GenerationError for an index outside the plan or a failed render, and
        ConfigurationError when no SoundFont renderer is installed."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(plan.segments):
            raise GenerationError(f"segment index {index!r} is outside the plan "
                                  f"(0..{len(plan.segments) - 1})", index=index)
        seg = plan.segments[index]
        n = plan.clip_samples(index, self.sample_rate)
        self._prepare(plan, seed)
        midi, sections = compose_arranged(plan, index, seed)
        rate = self.synth_rate
        m = plan.clip_samples(index, rate)
        audio = self.mixdown(midi, seg, rate, m, seed * 1_000_003 + index + seg.variation * 1_000_000_007, sections)
        tail = round(plan.tail_s(index) * rate)
        audio = finish(audio, rate, energy=seg.mean_energy, body_samples=m - tail)
        if rate != self.sample_rate:
            audio = _resample(audio, rate, self.sample_rate, n)
        if audio.shape != (n, 2) or not np.isfinite(audio).all():
            raise GenerationError(f"segment {index} rendered to an invalid clip {audio.shape}", index=index)
        return audio
