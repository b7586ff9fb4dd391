"""Contract tests: every adapter of a port passes the same suite (the AWS twins join later)."""

import threading

import pytest

from musicvid_core.adapters.local import FolderObjectStore, SQLiteJobStore
from musicvid_core.domain import BadInput, ConcurrentUpdate, InvalidTransition, Job, NotFound, Status


@pytest.fixture(params=["folder"])
def store(request, tmp_path):
    return FolderObjectStore(tmp_path / "store")


@pytest.fixture(params=["sqlite"])
def jobs(request, tmp_path):
    return SQLiteJobStore(tmp_path / "jobs.sqlite3")


@pytest.mark.parametrize("key", ["../x", "a/../../b", "/etc/passwd", "a//b", "a/./b", "", "a\\b",
                                 "a/b c", "x" * 600, "uploads/..", "."])
def test_object_keys_are_validated(store, key):
    with pytest.raises(BadInput):
        store.put_bytes(key, b"x")


def test_object_roundtrip_and_prefix_delete(store, tmp_path):
    uri = store.put_bytes("jobs/j/1/a.json", b"{}")
    assert store.key_from_uri(uri) == "jobs/j/1/a.json"
    store.put_bytes("jobs/j/1/seg/0.wav", b"1")
    store.put_bytes("jobs/j/2/keep", b"2")
    assert store.list("jobs/j/1") == ["jobs/j/1/a.json", "jobs/j/1/seg/0.wav"]
    assert store.delete_prefix("jobs/j/1") == 2
    assert not store.exists("jobs/j/1/a.json") and store.exists("jobs/j/2/keep")
    with pytest.raises(NotFound):
        store.get_bytes("jobs/j/1/a.json")
    src = tmp_path / "f.bin"
    src.write_bytes(b"abc")
    store.put_file("uploads/u/f.bin", src)
    assert store.get_file("uploads/u/f.bin", tmp_path / "out" / "g.bin").read_bytes() == b"abc"


@pytest.mark.parametrize("uri", ["s3://bucket/key", "local://../x", "file:///etc/passwd", "", None])
def test_foreign_uris_are_refused(store, uri):
    with pytest.raises(BadInput):
        store.key_from_uri(uri)


def _job(user="u", prompt="calm"):
    return Job(user_id=user, s3_url="local://uploads/u/x.mp4", prompts=[prompt])


def test_job_lifecycle_and_conditional_updates(jobs):
    job = jobs.create(_job())
    with pytest.raises(ConcurrentUpdate):
        jobs.create(job)
    assert jobs.get(job.job_id).version == 1
    with pytest.raises(InvalidTransition):
        jobs.transition(job.job_id, Status.COMPLETED)
    j = jobs.transition(job.job_id, Status.PROCESSING)
    assert j.status == Status.PROCESSING and j.version == 2
    assert jobs.get(job.job_id).status == Status.PROCESSING
    with pytest.raises(NotFound):
        jobs.get(job.job_id, user_id="someone-else")
    with pytest.raises(NotFound):
        jobs.get("00000000-0000-0000-0000-000000000000")


def test_concurrent_updates_are_not_lost(jobs):
    job = jobs.create(_job())

    def add(n):
        for _ in range(10):
            jobs.update(job.job_id, lambda j: {"prompts": [*j.prompts, f"p{n}"]}, retries=200)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(jobs.get(job.job_id).prompts) == 41


def test_only_one_racer_wins_a_transition(jobs):
    job = jobs.create(_job())
    results = []

    def go():
        try:
            jobs.transition(job.job_id, Status.PROCESSING)
            results.append("won")
        except InvalidTransition:
            results.append("lost")

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["lost"] * 5 + ["won"]


def test_paging_newest_first_and_bound_to_owner(jobs):
    made = [jobs.create(_job(prompt=f"p{i}")) for i in range(7)]
    jobs.create(_job(user="other"))
    seen, token = [], None
    while True:
        page, token = jobs.list_for_user("u", limit=3, next_token=token)
        seen += page
        if token is None:
            break
    assert [j.job_id for j in seen] == [j.job_id for j in sorted(made, key=lambda j: j.created_at,
                                                                 reverse=True)]
    _, token = jobs.list_for_user("u", limit=3)
    with pytest.raises(BadInput):
        jobs.list_for_user("other", limit=3, next_token=token)
    with pytest.raises(BadInput):
        jobs.list_for_user("u", limit=3, next_token="garbage!!")
