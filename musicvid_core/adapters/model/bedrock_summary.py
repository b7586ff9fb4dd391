"""Summarizer ``bedrock``: a short readable summary of a job written by a Bedrock text model.

Converse with ``Settings.bedrock_summary_model_id`` (a Claude Sonnet id by default), given the
prompt history, the plan's segments and the measured loudness. The template summarizer's text is
the fallback when the model answers with nothing usable; AWS errors go through the one mapping,
``adapters.aws.errors.aws_call`` (connection failures, throttling, 5xx -> TransientBackendError,
retried by the ASL's Summarize state).
"""

from __future__ import annotations

import json
from typing import Any

from musicvid_core.adapters.aws.errors import aws_call
from musicvid_core.adapters.local.summary import TemplateSummarizer
from musicvid_core.domain.errors import ConfigurationError
from musicvid_core.domain.job import Job
from musicvid_core.domain.plan import Plan

MAX_SUMMARY_CHARS = 1200
SYSTEM_PROMPT = ("You write the short summary shown to a user whose video was just scored with music. "
                 "Plain text, at most 5 sentences, no markdown, no invented facts: describe the music over "
                 "time (use mm:ss times), how it follows the picture, and the final loudness.")


class BedrockSummarizer:
    name = "bedrock"

    def __init__(self, settings, client: Any = None) -> None:
        from musicvid_core.adapters.aws.client import model_client

        self.model_id = settings.bedrock_summary_model_id
        if not self.model_id:
            raise ConfigurationError("summarizer 'bedrock' needs MUSICVID_BEDROCK_SUMMARY_MODEL_ID")
        self.client = client if client is not None else model_client(settings, "bedrock-runtime")
        self.fallback = TemplateSummarizer(settings)

    def summarize(self, job: Job, plan: Plan, metrics: dict) -> str:
        """A few sentences (<= MAX_SUMMARY_CHARS); the template's text if the model's is empty.
        Raises TransientBackendError (retried) or ConfigurationError/BadInput (not retried)."""
        facts = {
            "prompts_oldest_first": job.prompts,
            "regeneration": job.attempt - 1,
            "duration_s": round(plan.duration, 2),
            "segments": [{"start": round(s.start, 2), "end": round(s.end, 2), "style": s.style, "mood": s.mood,
                          "bpm": s.bpm, "key": s.key, "energy": s.energy, "description": s.prompt,
                          "cut_accents": len(s.accents)} for s in plan.segments],
            "speech_regions": len(plan.speech),
            "integrated_lufs": metrics.get("integrated_lufs"),
            "true_peak_dbtp": metrics.get("true_peak_dbtp"),
        }
        with aws_call(f"Bedrock Converse {self.model_id}"):
            answer = self.client.converse(
                modelId=self.model_id, system=[{"text": SYSTEM_PROMPT}],
                messages=[{"role": "user", "content": [{"text": "Job facts (JSON):\n" + json.dumps(facts)}]}],
                inferenceConfig={"maxTokens": 400, "temperature": 0.3})
        content = ((answer.get("output") or {}).get("message") or {}).get("content") or []
        text = " ".join(" ".join(b.get("text", "") for b in content if isinstance(b, dict)).split())
        if not text:
            return self.fallback.summarize(job, plan, metrics)
        return text if len(text) <= MAX_SUMMARY_CHARS else text[:MAX_SUMMARY_CHARS - 1].rstrip() + "…"
