from .objectstore import FolderObjectStore  # noqa: F401
from .jobstore import SQLiteJobStore  # noqa: F401
