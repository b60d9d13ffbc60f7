"""What ``check`` reports, shared by the checks of each part of a library (``check``, ``check_media``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

ERROR, PENDING, STALE = "error", "pending", "stale"


@dataclass(frozen=True)
class Finding:
    severity: str  # error (repair rebuilds it), pending (an interrupted run; index completes it), stale
    kind: str  # a short name: unreadable_table, bad_vector, dangling_file, ...
    subject: str  # a table name, an item id or a path
    reason: str


@dataclass
class CheckReport:
    path: str
    items: int = 0
    files: int = 0
    segments: int = 0  # video moments and speech segments
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def ok(self) -> bool:
        """No error: the library is whole (pending and stale findings are harmless)."""
        return not self.errors

    def add(self, severity: str, kind: str, subject: str, reason: str) -> None:
        self.findings.append(Finding(severity, kind, subject, reason))

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "items": self.items, "files": self.files,
                "segments": self.segments, "findings": [asdict(f) for f in self.findings]}



def vector_problems(col: Any, ids: list[str], dim: int) -> list[tuple[str, str]]:
    """(id, reason) for each missing, mis-sized, non-finite or non-unit embedding; vectorised for 100k items."""
    width = getattr(col.type, "list_size", None)
    if width != dim:
        return [(i, f"embedding has {width} values, the library's model gives {dim}") for i in ids]
    out = []
    nulls = col.is_null().to_numpy(zero_copy_only=False)
    arr = np.asarray(col.values.to_numpy(zero_copy_only=False), np.float32).reshape(len(col), dim)
    finite = np.asarray(np.isfinite(arr).all(axis=1), bool)
    norms = np.linalg.norm(np.where(np.isfinite(arr), arr, 0), axis=1)
    for n, iid in enumerate(ids):
        if nulls[n]:
            out.append((iid, "no embedding"))
        elif not finite[n]:
            out.append((iid, "embedding holds NaN or infinite values"))
        elif abs(norms[n] - 1.0) > 1e-3:
            out.append((iid, f"embedding is not unit length (norm {norms[n]:.4f})"))
    return out
