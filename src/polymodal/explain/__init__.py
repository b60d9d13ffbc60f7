"""Seeing why: where in a picture a text matches.

    >>> import polymodal
    >>> e = polymodal.explain("street.jpg", "a red bicycle")
    >>> e.peak, e.box            # pixels of the picture as displayed (EXIF orientation applied)

Methods (``method=``): ``cam``, class-activation maps of ``lite`` (``polymodal.explain.cam``), fast and the
default; ``window``, multi-scale sliding windows embedded by any encoder (``polymodal.explain.window``),
slower but general. ``auto`` picks ``cam`` for ``lite`` (and for no model) and ``window`` for every other
encoder. Measured with the pointing game (``polymodal.explain.pointing``, docs/explain.md).
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

from polymodal.errors import InputError
from polymodal.explain.types import Explanation

METHODS = ("auto", "cam", "window")

__all__ = ["METHODS", "Explanation", "explain", "resolve_method"]


def resolve_method(model: Any, method: str = "auto") -> str:
    """The method ``explain`` will use for ``model`` (a spec, an encoder, or None for ``lite``)."""
    from polymodal.explain.cam import can_cam

    if method not in METHODS:
        raise InputError(f"unknown explain method {method!r}; use one of {', '.join(METHODS)}")
    if method == "auto":
        return "cam" if can_cam(model) else "window"
    if method == "cam" and not can_cam(model):
        raise InputError(f"the cam method needs the lite model (it reads lite's class-activation maps), not "
                         f"{_model_name(model)}; use method window for other models")
    return method


def explain(image: Any, text: str, model: Any = None, method: str = "auto", *, device: str | None = None,
            truncate: bool = False, long_side: int | None = None) -> Explanation:
    """How well each part of ``image`` matches ``text``, over the whole picture, and where it matches best.

    ``image``: a path, bytes or PIL image. ``model``: a spec or a loaded encoder; None means ``lite``.
    ``long_side`` (cam only): the side the picture is resized to before the network (default 768).
    Raises ImageDecodeError naming an unreadable image, InputError for an empty text or an unknown method.
    """
    from polymodal.explain.grid import peak_and_box
    from polymodal.media.images import load_image

    if not isinstance(text, str) or not text.strip():
        raise InputError(f"nothing to explain: the text is empty ({text!r}); give the words to look for")
    chosen = resolve_method(model, method)
    picture = load_image(image)
    if chosen == "cam":
        from polymodal.explain.cam import LONG_SIDE, cam_grid, torch_lite

        encoder = torch_lite(model, device)
        side = int(long_side or LONG_SIDE)
        if side < 32:
            raise InputError(f"long_side must be at least 32 pixels, got {side}")
        grid = cam_grid(encoder, picture, encoder.encode_texts([text], truncate=truncate)[0], long_side=side)
    else:
        from polymodal.explain.window import window_grid

        encoder = _encoder(model, device)
        grid = window_grid(encoder, picture, encoder.encode_texts([text], truncate=truncate)[0])
    peak, box = peak_and_box(grid, picture.width, picture.height)
    return Explanation(width=picture.width, height=picture.height, grid=grid, peak=peak, box=box, method=chosen,
                       text=text, model=_model_name(model))


def _encoder(model: Any, device: str | None) -> Any:
    if model is None or isinstance(model, str):
        from polymodal.models import load_model

        return load_model(model or "lite", device=device)
    return model


def _model_name(model: Any) -> str:
    if model is None:
        return "lite"
    return model if isinstance(model, str) else str(getattr(model, "name", type(model).__name__))


class _CallableModule(ModuleType):
    """This package, callable as ``explain``.

    ``polymodal.explain`` is meant to be the function (the lazy table in ``polymodal/__init__.py``), but
    importing any module of this package makes Python set the package itself as that attribute; calling the
    package then does what calling the function does, whichever was imported first.
    """

    def __call__(self, image: Any, text: str, model: Any = None, method: str = "auto", **options: Any) -> Explanation:
        return explain(image, text, model, method, **options)


sys.modules[__name__].__class__ = _CallableModule
