from .jobstore import SQLiteJobStore  # noqa: F401
from .objectstore import FolderObjectStore  # noqa: F401
