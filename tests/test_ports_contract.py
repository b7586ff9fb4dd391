"""Every adapter satisfies its port: the plug-ins in services.py's registries and every adapter
bootstrap.py (or api/build.py) builds have the port's methods with compatible signatures, and its
declared attributes.

Signatures are compared with :func:`inspect.signature` against the Protocol (or ABC) in ports.py:
each parameter the port names must be accepted in the same place under the same name (keyword-only
ones by name), and anything extra the adapter takes must have a default.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import pytest

from musicvid_core import ports
from musicvid_core.services import GENERATORS, PLANNERS, SUMMARIZERS, load_plugin

ROOT = Path(__file__).resolve().parents[1]
P = inspect.Parameter
POSITIONAL = (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)


def _port_members(port: type) -> tuple[dict[str, object], dict[str, str]]:
    """(public methods, data attributes with their annotation text) the protocol declares,
    inherited ones included."""
    methods: dict[str, object] = {}
    attrs: dict[str, str] = {}
    for klass in reversed(port.__mro__):
        if klass.__module__ != ports.__name__:
            continue
        attrs.update({k: str(v) for k, v in vars(klass).get("__annotations__", {}).items()})
        methods.update({k: v for k, v in vars(klass).items() if inspect.isfunction(v) and not k.startswith("_")})
    return methods, attrs


def _assigned_in_init(cls: type) -> set[str]:
    """Attributes ``self.X = ...`` set by the ``__init__`` of ``cls`` or a base."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if not inspect.isfunction(init):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
                if isinstance(node, ast.AnnAssign) else []
            names |= {t.attr for t in targets if isinstance(t, ast.Attribute)
                      and isinstance(t.value, ast.Name) and t.value.id == "self"}
    return names


def _params(cls: type, name: str) -> list[inspect.Parameter]:
    raw = inspect.getattr_static(cls, name)
    params = list(inspect.signature(getattr(cls, name)).parameters.values())
    return params if isinstance(raw, (staticmethod, classmethod)) else params[1:]  # drop self


def signature_problems(port_method, cls: type, name: str) -> list[str]:
    want = list(inspect.signature(port_method).parameters.values())[1:]
    have = _params(cls, name)
    var_pos = any(p.kind is P.VAR_POSITIONAL for p in have)
    var_kw = any(p.kind is P.VAR_KEYWORD for p in have)
    positional = [p for p in have if p.kind in POSITIONAL]
    by_name = {p.name: p for p in have if p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY)}
    problems, used = [], set()
    for i, p in enumerate(want):
        if p.kind in POSITIONAL:
            if i < len(positional) and (positional[i].name == p.name or p.kind is P.POSITIONAL_ONLY):
                match = positional[i]
            elif var_pos:
                continue
            else:
                problems.append(f"{name}: parameter {i + 1} should be {p.name!r}")
                continue
        elif p.kind is P.KEYWORD_ONLY:
            match = by_name.get(p.name)
            if match is None:
                if not var_kw:
                    problems.append(f"{name}: does not accept keyword {p.name!r}")
                continue
        else:
            continue
        used.add(match.name)
        if p.default is not P.empty and match.default is P.empty:
            problems.append(f"{name}: {p.name!r} needs a default, as the port's has")
    problems += [f"{name}: extra parameter {p.name!r} has no default" for p in have
                 if p.name not in used and p.default is P.empty and p.kind not in (P.VAR_POSITIONAL, P.VAR_KEYWORD)]
    return problems


def contract_problems(cls: type, port: type) -> list[str]:
    """What keeps ``cls`` from satisfying ``port`` ([] when it does)."""
    if inspect.isabstract(port):  # a base class holding the rules: subclass it, implement every primitive
        if not issubclass(cls, port):
            return [f"does not subclass {port.__name__}"]
        return [f"leaves {m} abstract" for m in sorted(cls.__abstractmethods__)]
    methods, attrs = _port_members(port)
    problems = []
    for name, method in methods.items():
        if not callable(getattr(cls, name, None)):
            problems.append(f"lacks {name}()")
        else:
            problems += signature_problems(method, cls, name)
    for name, annotation in attrs.items():
        on_class = hasattr(cls, name)
        if "ClassVar" in annotation and not on_class:
            problems.append(f"lacks class attribute {name}")
        elif not on_class and name not in _assigned_in_init(cls):
            problems.append(f"lacks attribute {name}")
    return problems


PLUGINS = [(registry, kind, name) for registry, kind in ((PLANNERS, "planner"), (GENERATORS, "generator"),
                                                          (SUMMARIZERS, "summarizer")) for name in registry]


def _port_of(kind: str, cls: type) -> type:
    if kind == "planner":
        return ports.JobPlanner if hasattr(cls, "plan_for_job") else ports.Planner
    if kind == "generator":
        return ports.AsyncMusicGenerator if getattr(cls, "is_async", False) else ports.MusicGenerator
    return ports.Summarizer


def _built() -> dict[type, type]:
    """Every adapter the composition root builds, with its port."""
    from musicvid_core.adapters.aws.dynamodb import DynamoDBJobStore
    from musicvid_core.adapters.aws.links import S3Links
    from musicvid_core.adapters.aws.s3 import S3ObjectStore
    from musicvid_core.adapters.aws.stepfunctions import StepFunctionsLauncher
    from musicvid_core.adapters.local import FolderObjectStore, SQLiteJobStore
    from musicvid_core.adapters.local.leases import LeaseStore
    from musicvid_core.adapters.local.links import LocalLinks
    from musicvid_core.api.auth import TokenVerifier
    from musicvid_core.workflow.pool import PooledLauncher

    return {FolderObjectStore: ports.ObjectStore, S3ObjectStore: ports.ObjectStore,
            SQLiteJobStore: ports.JobStore, DynamoDBJobStore: ports.JobStore, LeaseStore: ports.Leases,
            PooledLauncher: ports.Launcher, StepFunctionsLauncher: ports.Launcher,
            S3Links: ports.Links, LocalLinks: ports.Links, TokenVerifier: ports.TokenVerifier}


def _classes_imported_by(path: Path) -> set[type]:
    """The classes a composition-root module imports from musicvid_core (anywhere in the file)."""
    import importlib

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("musicvid_core.adapters",
                                                                                "musicvid_core.workflow")):
            module = importlib.import_module(node.module)
            found |= {obj for alias in node.names if inspect.isclass(obj := getattr(module, alias.name))}
    return found


@pytest.mark.parametrize("registry,kind,name", PLUGINS, ids=[f"{k}-{n}" for _, k, n in PLUGINS])
def test_every_registered_plugin_satisfies_its_port(registry, kind, name):
    cls = load_plugin(registry, kind, name)  # every extra is installed in the dev environment
    port = _port_of(kind, cls)
    assert contract_problems(cls, port) == [], f"{kind} {name} ({cls.__name__}) vs {port.__name__}"


@pytest.mark.parametrize("cls", list(_built()), ids=lambda c: c.__name__)
def test_every_built_adapter_satisfies_its_port(cls):
    port = _built()[cls]
    assert contract_problems(cls, port) == [], f"{cls.__name__} vs {port.__name__}"


def test_the_contract_list_covers_every_adapter_the_composition_roots_build():
    built = _classes_imported_by(ROOT / "musicvid_core" / "bootstrap.py")
    built |= _classes_imported_by(ROOT / "musicvid_core" / "api" / "build.py")
    assert built, "bootstrap.py builds no adapter?"
    assert built <= set(_built()), f"declare the port of: {sorted(c.__name__ for c in built - set(_built()))}"


def test_the_check_fails_for_an_adapter_that_breaks_its_port():
    class NoDownload:
        def upload(self, key, content_type, max_bytes, expires_s):
            return {}

    class WrongOrder:
        def upload(self, content_type, key, max_bytes, expires_s):
            return {}

        def download(self, key, expires_s, extra):
            return ""

    class NoClassFlag:
        name = "x"

        def __init__(self) -> None:
            self.sample_rate = 48000

        def generate(self, plan, index, seed):
            return None

        def release(self):
            return None

    class NoTag:
        name, is_async, sample_rate, poll_s = "y", True, 48000, 5

        def submit(self, plan, seed, prefix, indexes):
            return []

        def check(self, record):
            return True

        def fetch(self, plan, record):
            return None

    assert contract_problems(NoDownload, ports.Links) == ["lacks download()"]
    wrong = contract_problems(WrongOrder, ports.Links)
    assert "upload: parameter 1 should be 'key'" in wrong and "download: extra parameter 'extra' has no default" in wrong
    assert contract_problems(NoClassFlag, ports.MusicGenerator) == ["lacks class attribute is_async"]
    assert contract_problems(NoTag, ports.AsyncMusicGenerator) == ["submit: does not accept keyword 'tag'"]
    assert contract_problems(object, ports.JobStore) == ["does not subclass JobStore"]
