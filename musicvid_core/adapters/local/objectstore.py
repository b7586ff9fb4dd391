"""ObjectStore on a local folder: ``local://KEY`` URIs, writes are atomic (temp file + rename)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from musicvid_core.domain.errors import BadInput, NotFound
from musicvid_core.ports import ObjectStore, validate_key


class FolderObjectStore(ObjectStore):
    scheme = "local"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        # validate_key already forbids '..'; this guards symlinked parents too.
        if self.root not in path.parents:
            raise BadInput(f"unsafe object key: {key[:80]!r}")
        return path

    def _atomic(self, key: str):
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        os.close(fd)
        return dest, Path(tmp)

    def _put_file(self, key, path, content_type):
        dest, tmp = self._atomic(key)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def _put_bytes(self, key, data, content_type):
        dest, tmp = self._atomic(key)
        try:
            tmp.write_bytes(data)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    # The base class checks _exists first, but a rollback or an older attempt's cleanup (another
    # thread or process) may delete the object between that check and the read: NotFound, as if
    # it had never been there, rather than an OSError the callers do not expect.
    def _get_file(self, key, dest):
        try:
            shutil.copyfile(self._path(key), dest)
        except FileNotFoundError:
            raise NotFound(f"object not found: {key}") from None

    def _get_bytes(self, key):
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"object not found: {key}") from None

    def _exists(self, key):
        return self._path(key).is_file()

    def _size(self, key):
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None

    def _list(self, prefix):
        base = self._path(prefix.rstrip("/"))
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*")
                      if p.is_file() and not p.name.startswith(".tmp-"))

    def _delete_prefix(self, prefix):
        base = self._path(prefix.rstrip("/"))
        if not base.is_dir():
            return 0
        n = sum(1 for p in base.rglob("*") if p.is_file())
        shutil.rmtree(base)
        return n

    def sweep_temp(self, max_age_s: float = 600.0) -> int:
        """Delete half-written temp files (``.tmp-*``, left by a process killed mid-write) older than
        ``max_age_s`` seconds; a live writer's file is younger. Returns how many were removed."""
        cutoff = time.time() - max_age_s
        removed = 0
        for path in self.root.rglob(".tmp-*"):
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:  # its writer finished meanwhile
                continue
        return removed

    def uri(self, key: str) -> str:
        return f"local://{validate_key(key)}"

    def key_from_uri(self, uri: str) -> str:
        if not isinstance(uri, str) or not uri.startswith("local://"):
            raise BadInput("not an object URI of the local store (expected local://KEY)")
        return validate_key(uri[len("local://"):])

    def local_path(self, key: str) -> Path:
        return self._path(validate_key(key))
