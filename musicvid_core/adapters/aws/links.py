"""Links port on S3: presigned POST forms for uploads, presigned GET URLs for downloads.

S3 itself enforces what the form allows (key, Content-Type, SSE-S3, size range); the presigning
and its error mapping live on :class:`~musicvid_core.adapters.aws.s3.S3ObjectStore`, which holds
the client and the bucket.
"""

from __future__ import annotations

from musicvid_core.adapters.aws.s3 import S3ObjectStore


class S3Links:
    """:class:`~musicvid_core.ports.Links` over the S3 object store's presigned URLs."""

    def __init__(self, store: S3ObjectStore) -> None:
        self.store = store

    def upload(self, key: str, content_type: str, max_bytes: int, expires_s: int) -> dict:
        """``{"url", "fields"}`` of a presigned POST for one object at ``key`` (1..``max_bytes``
        bytes of ``content_type``) valid ``expires_s`` seconds. BadInput for an unsafe key;
        TransientBackendError / ConfigurationError from the AWS error mapping."""
        return self.store.presigned_post(key, content_type, max_bytes, expires_s)

    def download(self, key: str, expires_s: int) -> str:
        """A presigned GET URL of ``key`` valid ``expires_s`` seconds (errors as :meth:`upload`)."""
        return self.store.presigned_get(key, expires_s)
