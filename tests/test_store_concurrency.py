"""SQLite under concurrent writers (real processes): no 'database is locked', no lost update."""

from __future__ import annotations

import multiprocessing as mp

from musicvid_core.adapters.local import SQLiteJobStore
from musicvid_core.adapters.local.leases import LeaseStore
from musicvid_core.domain.job import Job

WRITERS, UPDATES = 6, 40


def _writer(db: str, job_ids: list[str], worker: int, errors) -> None:
    store, leases = SQLiteJobStore(db), LeaseStore(db)
    try:
        for i in range(UPDATES):
            job_id = job_ids[i % len(job_ids)]
            # read-modify-write through the optimistic version: every increment must survive
            store.update(job_id, lambda job: {"metrics": {**job.metrics, "n": job.metrics.get("n", 0) + 1}},
                         retries=1000)
            store.list_for_user("u", limit=5)
            leases.acquire(f"{job_id}-{worker}")
            leases.release(f"{job_id}-{worker}")
    except Exception as exc:  # every failure is reported to the parent
        errors.put(f"{type(exc).__name__}: {exc}")


def test_concurrent_writers_never_lock_or_lose_updates(tmp_path):
    db = str(tmp_path / "jobs.sqlite3")
    store = SQLiteJobStore(db)
    ids = [store.create(Job(user_id="u", s3_url="local://uploads/u/x.mp4", prompts=["p"])).job_id for _ in range(3)]
    ctx = mp.get_context("spawn")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(db, ids, w, errors)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert found == []
    assert all(p.exitcode == 0 for p in procs)
    assert sum(store.get(i).metrics["n"] for i in ids) == WRITERS * UPDATES
