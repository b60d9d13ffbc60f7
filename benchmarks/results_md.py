"""One benchmark's section of benchmarks/RESULTS.md: written between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->``, so each benchmark can rewrite its own numbers and leave the others' as they are."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, name: str, text: str) -> None:
    """Put ``text`` in ``name``'s section of ``path``, in place of the old one, else at the end of the file."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    body = path.read_text() if path.exists() else "# Benchmark results\n"
    section = f"{start}\n{text.rstrip()}\n{end}"
    if start in body and end in body:
        head, rest = body.split(start, 1)
        body = head + section + rest.split(end, 1)[1]
    else:
        body = body.rstrip() + "\n\n" + section + "\n"
    path.write_text(body)
