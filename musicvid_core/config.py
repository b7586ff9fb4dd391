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
    # Crash recovery on one machine (adapters/local/leases.py, workflow/recovery.py): a job's runner
    # renews its lease every lease_ttl_s / 3; a SCHEDULED job nobody holds is orphaned after
    # orphan_grace_s (the time between a submit and its run taking the lease).
    lease_ttl_s: float = Field(default=120.0, ge=1)
    orphan_grace_s: float = Field(default=60.0, ge=0)
    max_input_bytes: int = 4 * 1024**3
    max_duration_s: float = 4 * 3600.0

    # AWS (used only by the aws adapters)
    region: str = "us-east-1"
    bucket: str = ""
    table: str = "musicvid-jobs"
    state_machine_arn: str = ""
    aws_endpoint_url: str = Field(default="", description="override AWS endpoints (moto server, LocalStack)")

    # API (chalice_app and `musicvid serve`)
    workers: int = Field(default=2, ge=1, le=64, description="serve: jobs rendered at once (the pool size)")
    worker_isolation: Literal["process", "thread"] = Field(
        default="process", description="serve: each job in its own child process (crash-proof, GIL-free) or in "
                                       "the pool's threads")
    upload_expires_s: int = Field(default=900, ge=60, le=7 * 86400, description="upload form lifetime")
    download_expires_s: int = Field(default=3600, ge=60, le=7 * 86400, description="result URL lifetime")
    auth_issuer: str = Field(default="", description="JWT iss (Cognito pool URL); empty: the local dev issuer")
    auth_audience: str = Field(default="", description="Cognito app client id; empty: the local dev audience")
    auth_jwks_url: str = Field(default="", description="JWKS URL of the issuer; empty: the local dev key")
    cors_origin: str = Field(default="http://localhost:3000", description="the web origin allowed by CORS")

    # Model backends (docs/backends.md): planner/generator/summarizer names above pick them.
    bedrock_model_id: str = Field(default="us.amazon.nova-pro-v1:0",
                                  description="planner bedrock: a Converse model that accepts video")
    bedrock_summary_model_id: str = Field(default="us.anthropic.claude-sonnet-4-20250514-v1:0",
                                          description="summarizer bedrock: a Converse text model")
    bedrock_agent_id: str = Field(default="", description="planner bedrock-agent: the agent's id")
    bedrock_agent_alias_id: str = Field(default="", description="planner bedrock-agent: the alias id")
    bedrock_inline_video_bytes: int = Field(default=25 * 1024**2, ge=0,
                                            description="largest non-S3 input sent inline to the planner")
    sagemaker_endpoint: str = Field(default="", description="generator sagemaker: async MusicGen endpoint")
    sagemaker_bucket: str = Field(default="", description="where request payloads go (default: bucket)")
    sagemaker_poll_s: int = Field(default=15, ge=1, le=300, description="ASL wait between output checks")
    sagemaker_deadline_s: float = Field(default=1800.0, gt=0, description="all segments' total deadline")
    musicgen_model_dir: Path | None = Field(default=None, description="musicgen-local: a saved model folder")
    musicgen_device: str = Field(default="auto", description="musicgen-local: auto (cuda if present), cpu, cuda")
    musicgen_threads: int = Field(default=0, ge=0, le=256, description="musicgen-local: CPU threads (0 = torch's)")
    musicgen_guidance_scale: float = Field(default=3.0, ge=0, le=20, description="classifier-free guidance")

    @property
    def store_root(self) -> Path:
        return self.home / "store"

    @property
    def db_path(self) -> Path:
        return self.home / "jobs.sqlite3"


# ---------------------------------------------------------------------------------------------
# plug-in registries: name -> "module:attribute" (imported on first use)
# ---------------------------------------------------------------------------------------------
PLANNERS: dict[str, str] = {"rules": "musicvid_core.analysis.planner:RulePlanner",
                            "bedrock": "musicvid_core.analysis.bedrock_planner:BedrockPlanner",
                            "bedrock-agent": "musicvid_core.analysis.bedrock_planner:BedrockAgentPlanner"}
GENERATORS: dict[str, str] = {"procedural": "musicvid_core.music.backends.procedural:ProceduralGenerator",
                              "sagemaker": "musicvid_core.music.backends.sagemaker:SageMakerGenerator",
                              "musicgen-local": "musicvid_core.music.backends.musicgen_local:LocalMusicGenGenerator"}
SUMMARIZERS: dict[str, str] = {"template": "musicvid_core.workflow.summary:TemplateSummarizer",
                               "bedrock": "musicvid_core.workflow.bedrock_summary:BedrockSummarizer"}


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
    def leases(self):
        """The LeaseStore beside the SQLite job store (crash recovery of the embedded runner);
        None for other job stores, whose executions Step Functions owns."""
        with self._lock:
            if "leases" not in self._cache:
                path = getattr(self.jobs, "path", None) if self.settings.job_store == "sqlite" else None
                if path is None or path == ":memory:":
                    self._cache["leases"] = None
                else:
                    from .adapters.local.leases import LeaseStore

                    self._cache["leases"] = LeaseStore(path, self.settings.lease_ttl_s)
            return self._cache["leases"]

    @property
    def planner(self):
        return self._plugin(PLANNERS, "planner", self.settings.planner)

    @property
    def generator(self):
        return self._plugin(GENERATORS, "generator", self.settings.generator)

    @property
    def summarizer(self):
        return self._plugin(SUMMARIZERS, "summarizer", self.settings.summarizer)


def aws_client(settings: Settings, service: str) -> Any:
    """A boto3 client for ``service`` in the configured region (ConfigurationError without [aws])."""
    try:
        import boto3
    except ImportError:
        raise ConfigurationError(f"the {service} adapter needs boto3: install the [aws] extra") from None
    kwargs = {"endpoint_url": settings.aws_endpoint_url} if settings.aws_endpoint_url else {}
    return boto3.client(service, region_name=settings.region, **kwargs)


def build_services(settings: Settings | None = None) -> Services:
    settings = settings or Settings()
    if settings.object_store == "local":
        from .adapters.local import FolderObjectStore

        objects = FolderObjectStore(settings.store_root)
    else:
        from .adapters.aws.s3 import S3ObjectStore

        if not settings.bucket:
            raise ConfigurationError("the s3 object store needs MUSICVID_BUCKET")
        objects = S3ObjectStore(aws_client(settings, "s3"), settings.bucket)
    if settings.job_store == "sqlite":
        from .adapters.local import SQLiteJobStore

        jobs = SQLiteJobStore(settings.db_path)
    else:
        from .adapters.aws.dynamodb import DynamoDBJobStore

        jobs = DynamoDBJobStore(aws_client(settings, "dynamodb"), settings.table)
    return Services(settings=settings, objects=objects, jobs=jobs)


def build_launcher(services: Services) -> Any:
    """The Launcher port the settings name: Step Functions StartExecution, or the local runner on a
    bounded background pool of ``Settings.workers`` (musicvid serve)."""
    settings = services.settings
    if settings.launcher == "stepfunctions":
        from .adapters.aws.stepfunctions import StepFunctionsLauncher

        return StepFunctionsLauncher(aws_client(settings, "stepfunctions"), settings.state_machine_arn)
    from .workflow.pool import PooledLauncher

    return PooledLauncher(services, settings.workers, settings.worker_isolation)


@functools.lru_cache(maxsize=1)
def default_services() -> Services:
    """Process-wide services from the environment (what deployed step Lambdas use)."""
    return build_services(Settings())
