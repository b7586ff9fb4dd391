"""bench/capacity.py, the capacity plan's simulation (docs/SCALING.md): deterministic per seed, every
arrival accounted for, and queueing that answers to the quotas it models. Small days: well under a
second each."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def capacity():
    spec = importlib.util.spec_from_file_location("capacity", ROOT / "bench" / "capacity.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["capacity"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("capacity", None)


def test_the_same_seed_gives_the_same_day_and_another_seed_another(capacity):
    a = capacity.simulate("default", 2_000, seed=7)
    b = capacity.simulate("default", 2_000, seed=7)
    c = capacity.simulate("default", 2_000, seed=8)
    assert a == b
    assert a["arrived"] != c["arrived"] or a["p99_s"] != c["p99_s"]


def _tight(capacity, **changes):
    return capacity.Config("tight", **changes)


def test_every_arrival_finishes_or_is_counted_as_rejected(capacity):
    cases = [
        (_tight(capacity, api_rate=0.02, api_burst=2), 3_000, "rejected: API 429"),
        (_tight(capacity, lambda_concurrency=2), 3_000, "failed: Lambda throttled"),
        (_tight(capacity, musicgen=True, bedrock=True, sm_max_instances=1), 3_000, "failed: SageMaker deadline"),
    ]
    for cfg, volume, reason in cases:
        r = capacity.simulate(cfg, volume, seed=1)
        assert r["outcomes"].get(reason, 0) > 0, (reason, r["outcomes"])
        assert "unfinished: running a day later" not in r["outcomes"]  # the day ended with every job settled
        assert sum(r["outcomes"].values()) == r["arrived"] > 0, r["outcomes"]
        assert r["rejected"] == r["arrived"] - r["outcomes"].get("completed", 0)


def test_queueing_delay_grows_when_lambda_concurrency_is_cut(capacity):
    roomy = capacity.simulate(_tight(capacity, lambda_concurrency=1_000), 6_000, seed=3)
    cut = capacity.simulate(_tight(capacity, lambda_concurrency=4), 6_000, seed=3)
    assert roomy["arrived"] == cut["arrived"]
    assert cut["p99_s"] > roomy["p99_s"] + 1.0, (roomy["p99_s"], cut["p99_s"])
    assert cut["p50_s"] > roomy["p50_s"]
    assert cut["peak_lambda"] <= 4 < roomy["peak_lambda"]
    assert cut["outcomes"].get("failed: Lambda throttled", 0) > roomy["outcomes"].get("failed: Lambda throttled", 0)


def test_transitions_per_job_are_read_from_the_definition(capacity):
    # the embedded runner entered 9 states for a 1-segment job and 21 for a 5-segment one
    assert capacity.MAIN_T + capacity.ITEM_T * 1 == 9
    assert capacity.MAIN_T + capacity.ITEM_T * 5 == 21
    assert capacity.POLL_T == 3  # WaitForSegment, GenerateSegment, SegmentReady
