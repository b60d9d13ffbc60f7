"""Image-to-tensor preprocessing shared by backends that do not bring their own processor.

It is OpenAI CLIP's recipe (resize the short side with bicubic filtering, centre crop, scale to [0, 1],
normalise per channel), done with PIL so that it needs no torchvision. Its fields also describe the other
backends' processors (SigLIP's square resize, torchvision's rounding and mode order), so that a model
exported for the torch-free runtime carries its preprocessing as plain JSON (``to_dict`` / ``from_dict``,
written by ``export_preprocess``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from polymodal.errors import ModelLoadError

if TYPE_CHECKING:
    from polymodal.models.base import Encoder

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

#: allowed values of the string fields, the first being the default
CHOICES: dict[str, tuple[str, ...]] = {
    "mode": ("shortest", "squash"),
    "interpolation": ("bicubic", "bilinear"),
    "rounding": ("round", "floor"),
    "convert": ("first", "last"),
}


@dataclass(frozen=True)
class ImageTransform:
    """Resize the short side to ``resize``, centre-crop ``crop``, map pixels p in [0, 255] to (p/255 - mean)/std.

    With ``scale=255`` and mean/std of 127/128 it gives EfficientNet-Lite's ``(x - 127) / 128``. The defaults
    are our own recipe; the other values describe what other backends' processors do, so that one plain JSON
    dict (``to_dict``) can stand for any of them.
    """

    resize: int
    crop: int
    mean: tuple[float, ...] = OPENAI_MEAN
    std: tuple[float, ...] = OPENAI_STD
    scale: float = 1.0  # pixel range the mean/std are given in: 1.0 for [0, 1], 255.0 for [0, 255]
    mode: str = "shortest"  # "squash": resize to crop x crop ignoring the aspect ratio (SigLIP), no crop
    interpolation: str = "bicubic"  # PIL filter of the resize
    # The long side after the resize: "round" (ours), or "floor" as torchvision's Resize(int) computes it.
    rounding: str = "round"
    # "first": convert to RGB, then resize. "last": resize in the image's own mode and convert after the crop,
    # the order of open_clip's torchvision Compose (PIL resizes a palette image with nearest-neighbour).
    convert: str = "first"

    def to_array(self, image: Any) -> np.ndarray:
        """CHW float32 array."""
        from PIL import Image

        img = image if self.convert == "last" or image.mode == "RGB" else image.convert("RGB")
        w, h = img.size
        size = (self.crop, self.crop) if self.mode == "squash" else self._resized(w, h)
        if size != (w, h):
            filt = Image.Resampling.BILINEAR if self.interpolation == "bilinear" else Image.Resampling.BICUBIC
            img = img.resize(size, filt)
        if self.mode == "shortest":
            w, h = img.size
            left = round((w - self.crop) / 2.0)
            top = round((h - self.crop) / 2.0)
            img = img.crop((left, top, left + self.crop, top + self.crop))
        if img.mode != "RGB":
            img = img.convert("RGB")
        pixels = np.asarray(img, dtype=np.float32) * np.float32(self.scale / 255.0)
        out = (pixels - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32)

    def _resized(self, w: int, h: int) -> tuple[int, int]:
        if self.rounding == "floor":
            short, long = min(w, h), max(w, h)
            new_long = int(self.resize * long / short)
            return (self.resize, new_long) if w <= h else (new_long, self.resize)
        s = self.resize / min(w, h)
        # max(1, ...) keeps extreme panoramas from collapsing to zero width.
        return (max(1, round(w * s)), max(1, round(h * s)))

    def __call__(self, image: Any) -> Any:
        """CHW float32 torch tensor, like torchvision's transforms return."""
        import torch

        return torch.from_numpy(self.to_array(image))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: ``ImageTransform.from_dict(t.to_dict()) == t``."""
        d = asdict(self)
        return {**d, "mean": list(d["mean"]), "std": list(d["std"])}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageTransform:
        """The transform a dict from ``to_dict`` describes; ModelLoadError naming the first bad key."""
        if not isinstance(d, dict):
            raise ModelLoadError(f"image preprocessing must be a JSON object, not {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        for key in d:
            if key not in known:
                raise ModelLoadError(f"image preprocessing has an unknown key {key!r}; known keys: {sorted(known)}")
        for key in ("resize", "crop"):
            if key not in d:
                raise ModelLoadError(f"image preprocessing lacks the key {key!r}")
            if type(d[key]) is not int or d[key] < 1:
                raise ModelLoadError(f"image preprocessing key {key!r} is {d[key]!r}; expected a positive integer")
        kwargs: dict[str, Any] = {"resize": d["resize"], "crop": d["crop"]}
        for key in ("mean", "std"):
            if key in d:
                v = d[key]
                if not (isinstance(v, list) and len(v) == 3 and all(_is_number(x) for x in v)):
                    raise ModelLoadError(f"image preprocessing key {key!r} is {v!r}; expected 3 numbers")
                if key == "std" and any(x == 0 for x in v):
                    raise ModelLoadError(f"image preprocessing key 'std' is {v!r}; a zero would divide by zero")
                kwargs[key] = tuple(float(x) for x in v)
        if "scale" in d:
            if not _is_number(d["scale"]) or d["scale"] <= 0:
                raise ModelLoadError(f"image preprocessing key 'scale' is {d['scale']!r}; expected a positive number")
            kwargs["scale"] = float(d["scale"])
        for key, allowed in CHOICES.items():
            if key in d:
                if d[key] not in allowed:
                    raise ModelLoadError(f"image preprocessing key {key!r} is {d[key]!r}; expected one of {allowed}")
                kwargs[key] = d[key]
        return cls(**kwargs)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)


def export_preprocess(encoder: Encoder) -> dict[str, Any]:
    """The encoder's image preprocessing as ``ImageTransform.to_dict()``; ModelLoadError when it is not one.

    It describes what ``encoder.preprocess_image`` computes (see tests/test_bundle_text.py for how closely)."""
    from polymodal.models.hf import HFEncoder
    from polymodal.models.lite.encoder import LiteEncoder
    from polymodal.models.openclip import OpenCLIPEncoder

    if isinstance(encoder, LiteEncoder):
        return encoder.transform.to_dict()
    if isinstance(encoder, HFEncoder):
        return _from_hf(encoder.name, encoder.transform, encoder.processor).to_dict()
    if isinstance(encoder, OpenCLIPEncoder):
        return _from_torchvision(encoder.name, encoder.preprocess).to_dict()
    raise ModelLoadError(f"model {encoder.name}: no image preprocessing export for the {encoder.backend!r} backend")


def _from_hf(name: str, transform: ImageTransform | None, processor: Any) -> ImageTransform:
    from polymodal.models.hf import pil_transform

    found = transform or pil_transform(processor)
    if found is not None:
        return found
    # SigLIP's processor: resize straight to height x width, no crop.
    size = getattr(processor, "size", None) or {}
    filters = {2: "bilinear", 3: "bicubic"}  # PILImageResampling values
    resample = getattr(processor, "resample", None)
    if not (
        size.get("height") is not None and size.get("height") == size.get("width")
        and not getattr(processor, "do_center_crop", False)
        and getattr(processor, "do_resize", True)
        and getattr(processor, "do_rescale", True)
        and abs(float(getattr(processor, "rescale_factor", 1 / 255)) - 1 / 255) < 1e-9
        and getattr(processor, "do_normalize", True)
        and resample is not None and int(resample) in filters
    ):
        raise ModelLoadError(f"model {name}: its image processor {type(processor).__name__} does something other "
                             "than resize + centre crop or a square resize, and cannot be exported")
    side = int(size["height"])
    return ImageTransform(
        resize=side, crop=side, mode="squash", interpolation=filters[int(resample)],
        mean=tuple(float(x) for x in processor.image_mean), std=tuple(float(x) for x in processor.image_std),
    )


def _from_torchvision(name: str, compose: Any) -> ImageTransform:
    """Read open_clip's eval Compose: Resize, [CenterCrop], convert to RGB, ToTensor, Normalize."""
    from torchvision import transforms as T

    steps = list(getattr(compose, "transforms", [compose]))
    filters = {T.InterpolationMode.BICUBIC: "bicubic", T.InterpolationMode.BILINEAR: "bilinear"}
    kw: dict[str, Any] = {"rounding": "floor", "convert": "first"}
    seen_resize = False
    for step in steps:
        kind = type(step).__name__
        if isinstance(step, T.Resize) and not seen_resize and step.max_size is None and step.interpolation in filters:
            seen_resize = True
            kw["interpolation"] = filters[step.interpolation]
            size = step.size if isinstance(step.size, int) else list(step.size)
            if isinstance(size, int) or len(size) == 1:
                kw["resize"] = size if isinstance(size, int) else int(size[0])
            elif size[0] == size[1]:
                kw.update(mode="squash", resize=int(size[0]), crop=int(size[0]))
            else:
                break
        elif isinstance(step, T.CenterCrop) and step.size[0] == step.size[1] and "crop" not in kw:
            kw["crop"] = int(step.size[0])
        elif (kind == "MaybeConvertMode" and step.mode == "RGB") or getattr(step, "__name__", "") == "_convert_to_rgb":
            kw["convert"] = "last" if seen_resize else "first"
        elif kind in ("ToTensor", "MaybeToTensor"):
            pass
        elif isinstance(step, T.Normalize) and len(step.mean) == 3 and len(step.std) == 3:
            kw.update(mean=tuple(float(x) for x in step.mean), std=tuple(float(x) for x in step.std))
        else:
            break
    else:
        if seen_resize and "crop" in kw and "mean" in kw:
            return ImageTransform(**kw)
    raise ModelLoadError(f"model {name}: open_clip preprocessing {compose!r} is not resize + centre crop + "
                         "normalise, and cannot be exported")
