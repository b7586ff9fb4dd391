"""Settings: the one reader of the environment (prefix ``MUSICVID_``).

Nothing else in musicvid reads ``os.environ`` for its own configuration: every knob is a field
here, with its unit and default, so ``musicvid doctor`` and docs/ can list them all.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    soundfont: Path | None = Field(default=None, description=".sf2/.sf3 for the procedural composer")
    ffmpeg: Path | None = Field(default=None, description="an ffmpeg binary (default: imageio-ffmpeg's)")
    workflow: Path | None = Field(default=None, description="the ASL definition (default: the packaged one)")
    runs_dir: Path | None = Field(default=None, description="notebook/batch runs (default: data/runs)")
    step: str = Field(default="", description="media image: the step its default handler runs")
    debug: bool = Field(default=False, description="CLI: re-raise errors with their traceback")
    log_level: str | None = Field(default=None, pattern=r"(?i)^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$",
                                  description="musicvid_core's log level; unset: the entry point's (CLI: ERROR, "
                                              "serve and Lambda: INFO)")
    log_format: Literal["text", "json"] = Field(default="text", description="log lines: text, or one JSON object each")
    # Set by the Lambda runtime (no MUSICVID_ prefix): the step and API functions log JSON (Powertools).
    lambda_function: str = Field(default="", validation_alias="AWS_LAMBDA_FUNCTION_NAME")
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
    mmap_threshold_kb: int = Field(default=0, ge=0, le=32768,
                                   description="glibc: blocks from this size are mapped, given back when freed "
                                               "(less memory, more CPU; 0: glibc's own); heap.py")
    retry_time_scale: float = Field(default=1.0, ge=0, description="local runner: x ASL delays")
    ffmpeg_timeout_s: float = 1800.0
    # Crash recovery on one machine (adapters/local/leases.py, workflow/recovery.py): a job's runner
    # renews its lease every lease_ttl_s / 3; a SCHEDULED job nobody holds is orphaned after
    # orphan_grace_s (the time between a submit and its run taking the lease).
    lease_ttl_s: float = Field(default=120.0, ge=1)
    orphan_grace_s: float = Field(default=60.0, ge=0)
    # Real recordings (issue 15, docs/tracks.md): a folder of the user's own tracks added to the bundled
    # library (the [library] extra), and where track analyses and the library index are cached by the
    # SHA-256 of each file (None: MUSICVID_HOME/cache/tracks; on Lambda /tmp/musicvid-tracks).
    library: Path | None = Field(default=None, description="a folder of your own tracks for --library "
                                                            "(added to the bundled ones)")
    track_cache_dir: Path | None = Field(default=None, description="track analyses and the library index, cached "
                                                                    "by content hash (default: HOME/cache/tracks)")
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
    # Fair use (docs/RELIABILITY.md, "Hostile requests and uploads"). The cap holds on AWS too (a
    # conditional counter in DynamoDB); the rate limit and timeouts are the local server's (API
    # Gateway throttles and times out requests on AWS).
    max_active_jobs: int = Field(default=20, ge=1, le=100_000,
                                 description="API: a user's jobs SCHEDULED + PROCESSING at once (429 beyond)")
    rate_limit_per_s: float = Field(default=20.0, ge=0, description="serve: requests per second per user, "
                                                                     "sustained (0: no limit)")
    rate_limit_burst: int = Field(default=100, ge=1, description="serve: requests per user in one burst")
    header_timeout_s: float = Field(default=10.0, gt=0, description="serve: a request line and headers must "
                                                                     "arrive within this (408 after)")
    read_timeout_s: float = Field(default=30.0, gt=0, description="serve: longest silence while a request body "
                                                                   "is read (408 after)")
    page_token_secret: SecretStr = Field(default=SecretStr(""), description="HMAC key of page tokens; empty: a "
                                         "secret the job store keeps (SQLite table, DynamoDB item)")
    user_pool_arn: str = Field(default="arn:aws:cognito-idp:us-east-1:000000000000:userpool/us-east-1_stack",
                               description="Chalice's Cognito authorizer (infra overrides it with the stack's pool)")

    # Model backends (docs/backends.md): planner/generator/summarizer names above pick them.
    bedrock_model_id: str = Field(default="us.amazon.nova-pro-v1:0",
                                  description="planner bedrock: a Converse model that accepts video")
    bedrock_summary_model_id: str = Field(default="us.anthropic.claude-sonnet-4-20250514-v1:0",
                                          description="summarizer bedrock: a Converse text model")
    bedrock_agent_id: str = Field(default="", description="planner bedrock-agent: the agent's id")
    bedrock_agent_alias_id: str = Field(default="", description="planner bedrock-agent: the alias id")
    # Nova's video limits: 25 MB of base64 text inline (~18 MB of video), 1 GB by S3 location. A larger
    # input is shown as its 360p proxy, or not at all (features only).
    bedrock_inline_video_bytes: int = Field(default=18_000_000, ge=0,
                                            description="largest non-S3 video (bytes) sent inline to the planner")
    bedrock_s3_video_bytes: int = Field(default=1_000_000_000, ge=0,
                                        description="largest S3 video (bytes) the planner shows by location")
    # Bedrock/SageMaker clients (adapters/aws/client.py: model_client): the deploy template sets both per
    # function so that attempts x read timeout fit in the Lambda's timeout.
    model_read_timeout_s: float = Field(default=120.0, gt=0, le=3600, description="model clients: read timeout (s)")
    model_max_attempts: int = Field(default=2, ge=1, le=10, description="model clients: attempts (botocore "
                                                                         "standard retry mode)")
    sagemaker_endpoint: str = Field(default="", description="generator sagemaker: async MusicGen endpoint")
    sagemaker_bucket: str = Field(default="", description="where request payloads go (default: bucket)")
    sagemaker_poll_s: int = Field(default=15, ge=1, le=300, description="ASL wait between output checks")
    sagemaker_deadline_s: float = Field(default=1800.0, gt=0, description="all segments' total deadline")
    musicgen_model_dir: Path | None = Field(default=None, description="musicgen-local: a saved model folder")
    musicgen_device: str = Field(default="auto", description="musicgen-local: auto (cuda if present), cpu, cuda")
    musicgen_threads: int = Field(default=0, ge=0, le=256, description="musicgen-local: CPU threads (0 = torch's)")
    musicgen_guidance_scale: float = Field(default=3.0, ge=0, le=20, description="classifier-free guidance")

    @model_validator(mode="after")
    def _track_cache(self) -> Settings:
        if self.track_cache_dir is None:  # only /tmp is writable on Lambda
            self.track_cache_dir = (Path("/tmp/musicvid-tracks") if self.lambda_function
                                    else self.home / "cache" / "tracks")
        return self

    @property
    def store_root(self) -> Path:
        return self.home / "store"

    @property
    def db_path(self) -> Path:
        return self.home / "jobs.sqlite3"
