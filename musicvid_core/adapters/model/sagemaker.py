"""Generator ``sagemaker``: MusicGen behind a SageMaker *asynchronous* inference endpoint.

Asynchronous on purpose: a clip takes minutes on a busy endpoint, longer than a synchronous
invocation (60 s) allows. The workflow drives it in three moves, none of which sleeps:

1. ``submit`` — the Analyzer, right after planning, writes one request per segment (per piece, for
   segments longer than MusicGen's 30 s window) to S3 and calls ``InvokeEndpointAsync`` for each,
   back to back, so the endpoint queues all of them at once.
2. ``check`` — each Map iteration asks whether its segment's outputs exist: an object at
   ``FailureLocation`` is a failure (its text is the reason), an object at ``OutputLocation`` is a
   result; neither means "not yet" and the ASL Waits ``sagemaker_poll_s`` and asks again. Past the
   deadline (``sagemaker_deadline_s`` after submission, for all segments together) it fails.
3. ``fetch`` — decodes the outputs (an empty output or an empty output list is a failure), joins
   the pieces with crossfades and trims/pads to the exact clip length (``musicgen_common``).

Clients are passed in (or made from the settings when the backend is built), never at import.
AWS errors go through the one mapping, ``adapters.aws.errors.aws_call``: connection failures,
throttling and 5xx become TransientBackendError, which the ASL retries. The endpoint's own code is ``infra/sagemaker/``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from musicvid_core.adapters.aws.errors import aws_call, is_missing
from musicvid_core.adapters.model.musicgen_common import assemble, decode_wav, plan_pieces
from musicvid_core.domain.errors import ConfigurationError, GenerationError
from musicvid_core.domain.layout import ArtifactLayout
from musicvid_core.domain.plan import Plan
from musicvid_core.media import resample

AUDIO_MAGIC = (b"RIFF", b"fLaC", b"OggS")


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not isinstance(uri, str) or not uri.startswith("s3://") or "/" not in uri[5:]:
        raise GenerationError(f"not an S3 URI: {str(uri)[:120]!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


class SageMakerGenerator:
    name = "sagemaker"
    is_async = True

    def __init__(self, settings, runtime: Any = None, s3: Any = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        from musicvid_core.adapters.aws.client import model_client, s3_client

        self.endpoint = settings.sagemaker_endpoint
        self.bucket = settings.sagemaker_bucket or settings.bucket
        if not self.endpoint:
            raise ConfigurationError("generator 'sagemaker' needs MUSICVID_SAGEMAKER_ENDPOINT (an async endpoint)")
        if not self.bucket:
            raise ConfigurationError("generator 'sagemaker' needs MUSICVID_SAGEMAKER_BUCKET or MUSICVID_BUCKET")
        self.sample_rate = int(settings.sample_rate)
        self.poll_s = int(settings.sagemaker_poll_s)
        self.deadline_s = float(settings.sagemaker_deadline_s)
        self.guidance_scale = float(settings.musicgen_guidance_scale)
        self.runtime = runtime if runtime is not None else model_client(settings, "sagemaker-runtime")
        self.s3 = s3 if s3 is not None else s3_client(settings)
        self.clock = clock
        self.sleep = sleep

    # --- 1. submit -------------------------------------------------------------------------------
    def submit(self, plan: Plan, seed: int, prefix: str, indexes: list[int], tag: str = "mv") -> list[dict]:
        """Send segment ``indexes``' requests; returns one JSON record per segment (what
        :meth:`check` and :meth:`fetch` need). ``prefix`` is the job attempt's key prefix: request
        bodies go under it, so the attempt's rollback removes them."""
        deadline = self.clock() + self.deadline_s
        records: dict[int, dict] = {}
        for piece in plan_pieces(plan, indexes):
            key = ArtifactLayout.music_request_under(prefix, piece.index, piece.part)
            body = {"inputs": [piece.prompt],
                    "parameters": {"max_new_tokens": piece.max_new_tokens, "do_sample": True,
                                   "guidance_scale": self.guidance_scale,
                                   "seed": int(seed) * 1000 + piece.index * 10 + piece.part}}
            with aws_call(f"S3 PutObject {key}"):
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=json.dumps(body).encode(),
                                   ContentType="application/json", ServerSideEncryption="AES256")
            inference_id = f"{tag}-{piece.index}-{piece.part}"[:64]
            with aws_call(f"SageMaker InvokeEndpointAsync {self.endpoint}"):
                answer = self.runtime.invoke_endpoint_async(
                    EndpointName=self.endpoint, InputLocation=f"s3://{self.bucket}/{key}",
                    ContentType="application/json", Accept="application/json", InferenceId=inference_id)
            if not answer.get("OutputLocation"):
                raise GenerationError(f"segment {piece.index}: the endpoint returned no OutputLocation")
            records.setdefault(piece.index, {"index": piece.index, "deadline": deadline, "requests": []})
            records[piece.index]["requests"].append({
                "part": piece.part, "offset_s": piece.offset_s, "length_s": piece.length_s,
                "input": f"s3://{self.bucket}/{key}", "inference_id": answer.get("InferenceId", inference_id),
                "output": answer["OutputLocation"], "failure": answer.get("FailureLocation")})
        return [records[i] for i in sorted(records)]

    # --- 2. check --------------------------------------------------------------------------------
    def check(self, record: dict) -> bool:
        """True when every request of the segment has an output; False while any is pending.
        GenerationError when one failed (FailureLocation written), wrote an empty output, or the
        deadline has passed."""
        index = record["index"]
        done = True
        for req in record["requests"]:
            if req.get("failure") and self._size(req["failure"]) is not None:
                reason = self._read(req["failure"]).decode("utf-8", "replace")
                raise GenerationError(f"segment {index}: the endpoint failed: {' '.join(reason.split())[:300]}",
                                      index=index, inference_id=req.get("inference_id"))
            size = self._size(req["output"])
            if size == 0:
                raise GenerationError(f"segment {index}: the endpoint wrote an empty output", index=index)
            done = done and size is not None
        if not done and self.clock() > float(record["deadline"]):
            raise GenerationError(f"segment {index}: no output within the {self.deadline_s:.0f} s deadline",
                                  index=index)
        return done

    # --- 3. fetch --------------------------------------------------------------------------------
    def fetch(self, plan: Plan, record: dict) -> np.ndarray:
        """The segment's clip from its outputs: float32 (n, 2) at ``sample_rate``, exactly
        ``plan.clip_samples(index, sample_rate)`` long. GenerationError for outputs that are
        empty, an empty list, or not audio."""
        index = record["index"]
        parts, rate = [], None
        for req in sorted(record["requests"], key=lambda r: r["part"]):
            audio, piece_rate = self._decode(self._read(req["output"]), f"segment {index} part {req['part']}")
            if rate is not None and piece_rate != rate:
                audio = resample(audio, piece_rate, rate)
            rate = rate or piece_rate
            parts.append((float(req["offset_s"]), audio))
        return assemble(parts, rate, plan, index, self.sample_rate)

    def generate(self, plan: Plan, index: int, seed: int, prefix: str = "adhoc/") -> np.ndarray:
        """Blocking convenience for notebooks: submit, wait, fetch one segment. The workflow never
        calls this (it Waits in the ASL instead of sleeping in a Lambda)."""
        [record] = self.submit(plan, seed, prefix, [index])
        while not self.check(record):
            self.sleep(self.poll_s)
        return self.fetch(plan, record)

    # --- helpers ---------------------------------------------------------------------------------
    def _decode(self, body: bytes, what: str) -> tuple[np.ndarray, int]:
        """Our endpoint returns JSON ``{"sample_rate": r, "outputs": [base64 WAV, ...]}``; the AWS
        sample's returns ``{"generated_outputs_s3": [s3 URI, ...]}``; raw audio bytes are accepted
        too. Only the first output is used (one prompt per request)."""
        if not body:
            raise GenerationError(f"{what}: the endpoint wrote an empty output")
        if body[:4] in AUDIO_MAGIC:
            return decode_wav(body, what)
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise GenerationError(f"{what}: the output is neither audio nor JSON") from None
        if not isinstance(doc, dict):
            raise GenerationError(f"{what}: unexpected output {type(doc).__name__}")
        if "generated_outputs_s3" in doc:
            uris = doc["generated_outputs_s3"]
            if not isinstance(uris, list) or not uris:
                raise GenerationError(f"{what}: the endpoint returned an empty output list")
            return decode_wav(self._read(uris[0]), what)
        outputs = doc.get("outputs")
        if not isinstance(outputs, list) or not outputs:
            raise GenerationError(f"{what}: the endpoint returned an empty output list")
        try:
            data = base64.b64decode(outputs[0], validate=True)
        except (ValueError, TypeError):
            raise GenerationError(f"{what}: the output is not base64 audio") from None
        return decode_wav(data, what)

    def _size(self, uri: str) -> int | None:
        """Bytes of the object at ``uri``, None when it does not exist (yet)."""
        bucket, key = split_s3_uri(uri)
        with aws_call(f"S3 HeadObject {uri}"):
            try:
                return int(self.s3.head_object(Bucket=bucket, Key=key).get("ContentLength", 0))
            except Exception as exc:
                if is_missing(exc):
                    return None
                raise

    def _read(self, uri: str) -> bytes:
        bucket, key = split_s3_uri(uri)
        with aws_call(f"S3 GetObject {uri}"):
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
