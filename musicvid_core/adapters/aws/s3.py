"""ObjectStore on S3: ``s3://BUCKET/KEY`` URIs, SSE-S3 (AES256) on every write, presigned POST/GET.

The client is handed in (``boto3.client("s3")``); nothing connects at import time. Key rules,
NotFound and prefix semantics come from the :class:`~musicvid_core.ports.ObjectStore` base.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from musicvid_core.adapters.aws.errors import error_code, from_aws, http_status
from musicvid_core.domain.errors import BadInput
from musicvid_core.ports import ObjectStore, validate_key

SSE = "AES256"


class S3ObjectStore(ObjectStore):
    scheme = "s3"

    def __init__(self, client: Any, bucket: str) -> None:
        if not bucket:
            raise BadInput("the S3 object store needs a bucket name (MUSICVID_BUCKET)")
        self.client = client
        self.bucket = bucket

    def _extra(self, content_type: str | None) -> dict:
        extra = {"ServerSideEncryption": SSE}
        if content_type:
            extra["ContentType"] = content_type
        return extra

    def _put_file(self, key: str, path: Path, content_type: str | None) -> None:
        try:
            self.client.upload_file(str(path), self.bucket, key, ExtraArgs=self._extra(content_type))
        except Exception as exc:
            raise from_aws(exc, f"S3 upload {key}") from exc

    def _put_bytes(self, key: str, data: bytes, content_type: str | None) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **self._extra(content_type))
        except Exception as exc:
            raise from_aws(exc, f"S3 PutObject {key}") from exc

    def _get_file(self, key: str, dest: Path) -> None:
        try:
            self.client.download_file(self.bucket, key, str(dest))
        except Exception as exc:
            raise from_aws(exc, f"S3 download {key}") from exc

    def _get_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as exc:
            raise from_aws(exc, f"S3 GetObject {key}") from exc

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except Exception as exc:
            if http_status(exc) == 404 or error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise from_aws(exc, f"S3 HeadObject {key}") from exc

    def _list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys += [obj["Key"] for obj in page.get("Contents", [])]
        except Exception as exc:
            raise from_aws(exc, f"S3 ListObjectsV2 {prefix}") from exc
        return sorted(keys)

    def _delete_prefix(self, prefix: str) -> int:
        keys = self._list(prefix)
        for i in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": k} for k in keys[i:i + 1000]]
            try:
                out = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            except Exception as exc:
                raise from_aws(exc, f"S3 DeleteObjects {prefix}") from exc
            if out.get("Errors"):
                first = out["Errors"][0]
                raise from_aws(_Failed(first), f"S3 DeleteObjects {first.get('Key')}")
        return len(keys)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{validate_key(key)}"

    def key_from_uri(self, uri: str) -> str:
        prefix = f"s3://{self.bucket}/"
        if not isinstance(uri, str) or not uri.startswith(prefix):
            raise BadInput("not an object of our bucket (expected s3://BUCKET/KEY)")
        return validate_key(uri[len(prefix):])

    # presigned URLs ------------------------------------------------------------------------
    def presigned_post(self, key: str, content_type: str, max_bytes: int, expires_s: int) -> dict:
        """A presigned POST for one upload: ``{"url", "fields"}``. S3 itself enforces the key, the
        Content-Type, SSE-S3 and ``content-length-range`` [1, max_bytes]."""
        validate_key(key)
        fields = {"Content-Type": content_type, "x-amz-server-side-encryption": SSE}
        conditions = [{"Content-Type": content_type}, {"x-amz-server-side-encryption": SSE},
                      ["content-length-range", 1, int(max_bytes)]]
        try:
            post = self.client.generate_presigned_post(self.bucket, key, Fields=fields, Conditions=conditions,
                                                       ExpiresIn=int(expires_s))
        except Exception as exc:
            raise from_aws(exc, f"S3 presign POST {key}") from exc
        return {"url": post["url"], "fields": dict(post["fields"])}

    def presigned_get(self, key: str, expires_s: int) -> str:
        validate_key(key)
        try:
            return self.client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                                      ExpiresIn=int(expires_s))
        except Exception as exc:
            raise from_aws(exc, f"S3 presign GET {key}") from exc


class _Failed(Exception):
    """A per-key failure inside a DeleteObjects answer, shaped like a botocore error."""

    def __init__(self, err: dict) -> None:
        super().__init__(err.get("Message", ""))
        self.response = {"Error": {"Code": err.get("Code", ""), "Message": err.get("Message", "")}}
