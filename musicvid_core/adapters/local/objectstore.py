"""ObjectStore on a local folder: ``local://KEY`` URIs, writes are atomic (temp file + rename).

A file put into the store becomes a file of its own: a reflink where the file system shares blocks
copy-on-write (Btrfs, XFS, bcachefs: instant whatever the size, and a later write to either file
leaves the other as it was), else a plain copy (issue 18). Never a hard link: an editor or
``ffmpeg -y`` that exports the user's video again writes over the same inode in place, and the
stored job input, which regenerations read again, would change under the job silently.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from musicvid_core.domain.errors import BadInput, NotFound
from musicvid_core.ports import ObjectStore, validate_key

# Linux's FICLONE ioctl (_IOW(0x94, 9, int)); fcntl names it from Python 3.12 only.
_FICLONE = 0x40049409 if sys.platform.startswith("linux") else None


def _reflink(src: Path, empty: Path) -> bool:
    """Make ``empty`` (an empty file of the store's, never the user's) a reflink of ``src``: True
    when the file system did, False when it cannot (EOPNOTSUPP on ext4 or tmpfs, EXDEV across file
    systems, EINVAL ...; ``empty`` is then left as it was). Raises what opening ``src`` raises
    (FileNotFoundError, PermissionError)."""
    if _FICLONE is None:
        return False
    import fcntl

    with open(src, "rb") as fsrc, open(empty, "r+b") as fdst:
        try:
            fcntl.ioctl(fdst.fileno(), _FICLONE, fsrc.fileno())
        except OSError:
            return False
    return True


def _copy_into(src: Path, empty: Path) -> None:
    """Fill ``empty`` (a temporary file the store just made) with ``src``'s bytes, as a file of its
    own: a reflink where the file system can, else a copy (shutil.copyfile: sendfile in the kernel
    on Linux). Raises OSError as shutil.copyfile does (FileNotFoundError, PermissionError, ENOSPC)."""
    if not _reflink(src, empty):
        shutil.copyfile(src, empty)


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
            _copy_into(path, tmp)
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

    def delete(self, key: str) -> bool:
        """Delete object ``key``; False when there was none. This store's own (the port has no
        single delete): it takes back an input copied while the checks ran, when they then refuse
        the run (workflow/preflight.py)."""
        try:
            self._path(validate_key(key)).unlink()
        except FileNotFoundError:
            return False
        return True

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
