"""ObjectStore on S3: ``s3://BUCKET/KEY`` URIs, SSE-S3 (AES256) on every write, presigned POST/GET.

The client is handed in (``boto3.client("s3")``); nothing connects at import time. Key rules,
NotFound and prefix semantics come from the :class:`~musicvid_core.ports.ObjectStore` base; every
call goes through the one AWS error mapping (``adapters.aws.errors.aws_call``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from musicvid_core.adapters.aws.errors import aws_call, is_missing
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
        with aws_call(f"S3 upload {key}"):
            self.client.upload_file(str(path), self.bucket, key, ExtraArgs=self._extra(content_type))

    def _put_bytes(self, key: str, data: bytes, content_type: str | None) -> None:
        with aws_call(f"S3 PutObject {key}"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **self._extra(content_type))

    def _get_file(self, key: str, dest: Path) -> None:
        with aws_call(f"S3 download {key}"):
            self.client.download_file(self.bucket, key, str(dest))

    def _get_bytes(self, key: str) -> bytes:
        with aws_call(f"S3 GetObject {key}"):
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def _exists(self, key: str) -> bool:
        with aws_call(f"S3 HeadObject {key}"):
            try:
                self.client.head_object(Bucket=self.bucket, Key=key)
            except Exception as exc:
                if is_missing(exc):
                    return False
                raise
        return True

    def _size(self, key: str) -> int | None:
        with aws_call(f"S3 HeadObject {key}"):
            try:
                return int(self.client.head_object(Bucket=self.bucket, Key=key).get("ContentLength", 0))
            except Exception as exc:
                if is_missing(exc):
                    return None
                raise

    def _list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        with aws_call(f"S3 ListObjectsV2 {prefix}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys += [obj["Key"] for obj in page.get("Contents", [])]
        return sorted(keys)

    def _delete_prefix(self, prefix: str) -> int:
        keys = self._list(prefix)
        for i in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": k} for k in keys[i:i + 1000]]
            with aws_call(f"S3 DeleteObjects {prefix}"):
                out = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
                if out.get("Errors"):  # per-key failures come in a 200 answer
                    raise _Failed(out["Errors"][0])
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
        with aws_call(f"S3 presign POST {key}"):
            post = self.client.generate_presigned_post(self.bucket, key, Fields=fields, Conditions=conditions,
                                                       ExpiresIn=int(expires_s))
        return {"url": post["url"], "fields": dict(post["fields"])}

    def presigned_get(self, key: str, expires_s: int) -> str:
        validate_key(key)
        with aws_call(f"S3 presign GET {key}"):
            return self.client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                                      ExpiresIn=int(expires_s))


class _Failed(Exception):
    """A per-key failure inside a DeleteObjects answer, shaped like a botocore error."""

    def __init__(self, err: dict) -> None:
        message = f"{err.get('Key', '')}: {err.get('Message', '')}"
        super().__init__(message)
        self.response = {"Error": {"Code": err.get("Code", ""), "Message": message}}
