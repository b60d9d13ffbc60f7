"""The package layering of docs/architecture.md holds: the import-linter contracts in pyproject.toml are kept.

The second test is the positive control: the same contracts, run over a copy of the package with one import
that points up the layers, must fail and name it — so a kept contract means something.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))


def _lint(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    if not Path(LINT_IMPORTS).exists():
        pytest.fail("lint-imports is missing: pip install -e '.[dev]' installs import-linter")
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(ROOT / "pyproject.toml"), "--no-cache", "--no-logo"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


def test_the_layering_is_kept() -> None:
    run = _lint(ROOT, ROOT / "src")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 kept, 0 broken" in run.stdout, run.stdout


def test_an_import_up_the_layers_breaks_the_contracts(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "polymodal", src / "polymodal",
                    ignore=shutil.ignore_patterns("__pycache__", "*.json", "static"))
    # media is near the bottom; the library is above it, and fastapi is the server's alone
    (src / "polymodal" / "media" / "upward.py").write_text(
        "from polymodal.library.store import Store\nimport fastapi\n"
    )
    run = _lint(tmp_path, src)
    assert run.returncode != 0, run.stdout
    out = run.stdout
    assert "polymodal.media is not allowed to import polymodal.library" in out, out
    assert "polymodal.media.upward -> polymodal.library.store" in out, out
    assert "No cycles are allowed in polymodal." in out, out  # library imports media, so media -> library is a cycle
    assert "polymodal.media is not allowed to import fastapi" in out, out
    assert "0 kept, 3 broken" in out, out
