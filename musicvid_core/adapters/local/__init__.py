"""Local adapters: the embedded defaults, for one machine and offline.

- ``objectstore``: ObjectStore on a folder (``local://KEY`` URIs; keys validated, atomic writes).
- ``jobstore``: JobStore on SQLite (WAL, conditional writes on a version column).
- ``leases``: which process runs which job, and whether it still lives (recovery after a crash).
- ``links``: HMAC-signed, expiring upload forms and download URLs for the local API.
- ``summary``: the template Summarizer.

The two stores are exported here because every entry point and test builds them.
"""
from musicvid_core.adapters.local.jobstore import SQLiteJobStore  # noqa: F401
from musicvid_core.adapters.local.objectstore import FolderObjectStore  # noqa: F401
