"""One Settings object (env prefix ``MUSICVID_``) and the wiring that builds services from it.

Backends are plug-ins named in registries of import strings: nothing heavy is imported until a
backend is actually used, so the API Lambda (which never plans or renders) stays small.
"""

from __future__ import annotations

import functools
import getpass
import importlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .domain.errors import ConfigurationError


def _default_user() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "local"
    return "".join(ch for ch in name if ch.isalnum() or ch in "._-") or "local"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MUSICVID_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".musicvid",
                       description="embedded default's data folder (object store + SQLite)")
    user: str = Field(default_factory=_default_user, description="local user id for CLI jobs")

    object_store: Literal["local", "s3"] = "local"
    job_store: Literal["sqlite", "dynamodb"] = "sqlite"
    launcher: Literal["local", "stepfunctions"] = "local"
    planner: str = "rules"
    generator: str = "procedural"
    summarizer: str = "template"

    soundfont: Path | None = Field(default=None, description=".sf2 for the procedural composer")
    sample_rate: int = 48000
    target_lufs: float = Field(default=-14.0, ge=-40, le=-5)
    true_peak_dbtp: float = Field(default=-1.0, ge=-9, le=0)
    audio_bitrate: str = "256k"
    # Ducking under speech (Plan.duck_*): the least depth in dB, the ramps in seconds.
    duck_db: float = Field(default=12.0, ge=0, le=40)
    duck_attack_s: float = Field(default=0.15, ge=0.01, le=2)
    duck_release_s: float = Field(default=0.5, ge=0.01, le=3)
    # Music in the original sound (Plan.source_music_policy): keep, duck or replace.
    source_music: Literal["keep", "duck", "replace"] = "duck"

    map_concurrency: int = Field(default=2, ge=1, le=64, description="parallel segment renders")
    retry_time_scale: float = Field(default=1.0, ge=0, description="local runner: x ASL delays")
    ffmpeg_timeout_s: float = 1800.0
    max_input_bytes: int = 4 * 1024**3
    max_duration_s: float = 4 * 3600.0

    # AWS (used only by the aws adapters)
    region: str = "us-east-1"
    bucket: str = ""
    table: str = "musicvid-jobs"
    state_machine_arn: str = ""

    @property
    def store_root(self) -> Path:
        return self.home / "store"

    @property
    def db_path(self) -> Path:
        return self.home / "jobs.sqlite3"


# ---------------------------------------------------------------------------------------------
# plug-in registries: name -> "module:attribute" (imported on first use)
# ---------------------------------------------------------------------------------------------
PLANNERS: dict[str, str] = {"rules": "musicvid_core.analysis.planner:RulePlanner"}
GENERATORS: dict[str, str] = {"procedural": "musicvid_core.music.backends.procedural:ProceduralGenerator"}
SUMMARIZERS: dict[str, str] = {"template": "musicvid_core.workflow.summary:TemplateSummarizer"}


def load_plugin(registry: dict[str, str], kind: str, name: str) -> Any:
    """Import and return the class registered as ``name``; ConfigurationError if unknown or its
    optional dependencies are missing."""
    target = registry.get(name)
    if target is None:
        raise ConfigurationError(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(registry))}")
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise ConfigurationError(f"{kind} {name!r} needs an optional dependency that is not "
                                 f"installed ({exc.name}); install its extra") from None


@dataclass
class Services:
    """Everything a step handler needs, built once from Settings."""

    settings: Settings
    objects: Any
    jobs: Any
    _cache: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _plugin(self, registry, kind, name):
        key = (kind, name)
        with self._lock:  # Map iterations ask concurrently; build each backend once
            if key not in self._cache:
                self._cache[key] = load_plugin(registry, kind, name)(self.settings)
            return self._cache[key]

    def warm(self) -> None:
        """Import and build the configured backends now. The embedded runner calls this in a
        background thread while the analysis decodes the video, so the generator's imports
        (scipy.signal alone takes ~1.3 s) are not paid on the critical path. Errors are left for
        the step that really needs the backend to raise."""
        for attr in ("planner", "generator", "summarizer"):
            try:
                getattr(self, attr)
            except Exception:
                pass

    @property
    def planner(self):
        return self._plugin(PLANNERS, "planner", self.settings.planner)

    @property
    def generator(self):
        return self._plugin(GENERATORS, "generator", self.settings.generator)

    @property
    def summarizer(self):
        return self._plugin(SUMMARIZERS, "summarizer", self.settings.summarizer)


def build_services(settings: Settings | None = None) -> Services:
    settings = settings or Settings()
    if settings.object_store == "local":
        from .adapters.local import FolderObjectStore

        objects = FolderObjectStore(settings.store_root)
    else:
        raise ConfigurationError("the s3 object store needs the [aws] extra and the API issue's adapters")
    if settings.job_store == "sqlite":
        from .adapters.local import SQLiteJobStore

        jobs = SQLiteJobStore(settings.db_path)
    else:
        raise ConfigurationError("the dynamodb job store needs the [aws] extra and the API issue's adapters")
    return Services(settings=settings, objects=objects, jobs=jobs)


@functools.lru_cache(maxsize=1)
def default_services() -> Services:
    """Process-wide services from the environment (what deployed step Lambdas use)."""
    return build_services(Settings())
