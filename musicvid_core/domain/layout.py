"""ArtifactLayout: the key of every object musicvid stores, named in one place.

One prefix per job attempt, so rollback is one prefix delete, and the input, which lives under
``uploads/``, is never touched::

    uploads/{user}/{name}                                the input video (never deleted by the pipeline)
    jobs/{job_id}/                                       everything one job made
    jobs/{job_id}/{attempt}/                             one attempt's outputs (rollback deletes exactly this)
    jobs/{job_id}/{attempt}/features.json                measured video features
    jobs/{job_id}/{attempt}/plan.json                    the plan
    jobs/{job_id}/{attempt}/segments/{i:03d}.wav         one clip per segment
    jobs/{job_id}/{attempt}/edit.json                    a real recording's edit decision list (issue 15)
    jobs/{job_id}/{attempt}/music/{i:03d}.json           an async generator's request record per segment
    jobs/{job_id}/{attempt}/music/requests/{i:03d}-{part}.json   the endpoint's request bodies (SageMaker)
    jobs/{job_id}/{attempt}/planner/conversation.json    a model planner's conversation (Bedrock)
    jobs/{job_id}/{attempt}/output{ext}                  the scored video
    jobs/{job_id}/{attempt}/output_preview{ext}          ... or its small preview (job option ``preview``)
    jobs/{job_id}/{attempt}/stems/{name}.wav             the mixer's stems (job option ``stems``)
    jobs/{job_id}/cache/features-v{N}.json               the input's features, measured once per job
    jobs/{job_id}/cache/proxy.mp4                        the preview proxy (360p), encoded once per job

The per-job cache holds what depends only on the (immutable) input: it is kept across attempts, so
a regeneration re-plans and re-renders but never re-analyses, and lies outside every attempt
prefix, so neither rollback nor the cleanup of superseded attempts touches it.

These keys are stored data (job rows hold URIs of them, a re-roll reads an older attempt's): rename
one only together with a migration of what is stored. The IAM policies of infra/build_template.py
grant rights on the ``uploads/`` and ``jobs/`` prefixes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath

UPLOADS = "uploads"
JOBS = "jobs"
# Bumped whenever the analysis output changes meaning, so stale cached features are not reused.
# 2: MediaInfo on the player's timeline (edit lists), with every stream and the main audio track.
FEATURES_VERSION = 2
OUTPUT_EXTS = (".mp4", ".mov", ".m4v", ".mkv")  # containers the output keeps by name; others become .mkv
CONVERSATION = "planner/conversation.json"


@dataclass(frozen=True)
class ArtifactLayout:
    """The object keys of one job attempt (and of its job's cache). ``attempt`` counts from 1."""

    job_id: str
    attempt: int

    # --- keys outside any job ---------------------------------------------------------------------
    @staticmethod
    def upload_prefix(user_id: str) -> str:
        """``uploads/{user}/``: where a user's inputs live (submitting checks a video is under it)."""
        return f"{UPLOADS}/{user_id}/"

    @staticmethod
    def new_upload(user_id: str, ext: str) -> str:
        """A fresh, server-made key for one input of ``user_id`` (never the client's file name);
        ``ext`` with its dot, e.g. ``.mp4``."""
        return f"{ArtifactLayout.upload_prefix(user_id)}{uuid.uuid4().hex}{ext}"

    @staticmethod
    def music_request_under(prefix: str, index: int, part: int) -> str:
        """The request body of segment ``index``'s piece ``part`` under ``prefix``: an attempt's
        prefix, or another the caller chose for a request outside any job."""
        return f"{prefix}music/requests/{index:03d}-{part}.json"

    # --- one job attempt --------------------------------------------------------------------------
    @classmethod
    def holding(cls, key: str) -> ArtifactLayout | None:
        """The layout of the attempt whose prefix holds ``key`` (e.g. the attempt that wrote a
        job's current plan), or None for a key outside every attempt."""
        parts = key.split("/")
        if len(parts) >= 4 and parts[0] == JOBS and parts[2].isdigit():
            return cls(parts[1], int(parts[2]))
        return None

    def at(self, attempt: int) -> ArtifactLayout:
        """The same job's layout at another attempt (an older one's outputs, a re-roll's source)."""
        return ArtifactLayout(self.job_id, int(attempt))

    @property
    def job_prefix(self) -> str:
        return f"{JOBS}/{self.job_id}/"

    @property
    def prefix(self) -> str:
        """``jobs/{job_id}/{attempt}/``: this attempt's outputs; rollback removes exactly this."""
        return f"{self.job_prefix}{self.attempt}/"

    @property
    def features(self) -> str:
        return self.prefix + "features.json"

    @property
    def plan(self) -> str:
        return self.prefix + "plan.json"

    @property
    def edit(self) -> str:
        """A real recording's edit decision list (stages/compose/track/edit.py ``Edit``, JSON)."""
        return self.prefix + "edit.json"

    def segment(self, index: int) -> str:
        """Segment ``index``'s clip (WAV)."""
        return f"{self.prefix}segments/{index:03d}.wav"

    def music_record(self, index: int) -> str:
        """Segment ``index``'s request record at an asynchronous generator (JSON)."""
        return f"{self.prefix}music/{index:03d}.json"

    def music_request(self, index: int, part: int) -> str:
        return self.music_request_under(self.prefix, index, part)

    @property
    def conversation(self) -> str:
        return self.prefix + CONVERSATION

    def output(self, input_key: str, *, preview: bool = False, ext: str | None = None) -> str:
        """The scored video: ``output{ext}`` (``output_preview{ext}`` for a preview), ``ext`` as
        given (the format the mix chose, e.g. ``.webm``), else the input's (a key or URI) when it
        is one of OUTPUT_EXTS, else ``.mkv``."""
        if ext is None:
            ext = PurePosixPath(input_key.split("://", 1)[-1]).suffix.lower()
            ext = ext if ext in OUTPUT_EXTS else ".mkv"
        name = "output_preview" if preview else "output"
        return self.prefix + name + ext

    def stem(self, name: str) -> str:
        """One of the mixer's stems (WAV), e.g. ``music``."""
        return f"{self.prefix}stems/{name}.wav"

    @property
    def features_cache(self) -> str:
        """The input's features, measured once per job (outside every attempt)."""
        return f"{self.job_prefix}cache/features-v{FEATURES_VERSION}.json"

    @property
    def proxy(self) -> str:
        """The preview proxy video, encoded once per job (outside every attempt)."""
        return f"{self.job_prefix}cache/proxy.mp4"
