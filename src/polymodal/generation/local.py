"""Local generation with a diffusers text-to-image pipeline (``AutoPipelineForText2Image``).

A pipeline is loaded from a hub id (``diffusers:stabilityai/sd-turbo``, taken from the Hugging Face cache, so
it works offline once downloaded) or a directory holding ``model_index.json``. Every candidate gets its own
seeded CPU ``torch.Generator`` and is denoised in a batch of its own by default, so a candidate's seed alone
reproduces its exact bytes on the same machine, whether it was made as one of many or alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from polymodal.errors import InputError, MissingDependencyError, ModelLoadError, ModelSpecError, PromptTooLongError
from polymodal.generation.base import Generator, ProgressCallback, check_prompt
from polymodal.generation.registry import GeneratorEntry, GeneratorSpec
from polymodal.generation.types import Candidate, GenerationRequest, Settings
from polymodal.models.safeweights import require_safetensors

log = logging.getLogger("polymodal")

#: Recommended settings of fast pipelines, from their model cards: adversarial diffusion distillation runs
#: in one step without guidance (SD-Turbo, SDXL-Turbo: Sauer et al. 2023); latent consistency models in 4
#: steps with guidance folded into the model (Luo et al. 2023); BK-SDM / small-sd are ordinary SD sampling.
PRESETS: dict[str, tuple[Settings, str]] = {
    "stabilityai/sd-turbo": (Settings(1, 0.0, 512, 512), "SD 2.1 distilled by ADD; 1 step (default)"),
    "stabilityai/sdxl-turbo": (Settings(1, 0.0, 512, 512), "SDXL distilled by ADD; 1 step"),
    "SimianLuo/LCM_Dreamshaper_v7": (Settings(4, 8.0, 512, 512), "latent consistency model; 4 steps"),
    "segmind/small-sd": (Settings(25, 7.5, 512, 512), "SD 1.5 knowledge-distilled to fewer blocks"),
    "nota-ai/bk-sdm-small": (Settings(25, 7.5, 512, 512), "block-removed SD 1.4 (BK-SDM)"),
}
#: pipelines whose size of reference is 1024 when no preset names them
_LARGE = {"StableDiffusionXLPipeline", "StableDiffusion3Pipeline", "FluxPipeline", "PixArtSigmaPipeline"}


def _text2image_classes() -> set[str]:
    """Pipeline classes AutoPipelineForText2Image can load (img2img and inpaint ones map onto them)."""
    from diffusers.pipelines import auto_pipeline as ap

    names: set[str] = set()
    for mapping in (ap.AUTO_TEXT2IMAGE_PIPELINES_MAPPING, ap.AUTO_IMAGE2IMAGE_PIPELINES_MAPPING,
                    ap.AUTO_INPAINT_PIPELINES_MAPPING):
        names.update(cls.__name__ for cls in mapping.values())
    return names


def detect_dir(path: Path) -> bool:
    return (path / "model_index.json").is_file()


def list_known() -> list[GeneratorEntry]:
    return [GeneratorEntry(f"diffusers:{hub}", "diffusers", why) for hub, (_, why) in PRESETS.items()]


def _preset_for(target: str) -> Settings | None:
    """A preset by hub id, or by a directory named after one (``.../sd-turbo``, HF cache ``models--org--name``)."""
    if target in PRESETS:
        return PRESETS[target][0]
    parts = Path(target).parts
    for hub, (settings, _) in PRESETS.items():
        org, name = hub.split("/")
        if f"models--{org}--{name}" in parts or (parts and parts[-1].lower() == name.lower()):
            return settings
    return None


def _cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "model_index.json"), str)
    except Exception:  # noqa: BLE001 - an odd id or cache layout just means "not cached"
        return False


def _import_diffusers() -> Any:
    try:
        import diffusers
    except ImportError:
        raise MissingDependencyError("diffusers", "local image generation") from None
    # The library never prints: silence diffusers' own tqdm bars and notices; progress goes through callbacks.
    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    return diffusers


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No tqdm bars from transformers while components load, and no rename notices (torch_dtype -> dtype)."""
    import transformers

    tl = transformers.utils.logging
    was = tl.is_progress_bar_enabled()
    tl.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks", category=UserWarning)
            yield
    finally:
        if was:
            tl.enable_progress_bar()


def load(spec: GeneratorSpec, device: str | None = None, **options: Any) -> DiffusersGenerator:
    from polymodal.models.base import resolve_device

    target = spec.target
    path = Path(target).expanduser()
    is_dir = path.is_dir()
    if is_dir:
        index = path / "model_index.json"
        if not index.is_file():
            found = "a transformers model (config.json)" if (path / "config.json").exists() else "no model_index.json"
            raise ModelSpecError(f"{target} is not a diffusers pipeline directory: it holds {found}")
        try:
            cls_name = json.loads(index.read_text(encoding="utf-8")).get("_class_name", "")
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read {index}: {exc}") from None
        _import_diffusers()
        if cls_name not in _text2image_classes():
            raise ModelSpecError(
                f"{target} holds a {cls_name or 'pipeline of unknown class'}, which is not a text-to-image "
                "pipeline (it takes no prompt, or makes something other than images); give a text-to-image "
                "pipeline such as diffusers:stabilityai/sd-turbo"
            )
    elif target.startswith((".", "/", "~")) or path.exists():
        raise ModelSpecError(f"generator spec {spec.raw!r}: no directory {target}")
    diffusers = _import_diffusers()
    import torch

    device = resolve_device(device)
    # fp16 halves memory and time on GPUs; CPUs (and MPS, whose fp16 VAE decodes are known to give NaNs) use fp32.
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    # use_safetensors: a pipeline's pickled .bin weights are never loaded (they can run code)
    kwargs: dict[str, Any] = {"torch_dtype": dtype, "use_safetensors": True}
    if is_dir:
        require_safetensors(path, f"pipeline {target}")
    if not is_dir:
        # A pipeline already in the hub cache loads without touching the network (no HEAD request per file,
        # no retries on an offline machine); only a missing one is downloaded.
        kwargs["local_files_only"] = _cached(target) or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    try:
        with _quiet():
            pipe = diffusers.AutoPipelineForText2Image.from_pretrained(str(path) if is_dir else target, **kwargs)
    except ValueError as exc:
        if "AutoPipeline can't find" in str(exc):
            raise ModelSpecError(f"{target} is not a text-to-image pipeline: {exc}") from None
        raise ModelLoadError(f"cannot load the pipeline {target}: {exc}") from None
    except OSError as exc:
        hint = "" if is_dir else (
            f"; download it once with `hf download {target}` (or `huggingface-cli download {target}`) on a "
            "machine with network access, then it loads offline from the cache"
        )
        raise ModelLoadError(f"cannot load the pipeline {target}: {str(exc).rstrip('.')}{hint}") from None
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return DiffusersGenerator(str(spec), pipe, device, _preset_for(target), **options)


def _tail(text: str, n: int = 50) -> str:
    return text if len(text) <= n else "..." + text[-n:].lstrip()


def _head(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[:n].rstrip() + "..."


class DiffusersGenerator(Generator):
    backend = "diffusers"

    def __init__(self, name: str, pipe: Any, device: str, preset: Settings | None = None,
                 batch_size: int | None = None) -> None:
        super().__init__(name)
        self.pipe = pipe
        self.device = device
        self.preset = preset
        # One candidate per forward pass on CPU keeps each seed reproducible on its own; GPUs batch for speed.
        self.batch_size = int(batch_size or (1 if device == "cpu" else 4))
        if self.batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {batch_size}")

    def defaults(self) -> Settings:
        if self.preset is not None:
            return self.preset
        cls_name = type(self.pipe).__name__
        side = 1024 if cls_name in _LARGE else 512
        unet = getattr(self.pipe, "unet", None)
        sample = getattr(getattr(unet, "config", None), "sample_size", None)
        if isinstance(sample, int):
            side = sample * int(getattr(self.pipe, "vae_scale_factor", 8))  # what the pipeline itself defaults to
        # the samplers' usual trade-off for undistilled SD-family models
        return Settings(25, 5.0 if cls_name in _LARGE else 7.5, side, side)

    def _tokenizers(self) -> list[Any]:
        return [t for t in (getattr(self.pipe, "tokenizer", None), getattr(self.pipe, "tokenizer_2", None)) if t]

    def _check_length(self, text: str, what: str, truncate: bool) -> str | None:
        cut: str | None = None
        for tok in self._tokenizers():
            limit = int(getattr(tok, "model_max_length", 0) or 0)
            if not limit or limit > 100_000:  # tokenizers without a real limit say 1e30
                continue
            ids = tok(text, truncation=False, add_special_tokens=True, verbose=False)["input_ids"]
            if len(ids) <= limit:
                continue
            # The pipeline tokenises with truncation=True: it keeps the first (limit - 2) tokens between the
            # start and end markers and drops the rest without error (diffusers only logs it).
            kept = tok.decode(ids[1: limit - 1])
            dropped = tok.decode(ids[limit - 1: -1])
            if not truncate:
                raise PromptTooLongError(
                    f"{what} is {len(ids)} tokens; this model's text encoder ({type(tok).__name__}) reads "
                    f"{limit} including its start and end tokens and silently drops the rest: it would read up to "
                    f"{_tail(kept)!r} and drop the {len(ids) - limit} tokens from {_head(dropped)!r}. "
                    f"Shorten the {what}, or pass truncate=True (--truncate) to generate from the part it reads"
                )
            cut = kept
        return cut

    def check(self, request: GenerationRequest) -> str | None:
        check_prompt(request.prompt)
        multiple = 8  # diffusers' SD-family check_inputs: height and width divisible by 8
        if request.width % multiple or request.height % multiple:
            ok_w = max(multiple, round(request.width / multiple) * multiple)
            ok_h = max(multiple, round(request.height / multiple) * multiple)
            raise InputError(
                f"size {request.width}x{request.height}: this pipeline draws sizes whose sides are multiples of "
                f"{multiple}; the nearest is {ok_w}x{ok_h}"
            )
        if request.steps < 1:
            raise InputError(f"steps must be at least 1, got {request.steps}")
        if request.guidance < 0:
            raise InputError(f"guidance must be 0 or more, got {request.guidance}")
        ref = self.defaults()
        if max(request.width, request.height) > 2 * max(ref.width, ref.height):
            log.warning("size %dx%d is over twice the %dx%d this model was trained at; expect repeated, tiled "
                        "content", request.width, request.height, ref.width, ref.height)
        if request.negative and request.guidance <= 1:
            log.warning("the negative prompt has no effect at guidance %.1f: it is only used with classifier-free "
                        "guidance (guidance > 1)", request.guidance)
        if request.negative:
            self._check_length(request.negative, "negative prompt", request.truncate)
        return self._check_length(request.prompt, "prompt", request.truncate)

    def make(self, request: GenerationRequest, progress: ProgressCallback | None = None) -> list[Candidate]:
        import inspect

        import torch

        assert request.seed is not None
        seeds = [request.seed + i for i in range(request.n)]
        total = request.n * request.steps
        done = 0
        accepts_callback = "callback_on_step_end" in inspect.signature(self.pipe.__call__).parameters
        out: list[Candidate] = []
        for start in range(0, len(seeds), self.batch_size):
            batch = seeds[start: start + self.batch_size]
            kwargs: dict[str, Any] = {
                "prompt": [request.prompt] * len(batch),
                "num_inference_steps": request.steps,
                "guidance_scale": request.guidance,
                "height": request.height,
                "width": request.width,
                # CPU generators: the starting noise is the same on every device for a given seed
                "generator": [torch.Generator("cpu").manual_seed(s) for s in batch],
                "output_type": "pil",
            }
            if request.negative and request.guidance > 1:
                kwargs["negative_prompt"] = [request.negative] * len(batch)
            if progress is not None and accepts_callback:
                base = done

                def on_step(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any], _base: int = base,
                            _b: int = len(batch)) -> dict[str, Any]:
                    progress(min(total, _base + (step + 1) * _b), total)
                    return tensors

                kwargs["callback_on_step_end"] = on_step
            try:
                with torch.inference_mode():
                    result = self.pipe(**kwargs)
            except ValueError as exc:  # diffusers' check_inputs names the argument it refuses
                raise InputError(f"the pipeline {self.name} refused the request: {exc}") from None
            done += len(batch) * request.steps
            if progress is not None:
                progress(done, total)
            for seed, image in zip(batch, result.images):
                out.append(Candidate(image=image.convert("RGB"), seed=seed))
        return out
