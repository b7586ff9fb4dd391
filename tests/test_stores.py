"""Contract tests: every adapter of a port passes the same suite (S3 and DynamoDB under moto)."""

import json
import threading

import pytest

from musicvid_core.adapters.local import FolderObjectStore, SQLiteJobStore
from musicvid_core.domain import BadInput, ConcurrentUpdate, InvalidTransition, Job, NotFound, Status


@pytest.fixture(params=["folder", "s3"])
def store(request, tmp_path):
    if request.param == "folder":
        return FolderObjectStore(tmp_path / "store")
    from musicvid_core.adapters.aws.s3 import S3ObjectStore

    boto3 = request.getfixturevalue("aws")
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="musicvid-test")
    return S3ObjectStore(client, "musicvid-test")


@pytest.fixture(params=["sqlite", "dynamodb"])
def jobs(request, tmp_path):
    if request.param == "sqlite":
        return SQLiteJobStore(tmp_path / "jobs.sqlite3")
    from musicvid_core.adapters.aws.dynamodb import DynamoDBJobStore, create_table

    boto3 = request.getfixturevalue("aws")
    client = boto3.client("dynamodb", region_name="us-east-1")
    create_table(client, "musicvid-jobs")
    return DynamoDBJobStore(_Atomic(client), "musicvid-jobs")


class _Atomic:
    """DynamoDB applies each request atomically (a conditional put cannot interleave with another
    write to the item); moto's in-memory backend does not lock between threads. Serialising whole
    requests restores the service's guarantee, so the racing tests check our retry logic, not moto."""

    _lock = threading.Lock()

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr) or name == "get_paginator":
            return attr

        def call(*args, **kwargs):
            with self._lock:
                return attr(*args, **kwargs)
        return call


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


def test_unfinished_lists_scheduled_and_processing(jobs):
    a, b, c = (jobs.create(_job(prompt=p)) for p in ("a", "b", "c"))
    jobs.transition(b.job_id, Status.PROCESSING)
    jobs.transition(c.job_id, Status.FAILED)
    assert sorted(j.job_id for j in jobs.unfinished()) == sorted([a.job_id, b.job_id])


def _store_raw_body(jobs, job_id: str, body: str) -> None:
    """Overwrite a stored row's JSON body as older code wrote it (bypassing the model)."""
    if isinstance(jobs, SQLiteJobStore):
        jobs._conn().execute("UPDATE jobs SET body = ? WHERE job_id = ?", (body, job_id))
    else:
        jobs.client.update_item(TableName=jobs.table, Key={"job_id": {"S": job_id}},
                                UpdateExpression="SET body = :b", ExpressionAttributeValues={":b": {"S": body}})


def test_rows_with_the_old_settings_map_still_load_and_update(jobs):
    """Jobs written before JobOptions kept options and bookkeeping in one ``settings`` map."""
    job = jobs.create(_job())
    old = job.model_dump(mode="json", exclude={"options", "reroll", "resumes", "client_token"})
    old["settings"] = {"target_lufs": -23.0, "preview": True, "hits": [2.0], "resumes": 1, "client_token": "req-1",
                       "reroll": {"segment": 0, "prompt": None, "from": f"jobs/{job.job_id}/1/"}}
    _store_raw_body(jobs, job.job_id, json.dumps(old))
    loaded = jobs.get(job.job_id)
    assert (loaded.options.target_lufs, loaded.options.preview, loaded.options.hits) == (-23.0, True, [2.0])
    assert (loaded.resumes, loaded.client_token, loaded.reroll.segment, loaded.reroll.attempt) == (1, "req-1", 0, 1)
    assert [j.job_id for j in jobs.unfinished()] == [job.job_id]  # listing reads old rows too
    updated = jobs.update(job.job_id, {"resumes": loaded.resumes + 1})  # written back in the new shape
    again = jobs.get(job.job_id)
    assert again == updated and again.resumes == 2 and again.options == loaded.options
    assert again.reroll == loaded.reroll and again.client_token == "req-1"


# --- Launcher: Step Functions vs the local pool -------------------------------------------------
@pytest.fixture(params=["pool", "stepfunctions"])
def launcher(request, monkeypatch, services):
    """(launcher, runs) where runs() lists the execution names the engine really started."""
    if request.param == "pool":
        from musicvid_core.workflow import runner
        from musicvid_core.workflow.pool import PooledLauncher

        gate, started = threading.Event(), []

        def fake_run(services, job_id, on_event=None):
            started.append(job_id)
            gate.wait(5)

        monkeypatch.setattr(runner, "run_job", fake_run)
        pool = PooledLauncher(services, workers=2)
        yield pool, lambda: [f"{j}-1" for j in started]
        gate.set()
        pool.shutdown()
        return
    import json

    from musicvid_core.adapters.aws.stepfunctions import StepFunctionsLauncher

    boto3 = request.getfixturevalue("aws")
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    arn = sfn.create_state_machine(name="musicvid", roleArn=role,
                                   definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}})
                                   )["stateMachineArn"]
    yield StepFunctionsLauncher(sfn, arn), lambda: [e["name"] for e in sfn.list_executions(stateMachineArn=arn)["executions"]]


def test_launcher_names_executions_by_attempt_and_starts_once(launcher):
    import time

    start, runs = launcher
    job = _job()
    assert start.start(job) == f"{job.job_id}-1"
    assert start.start(job) == f"{job.job_id}-1"  # a retried submit starts nothing new
    deadline = time.monotonic() + 5
    while not runs() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runs() == [f"{job.job_id}-1"]


# --- fair use and signed page tokens (issue 14) ----------------------------------------------------
def test_the_per_user_cap_counts_scheduled_and_processing_jobs(jobs):
    from musicvid_core.domain import TooManyJobs

    a, b = jobs.create(_job(), max_active=2), jobs.create(_job(), max_active=2)
    with pytest.raises(TooManyJobs) as err:
        jobs.create(_job(), max_active=2)
    assert err.value.http_status == 429 and "limit" in str(err.value)
    jobs.create(_job(user="other"), max_active=2)  # the cap is per user
    jobs.create(_job(), max_active=None)  # the CLI and recovery are not capped (3 active now)
    jobs.transition(a.job_id, Status.PROCESSING)  # still active: no slot freed
    with pytest.raises(TooManyJobs):
        jobs.create(_job(), max_active=3)
    jobs.transition(a.job_id, Status.COMPLETED)  # terminal: a slot is free again
    jobs.transition(b.job_id, Status.FAILED)
    made = jobs.create(_job(), max_active=3)  # 2 active now
    with pytest.raises(TooManyJobs):  # a regeneration makes a terminal job active again: it counts
        jobs.update(a.job_id, {"attempt": 2}, status=Status.SCHEDULED, max_active=2)
    assert jobs.get(a.job_id).status == Status.COMPLETED  # refused whole: nothing was written
    jobs.transition(made.job_id, Status.FAILED)
    assert jobs.update(a.job_id, {"attempt": 2}, status=Status.SCHEDULED, max_active=2).attempt == 2


def test_the_cap_holds_under_racing_submits(jobs):
    from musicvid_core.domain import TooManyJobs

    results: list[str] = []

    def submit():
        try:
            jobs.create(_job(), max_active=3)
            results.append("made")
        except TooManyJobs:
            results.append("refused")

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["made"] * 3 + ["refused"] * 5
    assert len(jobs.unfinished()) == 3


def test_page_tokens_are_signed_by_the_store(jobs):
    for i in range(3):
        jobs.create(_job(prompt=f"p{i}"))
    _, token = jobs.list_for_user("u", limit=1)
    body, _, mac = token.rpartition(".")
    assert body and mac
    import base64

    unsigned = base64.urlsafe_b64encode(base64.urlsafe_b64decode(body + "==")).decode().rstrip("=")
    nested = base64.urlsafe_b64encode(b"[" * 100_000 + b"]" * 100_000).decode()
    for bad in (unsigned, f"{body}.{mac[:-2]}AA", f"{body[:-2]}AA.{mac}", f"{nested}.{mac}", nested, "."):
        with pytest.raises(BadInput, match="invalid page token"):
            jobs.list_for_user("u", limit=1, next_token=bad)
    # every process using the store shares its secret; one given another (Settings.page_token_secret) refuses it
    def twin():
        if isinstance(jobs, SQLiteJobStore):
            return SQLiteJobStore(jobs.path)
        from musicvid_core.adapters.aws.dynamodb import DynamoDBJobStore

        return DynamoDBJobStore(jobs.client, jobs.table)

    assert len(twin().list_for_user("u", limit=1, next_token=token)[0]) == 1
    other = twin()
    other.token_secret = b"another deployment's secret"
    with pytest.raises(BadInput):
        other.list_for_user("u", limit=1, next_token=token)
