"""GET /jobs/{id} whatever the timing (issue 19: one unreproduced 500 in the first browser run).

The job row and its plan object are read at different moments: the row may name a plan that a
failed attempt's rollback (FailureHandler, the pool's crash cleanup) or a finished regeneration's
cleanup is deleting, between the store's existence check and its read. The view must then be a
valid one without the plan, never a 500.
"""

from __future__ import annotations

import threading

import pytest

from musicvid_core.api.build import build_api
from musicvid_core.domain.errors import NotFound
from musicvid_core.domain.job import Job
from musicvid_core.domain.plan import Plan, Segment


class _NoLauncher:
    def start(self, job):  # the view tests never run a job
        raise AssertionError("not started in these tests")


def _plan() -> Plan:
    segs = [Segment(index=i, start=3.0 * i, end=3.0 * (i + 1), prompt="calm", style="ambient", mood="calm",
                    bpm=100.0, key="A minor", energy=0.5) for i in range(2)]
    return Plan(duration=6.0, prompt="calm", segments=segs, cuts=[3.0])


@pytest.fixture
def setup(services):
    api = build_api(services, launcher=_NoLauncher(), base_url="http://127.0.0.1:1")
    job = services.jobs.create(Job(user_id="alice", s3_url=services.objects.uri("uploads/alice/in.mp4"),
                                   prompts=["calm"]))
    key = job.layout.plan
    data = _plan().model_dump_json().encode()
    url = services.objects.put_bytes(key, data, "application/json")
    services.jobs.update(job.job_id, {"plan_url": url})
    return api, job, key, data


def test_the_view_shows_the_plan_when_it_is_there(setup):
    api, job, _, _ = setup
    status, view = api.get_job("alice", job.job_id)
    assert status == 200 and [s["index"] for s in view["plan"]["segments"]] == [0, 1]
    assert view["plan"]["cuts"] == [3.0]


def test_a_plan_deleted_between_the_check_and_the_read_leaves_the_plan_out(setup, monkeypatch):
    api, job, key, _ = setup
    store = api.services.objects
    path = store.local_path(key)
    real = type(store)._exists

    def exists_then_gone(self, k):  # the rollback runs right after the check
        there = real(self, k)
        if k == key:
            path.unlink(missing_ok=True)
        return there

    monkeypatch.setattr(type(store), "_exists", exists_then_gone)
    with pytest.raises(NotFound):  # the store's own contract: NotFound, not an OSError
        store.get_bytes(key)
    path.write_bytes(b"{}")
    status, view = api.get_job("alice", job.job_id)
    assert status == 200 and view["plan"] is None and view["job_id"] == job.job_id


@pytest.mark.parametrize("content", [b"", b'{"duration": 6.0, "segm', b"\xff\xfe", b'{"duration": 6.0}',
                                     b"[1, 2]"])
def test_a_partial_or_foreign_plan_leaves_the_plan_out(setup, content):
    api, job, key, _ = setup
    api.services.objects.local_path(key).write_bytes(content)
    status, view = api.get_job("alice", job.job_id)
    assert status == 200 and view["plan"] is None


def test_polling_while_the_plan_is_deleted_and_rewritten_is_always_a_valid_view(setup):
    api, job, key, data = setup
    store = api.services.objects
    stop = threading.Event()

    def churn():  # rollback and rewrite, as fast as the disk allows
        prefix = key.rsplit("/", 1)[0]
        while not stop.is_set():
            store.delete_prefix(prefix)
            store.put_bytes(key, data, "application/json")

    worker = threading.Thread(target=churn, daemon=True)
    worker.start()
    try:
        seen = set()
        for _ in range(400):
            status, view = api.get_job("alice", job.job_id)
            assert status == 200
            seen.add(view["plan"] is None)
    finally:
        stop.set()
        worker.join(5)
    assert False in seen  # the plan was shown when it was there
