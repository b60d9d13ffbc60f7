"""The library commands: ``index``, ``search``, ``similar``, ``duplicates``, ``tag``, ``status``, ``remove``,
``reindex``. Each is a thin layer over ``polymodal.library.Library``.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from polymodal.cli.common import (
    add_library_option,
    add_runtime_options,
    hit_filters,
    print_json,
    print_table,
    progress_bar,
)
from polymodal.cli.remote import add_server_options, server_client
from polymodal.errors import InputError


def _model_option(p: argparse.ArgumentParser, required: bool = False, what: str = "") -> None:
    p.add_argument("-m", "--model", required=required, metavar="SPEC", help=what or
                   "model spec (lite, hf:ID, open_clip:ARCH/TAG, a directory); must match the library's model")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--batch-size", type=int, help="images per forward pass")
    add_runtime_options(p)


def _filter_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-k", type=int, default=10, help="how many hits (default 10)")
    p.add_argument("--after", metavar="DATE", help="taken on or after DATE (YYYY[-MM[-DD]] or ISO 8601; "
                   "the EXIF date, else the file's mtime)")
    p.add_argument("--before", metavar="DATE", help="taken before DATE")
    p.add_argument("--path", metavar="GLOB", help="only items with a path matching GLOB (e.g. '*/2021/*')")
    p.add_argument("--type", dest="kind", choices=["image", "video", "audio"], help="only items of this kind")
    p.add_argument("--tag", action="append", default=[], help="only items tagged TAG (see `polymodal tag`)")
    p.add_argument("--min-score", type=float, help="drop hits scoring below this: a cosine similarity, or once "
                   "the library holds video or audio the fused score (README, Videos and audio)")
    p.add_argument("--sort", choices=["score", "date"], default="score", help="order of the hits (default score)")
    p.add_argument("--json", action="store_true", help='print [{"id", "path", "score", "kind", ...}]')
    p.add_argument("--thumbnails", metavar="DIR", help="write each hit's stored thumbnail (a video moment's: its "
                   'segment\'s) to DIR as ID.webp or ID-SEGMENT.webp; --json then gives its path as "thumbnail"')


def _query_options(p: argparse.ArgumentParser) -> None:
    """What ``search`` and ``similar`` share after their own arguments: the filters, the library, the model
    and the server to ask instead."""
    _filter_options(p)
    add_library_option(p)
    _model_option(p)
    add_server_options(p)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="add folders of photos, videos and audio to a library",
                       description="Scan folders recursively and index their images, videos and audio files; only "
                       "new or changed files are read. Videos are cut into shots and segments and their speech "
                       "transcribed; audio files are transcribed. Files gone from the scanned folders are removed "
                       "from the library unless --no-prune.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="folders or files, local or s3://BUCKET/PREFIX, gs://...")
    p.add_argument("--no-prune", dest="prune", action="store_false",
                   help="keep library entries for files that are gone from disk")
    p.add_argument("--ray", nargs="?", const="auto", metavar="auto|ADDRESS",
                   help="read, decode and embed on a Ray cluster: 'auto' (the default with --ray) joins the running "
                   "cluster or starts a local one; or HOST:PORT of a head node (docs/scale.md)")
    p.add_argument("--vector-type", choices=["float32", "float16"],
                   help="how a new library stores embeddings (default float32; float16 halves them)")
    p.add_argument("--storage", metavar="s3://BUCKET/PREFIX",
                   help="keep a new library's tables in a bucket (credentials from the AWS_* environment)")
    p.add_argument("--no-speech", dest="speech", action="store_false",
                   help="do not transcribe videos' sound or audio files (audio files are then not indexed)")
    p.add_argument("--speech-model", metavar="SPEC", help="Whisper model: tiny.en (default, bundled), a "
                   "faster-whisper name already in the local cache, or a CTranslate2 model directory")
    p.add_argument("--language", metavar="CODE", help="spoken language (default: detected by multilingual models)")
    p.add_argument("--time-limit", type=float, metavar="SECONDS", help="per video or audio file, for decoding and "
                   "again for transcribing; a file over it is recorded as a failure (default 600 s decoding)")
    p.add_argument("--max-segment", type=float, default=10.0, metavar="SECONDS",
                   help="longest visual segment of a video (default 10)")
    p.add_argument("--watch", action="store_true",
                   help="after indexing, keep following the folders: new, changed, moved and deleted files are "
                   "indexed within seconds, until Ctrl-C (docs/library.md, Live folders)")
    p.add_argument("--poll", action="store_true",
                   help="with --watch: poll the folders instead of file events (network shares, some mounts)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="use at most N threads in each pool (inference, decoding); default: all cores")
    p.add_argument("--nice", action="store_true",
                   help="run at low priority (nice 10, idle disk I/O) so the machine stays responsive")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_library_option(p)
    _model_option(p, what="model for a new library (default: $POLYMODAL_MODEL, the config file, else the default); "
                  "an existing library keeps its own")
    p.set_defaults(func=run_index)

    p = sub.add_parser("search", help="search a library by text, image or both",
                       description="Rank items by similarity to the query. Terms may be weighted ('2:sunset') "
                       "and may be image paths; --not terms are subtracted.")
    p.add_argument("query", nargs="*", metavar="TERM", help="text or image path, optionally weighted as W:TERM")
    p.add_argument("--image", "-i", action="append", default=[], metavar="PATH", help="an example image (repeatable)")
    p.add_argument("--not", dest="negative", action="append", default=[], metavar="TEXT|PATH",
                   help="move away from this text or image (repeatable)")
    p.add_argument("--exact", action="store_true", help="skip the ANN index: exact search")
    p.add_argument("--fusion", choices=["weighted", "rrf"], default="weighted",
                   help="how visual and speech evidence of videos are combined: weighted sum of per-modality "
                   "normalised scores (default) or reciprocal rank fusion")
    p.add_argument("--modality", choices=["visual", "speech"],
                   help="only what is shown (photos, video frames) or only what is said (transcripts)")
    p.add_argument("--voice", metavar="FILE|-", help="a spoken query: a recording (WAV, MP3, M4A, ...; - reads "
                   "standard input) transcribed by the offline Whisper, searched as text with any other terms")
    p.add_argument("--speech-model", dest="voice_model", metavar="SPEC",
                   help="Whisper model for --voice (default tiny.en, bundled: English)")
    p.add_argument("--box", metavar="X0,Y0,X1,Y1",
                   help="search with this region of the one --image (pixels of the picture as displayed)")
    p.add_argument("--all", dest="all_hits", action="store_true",
                   help="show the k nearest whatever they score; by default a text search shows only hits that "
                   "stand out from unrelated pictures (the relevance floor, README), possibly none")
    _query_options(p)
    p.set_defaults(func=run_search)

    p = sub.add_parser("similar", help="items like a given one", description="Items most similar to an item "
                       "of the library (by id or path) or to any image file.")
    p.add_argument("item", metavar="PATH_OR_ID")
    _query_options(p)
    p.set_defaults(func=run_similar)

    p = sub.add_parser("duplicates", help="near-duplicate groups", description="Groups of near-identical items, "
                       "largest first. Identical files under several paths form groups of score 1.")
    p.add_argument("--threshold", "-t", type=float, default=None, help="cosine similarity to count as "
                   "near-duplicates (default 0.95)")
    p.add_argument("--json", action="store_true", help='print [{"score", "items": [...]}]')
    add_library_option(p)
    p.set_defaults(func=run_duplicates)

    p = sub.add_parser("tag", help="zero-shot tags for every item", description="Tag items with the labels they "
                       "match best; search them with --tag LABEL.")
    p.add_argument("--labels", "-l", metavar="FILE|a,b,c", help="a file with one label per line, or a comma-separated "
                   "list (default: a built-in list of common photo subjects)")
    p.add_argument("--min-prob", type=float, default=None, help="lowest probability for a label to be kept "
                   "(default 0.25)")
    add_library_option(p)
    _model_option(p)
    p.set_defaults(func=run_tag)

    p = sub.add_parser("status", help="what a library holds", description="Counts, model, size on disk, the last "
                       "job and files that failed.")
    p.add_argument("--json", action="store_true",
                   help='print {"items", "model", "failures": [{"path", "reason"}], ...}')
    add_library_option(p)
    add_server_options(p)
    p.set_defaults(func=run_status)

    p = sub.add_parser("remove", help="forget items or paths", description="Remove items (by id) or paths (files or "
                       "folders) from the library. Files on disk are not touched.")
    p.add_argument("targets", nargs="+", metavar="PATH_OR_ID")
    add_library_option(p)
    p.set_defaults(func=run_remove)

    p = sub.add_parser("reindex", help="rebuild all embeddings with a model", description="Re-embed every item "
                       "from its files with --model (default: the library's model). Searches use the old "
                       "embeddings until the new ones are complete.")
    add_library_option(p)
    _model_option(p, what="the model to rebuild with (default: the library's own)")
    p.set_defaults(func=run_reindex)


def _open(args: argparse.Namespace, create: bool = False, model: Any = None) -> Any:
    from polymodal.library import Library

    return Library.open(args.library, create=create, model=model, device=getattr(args, "device", None),
                        batch_size=getattr(args, "batch_size", None), vector_type=getattr(args, "vector_type", None),
                        storage=getattr(args, "storage", None), runtime=getattr(args, "runtime", None),
                        precision=getattr(args, "precision", None))


def _date(value: Any) -> str:
    return value.strftime("%Y-%m-%d") if value else ""


def _save_thumbnails(hits: list[Any], folder: str, fetch: Any) -> list[str | None]:
    """Each hit's thumbnail written into ``folder`` (its path), or None for a hit without one (audio)."""
    from pathlib import Path

    out_dir = Path(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[str | None] = []
    for h in hits:
        data = fetch(h)
        if not data:
            paths.append(None)
            continue
        # ids and segment ids are hex and [A-Za-z0-9_-] keys made by polymodal: safe as file names
        target = out_dir / (f"{h.id}-{h.segment}.webp" if getattr(h, "segment", None) else f"{h.id}.webp")
        target.write_bytes(data)
        paths.append(str(target))
    return paths


def _local_thumbnail(lib: Any) -> Any:
    return lambda h: lib.segment_thumbnail(h.id, h.segment) if h.segment else lib.thumbnail(h.id)


def _print_hits(hits: list[Any], args: argparse.Namespace, fetch: Any) -> None:
    """The hits as a table or JSON; with ``--thumbnails DIR`` their thumbnails are written first (``fetch``)."""
    as_json = args.json
    thumbs = _save_thumbnails(hits, args.thumbnails, fetch) if getattr(args, "thumbnails", None) else None
    if as_json:
        rows = [h.to_dict() for h in hits]
        if thumbs is not None:
            for row, path in zip(rows, thumbs):
                row["thumbnail"] = path
        print_json(rows)
        return
    if not hits:
        floored = not getattr(args, "all_hits", True)
        print("nothing stands out from unrelated pictures for this query (the relevance floor); --all shows the "
              "nearest items" if floored else "no matches")
        return
    rows = [[str(i), f"{h.score:.3f}", _date(h.date), h.path + (f"  (+{len(h.paths) - 1} more)" if len(h.paths) > 1
                                                                else "")] for i, h in enumerate(hits, 1)]
    if any(getattr(h, "start", None) is not None for h in hits):
        for row, h in zip(rows, hits):
            row[3] += _moment_text(h)
    headers = ["#", "SCORE", "DATE", "PATH"]
    if any(h.confidence is not None for h in hits):  # a text query: how sure, calibrated (library/relevance.py)
        for row, h in zip(rows, hits):
            row.insert(2, "-" if h.confidence is None else f"{100 * h.confidence:.0f}%")
        headers.insert(2, "CONF")
    print_table(rows, headers)


def _clock(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    return f"{int(m) // 60}:{int(m) % 60:02d}:{s:04.1f}" if m >= 60 else f"{int(m)}:{s:04.1f}"


def _moment_text(hit: Any) -> str:
    if hit.start is None:
        return ""
    said = f'  "{hit.transcript}"' if hit.transcript else ""
    if len(said) > 70:
        said = said[:66] + '..."'
    return f"  [{_clock(hit.start)}-{_clock(hit.end)}]{said}"


def _ann_progress(phase: str, seconds: float) -> None:
    """One line per report on stderr: the ANN build gives no fraction done, only its phase and time."""
    import sys

    if sys.stderr.isatty() or phase == "built":
        print(f"ANN index: {phase} ({seconds:.0f} s)", file=sys.stderr, flush=True)


def run_index(args: argparse.Namespace) -> int:
    from polymodal.library.media_ingest import MediaOptions
    from polymodal.machine import lower_priority, set_thread_limit

    if args.threads is not None:
        set_thread_limit(args.threads)
    if args.nice:
        done = lower_priority()
        logging.getLogger("polymodal").info("low priority: %s", ", ".join(done) or "refused by the system")

    lib = _open(args, create=True, model=args.model)
    lib.ann_progress = _ann_progress
    if args.max_segment <= 0:
        raise InputError(f"--max-segment must be positive, got {args.max_segment}")
    lib.media_options = MediaOptions(speech=args.speech, speech_model=args.speech_model, language=args.language,
                                     time_limit=args.time_limit, max_segment=args.max_segment)
    if args.watch:
        return _watch(lib, args)
    report = lib.add(args.paths, prune=args.prune, progress=progress_bar("indexing", "file"), ray=args.ray)
    # Every file found failed: nothing usable was given, which is bad input (4) however it is printed
    all_failed = report.failed > 0 and not any(
        getattr(report, n) for n in ("added", "updated", "moved", "duplicates", "skipped"))
    status = InputError.exit_code if all_failed else 0
    if args.json:
        print_json(report.to_dict())
        return status
    counts = ", ".join(f"{n} {getattr(report, n)}" for n in ("added", "updated", "moved", "duplicates", "removed",
                                                              "skipped", "failed"))
    print(f"{lib.path}: {counts}")
    for f in report.failures[:10]:
        print(f"  failed: {f.path}: {f.reason}")
    if len(report.failures) > 10:
        print(f"  ... and {len(report.failures) - 10} more (polymodal status lists them)")
    for f in report.speech_failures[:10]:
        print(f"  indexed by its pictures only, its speech not transcribed: {f.path}: {f.reason}")
    if report.index_built:
        print("  built the ANN index")
    if all_failed:
        import sys

        print(f"polymodal: error: nothing was indexed: all {report.failed} files failed", file=sys.stderr)
    return status


_COUNTS = ("added", "updated", "moved", "duplicates", "removed", "skipped", "failed")


def _watch(lib: Any, args: argparse.Namespace) -> int:
    """``index --watch``: one line per pass, as it happens, until Ctrl-C."""
    import sys
    from datetime import datetime

    from polymodal.library.watch import WatchBatch, watch

    def line(batch: WatchBatch) -> None:
        r = batch.report
        if batch.changes and not any(getattr(r, n) for n in _COUNTS if n != "skipped"):
            return  # events that changed nothing indexable (a temporary file, a folder's mtime)
        counts = ", ".join(f"{n} {getattr(r, n)}" for n in _COUNTS if getattr(r, n) or n in ("added", "failed"))
        if args.json:
            print_json({**r.to_dict(), "seconds": round(batch.seconds, 3), "changes": batch.changes})
        else:
            print(f"{datetime.now():%H:%M:%S} {counts} ({batch.seconds:.1f} s)", flush=True)
            for f in r.failures[:10]:
                print(f"  failed: {f.path}: {f.reason}", flush=True)
        sys.stdout.flush()

    if not args.json:
        print(f"{lib.path}: watching {', '.join(args.paths)} (Ctrl-C stops)", flush=True)
    watch(lib, args.paths, on_batch=line, force_polling=True if args.poll else None)
    return 0


def run_search(args: argparse.Namespace) -> int:
    if not args.query and not args.image and not args.voice:
        raise InputError("nothing to search for: give a text, an image path, --image PATH or --voice FILE")
    if args.voice:
        import sys

        from polymodal.speech.query import spoken_query

        if args.voice == "-":
            heard = spoken_query(sys.stdin.buffer.read(), model=args.voice_model, source="standard input")
        elif not os.path.isfile(args.voice):
            raise InputError(f"--voice {args.voice}: no such file")
        else:
            heard = spoken_query(args.voice, model=args.voice_model)
        print(f"polymodal: heard \"{heard}\"", file=sys.stderr)  # what the hits answer, beside them
        from polymodal.library.query import literal

        args.query = [literal(heard), *args.query]
    remote = server_client(args)
    if remote is not None:
        from polymodal.cli import remote as via

        _print_hits(via.search(remote, args), args, via.thumbnail_fetcher(remote))
        return 0
    lib = _open(args, model=args.model)
    hits = lib.search(text=args.query, image=args.image or None, negative=args.negative, exact=args.exact,
                      fusion=args.fusion, modality=args.modality, floor=not args.all_hits, box=args.box,
                      **hit_filters(args))
    _print_hits(hits, args, _local_thumbnail(lib))
    return 0


def run_similar(args: argparse.Namespace) -> int:
    remote = server_client(args)
    if remote is not None:
        from polymodal.cli import remote as via

        _print_hits(via.similar(remote, args), args, via.thumbnail_fetcher(remote))
        return 0
    lib = _open(args, model=args.model)
    _print_hits(lib.similar(args.item, **hit_filters(args)), args, _local_thumbnail(lib))
    return 0


def run_duplicates(args: argparse.Namespace) -> int:
    from polymodal.library.duplicates import DEFAULT_THRESHOLD

    lib = _open(args)
    groups = lib.duplicates(DEFAULT_THRESHOLD if args.threshold is None else args.threshold)
    if args.json:
        print_json([g.to_dict() for g in groups])
        return 0
    if not groups:
        print("no duplicates")
    for g in groups:
        n = sum(len(h.paths) for h in g.items)
        print(f"{n} files, similarity >= {g.score:.3f}")
        for h in g.items:
            for p in h.paths:
                print(f"  {h.id}  {p}")
    return 0


def _labels(value: str | None) -> list[str] | None:
    if value is None:
        return None
    path = value[1:] if value.startswith("@") else value
    if value.startswith("@") or os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as fh:
                return [ln.strip() for ln in fh if ln.strip()]
        except OSError as exc:
            raise InputError(f"cannot read labels file {path}: {exc.strerror}") from None
    return [x.strip() for x in value.split(",") if x.strip()]


def run_tag(args: argparse.Namespace) -> int:
    lib = _open(args, model=args.model)
    n = lib.tag(_labels(args.labels), min_probability=args.min_prob)
    print(f"tagged {n} of {lib.status().items} items; search them with --tag LABEL")
    return 0


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def run_status(args: argparse.Namespace) -> int:
    remote = server_client(args)
    st = remote.status() if remote is not None else _open(args).status()
    if args.json:
        print_json(st.to_dict())
        return 0
    print(f"library   {st.path}")
    print(f"model     {st.model or '(none yet)'} (dim {st.dim}), schema v{st.schema_version}")
    if st.model:
        runs = ", ".join(f"{net} {rt}" for net, rt in sorted(st.runtimes.items())) or "not exported yet (on first use)"
        print(f"runtime   {runs}")
    print(f"items     {st.items} ({st.files} files)")
    print(f"on disk   {_size(st.size_bytes)}; search: {'ANN index + exact re-ranking' if st.ann_index else 'exact'}")
    if st.last_job:
        j = st.last_job
        counts = ", ".join(f"{k} {v}" for k, v in j.counts.items())
        print(f"last job  {j.kind} {j.state}, started {j.started:%Y-%m-%d %H:%M:%S}: {counts}")
    print(f"failures  {len(st.failures)}")
    for f in st.failures:
        print(f"  {f.path}: {f.reason}")
    if st.speech_failures:
        print(f"no speech {len(st.speech_failures)} (indexed by their pictures only)")
        for f in st.speech_failures:
            print(f"  {f.path}: {f.reason}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    n = _open(args).remove(args.targets)
    print(f"removed {n} path{'s' if n != 1 else ''} from the library (files on disk are untouched)")
    return 0


def run_reindex(args: argparse.Namespace) -> int:
    lib = _open(args)
    report = lib.reindex(args.model, progress=progress_bar("re-embedding", "item"))
    print(f"{lib.path}: re-embedded {report.updated} items with {lib.model}; dropped {report.removed}")
    for f in report.failures[:10]:
        print(f"  dropped: {f.path}: {f.reason}")
    return 0
