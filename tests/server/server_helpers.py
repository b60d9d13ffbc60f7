"""Helpers shared by the server tests (importable from test modules)."""

from __future__ import annotations

from pathlib import Path

TOKEN = "test-token-0123456789abcdef"


def ids_by_name(client) -> dict[str, str]:
    """Item ids of the served library by photo name (cat, coffee, ...)."""
    hits = client.get("/api/search", params={"q": "a photo", "k": 100}).json()["hits"]
    return {Path(h["path"]).stem: h["id"] for h in hits}
