"""Issue 18, memory: what keeps the peak of a `musicvid run` down (docs/speed.md, "Memory at 1, 15 and
60 minutes"). The SoundFont's share is tested in test_fontsubset.py."""

from __future__ import annotations

from musicvid_core.settings import Settings
from musicvid_core.workflow import runner


def _maps(states: dict) -> dict[str, dict]:
    found = {}
    for name, state in states.items():
        if state.get("Type") == "Map":
            found[name] = state
            found.update(_maps(state.get("ItemProcessor", {}).get("States", {})))
    return found


def test_the_local_runner_renders_map_concurrency_segments_at_once():
    """A Map's iterations are threads of one process here, each holding a segment's stems: the
    definition's MaxConcurrency is capped at settings.map_concurrency (default 2), the file and
    the definition Step Functions runs stay as written."""
    path = str(runner.PACKAGED_DEFINITION)
    written = _maps(runner._definition(path)["States"])["GenerateAudio"]["MaxConcurrency"]
    assert written == 4
    assert Settings().map_concurrency == 2
    assert _maps(runner._definition(path, Settings().map_concurrency)["States"])["GenerateAudio"]["MaxConcurrency"] == 2
    assert _maps(runner._definition(path, 64)["States"])["GenerateAudio"]["MaxConcurrency"] == written
    assert _maps(runner._definition(path)["States"])["GenerateAudio"]["MaxConcurrency"] == written


def test_a_map_without_a_limit_gets_the_cap():
    states = {"M": {"Type": "Map", "ItemProcessor": {"States": {"Inner": {"Type": "Map", "MaxConcurrency": 0}}}},
              "P": {"Type": "Parallel", "Branches": [{"States": {"B": {"Type": "Map"}}}]}}
    runner._cap_maps(states, 3)
    assert states["M"]["MaxConcurrency"] == 3
    assert states["M"]["ItemProcessor"]["States"]["Inner"]["MaxConcurrency"] == 3
    assert states["P"]["Branches"][0]["States"]["B"]["MaxConcurrency"] == 3
