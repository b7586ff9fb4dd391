from musicvid_core.adapters.local.jobstore import SQLiteJobStore  # noqa: F401
from musicvid_core.adapters.local.objectstore import FolderObjectStore  # noqa: F401
