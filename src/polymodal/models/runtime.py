"""Where an encoder's networks run: PyTorch, or ONNX Runtime in fp32 or int8.

A backend describes its forward passes as plain ``torch.nn.Module`` networks ("image" and "text") that take
numpy-convertible inputs by name and return one array. This module runs them in torch, or exports them to
ONNX once per (model weights, network, precision, versions), caches the export in the cache dir, checks it
against torch on sample inputs, and swaps it in. A failed export or parity check keeps torch and says why
in one log line: never a silent change of numbers.

int8 is polymodal's recipe (``polymodal.models.quantise``): the matrix products in int8 with one activation
scale per token and SmoothQuant channel balancing, and a CNN's late pointwise convolutions in static int8,
chosen by their measured cost; measured on the real MiniLM and EfficientNet-Lite0 towers, where ONNX
Runtime's per-batch dynamic int8 failed the gate.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polymodal.errors import InputError

if TYPE_CHECKING:
    from torch import nn

    from polymodal.models.base import Encoder

log = logging.getLogger("polymodal")

RUNTIMES = ("torch", "onnx")
PRECISIONS = ("fp32", "int8")
#: bump when the export recipe changes, so old cached exports are not reused
EXPORT_VERSION = "4"
FP32_MIN_COSINE = 0.999
INT8_MIN_COSINE = 0.99
#: share of top-10 neighbours that must survive int8 ("mostly unchanged")
INT8_MIN_AGREEMENT = 0.7

Runner = Callable[[dict[str, np.ndarray]], np.ndarray]


class TorchRunner:
    def __init__(self, module: nn.Module, device: str) -> None:
        self.module = module
        self.device = device

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        tensors = [torch.as_tensor(v).to(self.device) for v in inputs.values()]
        with torch.inference_mode():
            return self.module(*tensors).float().cpu().numpy()


class OnnxRunner:
    """One ONNX Runtime session on the CPU, from a file or from bytes already read (and checked)."""

    def __init__(self, model: Path | bytes, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        from polymodal.machine import thread_limit

        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        cap = thread_limit()  # index --threads N
        threads = min(threads, cap) if threads and cap else threads or cap
        if threads:
            opts.intra_op_num_threads = threads
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        feed = {name: np.ascontiguousarray(inputs[name]) for name in self.names}
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float32)


@dataclass(frozen=True)
class ParityReport:
    network: str
    precision: str
    min_cosine: float
    mean_cosine: float
    top10_agreement: float  # mean share of each sample's 10 nearest samples kept by the export
    passed: bool
    batch1_min_cosine: float = 1.0  # the same, each of the first samples run alone (a query is one text)


def check_runtime(runtime: str | None, precision: str | None, device: str) -> tuple[str, str]:
    """Validate and default: ONNX on CPU, torch on a GPU; fp32 unless int8 is asked for."""
    precision = precision or "fp32"
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if runtime is None:
        runtime = "onnx" if device == "cpu" else "torch"
    if runtime not in RUNTIMES:
        raise InputError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if runtime == "onnx" and device != "cpu":
        raise InputError(f"the onnx runtime runs on the CPU here; use --runtime torch for device {device}")
    if runtime == "torch" and precision == "int8":
        raise InputError("int8 runs on the onnx runtime; use --runtime onnx --precision int8")
    return runtime, precision


def weights_digest(module: nn.Module) -> str:
    """A hash of every parameter and buffer: the export cache is invalidated when any weight changes."""
    import torch

    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        # A byte view, not .tobytes(): no second copy of a 100 MB embedding table just to hash it.
        h.update(memoryview(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def files_identity(paths: list[Path]) -> str:
    """Identity of weight files by path, size and modification time: rewriting a file changes it, and
    nothing is read, so a 600 MB checkpoint costs nothing to identify."""
    h = hashlib.blake2b(digest_size=16)
    for p in sorted(paths):
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _versions() -> str:
    import onnxruntime
    import torch

    return f"torch{torch.__version__}-ort{onnxruntime.__version__}-export{EXPORT_VERSION}"


def _export_fp32(module: nn.Module, example: dict[str, np.ndarray], dynamic: dict[str, dict[int, str]],
                 path: Path) -> None:
    import warnings

    import torch

    args = tuple(torch.as_tensor(v) for v in example.values())
    shapes = tuple({axis: torch.export.Dim.DYNAMIC for axis in dynamic.get(name, {})} for name in example)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    # The torch.export (dynamo) exporter: the older TorchScript tracer bakes transformers' attention-mask
    # code into constants and gave a MiniLM export at cosine 0.93 to torch; this one matches to 1e-6.
    with warnings.catch_warnings(), _quiet_root_logger():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, args, str(tmp), input_names=list(example), output_names=["output"], dynamic_shapes=shapes,
            dynamo=True, external_data=False, verbose=False,
        )
    tmp.replace(path)  # atomic: a concurrent process sees the old state or the whole file


class _quiet_root_logger:
    """onnxruntime's quantiser and torch's exporter log advice at WARNING on the root logger; the library
    does not print, so hold the root logger at ERROR while they run."""

    def __enter__(self) -> None:
        self.level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().setLevel(self.level)


def _cosines(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    ref2 = ref.reshape(len(ref), -1).astype(np.float64)
    got2 = got.reshape(len(got), -1).astype(np.float64)
    return (ref2 * got2).sum(1) / np.maximum(np.linalg.norm(ref2, axis=1) * np.linalg.norm(got2, axis=1), 1e-12)


def _parity(network: str, precision: str, ref: np.ndarray, got: np.ndarray,
            got_single: np.ndarray | None = None) -> ParityReport:
    """Cosine of each export output to torch's, and how many of each sample's 10 nearest samples survive.

    ``got_single``: the first samples' outputs computed one at a time, compared with the batched reference
    (quantised activations are scaled per batch, so batch 1 can differ from a batch)."""
    ref2 = ref.reshape(len(ref), -1).astype(np.float64)
    got2 = got.reshape(len(got), -1).astype(np.float64)
    cos = _cosines(ref, got)
    single = _cosines(ref[: len(got_single)], got_single) if got_single is not None else np.ones(1)
    k = min(10, len(ref2) - 1)
    agreement = 1.0
    if k > 0:
        def neighbours(x: np.ndarray) -> np.ndarray:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            sim = x @ x.T
            np.fill_diagonal(sim, -np.inf)
            return np.argsort(-sim, axis=1)[:, :k]

        a, b = neighbours(ref2), neighbours(got2)
        agreement = float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)]))
    min_cos = FP32_MIN_COSINE if precision == "fp32" else INT8_MIN_COSINE
    passed = bool(min(cos.min(), single.min()) >= min_cos and (precision == "fp32" or agreement >= INT8_MIN_AGREEMENT))
    return ParityReport(network, precision, float(cos.min()), float(cos.mean()), agreement, passed,
                        float(single.min()))


def _one_at_a_time(runner: Runner, inputs: dict[str, np.ndarray], n: int = 8) -> np.ndarray:
    """The first ``n`` samples run alone, each text trimmed to its own length as a single query would be."""
    outs = []
    for i in range(min(n, len(next(iter(inputs.values()))))):
        row = {k: v[i: i + 1] for k, v in inputs.items()}
        mask = row.get("attention_mask")
        if mask is not None:
            length = max(1, int(mask.sum()))
            row = {k: v[:, :length] if v.ndim == 2 and v.shape[1] == mask.shape[1] else v for k, v in row.items()}
        outs.append(runner(row))
    return np.concatenate(outs)


def export_network(encoder: Encoder, network: str, precision: str, folder: Path, threads: int | None = None
                   ) -> tuple[Path, Runner, ParityReport]:
    """Export (or reuse in ``folder``) one network of ``encoder`` and check it against torch.

    ``folder`` holds ``{network}-fp32.onnx`` and, for int8, ``{network}-int8.onnx``, each with its parity
    verdict. Raises RuntimeError when parity fails. The verdict is reused only when it was reached under
    today's bounds, so a changed bound never keeps a stale answer.
    """
    net = encoder.networks()[network]
    samples = encoder.sample_inputs(network)
    folder.mkdir(parents=True, exist_ok=True)
    fp32 = folder / f"{network}-fp32.onnx"
    target = fp32 if precision == "fp32" else folder / f"{network}-{precision}.onnx"
    report_file = folder / f"{network}-{precision}.parity.json"
    if not fp32.exists():
        log.info("exporting the %s network of %s to ONNX (once; cached in %s)", network, encoder.name, folder)
        _export_fp32(net.module, samples, net.dynamic, fp32)
    # Compared as users see it: after the backend's postprocessing (lite: the ConSE embedding, not logits).
    post = encoder.postprocess_image if network == "image" else (lambda x: x)
    if not target.exists():
        from polymodal.models.quantise import quantise

        # The samples also calibrate the recipe and choose its int8 layers, compared as the gate compares
        with _quiet_root_logger():
            quantise(fp32, target, network, [samples], post)
    runner = OnnxRunner(target, threads)
    report = None
    if report_file.exists():
        try:
            saved = json.loads(report_file.read_text(encoding="utf-8"))
            if saved.pop("bounds", None) == _bounds(precision):
                report = ParityReport(**saved)
        except (OSError, ValueError, TypeError):
            report = None  # a damaged verdict is reached again below
    if report is None:
        ref = post(TorchRunner(net.module, "cpu")(samples))
        report = _parity(network, precision, ref, post(runner(samples)), post(_one_at_a_time(runner, samples)))
        from polymodal.models.identity import atomic_write_text

        atomic_write_text(report_file, json.dumps({**asdict(report), "bounds": _bounds(precision)}))
    if not report.passed:
        raise RuntimeError(
            f"{precision} ONNX export of the {network} network failed its parity check "
            f"(min cosine {report.min_cosine:.4f}, top-10 agreement {report.top10_agreement:.2f})"
        )
    return target, runner, report


def _bounds(precision: str) -> list[float]:
    return [FP32_MIN_COSINE] if precision == "fp32" else [INT8_MIN_COSINE, INT8_MIN_AGREEMENT]


@dataclass(frozen=True)
class Exported:
    path: Path  # the ONNX file the network runs from
    report: ParityReport
    note: str | None  # why it runs at a lower precision than asked (an int8 export that failed its check)


def export_networks(encoder: Encoder, precision: str, folder: Path, threads: int | None = None,
                    say_fallbacks: bool = True) -> dict[str, Exported]:
    """Every network of ``encoder`` on ONNX Runtime: int8 that fails its check falls back to fp32 ONNX, fp32
    that fails keeps torch; each fallback is one log line (an int8 one is only returned as the network's
    ``note`` when not ``say_fallbacks``: a bundle says it each time it is loaded). Returns the networks that
    run on ONNX."""
    done: dict[str, Exported] = {}
    for name in encoder.networks():
        note = None
        for prec in (precision, "fp32") if precision != "fp32" else ("fp32",):
            try:
                path, runner, report = export_network(encoder, name, prec, folder, threads)
            except Exception as exc:  # noqa: BLE001 - any export failure falls back, loudly
                fallback = "fp32 ONNX" if prec != "fp32" else "torch"
                reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
                note = f"{reason}; the {name} network runs on {fallback} instead"
                if say_fallbacks or prec == "fp32":
                    log.warning("%s: %s", encoder.name, note)
                continue
            encoder.set_runner(name, runner, f"onnx-{prec}")
            done[name] = Exported(path, report, note)
            break
    return done


def cache_dir_reports() -> list[dict[str, Any]]:
    """Every parity report in the export cache (for ``polymodal models --exports`` and tests)."""
    from polymodal.paths import cache_dir

    out = []
    root = cache_dir()
    # plugin exports (onnx/NAME/) and the built-ins' bundle work folders (bundles/NAME/work/)
    for path in sorted([*root.glob("onnx/*/*.parity.json"), *root.glob("bundles/*/work/*.parity.json")]):
        folder = path.parent.parent.name if path.parent.name == "work" else path.parent.name
        try:
            out.append({"folder": folder, **json.loads(path.read_text(encoding="utf-8"))})
        except (OSError, ValueError):
            continue
    return out


def use_onnx(encoder: Encoder, precision: str, threads: int | None = None) -> list[ParityReport]:
    """Swap ``encoder``'s networks to ONNX Runtime, cached by a digest of its built weights.

    For backends that cannot name their weight files (third-party plugins): the built-ins are exported as
    bundles instead (``polymodal.models.exports``), which load without torch.
    """
    from polymodal.paths import cache_dir

    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        log.warning("onnxruntime is not installed; %s runs on torch (pip install onnxruntime)", encoder.name)
        return []
    try:
        nets = encoder.networks()
    except NotImplementedError:
        log.warning("%s does not describe its networks for export; it runs on torch", encoder.name)
        return []
    key = hashlib.blake2b(
        f"{encoder.weights_identity()}|{sorted((n, type(v.module).__qualname__) for n, v in nets.items())}|"
        f"{_versions()}".encode(), digest_size=12,
    ).hexdigest()
    done = export_networks(encoder, precision, cache_dir() / "onnx" / f"{encoder.backend}-{key}", threads)
    return [e.report for e in done.values()]
