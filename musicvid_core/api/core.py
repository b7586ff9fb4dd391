"""The API's logic, framework-neutral: Chalice (chalice_app/app.py) and ``musicvid serve``
(api/server.py) both parse a request, call one method here and serialise what it returns.

Every method takes the verified caller (``sub``) and the raw JSON body or query, validates them,
calls the use cases in :mod:`musicvid_core.workflow.submit`, and returns ``(http_status, json_dict)``.
Errors are the error tree's; :func:`error_response` turns any exception into
``{"error": CODE, "message": TEXT}`` with the class's ``http_status`` (never a traceback).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, ValidationError

from musicvid_core.api.models import (
    AUDIO_EXT_BY_TYPE,
    AUDIO_EXTS,
    JobList,
    JobView,
    PlanView,
    SegmentView,
    SubmitRequest,
    SubmitResponse,
    UploadRequest,
    UploadResponse,
)
from musicvid_core.domain.errors import BadInput, ConcurrentUpdate, MusicVidError, NotFound, PlanValidationError
from musicvid_core.domain.job import Job, Status
from musicvid_core.domain.layout import ArtifactLayout
from musicvid_core.domain.plan import Plan
from musicvid_core.ports import Launcher, Links, TokenVerifier
from musicvid_core.services import Services
from musicvid_core.workflow import submit as service

log = logging.getLogger(__name__)

# Extension of the stored upload, from its declared type (never the client's file name).
EXT_BY_TYPE = {"video/mp4": ".mp4", "video/quicktime": ".mov", "video/x-m4v": ".m4v", "video/webm": ".webm",
               "video/x-matroska": ".mkv", "video/mpeg": ".mpg", "video/mp2t": ".ts", "video/3gpp": ".3gp",
               "video/x-msvideo": ".avi", "video/ogg": ".ogv", **AUDIO_EXT_BY_TYPE}
_IDEMPOTENCY_NS = uuid.UUID("6f1c7c8e-58f3-4a9b-9a57-6b0f8a1c2d3e")
MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16  # our request bodies nest 3 deep; a deeper body is refused, not recursed into
RETRY_AFTER_S = 30  # a 429's Retry-After: about one short job's run time


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep ``value`` (decoded JSON) nests, counted without recursion and at most ``limit + 1``."""
    depth, level = 0, [value]
    while level and depth <= limit:
        depth += 1
        level = [child for item in level if isinstance(item, (dict, list))
                 for child in (item.values() if isinstance(item, dict) else item)
                 if isinstance(child, (dict, list))]
    return depth


def _parse(model: type[BaseModel], body: Any) -> Any:
    """The validated ``model`` of a JSON body (bytes, or an already decoded dict); BadInput for
    anything else: too large, not JSON (every decoding failure, a nesting that exhausts the
    decoder's recursion included), nested deeper than MAX_JSON_DEPTH, or invalid."""
    if isinstance(body, (bytes, bytearray)):
        if len(body) > MAX_BODY_BYTES:
            raise BadInput("request body too large")
        try:
            body = json.loads(body or b"null")
        except RecursionError:
            raise BadInput(f"request body nests deeper than {MAX_JSON_DEPTH} levels") from None
        except (ValueError, UnicodeDecodeError):
            raise BadInput("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadInput("request body must be a JSON object")
    if json_depth(body) > MAX_JSON_DEPTH:
        raise BadInput(f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise BadInput(f"{where}: {first.get('msg', 'invalid')}") from None


class Api:
    """The four routes. ``launcher`` starts workflows (local pool or Step Functions); ``links``
    makes upload forms and download URLs (S3 presigned or locally signed); ``verifier`` checks JWTs."""

    def __init__(self, services: Services, launcher: Launcher, links: Links, verifier: TokenVerifier) -> None:
        self.services = services
        self.launcher = launcher
        self.links = links
        self.verifier = verifier

    @property
    def settings(self):
        return self.services.settings

    def authenticate(self, authorization: str | None) -> str:
        """The caller's user id (``sub``) from a verified bearer token; Unauthorized otherwise."""
        return self.verifier.verify(authorization)["sub"]

    # POST /uploads ---------------------------------------------------------------------------
    def create_upload(self, user: str, body: Any) -> tuple[int, dict]:
        req = _parse(UploadRequest, body)
        limit = self.settings.max_input_bytes
        if req.size is not None and req.size > limit:
            raise BadInput(f"the file is {req.size} bytes; the limit is {limit}")
        ctype = req.content_type.lower()
        key = ArtifactLayout.new_upload(user, EXT_BY_TYPE.get(ctype, ".bin"))
        expires = self.settings.upload_expires_s
        form = self.links.upload(key, ctype, limit, expires)
        out = UploadResponse(s3_url=self.services.objects.uri(key), upload=form, expires_in=expires, max_bytes=limit)
        return 201, out.model_dump(mode="json")

    # POST /jobs ------------------------------------------------------------------------------
    def submit_job(self, user: str, body: Any) -> tuple[int, dict]:
        req = _parse(SubmitRequest, body)
        if (req.s3_url is None) == (req.job_id is None):
            raise BadInput("give either s3_url (a new job) or job_id (regenerate), not both")
        self._check_kinds(req)
        if req.s3_url is not None:
            job = self._submit_new(user, req)
        else:
            job = self._submit_regenerate(user, req)
        if job.status == Status.SCHEDULED:
            self.launcher.start(job)
        return 202, SubmitResponse(job_id=job.job_id, status=job.status.value).model_dump()

    def _is_audio(self, uri: str) -> bool:
        """Whether an upload's URI names an audio file: its server-made key's extension says which
        content type POST /uploads was given (BadInput for a URI of another store)."""
        return PurePosixPath(self.services.objects.key_from_uri(uri)).suffix in AUDIO_EXTS

    def _check_kinds(self, req: SubmitRequest) -> None:
        """The video is a video upload and a track is an audio upload (ownership and existence are
        the use case's checks). BadInput otherwise."""
        if req.s3_url is not None and self._is_audio(req.s3_url):
            raise BadInput("s3_url is an audio upload: give a video there, and the audio as music.s3_url")
        music = req.music
        if music is not None and music.s3_url is not None and not self._is_audio(music.s3_url):
            raise BadInput("music.s3_url must be an audio upload (POST /uploads with an audio/* content_type)")

    def _submit_new(self, user: str, req: SubmitRequest) -> Job:
        job_id = str(uuid.uuid5(_IDEMPOTENCY_NS, f"{user}\n{req.client_token}")) if req.client_token else None
        if job_id is not None:
            try:
                return self.services.jobs.get(job_id, user)
            except MusicVidError:
                pass
        if req.segment is not None:
            raise BadInput("segment re-rolls an existing job: send it with job_id")
        if req.prompt is None:
            raise BadInput("prompt: a new job needs a prompt")
        options = {**req.options(), **({"hits": req.hits} if req.hits else {})}
        try:
            return service.submit_new(self.services, req.s3_url, req.prompt, user, job_id=job_id, options=options,
                                      max_active=self.settings.max_active_jobs)
        except ConcurrentUpdate:  # the same client token raced us: return the job it made
            return self.services.jobs.get(job_id, user)

    def _submit_regenerate(self, user: str, req: SubmitRequest) -> Job:
        if req.client_token:
            job = service.get_job(self.services, req.job_id, user)
            if job.client_token == req.client_token:
                return job
        return service.submit_regenerate(self.services, req.job_id, req.prompt, user, segment=req.segment,
                                         hits=req.hits, options=req.options(), client_token=req.client_token or None,
                                         max_active=self.settings.max_active_jobs)

    # GET /jobs/{job_id} ----------------------------------------------------------------------
    def get_job(self, user: str, job_id: str) -> tuple[int, dict]:
        job = service.get_job(self.services, job_id, user)
        return 200, self.view(job, detail=True)

    # GET /jobs -------------------------------------------------------------------------------
    def list_jobs(self, user: str, query: dict | None) -> tuple[int, dict]:
        query = dict(query or {})
        unknown = set(query) - {"limit", "next"}
        if unknown:
            raise BadInput(f"unknown query parameter: {sorted(unknown)[0]}")
        raw = query.get("limit", "20")
        if not re.fullmatch(r"[0-9]{1,3}", str(raw)):
            raise BadInput("limit must be an integer between 1 and 100")
        token = query.get("next") or None
        if token is not None and len(token) > 2048:
            raise BadInput("invalid page token")
        jobs, nxt = self.services.jobs.list_for_user(user, limit=int(raw), next_token=token)
        return 200, JobList(jobs=[self.view(j) for j in jobs], next=nxt).model_dump(mode="json")

    def view(self, job: Job, detail: bool = False) -> dict:
        """The public shape of a job: no user, object or internal ids; download URLs of the result
        (and its stems) when done. ``detail`` (GET /jobs/{id}) adds the public plan (one store read,
        kept out of list pages) and a link to the caller's own input video."""
        out = {}
        if job.status == Status.COMPLETED and job.final_url:
            final_key = self.services.objects.key_from_uri(job.final_url)
            out["final_url"] = self._link(final_key)
            out["preview"] = PurePosixPath(final_key).name.startswith("output_preview")
            out["stem_urls"] = {name: self._link(self.services.objects.key_from_uri(uri))
                                for name, uri in sorted(((job.metrics or {}).get("stems") or {}).items())}
        if detail:
            out["input_url"] = self._link(self.services.objects.key_from_uri(job.s3_url))
            out["plan"] = self._public_plan(job)
        data = job.model_dump(mode="json", include={"job_id", "status", "stage", "operation_type", "prompts",
                                                    "created_at", "updated_at", "error", "summary"})
        return JobView.model_validate({"final_url": None, **data, **out}).model_dump(mode="json")

    def _link(self, key: str) -> str:
        return self.links.download(key, self.settings.download_expires_s)

    def _public_plan(self, job: Job) -> dict | None:
        """The plan's public parts (PlanView), or None before the analysis has made one, and whenever
        it cannot be read *now*: the view must not fail over what is only a picture of the job.

        The job row and the plan object are read at different moments, so the row may name a plan
        that a failed attempt's rollback or a finished regeneration's cleanup is deleting (gone,
        or gone between the existence check and the read), or one this API version cannot show.
        Each is logged and the view goes without the plan; the next poll sees the settled job.
        A transient store error stays one (503: retry)."""
        if not job.plan_url:
            return None
        try:
            plan = Plan.parse(self.services.objects.get_bytes(self.services.objects.key_from_uri(job.plan_url)).decode())
            return PlanView.model_validate({
                **plan.model_dump(mode="json", include={"duration", "cuts", "speech", "source_music", "hits"}),
                "segments": [s.model_dump(mode="json", include=set(SegmentView.model_fields)) for s in plan.segments],
                "music": _music_view(plan),
            }).model_dump(mode="json")
        except (NotFound, PlanValidationError, BadInput, ValueError, OSError) as exc:  # ValueError: decoding, PlanView
            log.warning("job %s: its plan is unreadable (%s); the view goes without it", job.job_id,
                        type(exc).__name__)
            return None


def _music_view(plan: Plan) -> dict | None:
    """The plan's recording for the public view (MusicView): never its object key or hash. Your own
    track's stored name is server-made (the upload's key), so it is called by what it is."""
    music = getattr(plan, "music", None)
    if music is None:
        return None
    return {"kind": music.kind, "title": music.shown_title(), "why": music.why, "bpm": music.bpm, "key": music.key,
            "free_time": music.free_time}


def error_headers(exc: BaseException) -> dict[str, str]:
    """Headers an error response carries besides its body: ``Retry-After`` (seconds) on a 429."""
    if isinstance(exc, MusicVidError) and exc.http_status == 429:
        return {"Retry-After": str(int(exc.context.get("retry_after_s") or RETRY_AFTER_S))}
    return {}


# On every JSON response: never cached (bodies carry signed links and users' data), never sniffed
# into another type, never framed.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
                    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
                    "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


def error_response(exc: BaseException) -> tuple[int, dict]:
    """``(status, {"error", "message"})`` for any exception: the error tree's code and status;
    anything unexpected is a logged 500 with a generic message."""
    if isinstance(exc, MusicVidError):
        return exc.http_status, {"error": exc.code, "message": str(exc)}
    log.exception("unexpected error in the API")
    return 500, {"error": "internal_error", "message": "internal error"}
