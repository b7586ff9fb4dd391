"""JobStore on SQLite: WAL journal, one row per job, conditional writes on a version column."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from musicvid_core.domain.errors import ConcurrentUpdate
from musicvid_core.domain.job import Job, Status
from musicvid_core.ports import ACTIVE, JobStore, too_many_jobs

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id     TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    status     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_user_created ON jobs (user_id, created_at DESC, job_id DESC);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
CREATE TABLE IF NOT EXISTS store_secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
"""
_COUNT_ACTIVE = "SELECT COUNT(*) FROM jobs WHERE user_id = ? AND status IN ('SCHEDULED', 'PROCESSING')"


class SQLiteFile:
    """A SQLite file with ``schema`` applied and one connection per thread (sqlite3 connections must
    not cross threads): autocommit, WAL, and a 30 s busy timeout, so concurrent writers wait rather
    than fail with "database is locked"."""

    def __init__(self, path: str | Path, schema: str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as c:
            c.executescript(schema)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn


class SQLiteJobStore(SQLiteFile, JobStore):
    def __init__(self, path: str | Path) -> None:
        super().__init__(path, _SCHEMA)

    @staticmethod
    def _row(job: Job) -> tuple:
        return (job.job_id, job.user_id, job.created_at.isoformat(), job.status.value,
                job.version, job.model_dump_json())

    @contextlib.contextmanager
    def _capped(self, user_id: str, max_active: int | None):
        """A write transaction that first checks ``user_id``'s active jobs against ``max_active``
        (BEGIN IMMEDIATE: no other writer between the count and the write); no transaction when
        there is no cap."""
        conn = self._conn()
        if max_active is None:
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute(_COUNT_ACTIVE, (user_id,)).fetchone()[0] >= max_active:
                raise too_many_jobs(user_id, max_active)
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _insert(self, job: Job, max_active: int | None = None) -> None:
        try:
            with self._capped(job.user_id, max_active if job.status in ACTIVE else None) as conn:
                conn.execute("INSERT INTO jobs (job_id, user_id, created_at, status, version, body)"
                             " VALUES (?, ?, ?, ?, ?, ?)", self._row(job))
        except sqlite3.IntegrityError:
            raise ConcurrentUpdate(f"job {job.job_id} already exists") from None

    def _get(self, job_id: str) -> Job | None:
        row = self._conn().execute("SELECT body FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return Job.model_validate_json(row[0]) if row else None

    def _replace_if(self, job: Job, expected_version: int, *, active_delta: int = 0,
                    max_active: int | None = None) -> bool:
        # the active count is read from the rows themselves: only a cap needs the transaction
        with self._capped(job.user_id, max_active if active_delta > 0 else None) as conn:
            cur = conn.execute(
                "UPDATE jobs SET status = ?, version = ?, body = ? WHERE job_id = ? AND version = ?",
                (job.status.value, job.version, job.model_dump_json(), job.job_id, expected_version))
        return cur.rowcount == 1

    def _shared_secret(self) -> bytes:
        """Created by the first process that asks (INSERT OR IGNORE), read by all the others."""
        conn = self._conn()
        conn.execute("INSERT OR IGNORE INTO store_secrets (name, value) VALUES ('page_token', randomblob(32))")
        return bytes(conn.execute("SELECT value FROM store_secrets WHERE name = 'page_token'").fetchone()[0])

    def _by_user(self, user_id, limit, after):
        if after:
            rows = self._conn().execute(
                "SELECT body FROM jobs WHERE user_id = ? AND (created_at, job_id) < (?, ?)"
                " ORDER BY created_at DESC, job_id DESC LIMIT ?",
                (user_id, after[0], after[1], limit)).fetchall()
        else:
            rows = self._conn().execute(
                "SELECT body FROM jobs WHERE user_id = ? ORDER BY created_at DESC, job_id DESC"
                " LIMIT ?", (user_id, limit)).fetchall()
        return [Job.model_validate_json(r[0]) for r in rows]

    def _by_status(self, statuses: Iterable[Status]) -> list[Job]:
        vals = [s.value for s in statuses]
        rows = self._conn().execute(
            f"SELECT body FROM jobs WHERE status IN ({','.join('?' * len(vals))})"
            " ORDER BY created_at", vals).fetchall()
        return [Job.model_validate_json(r[0]) for r in rows]
