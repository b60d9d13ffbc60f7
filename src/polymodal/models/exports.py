"""The export cache: a model spec on the ONNX runtime becomes a bundle, made once, then loaded without torch.

``cache/bundles/<scheme>-<identity>/`` holds, per source model:

    work/                the ONNX exports and their parity verdicts (fp32, int8), reused across precisions
    fp32/, int8/         complete bundles (``polymodal.models.bundle``) at each precision

The identity comes from the backend's weight files and package versions (``polymodal.models.identity``), so a
warm load reads a bundle and imports no torch; a changed weight file or package gives a new identity and
one new export. The first export takes a lock, so two processes loading the same model at once export it
once; a cache directory that cannot be written still works (the export goes to a temporary directory, said
once in the log). A damaged cached bundle is rebuilt from its source, with one log line.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polymodal import __version__
from polymodal.errors import ModelLoadError

if TYPE_CHECKING:
    from polymodal.models.base import Encoder
    from polymodal.models.registry import Backend, ModelSpec
    from polymodal.models.runtime import Exported

log = logging.getLogger("polymodal")

_warned_readonly: set[str] = set()


def cache_folder(spec: ModelSpec, backend: Backend) -> Path | None:
    """Where ``spec``'s exports live, or None when its backend cannot name its weight files cheaply."""
    from polymodal.models.identity import source_identity
    from polymodal.paths import cache_dir

    if backend.source_files is None:
        return None
    files = backend.source_files(spec)
    if files is None:
        return None
    from polymodal.models.bundle import BUNDLE_VERSION
    from polymodal.models.runtime import EXPORT_VERSION

    key = source_identity(spec.scheme, spec.target, files, f"bundle{BUNDLE_VERSION}-export{EXPORT_VERSION}")
    return cache_dir() / "bundles" / f"{spec.scheme}-{key}"


def load_cached(spec: ModelSpec, backend: Backend, precision: str, batch_size: int | None,
                options: dict[str, Any]) -> Encoder | None:
    """The spec's bundle at ``precision`` from the cache, exported first if need be; None when the backend
    gives no way to identify its files (the caller then loads it with torch and exports per process)."""
    from polymodal.models.bundle import BundleEncoder

    if options:  # preprocessing variants (fast_preprocess=False) are the reference path, run in torch
        return None
    root = cache_folder(spec, backend)
    if root is None:
        return None
    bundle = root / precision
    found = _try_load(bundle, spec, batch_size)
    if found is not None:
        return found
    writable = _writable(root)
    if not writable:
        tmp_root = Path(tempfile.mkdtemp(prefix="polymodal-export-"))
        if str(root) not in _warned_readonly:
            _warned_readonly.add(str(root))
            log.warning("the cache directory %s cannot be written; %s is exported to %s for this process only",
                        root.parent, spec.raw, tmp_root)
        root, bundle = tmp_root, tmp_root / precision
    with _locked(root):
        found = _try_load(bundle, spec, batch_size)  # another process may have finished it while we waited
        if found is not None:
            return found
        encoder = backend.load(spec, device="cpu", batch_size=batch_size)
        if not build_bundle(encoder, root, precision, spec):
            return encoder  # some network stays on torch (said in the log); no torch-free bundle
    return BundleEncoder(bundle, name=str(spec.raw), batch_size=batch_size)


def cached_runtimes(spec: str, precision: str = "fp32") -> dict[str, str]:
    """What each network of ``spec`` runs on, from its cached export, without loading or exporting anything
    (empty when it has not been exported yet, or its backend cannot be identified without loading it)."""
    from polymodal.models.bundle import BUNDLE_FILE
    from polymodal.models.registry import backends, parse_spec

    try:
        parsed = parse_spec(spec)
        if parsed.scheme == "bundle":
            meta = json.loads((Path(parsed.target) / BUNDLE_FILE).read_text(encoding="utf-8"))
        else:
            root = cache_folder(parsed, backends()[parsed.scheme])
            if root is None:
                return {}
            meta = json.loads((root / precision / BUNDLE_FILE).read_text(encoding="utf-8"))
        return {str(name): str(entry.get("runtime")) for name, entry in meta.get("networks", {}).items()}
    except (OSError, ValueError, KeyError, AttributeError, ModelLoadError):
        return {}


def _try_load(bundle: Path, spec: ModelSpec, batch_size: int | None) -> Encoder | None:
    from polymodal.models.bundle import BUNDLE_FILE, BundleEncoder

    if not (bundle / BUNDLE_FILE).is_file():
        return None
    try:
        encoder = BundleEncoder(bundle, name=str(spec.raw), batch_size=batch_size)
        if encoder.meta.get("polymodal") != __version__:
            raise ModelLoadError(f"it was written by polymodal {encoder.meta.get('polymodal')}")
        return encoder
    except ModelLoadError as exc:
        log.warning("the cached export of %s is unusable (%s); exporting it again", spec.raw, exc)
        # The bundle's networks are hard links to the work folder's exports: both go, and are made anew.
        for folder in (bundle, bundle.parent / "work"):
            shutil.rmtree(folder, ignore_errors=True)
        return None


def _writable(root: Path) -> bool:
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".probe{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """An exclusive lock on ``root`` for the length of an export; the kernel drops it if the process dies."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def build_bundle(encoder: Encoder, root: Path, precision: str, spec: ModelSpec | None = None) -> bool:
    """Export ``encoder`` (torch-loaded) into the bundle ``root/precision``; False when a network could not be
    exported or the model cannot be expressed without torch (then the encoder runs what it can on ONNX)."""
    from polymodal.models.runtime import export_networks

    done = export_networks(encoder, precision, root / "work", say_fallbacks=False)
    if set(done) != set(encoder.networks()):
        return False
    try:
        write_bundle(encoder, root / precision, precision, done, spec)
    except ModelLoadError as exc:
        log.warning("%s cannot be loaded without torch (%s); it loads with torch each time", encoder.name, exc)
        return False
    return True


def write_bundle(encoder: Encoder, out: Path, precision: str, networks: dict[str, Exported],
                 spec: ModelSpec | None = None) -> None:
    """Write a complete bundle to ``out``: staged in a sibling directory, then renamed into place whole."""
    from dataclasses import asdict

    from polymodal.models.bundle import BUNDLE_FILE, BUNDLE_VERSION, FORMAT, BundleEncoder, file_entry
    from polymodal.models.identity import package_versions
    from polymodal.models.preprocess import export_preprocess
    from polymodal.models.textspec import export_tokenizer

    stage = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        entries: dict[str, Any] = {}
        for name, exported in networks.items():
            dest = stage / f"{name}.onnx"
            _link_or_copy(exported.path, dest)
            entries[name] = {**file_entry(dest), "runtime": f"onnx-{exported.report.precision}",
                             "parity": asdict(exported.report), "fallback": exported.note}
        source_files = _source_digests(spec)
        meta: dict[str, Any] = {
            "format": FORMAT, "version": BUNDLE_VERSION, "polymodal": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": {"spec": str(spec.raw) if spec else encoder.name, "backend": encoder.backend,
                       "weights": source_files},
            "packages": package_versions(), "precision": precision,
            "dim": encoder.dim, "logit_scale": float(encoder.logit_scale),
            "logit_bias": None if encoder.logit_bias is None else float(encoder.logit_bias),
            "context_length": encoder.context_length, "input_size": encoder.input_size,
            "batch_size": encoder.default_batch_size,
            "networks": entries,
            "text": export_tokenizer(encoder, stage),
            "image": export_preprocess(encoder),
            "postprocess": encoder.export_postprocess(stage),
        }
        _write_json(stage / BUNDLE_FILE, meta)
        # The calibration backgrounds are embedded by the bundle itself, so a search with it matches a library
        # built with it to the last digit.
        from polymodal.models.calibration import BACKGROUND_VERSION, compute_backgrounds

        bg = compute_backgrounds(BundleEncoder(stage, name=encoder.name, announce=False))
        import numpy as np

        np.savez(stage / "backgrounds.npz", visual=bg["visual"], speech=bg["speech"])
        meta["backgrounds"] = {**file_entry(stage / "backgrounds.npz"), "version": BACKGROUND_VERSION}
        _write_json(stage / BUNDLE_FILE, meta)
        if out.exists():
            shutil.rmtree(out)
        stage.replace(out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _source_digests(spec: ModelSpec | None) -> dict[str, str]:
    from polymodal.models.identity import cached_digests
    from polymodal.models.registry import backends

    if spec is None:
        return {}
    backend = backends().get(spec.scheme)
    files = backend.source_files(spec) if backend is not None and backend.source_files else None
    return {Path(p).name: d for p, d in cached_digests(files or []).items()}


def _write_json(path: Path, data: Any) -> None:
    from polymodal.models.identity import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False))


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)  # the work folder's export and the bundle share their bytes
    except OSError:
        shutil.copyfile(src, dest)


def export(spec: str, out: str | os.PathLike[str], precision: str = "fp32") -> Path:
    """``polymodal models export``: the spec's bundle at ``precision``, copied to ``out`` (a new directory)."""
    from polymodal.models.bundle import is_bundle
    from polymodal.models.registry import backends, parse_spec

    dest = Path(out).expanduser()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())) and not is_bundle(dest):
        raise ModelLoadError(f"{dest} exists and is not an empty directory or a bundle; choose a new directory")
    parsed = parse_spec(spec)
    backend = backends()[parsed.scheme]
    encoder = load_cached(parsed, backend, precision, None, {})
    from polymodal.models.bundle import BundleEncoder

    if encoder is None:  # a backend that cannot name its files: export in a temporary place
        built = backend.load(parsed, device="cpu")
        root = Path(tempfile.mkdtemp(prefix="polymodal-export-"))
        if not build_bundle(built, root, precision, parsed):
            raise ModelLoadError(f"{spec} could not be exported to ONNX in full (see the log); no bundle written")
        source = root / precision
    elif isinstance(encoder, BundleEncoder):
        source = encoder.folder
    else:
        raise ModelLoadError(f"{spec} could not be exported to ONNX in full (see the log); no bundle written")
    stage = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree(source, stage)
    if dest.exists():
        shutil.rmtree(dest)
    stage.replace(dest)
    return dest
