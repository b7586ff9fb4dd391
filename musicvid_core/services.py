"""The services container a step handler is given, and the plug-in registries of the model ports.

Backends are plug-ins named in registries of import strings (PySceneDetect's way): nothing heavy is
imported until a backend is actually used, so the API Lambda (which never plans or renders) stays
small. The container is built in one place only, :mod:`musicvid_core.bootstrap`.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from typing import Any

from musicvid_core import heap
from musicvid_core.domain.errors import ConfigurationError
from musicvid_core.ports import JobStore, LeaseStore, MusicGenerator, ObjectStore, Planner, Summarizer
from musicvid_core.settings import Settings

# ---------------------------------------------------------------------------------------------
# plug-in registries: name -> "module:attribute" (imported on first use)
# ---------------------------------------------------------------------------------------------
PLANNERS: dict[str, str] = {"rules": "musicvid_core.stages.plan.planner:RulePlanner",
                            "bedrock": "musicvid_core.adapters.model.bedrock_planner:BedrockPlanner",
                            "bedrock-agent": "musicvid_core.adapters.model.bedrock_planner:BedrockAgentPlanner"}
GENERATORS: dict[str, str] = {"procedural": "musicvid_core.stages.compose.procedural:ProceduralGenerator",
                              "sagemaker": "musicvid_core.adapters.model.sagemaker:SageMakerGenerator",
                              "musicgen-local": "musicvid_core.adapters.model.musicgen_local:LocalMusicGenGenerator"}
SUMMARIZERS: dict[str, str] = {"template": "musicvid_core.adapters.local.summary:TemplateSummarizer",
                               "bedrock": "musicvid_core.adapters.model.bedrock_summary:BedrockSummarizer"}


def load_plugin(registry: dict[str, str], kind: str, name: str) -> Any:
    """Import and return the class registered as ``name``; ConfigurationError if unknown or its
    optional dependencies are missing."""
    target = registry.get(name)
    if target is None:
        raise ConfigurationError(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(registry))}")
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise ConfigurationError(f"{kind} {name!r} needs an optional dependency that is not "
                                 f"installed ({exc.name}); install its extra") from None


@dataclass
class Services:
    """Everything a step handler needs, built once from Settings."""

    settings: Settings
    objects: ObjectStore
    jobs: JobStore
    # The LeaseStore beside the SQLite job store (crash recovery of the embedded runner); None for
    # other job stores, whose executions Step Functions owns.
    leases: LeaseStore | None = None
    _cache: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _building: dict = field(default_factory=dict)  # (kind, name) -> the lock its one build holds

    def _plugin(self, registry, kind, name):
        key = (kind, name)
        backend = self._cache.get(key)
        if backend is not None:
            return backend
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        # One lock per backend: Map iterations asking at once build it once, and the planner is
        # not held up while warm() builds the generator (its imports: ~0.6 s the analysis waited).
        with building:
            backend = self._cache.get(key)
            if backend is None:
                backend = load_plugin(registry, kind, name)(self.settings)
                with self._lock:  # release_generators reads the cache under it
                    self._cache[key] = backend
            return backend

    def release_generators(self) -> None:
        """:meth:`MusicGenerator.release` on every synchronous generator built so far (none is built
        for this): the mix step calls it once the segments are rendered."""
        with self._lock:
            built = [backend for (kind, _name), backend in self._cache.items() if kind == "generator"]
        for backend in built:
            if not getattr(backend, "is_async", False):
                backend.release()
        heap.trim()  # what the segments and the SoundFont freed leaves the process, not only the heap

    def warm(self) -> None:
        """Import and build the configured backends now. The embedded runner calls this in a
        background thread while the analysis decodes the video, so the generator's imports
        (scipy.signal alone takes ~1.3 s) are not paid on the critical path. Errors are left for
        the step that really needs the backend to raise."""
        for attr in ("planner", "generator", "summarizer"):
            try:
                getattr(self, attr)
            except Exception:
                pass

    @property
    def planner(self) -> Planner:
        return self._plugin(PLANNERS, "planner", self.settings.planner)

    @property
    def generator(self) -> MusicGenerator:
        return self._plugin(GENERATORS, "generator", self.settings.generator)

    @property
    def summarizer(self) -> Summarizer:
        return self._plugin(SUMMARIZERS, "summarizer", self.settings.summarizer)

    @property
    def generator_is_async(self) -> bool:
        """Whether the configured generator is asynchronous (asked of its class: nothing is built)."""
        cls = load_plugin(GENERATORS, "generator", self.settings.generator)
        return bool(getattr(cls, "is_async", False))
