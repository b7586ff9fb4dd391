"""Crash recovery of the embedded runner: real processes killed with SIGKILL in every stage."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from musicvid_core.adapters.local.leases import LeaseStore, Owner, pid_alive
from musicvid_core.bootstrap import build_services
from musicvid_core.domain import Status
from musicvid_core.domain.errors import ConcurrentUpdate
from musicvid_core.lab.samples import make_video
from musicvid_core.settings import Settings
from musicvid_core.workflow import submit as service
from musicvid_core.workflow.recovery import reconcile, sweep_scratch
from tests.crash_child import STAGES

CHILD = str(Path(__file__).with_name("crash_child.py"))


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICVID_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUSICVID_USER", "tester")
    return tmp_path / "home"


def _cli(*args, env=None, check=True):
    proc = subprocess.run([sys.executable, "-m", "musicvid_core.cli", *args], capture_output=True, text=True,
                          env=env or os.environ.copy(), timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_sigkill_in_each_stage_is_settled_by_the_next_process(home, tmp_path, stage):
    video = make_video(tmp_path / "in.mp4", (2, 2), size=(320, 180), fps=25, audio="tone").path
    marker = tmp_path / "marker"
    child = subprocess.Popen([sys.executable, CHILD, stage, str(marker), "run", str(video), "-p", "calm piano",
                              "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert child.poll() is None, child.stderr.read().decode()
        assert time.monotonic() < deadline, "the child never reached the stage"
        time.sleep(0.02)
    services = build_services(Settings())
    (job,) = services.jobs.unfinished()
    assert services.leases.get(job.job_id).owner.pid == child.pid
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stderr.close()

    listing = _cli("jobs", "--limit", "5")  # the next musicvid process reconciles
    assert "WorkerLost" in listing.stderr or "FAILED" in listing.stderr
    job = services.jobs.get(job.job_id)
    assert job.status == Status.FAILED and job.error.type == "WorkerLost"
    assert f"pid {child.pid}" in job.error.message and job.error.stage == job.stage.value
    assert services.objects.list(job.prefix) == []  # no partial output of the attempt
    assert services.objects.exists(services.objects.key_from_uri(job.s3_url))  # the input is kept
    assert services.leases.get(job.job_id) is None
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"musicvid-{child.pid}-*"))

    # and the job can be run again to completion, with exactly one output
    again = _cli("regenerate", job.job_id, "-p", "calm piano", "--quiet", "--json")
    result = json.loads(again.stdout)
    assert result["job"]["status"] == "COMPLETED"
    outputs = [k for k in services.objects.list(f"jobs/{job.job_id}") if "/output" in k]
    assert len(outputs) == 1


def test_a_live_owner_keeps_its_job_and_a_dead_one_loses_it(home, tmp_path):
    services = build_services(Settings())
    video = make_video(tmp_path / "in.mp4", (2,), size=(160, 90), fps=25, audio="none").path
    job = service.submit_new(services, service.upload_file(services, video, "tester"), "x", "tester")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        from musicvid_core.adapters.local.leases import _proc_start

        live = Owner(socket.gethostname(), sleeper.pid, _proc_start(sleeper.pid))
        assert services.leases.get(job.job_id).owner == Owner.me()  # leased from before it existed
        services.leases.release(job.job_id)  # hand it to the other (live) process
        services.leases.acquire(job.job_id, live)
        with pytest.raises(ConcurrentUpdate):
            services.leases.acquire(job.job_id)  # someone alive runs it
        assert reconcile(services) == [] and services.jobs.get(job.job_id).status == Status.SCHEDULED
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not pid_alive(sleeper.pid)
    (settled,) = reconcile(services)
    assert settled.status == Status.FAILED and f"pid {sleeper.pid}" in settled.error.message


def test_pid_reuse_and_other_hosts(home, tmp_path):
    leases = LeaseStore(tmp_path / "l.sqlite3", ttl_s=0.2)
    me = Owner.me()
    impostor = Owner(me.host, me.pid, "1")  # same pid, another process start time: a recycled pid
    leases.acquire("a", impostor)
    assert not leases.get("a").alive()
    assert leases.acquire("a").owner == me  # taken over
    remote = Owner("elsewhere.example", 1, "1")
    leases.acquire("b", remote)
    assert leases.get("b").alive()  # unexpired: trusted
    time.sleep(0.3)
    assert not leases.get("b").alive()  # expired: its owner stopped renewing
    lease = leases.acquire("c")
    assert leases.acquire("c").acquired_at == lease.acquired_at  # re-entrant for its owner
    leases.release("c", remote)
    assert leases.get("c") is not None  # only the owner releases


def test_orphaned_scheduled_job_fails_after_grace(home, tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICVID_ORPHAN_GRACE_S", "0.5")
    services = build_services(Settings())
    video = make_video(tmp_path / "in.mp4", (2,), size=(160, 90), fps=25, audio="none").path
    job = service.submit_new(services, service.upload_file(services, video, "tester"), "x", "tester")
    assert reconcile(services) == []  # held by this live process
    services.leases.release(job.job_id)  # as a job written without an owner (another tool, an old version)
    assert reconcile(services) == []  # within the grace period: left alone
    time.sleep(0.6)
    (settled,) = reconcile(services)
    assert settled.job_id == job.job_id and settled.status == Status.FAILED
    assert "before running it" in settled.error.message


def test_a_submitter_that_dies_before_running_its_job_is_noticed_at_once(home, tmp_path):
    video = make_video(tmp_path / "in.mp4", (2,), size=(160, 90), fps=25, audio="none").path
    script = ("import sys; from musicvid_core.workflow import submit as service; "
              "from musicvid_core.bootstrap import process_services as d;"
              "s = d(); print(service.submit_new(s, service.upload_file(s, sys.argv[1], 'tester'), 'x', 'tester').job_id)")
    job_id = subprocess.run([sys.executable, "-c", script, str(video)], capture_output=True, text=True,
                            check=True, timeout=120).stdout.strip()
    services = build_services(Settings())
    (settled,) = reconcile(services)  # no grace needed: its lease names a dead process
    assert settled.job_id == job_id and settled.error.type == "WorkerLost"


def test_scratch_of_dead_processes_is_swept(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / f"musicvid-{dead.pid}-step-x").mkdir()
    (tmp_path / f"musicvid-{os.getpid()}-step-y").mkdir()
    (tmp_path / "musicvid-up-z").mkdir()
    assert sweep_scratch(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"musicvid-{os.getpid()}-step-y", "musicvid-up-z"]
