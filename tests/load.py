"""Load: many jobs submitted at once through a live `musicvid serve` (tests/test_load.py and
bench/reliability.py's `load` scenario)."""

from __future__ import annotations

import logging
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from musicvid_core.lab.samples import make_video
from musicvid_core.settings import Settings
from tests.apihelpers import Live


def run_load(jobs: int = 50, workers: int = 2, home: Path | None = None, timeout_s: float = 900.0) -> dict:
    """Submit ``jobs`` jobs concurrently (each client uploads its own short video and submits it;
    every fifth submit is sent twice with the same client token), poll every job's status while they
    run, and count the outcomes. Returns the outcomes per job, the status-read latencies and any
    'database is locked' error seen in a response or a job's error."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    with tempfile.TemporaryDirectory() as tmp:
        home = home or Path(tmp) / "home"
        video = make_video(Path(tmp) / "tiny.mp4", (1.0, 1.0), size=(128, 72), fps=25, audio="tone").path
        live = Live(Settings(home=home, workers=workers, retry_time_scale=0))
        reads: list[float] = []
        errors: list[str] = []
        stop = threading.Event()
        try:
            t0 = time.perf_counter()

            def client(i: int) -> str:
                user = f"user{i % 5}"
                uri = live.upload(user, video)
                body = {"s3_url": uri, "prompt": f"calm piano {i}", "client_token": f"tok-{i}"}
                first = live.submit(user, **body)
                if i % 5 == 0:  # a client retrying its submit: the same job, not a second one
                    again = live.submit(user, **body)
                    if again["job_id"] != first["job_id"]:
                        errors.append(f"duplicate job for client token tok-{i}")
                return first["job_id"]

            with ThreadPoolExecutor(max_workers=16) as pool:
                ids = list(pool.map(client, range(jobs)))

            headers = {f"user{u}": live.headers(f"user{u}") for u in range(5)}  # minting is not what we time

            def reader() -> None:
                k = 0
                while not stop.is_set():
                    job_id = ids[k % len(ids)]
                    user = f"user{ids.index(job_id) % 5}"
                    t = time.perf_counter()
                    r = requests.get(f"{live.url}/jobs/{job_id}", headers=headers[user], timeout=30)
                    reads.append(time.perf_counter() - t)
                    if r.status_code >= 500 or "locked" in r.text:
                        errors.append(f"status read {r.status_code}: {r.text[:200]}")
                    k += 1
                    time.sleep(0.02)

            threads = [threading.Thread(target=reader, daemon=True) for _ in range(2)]
            for th in threads:
                th.start()
            deadline = time.monotonic() + timeout_s
            final: dict[str, dict] = {}
            while len(final) < len(ids) and time.monotonic() < deadline:
                # watched in the store (the HTTP reads are the reader threads' job, and timed there)
                for job_id in ids:
                    if job_id not in final:
                        job = live.app.services.jobs.get(job_id)
                        if job.status.value in ("COMPLETED", "FAILED"):
                            final[job_id] = {"status": job.status.value, "error": job.error and job.error.model_dump()}
                time.sleep(0.5)
            wall = time.perf_counter() - t0
            stop.set()
            for th in threads:
                th.join()
            services = live.app.services
            listed = set()
            for u in range(5):
                token = None
                while True:
                    page, token = services.jobs.list_for_user(f"user{u}", limit=100, next_token=token)
                    listed |= {j.job_id for j in page}
                    if not token:
                        break
            outputs = {job_id: [k for k in services.objects.list(f"jobs/{job_id}") if "/output" in k] for job_id in ids}
        finally:
            stop.set()
            live.close()
    outcomes = {}
    for job_id in ids:
        job = final.get(job_id)
        if job_id not in listed:
            outcomes[job_id] = "lost"
        elif job is None:
            outcomes[job_id] = "stuck"
        else:
            outcomes[job_id] = job["status"]
            if job["status"] == "FAILED" and "locked" in str(job.get("error")):
                errors.append(f"job {job_id}: {job['error']}")
    quantiles = statistics.quantiles(reads, n=100) if len(reads) >= 2 else [0.0] * 99
    return {
        "outcomes": list(outcomes.values()),
        "distinct_jobs": len(set(ids)),
        "listed": len(listed),
        "outputs_per_job": sorted({len(v) for v in outputs.values()}),
        "errors": errors,
        "locked_errors": sum("locked" in e for e in errors),
        "reads": len(reads),
        "read_p50_ms": quantiles[49] * 1000,
        "read_p99_ms": quantiles[98] * 1000,
        "wall_s": wall,
        "workers": workers,
    }
