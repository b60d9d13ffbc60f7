"""``polymodal generate``: text to images, reranked with CLIP; ``polymodal fid``: FID/KID between two folders."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from polymodal.cli.common import print_json, print_table, progress_bar
from polymodal.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="generate images from text, reranked with CLIP",
        description="Generate N candidates with a local diffusers pipeline or an OpenAI-compatible Images API, "
        "score each against the prompt with CLIPScore (2.5·max(cos, 0)), keep the best K, and save them as PNGs "
        "that carry their provenance, with a JSON sidecar each.",
    )
    p.add_argument("prompt", metavar="PROMPT", help="what to draw")
    p.add_argument("-n", type=int, default=None, metavar="N",
                   help="candidates to make (default: 4 locally, 1 through a paid API)")
    p.add_argument("--keep", "-k", type=int, default=1, metavar="K", help="keep the K best by CLIPScore (default 1)")
    p.add_argument("--model", "-m", metavar="SPEC",
                   help="generator: a pipeline directory, diffusers:HUB_ID_OR_DIR, or with --provider openai the "
                   "provider's model name (default: $POLYMODAL_GENERATOR or the config file's generator, else "
                   "diffusers:stabilityai/sd-turbo; openai: dall-e-2)")
    p.add_argument("--provider", choices=("local", "openai"), default="local",
                   help="openai: an OpenAI-compatible Images API at $OPENAI_BASE_URL with $OPENAI_API_KEY (or the "
                   "config file's openai_base_url / openai_api_key)")
    p.add_argument("--steps", type=int, help="denoising steps (default: the model's recommendation; sd-turbo: 1)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (sd-turbo: 0)")
    p.add_argument("--size", metavar="WxH", help="image size, e.g. 512x512 (default: the model's)")
    p.add_argument("--seed", type=int, help="first seed; candidate i uses SEED+i (default: random, recorded)")
    p.add_argument("--negative", metavar="TEXT", help="negative prompt (used when guidance > 1)")
    p.add_argument("--truncate", action="store_true",
                   help="generate from the part of an over-long prompt the model reads, instead of refusing it")
    p.add_argument("--out", "-o", default=".", metavar="DIR", help="where to save the images (default: here)")
    p.add_argument("--json", action="store_true", help='print [{"path", "score", "seed", ...}] best first')
    p.add_argument("--encoder", "-e", metavar="SPEC",
                   help="encoder that scores candidates (default: the configured model)")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--response-format", choices=("b64_json", "url"), default="b64_json",
                   help="how the provider returns images (--provider openai)")
    p.add_argument("--add", action="store_true", help="index the saved images into the library")
    p.add_argument("--library", metavar="DIR", help="the library for --add (default: the configured one)")
    p.set_defaults(func=run_generate)

    p = sub.add_parser(
        "fid", help="FID and KID between two image folders",
        description="Fréchet and kernel distances between the image embeddings of two folders. Numbers are only "
        "comparable under the same feature extractor, which is printed with them.",
    )
    p.add_argument("folder_a", metavar="DIR_A")
    p.add_argument("folder_b", metavar="DIR_B")
    p.add_argument("--extractor", default="lite", metavar="SPEC",
                   help="encoder whose image embeddings are the features (default: lite)")
    p.add_argument("--subsets", type=int, default=100, help="KID subsets (default 100)")
    p.add_argument("--subset-size", type=int, default=1000, help="KID subset size, capped at the smaller folder")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_fid)


def _generator_spec(args: argparse.Namespace) -> str | None:
    if args.provider == "openai":
        if args.model and args.model.startswith("openai:"):
            return str(args.model)
        return f"openai:{args.model}" if args.model else "openai"
    return str(args.model) if args.model else None


def run_generate(args: argparse.Namespace) -> int:
    from polymodal.generation import generate

    options = {"response_format": args.response_format} if args.provider == "openai" else {}
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a directory to save images in")
    unit = "image" if args.provider == "openai" else "step"
    images = generate(
        args.prompt, n=args.n, keep=args.keep, model=_generator_spec(args), steps=args.steps, guidance=args.guidance,
        size=args.size, seed=args.seed, negative=args.negative, out=out, encoder=args.encoder, device=args.device,
        truncate=args.truncate, progress=progress_bar("generating", unit), **options,
    )
    if args.add:
        _add_to_library([str(i.path) for i in images], args.library, images[0].scorer)
    if args.json:
        print_json([i.to_dict() for i in images])
        return 0
    rows = [[str(i.path), f"{i.score:.4f}", "-" if i.seed is None else str(i.seed)] for i in images]
    print_table(rows, ["PATH", "CLIPSCORE", "SEED"])
    made = images[0].candidates if images else 0
    spread = f"; their diversity (mean 1 - cos) {images[0].diversity:.3f}" if made > 1 else ""
    print(f"kept {len(images)} of {made} candidates, scored with {images[0].scorer}{spread}", file=sys.stderr)
    return 0


def _add_to_library(paths: list[str], library: str | None, scorer: str) -> None:
    from polymodal.library.api import Library

    lib = Library.open(library)
    if lib.model is None:  # a new library takes the scoring encoder as its model; an existing one keeps its own
        lib = Library.open(lib.root, model=scorer)
    report = lib.add(paths)
    print(f"added {report.added} image(s) to the library {lib.root} ({lib.model})", file=sys.stderr)


def run_fid(args: argparse.Namespace) -> int:
    from polymodal.generation.metrics import compare_folders

    for folder in (args.folder_a, args.folder_b):
        if not os.path.isdir(folder):
            raise InputError(f"{folder} is not a folder")
    res = compare_folders(args.folder_a, args.folder_b, args.extractor, subsets=args.subsets,
                          subset_size=args.subset_size)
    if args.json:
        print_json(res.to_dict())
        return 0
    print(f"FID  {res.fid:.4f}")
    print(f"KID  {res.kid:.6f} ± {res.kid_std:.6f}")
    print(f"on {res.extractor} image embeddings ({res.dim}-d); {res.n_a} vs {res.n_b} images")
    return 0
