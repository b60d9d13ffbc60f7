"""Weights load from safetensors only: a pickle (``pytorch_model.bin``, ``.pt``, ``.ckpt``) can run code when it
is loaded, so a model directory that holds nothing else is refused with the one-line conversion."""

from __future__ import annotations

from pathlib import Path

from polymodal.errors import CheckpointError

#: weight files that are Python pickles (torch.save archives) rather than plain tensors
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})


def require_safetensors(directory: str | Path, what: str = "model") -> None:
    """Raise CheckpointError when ``directory`` has pickled weights and no ``.safetensors`` file."""
    root = Path(directory).expanduser()
    if not root.is_dir():
        return
    files = [p for p in root.rglob("*") if p.is_file()]
    if any(p.suffix == ".safetensors" for p in files):
        return
    pickles = sorted(str(p.relative_to(root)) for p in files if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        first = pickles[0]
        raise CheckpointError(
            f"{what} directory {root} holds its weights only as pickle files ({', '.join(pickles[:3])}); polymodal "
            "loads weights from .safetensors only, since loading a pickle can run code. If you trust the file, "
            "convert it once: python -c \"import torch; from safetensors.torch import save_file; "
            f"save_file(torch.load('{first}', weights_only=True), 'model.safetensors')\""
        )
