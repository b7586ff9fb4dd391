"""``musicvid doctor``: what this machine has, what musicvid will use, and the command that fixes
each missing piece.

Every check is offline and quick (a 0.2 s test render included): it reads Settings, imports, runs
``ffmpeg -version``, and looks for AWS credentials only in places that need no network (never
printing them). A check's status is ``ok``, ``note`` (works; the fix makes it better), ``missing``
(an optional piece that is not here) or ``fail`` (the embedded default cannot run): any ``fail``
makes :func:`healthy` false and the command exit 1.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from musicvid_core.settings import Settings

# The [local] extra's modules the embedded default imports (module -> its PyPI name).
LOCAL_MODULES = {"numpy": "numpy", "scipy": "scipy", "imageio_ffmpeg": "imageio-ffmpeg", "cv2": "opencv-python",
                 "scenedetect": "scenedetect", "pretty_midi": "pretty_midi", "pedalboard": "pedalboard",
                 "pyloudnorm": "pyloudnorm", "soundfile": "soundfile", "webrtcvad": "webrtcvad-wheels",
                 "librosa": "librosa"}
LOCAL_FIX = 'pip install "musicvid[local]"'
FFMPEG_FILTERS = ("ebur128", "amix", "alimiter", "afade", "aresample")  # the mix's graph needs these
FFMPEG_ENCODERS = ("aac",)
SOUNDFONT_NOTES = {  # file name -> (quality note, whether a better one is worth installing)
    "TimGM6mb.sf2": ("the small General MIDI set pretty_midi bundles: works everywhere, thin and dated", True),
    "FluidR3_GM.sf2": ("FluidR3 GM: full, natural instruments", True),
    "MuseScore_General.sf3": ("MuseScore General: the richest of these (the default)", False),
    "MuseScore_General_Full.sf3": ("MuseScore General (HQ): the richest of these (the default)", False),
    "MuseScore_General_Lite.sf3": ("MuseScore General Lite: rich, smaller", False),
    "MuseScore_General.sf2": ("MuseScore General, uncompressed: the richest of these", False),
}
# Used automatically once installed (stages/compose/fonts.py CANDIDATES). The .sf3 needs tinysoundfont; a pip
# install renders with midirenderer, which reads .sf2 only, hence the second half.
BETTER_SOUNDFONT = ("apt install musescore-general-soundfont, with pip install --no-deps tinysoundfont to read its "
                    ".sf3; with midirenderer alone: apt install fluid-soundfont-gm (or musescore-general-soundfont-"
                    "lossless); elsewhere, any GM .sf2/.sf3 via MUSICVID_SOUNDFONT=/path/to/font")
RENDERER_NOTES = {
    "tinysoundfont": "tinysoundfont (TinySoundFont): ~250x real time, sample-exact, reads .sf2 and .sf3",
    "midirenderer": "midirenderer (RustySynth): ~15x real time, .sf2 only",
    "fluidsynth": "pyfluidsynth (FluidSynth) via pretty_midi: mono, notes as written (no onset alignment)",
}
FASTER_RENDERER = "pip install --no-deps tinysoundfont (~15x faster; --no-deps: its pyaudio needs portaudio headers)"
LOW_DISK_BYTES = 2 * 1024**3  # a few renders of a long video; below it, a note
# Credential sources botocore resolves from the environment and local files alone (no network).
OFFLINE_CREDENTIALS = ("env", "shared-credentials-file", "config-file", "boto-config", "ec2-credentials-file")
PROFILE_CREDENTIALS = {"role_arn": "assume-role", "sso_session": "sso", "sso_start_url": "sso",
                       "credential_process": "credential_process", "web_identity_token_file": "web identity"}


@dataclass
class Check:
    name: str
    status: str  # ok | note | missing | fail
    detail: str  # what is here and what musicvid will use
    fix: str = ""  # the command (or setting) that fixes or improves it


def run_checks(settings: Settings | None = None) -> list[Check]:
    """Every check, in the table's order. Never raises for what it finds: a bad setting, a missing
    binary or a broken renderer becomes a ``fail`` row."""
    checks = [Check("python", "ok", f"{sys.version.split()[0]} at {sys.executable}")]
    if settings is None:
        try:
            settings = Settings()
        except ValueError as exc:  # pydantic's ValidationError: a MUSICVID_* value that does not parse
            checks.append(Check("settings", "fail", " ".join(str(exc).split())[:300],
                                "fix or unset the MUSICVID_* variable named above"))
            settings = Settings.model_construct()
    checks += [_media_stack(), _ffmpeg(settings), *_music(settings), _workflow(settings), _store(settings),
               _pipeline(settings), _espeak(), _torch(), _aws(settings)]
    return checks


def healthy(checks: list[Check]) -> bool:
    """True when the embedded default can run: no check failed."""
    return not any(c.status == "fail" for c in checks)


def report(checks: list[Check]) -> dict:
    """The ``--json`` form: ``{"ok": bool, "checks": [{name, status, detail, fix}, ...]}``."""
    return {"ok": healthy(checks), "checks": [asdict(c) for c in checks]}


def table(checks: list[Check]):
    """The checks as one rich Table."""
    from rich.markup import escape
    from rich.table import Table

    styles = {"ok": "green", "note": "yellow", "missing": "dim", "fail": "bold red"}
    out = Table(title="musicvid doctor", title_justify="left", show_lines=False, expand=False)
    for column in ("check", "status", "what musicvid will use", "to fix or improve"):
        out.add_column(column, overflow="fold")
    for c in checks:
        out.add_row(c.name, f"[{styles[c.status]}]{c.status}[/]", escape(c.detail), escape(c.fix))
    return out


def _media_stack() -> Check:
    absent = [pip for module, pip in LOCAL_MODULES.items() if importlib.util.find_spec(module) is None]
    if absent:
        return Check("media stack", "fail", f"not installed: {', '.join(absent)}", LOCAL_FIX)
    return Check("media stack", "ok", f"the [local] extra ({len(LOCAL_MODULES)} packages)")


def _ffmpeg(settings: Settings) -> Check:
    from musicvid_core.domain.errors import ConfigurationError
    from musicvid_core.media import find_ffmpeg

    try:
        exe = find_ffmpeg(settings)
    except ConfigurationError as exc:
        return Check("ffmpeg", "fail", str(exc), LOCAL_FIX)
    source = "MUSICVID_FFMPEG" if settings.ffmpeg else ("imageio-ffmpeg" if "imageio_ffmpeg" in exe else "PATH")
    fix = "unset MUSICVID_FFMPEG (imageio-ffmpeg's is used) or point it at an ffmpeg" if settings.ffmpeg else LOCAL_FIX
    if not Path(exe).is_file():
        return Check("ffmpeg", "fail", f"{exe} (from {source}) does not exist", fix)
    try:
        version = _run([exe, "-hide_banner", "-version"]).splitlines()[0]
        have = _run([exe, "-hide_banner", "-filters"]) + _run([exe, "-hide_banner", "-encoders"])
    except (OSError, subprocess.SubprocessError, IndexError) as exc:
        return Check("ffmpeg", "fail", f"{exe} (from {source}) does not run: {exc}", fix)
    lacking = [name for name in (*FFMPEG_FILTERS, *FFMPEG_ENCODERS) if f" {name} " not in have]
    if lacking:
        return Check("ffmpeg", "fail", f"{exe}: {version}; lacks {', '.join(lacking)}", fix)
    return Check("ffmpeg", "ok", f"{exe} (from {source}): {' '.join(version.split()[:3])}")


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=True).stdout


def _music(settings: Settings) -> list[Check]:
    """The renderer and the SoundFont: what the procedural generator will render with."""
    if importlib.util.find_spec("pretty_midi") is None:
        return [Check("SoundFont renderer", "fail", "pretty_midi is not installed", LOCAL_FIX)]
    from musicvid_core.stages.compose import render

    name = render.renderer()
    if name is None:
        renderer = Check("SoundFont renderer", "fail", "none installed", render.RENDERER_FIX)
    else:
        faster = name != "tinysoundfont"
        renderer = Check("SoundFont renderer", "note" if faster else "ok", RENDERER_NOTES[name],
                         FASTER_RENDERER if faster else "")
    try:
        path = render.find_soundfont(settings)
    except Exception as exc:  # ConfigurationError; any other reason is as fatal here
        return [renderer, Check("SoundFont", "fail", str(exc), LOCAL_FIX)]
    note, better = SOUNDFONT_NOTES.get(path.name, ("your own SoundFont", False))
    detail = f"{path} ({path.stat().st_size / 1e6:.0f} MB): {note}"
    if settings.soundfont and Path(settings.soundfont).expanduser() != path:
        detail += f"; MUSICVID_SOUNDFONT={settings.soundfont} skipped (missing, or .sf3 without tinysoundfont)"
        better = True
    font = Check("SoundFont", "note" if better else "ok", detail, BETTER_SOUNDFONT if better else "")
    if name is not None:
        renderer = _test_render(renderer, render, path)
    return [renderer, font]


def _test_render(check: Check, render, path: Path) -> Check:
    """Renders one piano note: the renderer and the SoundFont must really make sound together."""
    import numpy as np
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    pm.instruments.append(pretty_midi.Instrument(0))
    pm.instruments[0].notes.append(pretty_midi.Note(100, 60, 0.0, 0.15))
    try:
        audio = render.render_midi(pm, 32000, 6400, path)
    except Exception as exc:  # whatever the synthesizer raises, the answer is "it cannot render"
        return Check(check.name, "fail", f"{check.detail}; a test render failed: {exc}", render.RENDERER_FIX)
    if not np.isfinite(audio).all() or np.abs(audio).max() < 1e-4:
        return Check(check.name, "fail", f"{check.detail}; a test render was silent", BETTER_SOUNDFONT)
    return check


def _workflow(settings: Settings) -> Check:
    from musicvid_core.asl import load_definition, validate_definition
    from musicvid_core.workflow.runner import PACKAGED_DEFINITION

    path = Path(settings.workflow).expanduser() if settings.workflow else PACKAGED_DEFINITION
    fix = "unset MUSICVID_WORKFLOW" if settings.workflow else "reinstall musicvid (the wheel ships workflow.asl.json)"
    try:
        validate_definition(load_definition(path))
    except (OSError, ValueError) as exc:  # missing, unreadable, not JSON, InvalidDefinition
        return Check("workflow definition", "fail", f"{path}: {exc}", fix)
    return Check("workflow definition", "ok", str(path))


def _store(settings: Settings) -> Check:
    home = Path(settings.home).expanduser()
    try:
        home.mkdir(parents=True, exist_ok=True)
        with (home / ".doctor-write-test").open("w") as fh:
            fh.write("ok")
        (home / ".doctor-write-test").unlink()
    except OSError as exc:
        return Check("store", "fail", f"{home} is not writable: {exc.strerror or exc}",
                     "set MUSICVID_HOME to a writable folder")
    free = shutil.disk_usage(home).free
    detail = f"objects {settings.store_root}, jobs {settings.db_path}; {free / 1024**3:.1f} GiB free"
    if free < LOW_DISK_BYTES:
        return Check("store", "note", detail, "free some disk, or set MUSICVID_HOME on a larger disk")
    return Check("store", "ok", detail)


def _pipeline(settings: Settings) -> Check:
    chosen = {"planner": settings.planner, "generator": settings.generator, "summarizer": settings.summarizer,
              "objects": settings.object_store, "jobs": settings.job_store, "launcher": settings.launcher}
    default = {"planner": "rules", "generator": "procedural", "summarizer": "template", "objects": "local",
               "jobs": "sqlite", "launcher": "local"}
    detail = ", ".join(f"{k} {v}" for k, v in chosen.items())
    if chosen == default:
        return Check("backends", "ok", f"the embedded default: {detail}")
    return Check("backends", "note", f"{detail} (not the embedded default; docs/backends.md)",
                 "unset MUSICVID_PLANNER/GENERATOR/... for the embedded default")


def _espeak() -> Check:
    from musicvid_core.lab.samples import espeak_available

    if espeak_available():
        return Check("espeak-ng", "ok", f"{shutil.which('espeak-ng') or shutil.which('espeak')}: speech in sample videos")
    return Check("espeak-ng", "missing", "only sample videos speak with it (they fall back to tones)",
                 "apt install espeak-ng")


def _torch() -> Check:
    fix = 'pip install "musicvid[musicgen]"'
    if importlib.util.find_spec("torch") is None:
        return Check("torch / GPU", "missing", "only the musicgen-local generator needs it", fix)
    try:
        torch = importlib.import_module("torch")
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU (CPU only)"
    except Exception as exc:  # a broken CUDA install raises all sorts; report, don't crash
        return Check("torch / GPU", "note", f"torch does not load: {exc}", fix)
    return Check("torch / GPU", "ok", f"torch {torch.__version__}; {gpu}")


def _aws(settings: Settings) -> Check:
    """Region and whether credentials are present, from botocore's offline sources only (never the
    instance metadata service, STS or SSO, which need the network). Credentials are never shown."""
    region = f"region {settings.region}"
    try:
        import botocore.session
        from botocore.exceptions import BotoCoreError
    except ImportError:
        return Check("AWS", "missing", f"{region}; boto3 not installed (only the AWS adapters need it)",
                     'pip install "musicvid[aws]"')
    try:
        session = botocore.session.Session()
        source = next((p.METHOD for p in session.get_component("credential_provider").providers
                       if p.METHOD in OFFLINE_CREDENTIALS and p.load() is not None), None)
        if source is None:
            config = session.get_scoped_config()
            source = next((f"{method} (resolved when used)" for key, method in PROFILE_CREDENTIALS.items()
                           if config.get(key)), None)
    except BotoCoreError as exc:  # ProfileNotFound, a malformed config file, ...
        return Check("AWS", "note", f"{region}; the AWS config does not load: {exc}", "aws configure")
    if source is None:
        return Check("AWS", "missing", f"{region}; no credentials found offline (an EC2/ECS role is not looked up)",
                     "aws configure (only for the AWS backends)")
    return Check("AWS", "ok", f"{region}; credentials present ({source})")
