"""The house's layering, checked from the code's own imports (every import, lazy ones included).

Rooms stand on floors; a module may import its own room and the rooms on floors below, never a
room above it or beside it. docs/design.md draws the same map.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "musicvid_core"

FLOORS = {
    "cli": 10,
    "scoring": 9, "lambda_handler": 9, "doctor": 9,
    "api": 8, "lab": 8,
    "bootstrap": 7,
    "workflow": 6,
    "adapters": 5,
    "stages": 4,
    "services": 3, "metrics": 3,
    "ports": 2, "media": 2, "logs": 2, "heap": 2,
    "domain": 1, "settings": 1, "asl": 1,
    "__init__": 0,
}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from musicvid_core import scoring` names a room through the package
            if node.module == "musicvid_core":
                found += [(node.lineno, f"musicvid_core.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name == "musicvid_core" or name.startswith("musicvid_core.")]


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def test_every_room_has_a_floor():
    rooms = {_room(name) for name, _ in _modules()}
    assert rooms <= set(FLOORS), f"rooms without a floor in this test and docs/design.md: {rooms - set(FLOORS)}"


def test_no_import_runs_up_or_sideways():
    wrong = []
    for name, path in _modules():
        room = _room(name)
        for line, target in _imports(path):
            to = _room(target)
            if to in ("__init__", room):
                continue
            if FLOORS.get(to, 99) >= FLOORS[room]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({room}, floor {FLOORS[room]}) imports "
                             f"{target} ({to}, floor {FLOORS.get(to)})")
    assert not wrong, "imports that run up or sideways:\n" + "\n".join(wrong)


def test_no_import_circle_between_modules():
    graph = {name: set() for name, _ in _modules()}
    for name, path in _modules():
        for _, target in _imports(path):
            while target and target not in graph:
                target = target.rpartition(".")[0]
            if target and target != name and target != "musicvid_core":
                graph[name].add(target)
    # Tarjan-free: depth-first search for a back edge, reporting one cycle.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            raise AssertionError("import circle: " + " -> ".join(cycle))


def test_the_floor_rule_can_fail(tmp_path):
    """The checker itself: an upward import in a scratch module is reported."""
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from musicvid_core.bootstrap import build_services\n")
    assert _imports(bad) == [(2, "musicvid_core.bootstrap")]
    assert FLOORS[_room("musicvid_core.bootstrap")] > FLOORS[_room("musicvid_core.stages.plan.planner")]
