"""Request and response shapes of the API (pydantic): validation and the OpenAPI schemas, once."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CONTENT_TYPE = r"^video/[A-Za-z0-9][A-Za-z0-9.+-]{0,62}$"
TOKEN = r"^[A-Za-z0-9_-]{1,64}$"
UUID_RE = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # JSON as sent: no true -> 1, no "5" -> 5


class UploadRequest(_In):
    content_type: str = Field(pattern=CONTENT_TYPE, description="the video's MIME type, video/*")
    size: int | None = Field(default=None, ge=1, description="the file's size in bytes (checked against the limit)")


class SubmitRequest(_In):
    s3_url: str | None = Field(default=None, max_length=1024,
                               description="NEW: the object URI returned by POST /uploads")
    job_id: str | None = Field(default=None, pattern=UUID_RE, description="REGENERATE: one of your jobs")
    prompt: str = Field(min_length=1, max_length=4000, description="what the music should be like")
    client_token: str | None = Field(default=None, pattern=TOKEN,
                                     description="idempotency key: the same token returns the same job")
    segment: int | None = Field(default=None, ge=0, le=10_000,
                                description="REGENERATE: re-roll only this segment (0-based); the others stay bit-identical")
    hits: list[float] | None = Field(default=None, max_length=64,
                                     description="seconds where the music should hit (a downbeat with a crash)")


class UploadForm(BaseModel):
    url: str
    fields: dict[str, str]


class UploadResponse(BaseModel):
    s3_url: str = Field(description="the object URI to submit once the file is uploaded")
    upload: UploadForm = Field(description="POST the file as multipart/form-data to url with these fields")
    expires_in: int = Field(description="seconds the upload form stays valid")
    max_bytes: int


class SubmitResponse(BaseModel):
    job_id: str
    status: Literal["SCHEDULED", "PROCESSING", "COMPLETED", "FAILED"]


class JobErrorView(BaseModel):
    type: str
    message: str
    stage: str


class JobView(BaseModel):
    job_id: str
    status: Literal["SCHEDULED", "PROCESSING", "COMPLETED", "FAILED"]
    stage: str
    operation_type: Literal["NEW", "REGENERATE"]
    prompts: list[str]
    created_at: datetime
    updated_at: datetime
    error: JobErrorView | None
    summary: str | None
    final_url: str | None = Field(description="a presigned download URL of the result when COMPLETED")


class JobList(BaseModel):
    jobs: list[JobView]
    next: str | None = Field(description="opaque token for the next page, bound to the caller; null at the end")


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable code (the error tree's code)")
    message: str
