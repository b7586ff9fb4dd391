"""Generator ``musicgen-local``: transformers' MusicGen on this machine (CUDA when present).

The model is loaded from a local folder (``Settings.musicgen_model_dir``, a ``save_pretrained``
directory such as a downloaded facebook/musicgen-small) with ``local_files_only``: nothing is
fetched from a hub at run time. The workflow asks for one segment per Map iteration, but the
model is far more efficient on a batch, so the first request for a plan generates *every*
segment's pieces in one ``generate`` call and the other iterations take their clip from that
result (see bench/musicgen_rtf.py for the measured gain). Durations: ``musicgen_common``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from musicvid_core.adapters.model.musicgen_common import assemble, max_new_tokens, plan_pieces
from musicvid_core.domain.errors import ConfigurationError, GenerationError
from musicvid_core.domain.plan import Plan

log = logging.getLogger(__name__)


def _torch():
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(f"generator 'musicgen-local' needs {exc.name}: install the [musicgen] extra") from None
    return torch


def pick_device(torch, wanted: str) -> str:
    """``auto``: CUDA when a GPU is visible, else CPU; otherwise the named device (checked)."""
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigurationError(f"musicgen_device is {wanted!r} but no CUDA device is visible")
    return wanted


def load_model(model_dir: Path) -> tuple[Any, Any]:
    """(model, processor) from a ``save_pretrained`` folder, offline. ConfigurationError if the
    folder is missing or is not a MusicGen model."""
    from transformers import AutoProcessor, AutoTokenizer, MusicgenForConditionalGeneration

    model_dir = Path(model_dir).expanduser()
    if not (model_dir / "config.json").is_file():
        raise ConfigurationError(f"musicgen_model_dir {model_dir} holds no model (no config.json); "
                                 "save one there with save_pretrained")
    try:
        model = MusicgenForConditionalGeneration.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigurationError(f"cannot load MusicGen from {model_dir}: {' '.join(str(exc).split())[:200]}") from None
    try:
        processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError, KeyError):
        processor = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    return model, processor


class LocalMusicGenGenerator:
    """MusicGen through transformers. ``model``/``processor`` may be given (tests build a tiny
    random model in code); otherwise they are loaded from ``settings.musicgen_model_dir``."""

    name = "musicgen-local"
    is_async = False

    def __init__(self, settings, model: Any = None, processor: Any = None) -> None:
        torch = _torch()
        self.torch = torch
        self.sample_rate = int(settings.sample_rate)
        self.guidance_scale = float(getattr(settings, "musicgen_guidance_scale", 3.0))
        threads = int(getattr(settings, "musicgen_threads", 0) or 0)
        if threads:
            torch.set_num_threads(threads)
        if model is None:
            if not getattr(settings, "musicgen_model_dir", None):
                raise ConfigurationError("generator 'musicgen-local' needs MUSICVID_MUSICGEN_MODEL_DIR "
                                         "(a folder saved with save_pretrained)")
            model, loaded = load_model(settings.musicgen_model_dir)
            processor = processor or loaded
        if processor is None:
            raise ConfigurationError("musicgen-local: a model given in code needs its processor too")
        self.device = pick_device(torch, getattr(settings, "musicgen_device", "auto"))
        self.model = model.to(self.device).eval()
        self.processor = processor
        audio_cfg = self.model.config.audio_encoder
        self.model_rate = int(audio_cfg.sampling_rate)
        self.frame_rate = int(round(audio_cfg.frame_rate))
        self.codebooks = int(self.model.decoder.config.num_codebooks)
        self._lock = threading.Lock()
        self._cache: tuple[str, list[np.ndarray]] | None = None  # (plan+seed digest, clips)

    # -----------------------------------------------------------------------------------------
    def generate(self, plan: Plan, index: int, seed: int) -> np.ndarray:
        """Segment ``index``'s clip: float32 (n, 2) at ``sample_rate``, n =
        ``plan.clip_samples(index, sample_rate)``. The first call for a plan generates all segments
        in one batch; the rest are served from it. GenerationError for a bad index or silence."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(plan.segments):
            raise GenerationError(f"segment index {index!r} is outside the plan (0..{len(plan.segments) - 1})",
                                  index=index)
        digest = hashlib.sha256(f"{seed}:{plan.model_dump_json()}".encode()).hexdigest()
        with self._lock:  # Map iterations arrive together: one of them generates for all
            if self._cache is None or self._cache[0] != digest:
                self._cache = (digest, self.generate_all(plan, seed))
            return self._cache[1][index]

    def release(self) -> None:
        """Let go of the plan's cached clips (the model stays loaded: it is what is slow to build)."""
        with self._lock:
            self._cache = None

    def generate_all(self, plan: Plan, seed: int) -> list[np.ndarray]:
        """Every segment's clip from one batched ``generate`` call (pieces of long segments
        included), in segment order."""
        torch = self.torch
        pieces = plan_pieces(plan)
        texts = [p.prompt for p in pieces]
        tokens = max(max_new_tokens(p.length_s, self.frame_rate, self.codebooks) for p in pieces)
        inputs = self.processor(text=texts, padding=True, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        torch.manual_seed(int(seed))
        try:
            with torch.inference_mode():
                out = self.model.generate(**inputs, max_new_tokens=tokens, do_sample=True,
                                          guidance_scale=self.guidance_scale or None)
        except (RuntimeError, ValueError) as exc:  # CUDA out of memory, bad shapes ...
            raise GenerationError(f"MusicGen failed: {' '.join(str(exc).split())[:200]}") from None
        audio = out.float().cpu().numpy()  # (batch, channels, samples)
        log.info("musicgen-local: %d pieces, %d tokens each, on %s", len(pieces), tokens, self.device)
        by_segment: dict[int, list[tuple[float, np.ndarray]]] = {}
        for piece, wave in zip(pieces, audio):
            by_segment.setdefault(piece.index, []).append((piece.offset_s, wave.T))
        return [assemble(parts, self.model_rate, plan, index, self.sample_rate)
                for index, parts in sorted(by_segment.items())]
