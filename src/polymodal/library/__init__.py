"""The library: a collection of media indexed for search by text, image or both.

``Library.open(path)`` is the entry point; see ``api``. Layout on disk and the schemas are in ``schema``.
"""

from polymodal.library.api import Library, default_library_path
from polymodal.library.types import DuplicateGroup, Failure, Hit, IndexReport, JobInfo, Status

__all__ = ["DuplicateGroup", "Failure", "Hit", "IndexReport", "JobInfo", "Library", "Status", "default_library_path"]
