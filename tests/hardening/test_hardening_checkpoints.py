"""Weights load from safetensors only; nothing in src/ unpickles a file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from polymodal.errors import CheckpointError, ModelLoadError
from polymodal.models import load_model
from tiny_models import make_tiny_clip, make_tiny_open_clip

SRC = Path(__file__).resolve().parents[2] / "src" / "polymodal"
#: pickle over a pipe between polymodal's own processes (never a file, never media bytes): Ray moving prepared
#: batches between its own workers. (Media decoding children answer in JSON and raw bytes: media/sandbox.py.)
_PICKLE_IPC = {"library/distributed.py"}


def _to_pickle(directory: Path, weights: str, pickled: str) -> None:
    """Replace a model's safetensors file by the same tensors saved with torch.save (a pickle archive)."""
    torch.save(load_file(str(directory / weights)), directory / pickled)
    (directory / weights).unlink()


def test_a_transformers_directory_with_only_pytorch_model_bin_is_refused(tmp_path):
    model_dir = make_tiny_clip(tmp_path / "clip")
    assert load_model(str(model_dir), runtime="torch").dim == 16  # the safetensors original loads
    _to_pickle(model_dir, "model.safetensors", "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"only as pickle files \(pytorch_model\.bin\).*safetensors only") as err:
        load_model(str(model_dir), runtime="torch")
    assert "save_file(torch.load('pytorch_model.bin', weights_only=True)" in str(err.value)
    assert err.value.exit_code == 4


def test_an_open_clip_directory_with_only_a_pickle_is_refused(tmp_path):
    model_dir = make_tiny_open_clip(tmp_path / "oc")
    _to_pickle(model_dir, "open_clip_model.safetensors", "open_clip_pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"open_clip_pytorch_model\.bin"):
        load_model(str(model_dir), runtime="torch")


def test_transformers_never_falls_back_to_a_pickle(tmp_path, monkeypatch):
    """With some other .safetensors file beside the pickle, the directory check passes; transformers itself
    must then refuse (use_safetensors=True) without ever unpickling pytorch_model.bin."""
    model_dir = make_tiny_clip(tmp_path / "clip")
    _to_pickle(model_dir, "model.safetensors", "pytorch_model.bin")
    (model_dir / "unrelated.safetensors").write_bytes(b"")
    loads = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a) or real(*a, **k))
    with pytest.raises(ModelLoadError, match="safetensors"):
        load_model(str(model_dir), runtime="torch")
    assert loads == []


def _calls(tree: ast.AST) -> list[tuple[str, ast.Call]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = (f"{f.value.id}.{f.attr}" if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                    else f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else "")
            out.append((name, node))
    return out


def _kw(call: ast.Call, name: str) -> object:
    for k in call.keywords:
        if k.arg == name:
            return k.value.value if isinstance(k.value, ast.Constant) else "<expr>"
    return None


def test_no_source_file_unpickles_a_file():
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        for name, call in _calls(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{rel}:{call.lineno} {name}"
            if name == "torch.load" and _kw(call, "weights_only") is not True:
                problems.append(f"{where} without weights_only=True")
            if name in ("np.load", "numpy.load") and _kw(call, "allow_pickle") not in (None, False):
                problems.append(f"{where} with allow_pickle")
            if name in ("pickle.load", "joblib.load", "dill.load", "cloudpickle.load"):
                problems.append(f"{where} reads a pickle file")
            if name == "pickle.loads" and rel not in _PICKLE_IPC:
                problems.append(f"{where} outside the audited IPC modules")
            if name == "from_pretrained" and _kw(call, "use_safetensors") is False:
                problems.append(f"{where} with use_safetensors=False")
    assert not problems, problems
