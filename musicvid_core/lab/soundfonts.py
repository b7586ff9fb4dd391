"""SoundFont and production comparison (notebook 05_sound): one plan rendered with each installed
General MIDI bank, with the production (stems, per-style mix: stages/compose/production.py) and
without it (the old dry chain: one stereo render, ``fx.polish``), each measured by
``musicvid_core.metrics.sound`` beside the real recordings' figures.

One row per (SoundFont, production): ``soundfont`` (file name), ``production`` ("on"/"off"),
``status``, the balance (``balance_rms_db``; ``presence_db`` and ``air_db`` from the references'
median), ``crest_db``, ``lra_lu``, ``width``, ``mono_loss_db``, ``contrast_db``, ``repetition`` and
``render_x_cpu`` (seconds of music per CPU second, loading excluded); ``wav`` is the music stem.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from musicvid_core.domain.errors import BadInput, MusicVidError

__all__ = ["FIGURES", "reference_figures", "sound_sweep"]

FIGURES = ("balance_rms_db", "presence_db", "air_db", "crest_db", "lra_lu", "width", "mono_loss_db",
           "contrast_db", "repetition")


def reference_figures() -> dict[str, float]:
    """The real recordings' medians of :data:`FIGURES` (0 dB for the balance columns)."""
    from musicvid_core.metrics.sound import REFERENCE

    figs = {k: REFERENCE["figures"][k]["median"] for k in FIGURES if k in REFERENCE["figures"]}
    return {"balance_rms_db": 0.0, "presence_db": 0.0, "air_db": 0.0, **figs}


def _installed(soundfonts: Sequence[str]) -> list[Path]:
    from musicvid_core.stages.compose import fonts, render

    if not soundfonts:
        found = fonts.candidates(render.renderer() in render.READS_SF3)
        seen, out = set(), []
        for p in found:  # Debian's MuseScore_General.sf3 is a link to one of the others: render it once
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                out.append(p)
        return out
    paths = [Path(s).expanduser() for s in soundfonts]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise BadInput(f"no such SoundFont: {', '.join(missing)}")
    return paths


def sound_sweep(video: str | Path, prompt: str, *, seed: int = 0, soundfonts: Sequence[str] = (),
                production: Sequence[str] = ("on", "off"), out_dir: str | Path) -> list[dict]:
    """Plan ``video`` once from ``prompt`` (rule planner, ``seed``) and render it with every SoundFont
    in ``soundfonts`` (paths; empty: every installed default bank) for each ``production`` ("on":
    stems and the style's mix; "off": the dry chain). Writes each music stem to ``out_dir`` and
    returns one row per render (a failed render is a row with status FAILED and its error). Raises
    BadInput for a missing video or SoundFont, or a production value other than on/off."""
    from musicvid_core.media import write_float_wav
    from musicvid_core.metrics import music as mm
    from musicvid_core.metrics import sound
    from musicvid_core.settings import Settings
    from musicvid_core.stages.analyse.features import analyze_video
    from musicvid_core.stages.analyse.probe import probe
    from musicvid_core.stages.plan.planner import RulePlanner

    video, out_dir = Path(video), Path(out_dir)
    if not video.is_file():
        raise BadInput(f"no such video: {video}")
    bad = [p for p in production if p not in ("on", "off")]
    if bad or not production:
        raise BadInput(f"production must be a list of 'on' and 'off', got {list(production)!r}")
    paths = _installed(soundfonts)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings()
    plan = RulePlanner(settings).plan(analyze_video(video, probe(video)), prompt, seed)
    rows = []
    for path in paths:
        for mode in production:
            row = {"label": f"{path.stem} / {mode}", "soundfont": path.name, "production": mode, "prompt": prompt,
                   "seed": seed, "style": plan.segments[0].style}
            try:
                clips, cpu, rate = _render(plan, path, settings, seed, dry=mode == "off")
                music = mm.assemble_music(clips, plan, rate)
                wav = out_dir / f"{path.stem}-{mode}.wav"
                write_float_wav(wav, music, rate)
                report = sound.sound_report(music, rate, beats_s=sound.plan_beats(plan))
                dev = report["balance_vs_reference_db"]
                row.update(status="COMPLETED", balance_rms_db=report["balance_rms_db"], presence_db=dev["presence"],
                           air_db=dev["air"], render_x_cpu=round(plan.duration / max(cpu, 1e-6), 1), wav=str(wav),
                           **{k: report[k] for k in FIGURES[3:]})
            except MusicVidError as exc:
                row.update(status="FAILED", error_type=type(exc).__name__, error=str(exc))
            rows.append(row)
    return rows


def _render(plan, soundfont: Path, settings, seed: int, *, dry: bool):
    """Every segment's clip with ``soundfont``: the generator (production on), or one stereo render
    through the old dry chain. Returns (clips, CPU seconds, sample rate); the bank's loading and
    first-use measurements are paid before the clock starts."""
    from musicvid_core.domain.styles import STYLES
    from musicvid_core.stages.compose import fx
    from musicvid_core.stages.compose.composer import compose_segment
    from musicvid_core.stages.compose.procedural import ProceduralGenerator, _resample
    from musicvid_core.stages.compose.render import render_midi

    gen = ProceduralGenerator(settings.model_copy(update={"soundfont": soundfont}))
    gen.generate(plan, len(plan.segments) - 1, seed)  # load the bank and measure its presets
    c0 = time.process_time()
    if not dry:
        clips = [gen.generate(plan, i, seed) for i in range(len(plan.segments))]
        return clips, time.process_time() - c0, gen.sample_rate
    clips = []
    for i, seg in enumerate(plan.segments):
        rate, n = gen.synth_rate, plan.clip_samples(i, gen.synth_rate)
        audio = render_midi(compose_segment(plan, i, seed), rate, n, soundfont)
        reverb = STYLES[seg.style].reverb if seg.style in STYLES else 0.3
        audio = fx.polish(audio, rate, reverb=reverb, energy=seg.mean_energy,
                          body_samples=n - round(plan.tail_s(i) * rate))
        clips.append(_resample(audio, rate, gen.sample_rate, plan.clip_samples(i, gen.sample_rate)))
    return clips, time.process_time() - c0, gen.sample_rate
