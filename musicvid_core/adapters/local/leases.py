"""Job leases on one machine: which process runs which job, and whether that process still lives.

On AWS, Step Functions owns every execution and nothing here is needed. The embedded runner has no
such supervisor, so a ``musicvid run`` killed mid-job (SIGKILL, power loss, OOM killer) would leave
its job PROCESSING forever. Every process that runs (or queues) a job therefore holds a lease on it
in the jobs database:

- the owner is ``host``, ``pid`` and the process's start time (``/proc/PID/stat`` field 22, so a
  recycled pid is not mistaken for the dead owner);
- on this host, a dead owner is recognised at once (no such pid, or another process under it);
- an owner on another host (a shared database) is taken as dead when its lease expires: the owner
  renews it every ``ttl / 3`` seconds from a heartbeat thread while it works.

A lease is re-entrant for its owner (``musicvid serve`` takes it when it queues a job and keeps it
while a worker thread runs it). The table lives in the SQLite file of the job store, written with
short IMMEDIATE transactions so concurrent processes never interleave a check and a write.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from musicvid_core.adapters.local.jobstore import SQLiteFile
from musicvid_core.domain.errors import ConcurrentUpdate

_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    job_id      TEXT PRIMARY KEY,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    pid_start   TEXT NOT NULL,
    acquired_at REAL NOT NULL,
    expires_at  REAL NOT NULL
);
"""


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` from field 3 (state) on; None where it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its closing one
    return stat[stat.rindex(")") + 2:].split()


def _proc_start(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' where /proc is unavailable)."""
    fields = _stat_fields(pid)
    return fields[19] if fields is not None else ""


def _live_start_time(pid: int) -> str | None:
    """The start time of the process now running under ``pid``; None when there is none."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # someone else's process: it exists
        pass
    fields = _stat_fields(pid)
    if fields is None:
        return ""
    return None if fields[0] in ("Z", "X") else fields[19]  # a zombie has finished running


def pid_alive(pid: int) -> bool:
    """Whether a (non-zombie) process runs under ``pid`` on this host."""
    return _live_start_time(pid) is not None


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    pid_start: str

    @classmethod
    def me(cls) -> Owner:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, _proc_start(pid))

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


@dataclass(frozen=True)
class Lease:
    job_id: str
    owner: Owner
    acquired_at: float
    expires_at: float

    def alive(self, now: float | None = None) -> bool:
        """Whether the owner still runs: checked directly on this host, by expiry elsewhere."""
        if self.owner.host == socket.gethostname():
            running = _live_start_time(self.owner.pid)
            if running is None:
                return False
            # '' (no /proc): the pid exists, which is the best this system can tell
            return not (running and self.owner.pid_start and running != self.owner.pid_start)
        return (time.time() if now is None else now) < self.expires_at


class LeaseStore(SQLiteFile):
    """Leases in the jobs SQLite file (see the module docstring)."""

    def __init__(self, path: str | Path, ttl_s: float = 120.0) -> None:
        super().__init__(path, _SCHEMA)
        self.ttl_s = float(ttl_s)

    @staticmethod
    def _lease(row) -> Lease:
        job_id, host, pid, pid_start, acquired, expires = row
        return Lease(job_id, Owner(host, int(pid), pid_start), float(acquired), float(expires))

    def get(self, job_id: str) -> Lease | None:
        row = self._conn().execute("SELECT job_id, host, pid, pid_start, acquired_at, expires_at FROM leases"
                                   " WHERE job_id = ?", (job_id,)).fetchone()
        return self._lease(row) if row else None

    def acquire(self, job_id: str, owner: Owner | None = None, adopt_from: Owner | None = None) -> Lease:
        """Take (or, for the same owner, renew) the lease on ``job_id``. Raises ConcurrentUpdate
        while another live process holds it; a dead owner's lease is taken over, and so is one held
        by ``adopt_from`` (the process that handed this one the job)."""
        owner = owner or Owner.me()
        now = time.time()
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = self.get(job_id)
            if current is not None and current.owner not in (owner, adopt_from) and current.alive(now):
                raise ConcurrentUpdate(f"job {job_id} is being run by {current.owner.describe()}",
                                       job_id=job_id)
            acquired = current.acquired_at if current is not None and current.owner == owner else now
            conn.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?)",
                         (job_id, owner.host, owner.pid, owner.pid_start, acquired, now + self.ttl_s))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return Lease(job_id, owner, acquired, now + self.ttl_s)

    def renew(self, lease: Lease) -> bool:
        """Push the expiry on; False when the lease is no longer ours (taken over or released)."""
        cur = self._conn().execute(
            "UPDATE leases SET expires_at = ? WHERE job_id = ? AND host = ? AND pid = ? AND pid_start = ?",
            (time.time() + self.ttl_s, lease.job_id, lease.owner.host, lease.owner.pid, lease.owner.pid_start))
        return cur.rowcount == 1

    def release(self, job_id: str, owner: Owner | None = None) -> None:
        """Drop the lease (only the owner's, when ``owner`` is given)."""
        if owner is None:
            self._conn().execute("DELETE FROM leases WHERE job_id = ?", (job_id,))
        else:
            self._conn().execute("DELETE FROM leases WHERE job_id = ? AND host = ? AND pid = ? AND pid_start = ?",
                                 (job_id, owner.host, owner.pid, owner.pid_start))

    def all(self) -> list[Lease]:
        rows = self._conn().execute("SELECT job_id, host, pid, pid_start, acquired_at, expires_at FROM leases")
        return [self._lease(r) for r in rows.fetchall()]


class Heartbeat:
    """Renews a lease every ``ttl / 3`` seconds in a daemon thread until stopped (a context manager)."""

    def __init__(self, leases: LeaseStore, lease: Lease) -> None:
        self.leases, self.lease = leases, lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{lease.job_id[:8]}", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.leases.ttl_s / 3):
            try:
                if not self.leases.renew(self.lease):
                    return
            except sqlite3.Error:  # a busy database: the next beat tries again
                continue

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
