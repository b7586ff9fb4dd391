"""50 jobs at once through `musicvid serve`: all finish, none lost or duplicated, reads stay fast;
and a killed server's jobs are resumed by the next one."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.load import run_load


@pytest.mark.slow
def test_fifty_concurrent_jobs_through_serve():
    result = run_load(50, workers=2)
    assert result["errors"] == []
    assert result["outcomes"].count("COMPLETED") == 50, result["outcomes"]
    assert result["distinct_jobs"] == 50 and result["listed"] == 50  # none lost, none duplicated
    assert result["outputs_per_job"] == [1]
    # reads are answered while two workers render: well under a second even on a busy CI machine
    assert result["read_p50_ms"] < 500, result


@pytest.mark.slow
def test_jobs_of_a_killed_server_are_resumed_by_the_next(tmp_path, short_video):
    from musicvid_core.api.auth import mint_token
    from musicvid_core.bootstrap import build_services
    from musicvid_core.domain import Status
    from musicvid_core.settings import Settings

    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICVID_")}
    env.update(MUSICVID_HOME=str(tmp_path / "home"), MUSICVID_WORKERS="1")
    cli = [sys.executable, "-m", "musicvid_core.cli", "serve", "--port", "0"]

    def start():
        proc = subprocess.Popen(cli, env=env, stderr=subprocess.PIPE, text=True)
        while True:  # the recovery's notes come first, then the address
            line = proc.stderr.readline()
            assert line, "serve exited"
            found = re.search(r"musicvid API on http://127\.0\.0\.1:(\d+)", line)
            if found:
                return proc, f"http://127.0.0.1:{found.group(1)}"

    server, url = start()
    headers = {"Authorization": "Bearer " + mint_token(tmp_path / "home", "alice")}
    ids = []
    try:
        for i in range(3):
            form = requests.post(f"{url}/uploads", json={"content_type": "video/mp4"}, headers=headers).json()
            with open(short_video.path, "rb") as fh:
                requests.post(form["upload"]["url"], data=form["upload"]["fields"], files={"file": ("v.mp4", fh)})
            r = requests.post(f"{url}/jobs", json={"s3_url": form["s3_url"], "prompt": f"calm {i}"}, headers=headers)
            ids.append(r.json()["job_id"])
        services = build_services(Settings(home=tmp_path / "home"))
        deadline = time.monotonic() + 60
        while services.jobs.get(ids[0]).status != Status.PROCESSING and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.send_signal(signal.SIGKILL)  # one job mid-run, two queued
        server.wait()
    assert any(services.jobs.get(i).status != Status.COMPLETED for i in ids)
    server, url = start()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and any(
                services.jobs.get(i).status not in (Status.COMPLETED, Status.FAILED) for i in ids):
            time.sleep(0.5)
        jobs = [services.jobs.get(i) for i in ids]
        assert [j.status for j in jobs] == [Status.COMPLETED] * 3, [j.error for j in jobs]
        for job in jobs:  # one output each, nothing half-written left over
            keys = services.objects.list(f"jobs/{job.job_id}")
            assert len([k for k in keys if "/output" in k]) == 1
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_a_worker_process_that_dies_fails_its_job_not_the_server(settings, short_video):
    from tests.apihelpers import Live

    live = Live(settings.model_copy(update={"worker_isolation": "process", "workers": 1}))
    try:
        uri = live.upload("alice", short_video.path)
        job_id = live.submit("alice", s3_url=uri, prompt="calm")["job_id"]
        services = live.app.services
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the child takes the lease over when it starts the job
            lease = services.leases.get(job_id)
            if lease is not None and lease.owner.pid != os.getpid():
                break
            time.sleep(0.02)
        os.kill(lease.owner.pid, signal.SIGKILL)  # as the kernel's OOM killer would
        job = live.wait("alice", job_id)
        assert job["status"] == "FAILED" and job["error"]["type"] == "WorkerLost", job
        assert "killed by signal 9" in job["error"]["message"]
        assert services.objects.list(services.jobs.get(job_id).prefix) == []
        again = live.wait("alice", live.submit("alice", s3_url=uri, prompt="calm again")["job_id"])
        assert again["status"] == "COMPLETED"  # the server and its pool carry on
    finally:
        live.close()
