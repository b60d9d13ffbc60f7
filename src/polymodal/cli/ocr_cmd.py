"""``polymodal ocr``: the text in pictures, offline."""

from __future__ import annotations

import argparse
from typing import Any

from polymodal.cli.common import print_json, progress_bar


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ocr", help="read the text in pictures (offline; Chinese and English)",
                       description="Print the lines of text in each picture, in reading order, with their boxes "
                       "in pixels of the picture as displayed.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--json", action="store_true",
                   help='print [{"input": PATH, "lines": [{"text", "box": [x0,y0,x1,y1], "quad", "confidence"}]}]')
    add_ocr_options(p)
    p.set_defaults(func=run_ocr)


def add_ocr_options(parser: argparse.ArgumentParser) -> None:
    """--engine and --max-lines, worded the same for ``ocr`` and ``eval ocr``."""
    parser.add_argument("--engine", default=None, help="OCR engine: rapid (default: PP-OCRv4, bundled) or rapid:DIR "
                        "(a folder of det.onnx, cls.onnx, rec.onnx)")
    parser.add_argument("--max-lines", type=int, default=None, metavar="N",
                        help="read at most N lines per picture, the largest (default 500)")


def ocr_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    from polymodal.ocr import MAX_LINES

    return {"engine": args.engine, "max_lines": MAX_LINES if args.max_lines is None else args.max_lines}


def run_ocr(args: argparse.Namespace) -> int:
    from polymodal.ocr import read_text

    results = read_text(args.images, progress=progress_bar("reading text", "img"), **ocr_kwargs(args))
    if args.json:
        print_json([{"input": r.input, "width": r.width, "height": r.height, "capped": r.capped,
                     "lines": [{"text": ln.text, "box": list(ln.box), "quad": [list(p) for p in ln.quad],
                                "confidence": round(ln.confidence, 4)} for ln in r.lines]}
                    for r in results])
        return 0
    for r in results:
        more = f", capped at {len(r.lines)}" if r.capped else ""
        print(f"{r.input}: {len(r.lines)} line{'s' if len(r.lines) != 1 else ''}{more}")
        for ln in r.lines:
            print(f"  {ln.text}")
    return 0
