"""``polymodal explain``: where in a picture a text matches, as a heatmap, a peak and a box."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from polymodal.cli.common import add_model_options, print_json

if TYPE_CHECKING:
    from polymodal.explain.types import Explanation


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain", help="show where in a picture a text matches",
        description="A heatmap of how well each part of the picture matches the text, over the whole picture, "
        "and its peak. Pixels are those of the picture as displayed (EXIF orientation applied).",
    )
    p.add_argument("image", metavar="IMAGE", help="an image file")
    p.add_argument("--text", "-t", required=True, metavar="TEXT", help="what to look for")
    p.add_argument("--out", "-o", metavar="FILE.png", help="write the picture with the heatmap laid over it (PNG)")
    p.add_argument("--json", action="store_true",
                   help='print {"width", "height", "grid": [[...]], "peak": [x, y], "box": [x0, y0, x1, y1], ...}')
    p.add_argument("--method", choices=("auto", "cam", "window"), default="auto",
                   help="cam: lite's class-activation maps (fast); window: sliding windows, any model (slower); "
                   "auto (default): cam for lite, window otherwise")
    p.add_argument("--long-side", type=int, metavar="PIXELS",
                   help="cam: the side the picture is resized to for the network (default 768; 960 finds smaller "
                   "objects, at twice the time)")
    p.add_argument("--truncate", action="store_true", help="cut a text longer than the model's context")
    add_model_options(p)
    p.set_defaults(func=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    from polymodal.explain import explain, resolve_method

    spec = args.model or "lite"  # explain's default is lite: its class-activation maps are the measured method
    model: object = spec
    if resolve_method(spec, args.method) == "window":
        from polymodal.cli.common import load_encoder

        args.model = spec
        model = load_encoder(args)
    # for cam, explain loads lite on torch itself: the default ONNX runtime has no feature map to read
    result = explain(args.image, args.text, model, method=args.method, device=args.device, truncate=args.truncate,
                     long_side=args.long_side)
    if args.out:
        _write_overlay(args.image, result, args.out)
    if args.json:
        print_json(result.to_dict())
        return 0
    x0, y0, x1, y1 = result.box
    print(f"{args.image}: {args.text!r} best at ({result.peak[0]}, {result.peak[1]}), "
          f"around x {x0}-{x1}, y {y0}-{y1} of {result.width} x {result.height} ({result.method}, {result.model})")
    if args.out:
        print(f"saved the heatmap to {args.out}")
    return 0


def _write_overlay(image: str, result: Explanation, out: str) -> None:
    from polymodal.errors import InputError
    from polymodal.explain.overlay import overlay
    from polymodal.media.images import load_image

    picture = overlay(load_image(image), result)
    try:
        picture.save(out, format="PNG")
    except OSError as exc:
        raise InputError(f"cannot write the heatmap to {out}: {exc.strerror or exc}") from None
