"""The OpenAPI 3.1 document of the API, built from the pydantic models in :mod:`.models`.

``python -m musicvid_core.api.openapi > docs/openapi.json`` regenerates the committed copy; a test
fails when the two differ.
"""

from __future__ import annotations

import json

from pydantic.json_schema import models_json_schema

from musicvid_core.api.models import (
    PAGE_TOKEN,
    ErrorBody,
    JobList,
    JobView,
    SubmitRequest,
    SubmitResponse,
    UploadRequest,
    UploadResponse,
)

_MODELS = [UploadRequest, SubmitRequest, UploadResponse, SubmitResponse, JobView, JobList, ErrorBody]


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str) -> dict:
    return {"content": {"application/json": {"schema": _ref(name)}}}


def _errors(*codes: int) -> dict:
    text = {400: "invalid request", 401: "missing or invalid token", 404: "no such job (or not yours)",
            409: "the job is running: it cannot be regenerated now",
            429: "rate_limited: too many requests; too_many_jobs (POST /jobs): you already have the most "
                 "jobs scheduled or running at once. Retry after Retry-After seconds",
            503: "a backend is busy: retry"}
    retry = {"headers": {"Retry-After": {"description": "seconds to wait before retrying",
                                         "schema": {"type": "integer", "minimum": 0}}}}
    return {str(c): {"description": text[c], **(retry if c == 429 else {}), **_json("ErrorBody")} for c in codes}


def openapi() -> dict:
    _, defs = models_json_schema([(m, "validation") for m in _MODELS], ref_template="#/components/schemas/{model}")
    schemas = defs.get("$defs", {})
    security = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "musicvid API", "version": "1.0.0",
                 "description": "Upload a video, submit a job with a prompt, poll it, download the scored video."},
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "security": security,
        "paths": {
            "/uploads": {"post": {
                "operationId": "create_upload_url", "summary": "A presigned POST form for one video upload",
                "requestBody": {"required": True, **_json("UploadRequest")},
                "responses": {"201": {"description": "the upload form", **_json("UploadResponse")},
                              **_errors(400, 401, 429)}}},
            "/jobs": {
                "post": {"operationId": "submit_job",
                         "summary": "NEW job for an uploaded video, or REGENERATE one of yours with a new prompt",
                         "requestBody": {"required": True, **_json("SubmitRequest")},
                         "responses": {"202": {"description": "accepted", **_json("SubmitResponse")},
                                       **_errors(400, 401, 404, 409, 429)}},
                "get": {"operationId": "get_user_jobs", "summary": "Your jobs, newest first",
                        "parameters": [
                            {"name": "limit", "in": "query", "required": False,
                             "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
                            {"name": "next", "in": "query", "required": False,
                             "description": "the previous page's next (opaque, bound to the caller)",
                             "schema": {"type": "string", "pattern": PAGE_TOKEN, "maxLength": 2048}}],
                        "responses": {"200": {"description": "a page of jobs", **_json("JobList")},
                                      **_errors(400, 401, 429)}}},
            "/jobs/{job_id}": {"get": {
                "operationId": "get_job_status", "summary": "One of your jobs",
                "parameters": [{"name": "job_id", "in": "path", "required": True,
                                "schema": {"type": "string", "format": "uuid"}}],
                "responses": {"200": {"description": "the job", **_json("JobView")}, **_errors(400, 401, 404, 429)}}},
        },
    }


def main() -> None:
    print(json.dumps(openapi(), indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
