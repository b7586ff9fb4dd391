"""SageMaker inference handlers for the musicvid MusicGen *asynchronous* endpoint.

Loaded by the SageMaker PyTorch / Hugging Face inference toolkit from ``code/inference.py`` inside
the model artifact (``model.tar.gz``). The weights are read from the artifact directory
(``model_dir``) only: ``local_files_only=True`` and ``HF_HUB_OFFLINE=1``, so a container never
reaches a hub at start-up.

Request (what ``musicvid_core.adapters.model.sagemaker`` writes to S3 and passes as InputLocation)::

    {"inputs": ["lofi hip hop, mellow keys, 84 bpm, A minor"],
     "parameters": {"max_new_tokens": 1503, "do_sample": true, "guidance_scale": 3.0, "seed": 7}}

Response (written by SageMaker to the request's OutputLocation)::

    {"sample_rate": 32000, "outputs": ["<base64 16-bit WAV>", ...]}   # one per input

Any exception makes SageMaker write the message to the FailureLocation instead; the client reads
it and fails the segment. An empty ``inputs`` list is refused here rather than answered with an
empty output list.
"""

from __future__ import annotations

import base64
import io
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

MAX_NEW_TOKENS = 1503  # 30 s at 50 tokens/s + the delay pattern: MusicGen's training window


def model_fn(model_dir, context=None):
    import torch
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    model = MusicgenForConditionalGeneration.from_pretrained(model_dir, local_files_only=True)
    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    return {"model": model.to(device=device, dtype=dtype).eval(), "processor": processor, "device": device}


def input_fn(body, content_type="application/json"):
    if content_type not in ("application/json", None):
        raise ValueError(f"unsupported content type {content_type!r}; send application/json")
    request = json.loads(body.decode() if isinstance(body, (bytes, bytearray)) else body)
    inputs = request.get("inputs")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) and t.strip() for t in inputs):
        raise ValueError("'inputs' must be a non-empty list of text prompts")
    params = dict(request.get("parameters") or {})
    tokens = int(params.get("max_new_tokens", 256))
    if not 1 <= tokens <= MAX_NEW_TOKENS:
        raise ValueError(f"max_new_tokens must be 1..{MAX_NEW_TOKENS} (30 s); split longer clips")
    return {"inputs": inputs, "parameters": params}


def predict_fn(data, loaded):
    import numpy as np
    import torch

    model, processor, device = loaded["model"], loaded["processor"], loaded["device"]
    params = data["parameters"]
    if "seed" in params:
        torch.manual_seed(int(params["seed"]))
    batch = processor(text=data["inputs"], padding=True, return_tensors="pt")
    batch = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}
    with torch.inference_mode():
        audio = model.generate(**batch, max_new_tokens=int(params.get("max_new_tokens", 256)),
                               do_sample=bool(params.get("do_sample", True)),
                               guidance_scale=float(params.get("guidance_scale", 3.0)) or None)
    waves = audio.float().cpu().numpy()  # (batch, channels, samples)
    if waves.shape[0] != len(data["inputs"]) or waves.shape[-1] == 0:
        raise RuntimeError("MusicGen produced no audio")
    return {"sample_rate": int(model.config.audio_encoder.sampling_rate),
            "waves": [np.clip(w.T, -1.0, 1.0) for w in waves]}


def output_fn(prediction, accept="application/json"):
    import soundfile as sf

    outputs = []
    for wave in prediction["waves"]:
        buf = io.BytesIO()
        sf.write(buf, wave, prediction["sample_rate"], format="WAV", subtype="PCM_16")
        outputs.append(base64.b64encode(buf.getvalue()).decode())
    return json.dumps({"sample_rate": prediction["sample_rate"], "outputs": outputs})
