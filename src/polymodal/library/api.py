"""``Library``: the collection as one object. The CLI and the server are thin layers over it.

>>> lib = Library.open("photos.polymodal", model="lite")          # doctest: +SKIP
>>> lib.add(["~/Pictures"])                                        # doctest: +SKIP
>>> [h.path for h in lib.search(text="a cat", k=3)]                # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from polymodal.errors import InputError, ModelMismatchError, NotALibraryError
from polymodal.library import duplicates as dup
from polymodal.library import scancache, segments
from polymodal.library.ingest import Indexer, ProgressCallback, new_job_id, pid_alive
from polymodal.library.media_ingest import MEDIA_EXTENSIONS, MediaOptions
from polymodal.library.moment_search import has_moments, moment_search
from polymodal.library.moments import check as check_fusion
from polymodal.library.query import Term, build_terms, query_vector
from polymodal.library.remote import is_remote
from polymodal.library.scan import check_roots, display_path, image_extensions, walk
from polymodal.library.schema import META_FILE, LibraryMeta, check_options, new_meta, read_meta, write_meta
from polymodal.library.search import Filters, hits_from_arrow, parse_date, run_search
from polymodal.library.store import ANN_THRESHOLD, EDIT_WAIT, Store, sql_str, write_lock
from polymodal.library.types import DuplicateGroup, Failure, Hit, IndexReport, JobInfo, Status
from polymodal.models.base import Encoder
from polymodal.models.calibration import reference_scores

log = logging.getLogger("polymodal")


def default_library_path() -> Path:
    """``POLYMODAL_LIBRARY``, else ``library`` in the config file, else ``<user data dir>/polymodal/library``."""
    from polymodal.config import load_settings
    from polymodal.paths import data_dir

    configured = load_settings().library
    return Path(configured).expanduser() if configured else data_dir() / "library"


def _mismatch(root: Path, meta: LibraryMeta, asked: str, asked_dim: int | None = None) -> ModelMismatchError:
    dim = f", dim {asked_dim}" if asked_dim else ""
    return ModelMismatchError(
        f"library {root} was built with model {meta.model!r} (dim {meta.dim}), not {asked!r}{dim}; "
        f"its embeddings cannot be mixed. Rebuild them with `polymodal reindex --model {asked}`, "
        f"or leave --model out to use {meta.model!r}"
    )


def _path_key(path: str | os.PathLike[str]) -> str:
    if is_remote(path):
        return os.fspath(path).rstrip("/")  # a URL is its own key (remote.py)
    return display_path(os.fsencode(os.path.abspath(os.path.expanduser(os.fspath(path)))))


def _own_leftover(name: str) -> bool:
    """The temporary file of a ``library.json`` write killed before its rename: the library was being created."""
    return name.startswith(".library.") and name.endswith(".json")


class Library:
    """A collection of media with their embeddings, metadata and thumbnails, in a directory on disk."""

    def __init__(self, root: Path, meta: LibraryMeta, model: str | Encoder | None = None,
                 device: str | None = None, batch_size: int | None = None, runtime: str | None = None,
                 precision: str | None = None) -> None:
        self.root = root
        self.meta = meta
        self.store = Store(root, meta)
        self._model = model
        self._device = device
        self._batch_size = batch_size
        self._runtime, self._precision = runtime, precision
        self._encoder: Encoder | None = model if isinstance(model, Encoder) else None
        self._meta_stamp = self._stamp()
        #: item count from which an ANN index is built (see benchmarks/RESULTS.md for how it was chosen)
        self.ann_threshold = ANN_THRESHOLD
        #: told (phase, seconds) while an ANN index is built: minutes at millions of items (docs/scale.md)
        self.ann_progress: Callable[[str, float], None] | None = None
        #: how ``add`` indexes video and audio files (speech on or off, Whisper model, time limit per file)
        self.media_options = MediaOptions()

    # -- opening ----------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, create: bool = True,
             model: str | Encoder | None = None, device: str | None = None,
             batch_size: int | None = None, vector_type: str | None = None,
             storage: str | None = None, runtime: str | None = None, precision: str | None = None) -> Library:
        """Open the library at ``path`` (default: see ``default_library_path``), creating it if asked.

        ``model`` is only needed for a new library (else the default model is used at the first ``add``);
        for an existing one it must be the model that built it, or ModelMismatchError names the fix.
        ``vector_type`` (float32 or float16) and ``storage`` (an ``s3://`` URI for the tables, the directory
        keeping library.json and the writer lock) are chosen at creation and recorded in library.json.
        ``device``, ``batch_size``, ``runtime`` and ``precision`` are how the encoder is loaded (``load_model``).
        """
        root = Path(path).expanduser() if path is not None else default_library_path()
        if root.exists() and not root.is_dir():
            raise NotALibraryError(f"{root} is not a polymodal library: it is a file")
        if (root / META_FILE).exists():
            meta = read_meta(root)
        elif root.is_dir() and any(not _own_leftover(p.name) for p in root.iterdir()):
            raise NotALibraryError(
                f"{root} is not a polymodal library (no {META_FILE}) and is not empty; "
                "give --library a new or empty directory"
            )
        elif not create:
            raise NotALibraryError(f"no library at {root}; create one with `polymodal index PATH --library {root}`")
        else:
            root.mkdir(parents=True, exist_ok=True)
            meta = new_meta(vector_type, storage)
            write_meta(root, meta)
        check_options(root, meta, vector_type, storage)
        _migrate_if_free(root, meta)
        if meta.model is not None and model is not None:
            from polymodal.models.bundle import feature_space

            name = feature_space(model)  # a bundle of the library's model is that model
            dim = model.dim if isinstance(model, Encoder) else None
            if name != meta.model or (dim is not None and dim != meta.dim):
                raise _mismatch(root, meta, name, dim)
        return cls(root, meta, model, device, batch_size, runtime, precision)

    def _stamp(self) -> int:
        try:
            return (self.root / META_FILE).stat().st_mtime_ns
        except OSError:
            return 0

    def _refresh(self) -> None:
        """Re-read library.json if another process rewrote it (first model fixed, or a reindex switched)."""
        stamp = self._stamp()
        if stamp != self._meta_stamp:
            self._meta_stamp = stamp
            self.meta = read_meta(self.root)
            self.store = Store(self.root, self.meta)

    @property
    def path(self) -> Path:
        return self.root

    @property
    def model(self) -> str | None:
        return self.meta.model

    def encoder(self) -> Encoder:
        """The library's encoder, loaded on first use."""
        self._refresh()
        if self._encoder is None:
            from polymodal.config import load_settings
            from polymodal.models import load_model
            from polymodal.models.bundle import is_bundle

            asked = self._model if isinstance(self._model, str) else None
            # A bundle asked for is used even when the library names its source model (checked at open).
            spec = asked if asked and is_bundle(asked) else (self.meta.model or asked or load_settings().model)
            self._encoder = load_model(spec, device=self._device, batch_size=self._batch_size, runtime=self._runtime,
                                       precision=self._precision)
        enc = self._encoder
        from polymodal.models.bundle import feature_space

        if self.meta.model is None:
            self.meta.model, self.meta.backend, self.meta.dim = feature_space(enc), enc.info.backend, enc.dim
            write_meta(self.root, self.meta)
            self._meta_stamp = self._stamp()
        elif feature_space(enc) != self.meta.model or enc.dim != self.meta.dim:
            raise _mismatch(self.root, self.meta, enc.name, enc.dim)
        return enc

    # -- indexing ---------------------------------------------------------------------------------------------

    def add(self, paths: Sequence[str | os.PathLike[str]], *, prune: bool = True,
            progress: ProgressCallback | None = None, ray: str | None = None) -> IndexReport:
        """Index files and folders (recursively), local or in a bucket (``s3://``, ``gs://``). Only new or
        changed files are read.

        With ``prune`` (the default), files under the given folders that are gone from disk are removed from
        the library; files elsewhere in the library are never touched. ``ray`` ("auto" or a cluster address)
        reads, decodes and embeds the files on a Ray cluster (``distributed.py``); the result is the same.
        """
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        if not paths:
            raise InputError("nothing to index: give at least one file or folder")
        roots = check_roots(list(paths))
        with write_lock(self.root):
            self._refresh()
            self._migrate()  # a reader that could not take the lock at open left it for the first writer
            scan = walk(roots, image_extensions() | MEDIA_EXTENSIONS, exclude=os.fsencode(os.path.abspath(self.root)))
            unchanged = scancache.unchanged_report(self.root, scan, [display_path(r) for r in roots], prune)
            if unchanged is not None:
                return unchanged  # nothing to write, not even a job row: the library is as the last run left it
            scancache.invalidate(self.root)  # from here on the files table may differ from the snapshot
            if self.meta.model is None:
                self.encoder()  # fixes model and dimension before the first row is written
            job = self._start_job("index", roots)
            if ray is None:
                indexer = Indexer(self.store, self.encoder, batch_size=self._batch_size or 64, progress=progress)
            else:
                from polymodal.library.distributed import RayIndexer, RayOptions

                indexer = RayIndexer(self.store, self.encoder, model=str(self.meta.model), progress=progress,
                                     options=RayOptions(address=ray, device=self._device),
                                     batch_size=self._batch_size or 64)
            indexer.media_options = self.media_options
            try:
                report = indexer.run(roots, scan, prune=prune)
                report.index_built = self._maintain(bool(report.added or report.updated or report.removed))
            except KeyboardInterrupt:
                # The batches committed so far are kept, and counted, so status does not say "added 0"
                self._finish_job(job, "interrupted", indexer.report)
                raise
            except BaseException:
                self._finish_job(job, "failed", indexer.report)
                raise
            self._finish_job(job, "done", report)
            scancache.write(self.root, self.store.scan(self.store.files(), ["path", "size", "mtime_ns", "error"]))
        return report

    def _migrate(self) -> None:
        """Bring an older library to this version's schema (the caller holds the writer lock)."""
        from polymodal.library.migrations import migrate, pending

        if pending(self.meta):
            migrate(self.root, self.meta, self.store)
            self._meta_stamp = self._stamp()
            self.store = Store(self.root, self.meta)

    def _maintain(self, changed: bool) -> bool:
        """Compact after a change; build the ANN index once the library passes ``ann_threshold``."""
        if not changed:
            return False
        from polymodal.library import stacks

        stacks.link(self.store)  # RAW + JPEG pairs of one shot, shown once
        segments.prune_orphans(self.store)  # segments of items removed or changed by this run
        self.store.optimize()  # also folds rows added since into an existing index
        if self.store.count_items() >= self.ann_threshold and not self.store.has_ann_index():
            self.store.build_ann_index(progress=self.ann_progress)
            return True
        return False

    def _start_job(self, kind: str, roots: list[bytes]) -> dict[str, Any]:
        import pyarrow as pa

        from polymodal.library.schema import jobs_schema

        job = {"id": new_job_id(), "kind": kind, "roots": [display_path(r) for r in roots], "state": "running",
               "pid": os.getpid(), "started": datetime.now(UTC), "finished": None}
        self.store.jobs().add(pa.Table.from_pylist([job], schema=jobs_schema()))
        return job

    def _finish_job(self, job: dict[str, Any], state: str, report: IndexReport) -> None:
        import pyarrow as pa

        from polymodal.library.schema import jobs_schema

        counts = {k: getattr(report, k) for k in ("added", "updated", "moved", "duplicates", "removed", "skipped",
                                                  "failed")}
        row = {**job, **counts, "state": state, "finished": datetime.now(UTC)}
        self.store.upsert(self.store.jobs(), "id", pa.Table.from_pylist([row], schema=jobs_schema()))

    def reindex(self, model: str | Encoder | None = None, *, progress: ProgressCallback | None = None) -> IndexReport:
        """Re-embed every item with ``model`` (default: the library's own) from its files on disk.

        The new embeddings go to a new table; ``library.json`` switches to it in one atomic write at the end,
        so searches keep working on the old model until then and a killed reindex leaves the library as it was.
        """
        from polymodal.library.reembed import reembed

        with write_lock(self.root):
            self._migrate()
            scancache.invalidate(self.root)
            if isinstance(model, Encoder):
                enc = model
            else:
                from polymodal.models import load_model

                enc = load_model(model or self.meta.model, device=self._device, batch_size=self._batch_size,
                                 runtime=self._runtime, precision=self._precision)
            job = self._start_job("reindex", [])
            try:
                report = reembed(self.store, enc, progress=progress, media=self.media_options)
            except BaseException:
                self._finish_job(job, "failed", IndexReport())
                raise
            self._encoder = enc
            self.meta = self.store.meta
            self._meta_stamp = self._stamp()
            report.index_built = self._maintain(True)
            self._finish_job(job, "done", report)
        return report

    def remove(self, targets: Sequence[str | os.PathLike[str]]) -> int:
        """Forget items (by id) or paths (files, or everything under a folder); the files on disk stay.

        Returns how many paths were removed. A later ``add`` of the same folder would index them again.
        """
        from polymodal.library.remove import remove_targets

        if isinstance(targets, (str, os.PathLike)):
            targets = [targets]
        with write_lock(self.root, wait=EDIT_WAIT):
            self._migrate()
            scancache.invalidate(self.root)
            removed = remove_targets(self.store, [os.fspath(t) for t in targets], _path_key)
            self._maintain(removed > 0)
        return removed

    def tag(self, labels: Sequence[str] | None = None, *, min_probability: float | None = None) -> int:
        """Tag every item zero-shot with the best of ``labels`` (default: tags.DEFAULT_LABELS); returns items tagged."""
        from polymodal.library import tags as tagmod
        from polymodal.zeroshot import clean_labels

        # An empty list is the user's mistake (--labels ""), not a request for the built-in list.
        labels = list(tagmod.DEFAULT_LABELS if labels is None else labels)
        given = [x.strip() for x in labels if x.strip()]
        if len(given) < 2:
            # One label wins every softmax: every item would be tagged with it (e.g. a mistyped labels file name).
            got = f"only {given[0]!r} (if that is a labels file, it was not found)" if given else "none"
            raise InputError(f"tagging needs at least two labels to choose between, got {got}; "
                             "e.g. --labels cat,dog or --labels FILE")
        labels = clean_labels(labels)
        with write_lock(self.root, wait=EDIT_WAIT):
            self._migrate()
            ids, vecs = self.store.vectors()
            if not ids:
                return 0
            assigned = tagmod.assign_tags(vecs, labels, self.encoder(),
                                          min_probability=min_probability or tagmod.MIN_PROBABILITY)
            by_id = dict(zip(ids, assigned))
            import pyarrow as pa

            schema = self.store.schema()
            for start in range(0, len(ids), 1000):
                rows = self.store.items_by("id", ids[start: start + 1000])
                tags = pa.array([by_id[i] for i in rows.column("id").to_pylist()], type=pa.list_(pa.string()))
                rows = rows.set_column(rows.schema.get_field_index("tags"), "tags", tags)
                self.store.commit_items(rows.select(schema.names).cast(schema))
            self.store.optimize()
        return sum(1 for t in assigned if t)

    # -- searching --------------------------------------------------------------------------------------------

    def search(self, text: str | Sequence[str] | None = None, image: Any = None, *,
               negative: Sequence[Any] = (), k: int = 10, after: str | datetime | None = None,
               before: str | datetime | None = None, path: str | None = None, kind: str | None = None,
               tags: Sequence[str] = (), min_score: float | None = None, sort: str = "score",
               exact: bool = False, fusion: str = "weighted", modality: str | None = None,
               terms: Sequence[Term] | None = None, floor: bool = True,
               box: Sequence[float] | str | None = None) -> list[Hit]:
        """Items ranked by similarity to the combined query (see ``query``: ``"2:sunset"``, image paths, negatives).

        A text query's hits carry a ``confidence``, and with ``floor`` (the default) only those that stand out
        from unrelated pictures enough to be shown come back (``relevance``): possibly none. ``floor=False``
        returns the ``k`` nearest whatever they are. A query with an image term has no calibrated scale: its
        hits carry no confidence and the floor does not apply.

        ``box`` (``x0, y0, x1, y1`` in pixels of the picture as displayed): search with that region of the one
        ``image`` given, e.g. a thing in a photo to find more of it.

        ``text`` may be one term or several; ``image`` a path, bytes, PIL image, or a list of them. Once the
        library holds video or audio, videos and audio come back as timed moments (``start``, ``end``,
        ``transcript``) ranked with the photos: visual and speech evidence normalised per modality, then
        fused by ``fusion`` (``weighted`` or ``rrf``), or only one ``modality`` (``visual`` or ``speech``).
        """
        texts = [text] if isinstance(text, str) else list(text or [])
        images = [] if image is None else (list(image) if isinstance(image, (list, tuple)) else [image])
        if box is not None:
            from polymodal.media.regions import crop, parse_box

            region = parse_box(box)
            if len(images) != 1:
                raise InputError(f"a box searches with a region of one picture (--image FILE); {len(images)} "
                                 "images were given")
            images = [crop(images[0], region)]
        if terms is None:
            terms = build_terms(texts, negative, images)  # a text naming an existing file is that image
        elif texts or images or negative or not any(t.weight > 0 for t in terms):
            # built terms (the server's: a text from the network stays a text, never a path)
            raise InputError("search takes built terms with a positive one, or text/image/negative, "
                             "not both")
        self._refresh()
        filters = self._filters(after, before, path, kind, tags, min_score)
        if self.meta.model is None:  # nothing indexed yet: no model to load
            return []
        from concurrent.futures import ThreadPoolExecutor

        # The query is embedded while the tables are opened. A cold process spends ~0.2 s making the text
        # network's session and running it, which releases the GIL, and ~0.3 s importing the table reader,
        # which holds it: the import starts once the encoder is loaded (parsing its tokenizer holds the GIL
        # too), so the two overlap instead of taking turns.
        loaded = threading.Event()

        def embed() -> Any:
            try:
                encoder = self.encoder()
            finally:
                loaded.set()
            return query_vector(terms, encoder)

        with ThreadPoolExecutor(1, thread_name_prefix="polymodal-query") as pool:
            pending = pool.submit(embed)
            if self.store.items() is None:
                return []
            loaded.wait()
            self.store.prepare_reads()
            moments = modality is not None or has_moments(self.store)
            vector = pending.result()
        calibrated = all(t.text is not None for t in terms)
        reference = reference_scores(vector, self.encoder())
        if moments:
            return moment_search(self.store, vector, k, filters, sort, exact, fusion=fusion, modality=modality,
                                 reference=reference, floor=floor, calibrated=calibrated)
        check_fusion(fusion, modality)
        return run_search(self.store, vector, k, filters, sort, exact,
                          background=reference["visual"] if calibrated else None, floor=floor)

    def similar(self, item: Any, *, k: int = 10, after: str | datetime | None = None,
                before: str | datetime | None = None, path: str | None = None, kind: str | None = None,
                tags: Sequence[str] = (), min_score: float | None = None, sort: str = "score") -> list[Hit]:
        """Items most like ``item``: an item id, a path in the library, or any image (path, bytes, PIL)."""
        self._refresh()
        if self.store.items() is None:
            return []
        exclude: tuple[str, ...] = ()
        found = self.get(item) if isinstance(item, (str, os.PathLike)) else None
        if found is not None:
            _, vecs = self.store.vectors([found.id])
            vector, exclude = vecs[0], (found.id,)
        elif isinstance(item, (str, os.PathLike)) and not os.path.isfile(item):
            raise InputError(f"{os.fspath(item)} is neither an item id, a path in the library, nor an image file")
        else:
            vector = self.encoder().encode_images([item])[0]
        filters = self._filters(after, before, path, kind, tags, min_score, exclude)
        return run_search(self.store, vector, k, filters, sort)

    def browse(self, *, cursor: str | None = None, k: int = 50,
               kind: str | None = None) -> tuple[list[Hit], str | None]:
        """The library without a query: up to ``k`` items newest first (by ``date``: taken, else modified),
        and the cursor of the next page (None after the last). Paged by position, not offset: ``cursor``
        names the last item shown (its date and id), so items added meanwhile never shift a page, and items
        sharing a date (a folder copied at once, without EXIF dates) are neither skipped nor repeated."""
        import pyarrow.compute as pc

        from polymodal.library.search import KINDS

        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        if kind is not None and kind not in KINDS:
            raise InputError(f"unknown type {kind!r}; use one of {', '.join(KINDS)}")
        self._refresh()
        if self.store.items() is None:
            return [], None
        parts = [f"kind = {sql_str(kind)}"] if kind else []
        if cursor:
            when, _, last = cursor.partition("|")
            try:
                stamp = datetime.fromisoformat(when).astimezone(UTC)
            except ValueError:
                raise InputError(f"cursor {cursor[:60]!r} is not one this library gave") from None
            t = f"TIMESTAMP '{stamp.strftime('%Y-%m-%d %H:%M:%S.%f')}+00:00'"
            parts.append(f"(date < {t} OR (date = {t} AND id > {sql_str(last)}))")
        data = self.store.scan(self.store.items(), _hit_columns(), " AND ".join(parts) or None)
        if not data.num_rows:
            return [], None
        order = pc.sort_indices(data, sort_keys=[("date", "descending"), ("id", "ascending")])
        page = data.take(order[:k])
        hits = hits_from_arrow(page, [1.0] * page.num_rows)
        last_hit = hits[-1]
        more = data.num_rows > k and last_hit.date is not None
        return hits, f"{last_hit.date.isoformat()}|{last_hit.id}" if more and last_hit.date else None

    def get(self, item: str | os.PathLike[str]) -> Hit | None:
        """The item with this id, or holding this path; None when the library has neither."""
        if self.store.items() is None:
            return None
        text = os.fspath(item)
        data = self.store.items_by("id", [text], _hit_columns())
        if not data.num_rows:
            files = self.store.scan(self.store.files(), ["item_id"], f"path = {sql_str(_path_key(text))}")
            ids = [i for i in files.column("item_id").to_pylist() if i] if files.num_rows else []
            if not ids:
                return None
            data = self.store.items_by("id", ids[:1], _hit_columns())
            if not data.num_rows:
                return None
        return hits_from_arrow(data, [1.0] * data.num_rows)[0]

    def segment_thumbnail(self, item_id: str, segment_id: str) -> bytes | None:
        """The stored WebP thumbnail of a visual segment of a video (``Hit.segment``), or None."""
        return segments.thumbnail(self.store, item_id, segment_id)

    def media_info(self, item_id: str) -> dict[str, Any] | None:
        """Duration, frame rate, codecs, rotation and spoken language of a video or audio item, or None."""
        return segments.media_info(self.store, item_id)

    def thumbnail(self, item_id: str) -> bytes | None:
        """The stored WebP thumbnail of an item."""
        data = self.store.items_by("id", [item_id], ["thumbnail"]) if self.store.items() is not None else None
        return data.column("thumbnail")[0].as_py() if data is not None and data.num_rows else None

    def duplicates(self, threshold: float = dup.DEFAULT_THRESHOLD) -> list[DuplicateGroup]:
        """Groups of near-identical items, largest first; identical bytes under several paths included."""
        self._refresh()
        if not 0 < threshold <= 1:
            raise InputError(f"threshold must be in (0, 1], got {threshold}")
        if self.store.items() is None:
            return []
        ids, vecs = self.store.vectors()
        data = self.store.items_by("id", ids, _hit_columns()) if ids else None
        if data is None:
            return []
        hits = {h.id: h for h in hits_from_arrow(data, [1.0] * data.num_rows)}
        groups: list[DuplicateGroup] = []
        in_group: set[str] = set()
        for score, members in dup.group(len(ids), dup.near_duplicate_pairs(vecs, threshold)):
            in_group.update(ids[i] for i in members)
            first = vecs[members[0]]
            ordered = sorted(members, key=lambda i: -float(vecs[i] @ first))
            groups.append(DuplicateGroup(round(score, 6), tuple(hits[ids[i]] for i in ordered)))
        for h in hits.values():
            if len(h.paths) > 1 and h.id not in in_group:
                groups.append(DuplicateGroup(1.0, (h,)))
        groups.sort(key=lambda g: (-sum(len(h.paths) for h in g.items), -g.score))
        return groups

    # -- reporting --------------------------------------------------------------------------------------------

    def failures(self) -> list[Failure]:
        data = self.store.scan(self.store.files(), ["path", "error"], "error IS NOT NULL")
        if not data.num_rows:
            return []
        pairs = zip(data.column("path").to_pylist(), data.column("error").to_pylist())
        return sorted((Failure(p, r) for p, r in pairs), key=lambda f: f.path)

    def status(self) -> Status:
        self._refresh()
        files = self.store.files()
        indexed = int(files.count_rows("item_id IS NOT NULL"))
        size = 0
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                try:
                    size += os.lstat(os.path.join(dirpath, name)).st_size
                except OSError:
                    pass
        return Status(
            path=str(self.root), items=self.store.count_items(), files=indexed, model=self.meta.model,
            dim=self.meta.dim, schema_version=self.meta.schema_version, size_bytes=size,
            ann_index=self.store.has_ann_index(), failures=self.failures(), last_job=self._last_job(),
            runtimes=self._runtimes(), speech_failures=self._speech_failures(),
        )

    def _speech_failures(self) -> list[Failure]:
        """Videos indexed by their pictures only, their sound not transcribed (the media table says why)."""
        media = self.store.table(segments.MEDIA)
        if media is None or "speech_error" not in media.column_names():
            return []
        rows = self.store.scan(media, ["item_id", "speech_error"], "speech_error IS NOT NULL").to_pylist()
        if not rows:
            return []
        paths = {h.id: h.path for h in (self.get(r["item_id"]) for r in rows) if h is not None}
        return [Failure(paths[r["item_id"]], r["speech_error"]) for r in rows if r["item_id"] in paths]

    def _runtimes(self) -> dict[str, str]:
        """The loaded encoder's runtimes, else what its cached export says (status loads no model)."""
        if self._encoder is not None and self._encoder.runtimes:
            return dict(self._encoder.runtimes)
        spec = self._model if isinstance(self._model, str) else self.meta.model
        if spec is None:
            return {}
        if self._runtime == "torch":
            return {"image": "torch", "text": "torch"}
        from polymodal.models.exports import cached_runtimes

        return cached_runtimes(spec, self._precision or "fp32")

    def _last_job(self) -> JobInfo | None:
        data = self.store.scan(self.store.jobs())
        if not data.num_rows:
            return None
        row = max(data.to_pylist(), key=lambda r: r["started"])
        state = row["state"]
        if state == "running" and not pid_alive(int(row["pid"] or 0)):
            state = "interrupted"
        counts = {k: int(row[k] or 0) for k in ("added", "updated", "moved", "duplicates", "removed", "skipped",
                                                "failed")}
        return JobInfo(row["id"], row["kind"], state, row["started"], row["finished"], counts)

    def _filters(self, after: Any, before: Any, path: str | None, kind: str | None, tags: Sequence[str],
                 min_score: float | None, exclude: tuple[str, ...] = ()) -> Filters:
        return Filters(after=parse_date(after, "--after"), before=parse_date(before, "--before"), path=path,
                       kind=kind, tags=tuple(tags), min_score=min_score, exclude_ids=exclude)

    def __repr__(self) -> str:
        return f"<Library {self.root} model={self.meta.model}>"


def _migrate_if_free(root: Path, meta: LibraryMeta) -> None:
    """Migrate an older local library when it is opened, if no other process is writing it (then the first
    writer does; a reader reads it as it is, see migrations.py)."""
    from polymodal.errors import LibraryLockedError
    from polymodal.library.migrations import migrate, pending

    if not pending(meta) or meta.storage:
        return
    from polymodal.errors import LibraryError

    try:
        with write_lock(root):
            migrate(root, meta, Store(root, meta))
    except LibraryLockedError:
        pass
    except LibraryError as exc:  # undone: read as it is; the first write tries again and says why it cannot
        log.warning("%s", exc)
    except OSError:
        pass  # a library on a read-only disk is read as it is


def _hit_columns() -> list[str]:
    return ["id", "paths", "kind", "date", "width", "height", "camera", "latitude", "longitude", "tags"]

