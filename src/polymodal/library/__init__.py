"""The library: a collection of media indexed for search by text, image or both.

``Library.open(path)`` is the entry point; see ``api``. Layout on disk and the schemas are in ``schema``.
Names are resolved on first use: ``polymodal.library.types`` (what ``--server`` hits are) must not pull in
the store, the indexer and numpy for a command that never opens a library.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polymodal.library.api import Library, default_library_path
    from polymodal.library.types import DuplicateGroup, Failure, Hit, IndexReport, JobInfo, Status

_LAZY = {
    "Library": "polymodal.library.api",
    "default_library_path": "polymodal.library.api",
    **{name: "polymodal.library.types" for name in ("DuplicateGroup", "Failure", "Hit", "IndexReport", "JobInfo",
                                                    "Status")},
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'polymodal.library' has no attribute {name!r}")


__all__ = ["DuplicateGroup", "Failure", "Hit", "IndexReport", "JobInfo", "Library", "Status", "default_library_path"]
