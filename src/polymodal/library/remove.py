"""``remove``: forget items or paths. Files on disk are never touched."""

from __future__ import annotations

from collections.abc import Callable

from polymodal.errors import InputError
from polymodal.library.scan import under
from polymodal.library.store import Store, sql_in


def remove_targets(store: Store, targets: list[str], path_key: Callable[[str], str]) -> int:
    """Remove each target (an item id, a path, or a folder); every target must match something."""
    import pyarrow as pa

    files = store.scan(store.files(), ["path", "item_id"])
    file_items = dict(zip(files.column("path").to_pylist(), files.column("item_id").to_pylist())) if files.num_rows \
        else {}
    items = store.scan(store.items(), ["id", "paths"]) if store.items() is not None else None
    item_paths = dict(zip(items.column("id").to_pylist(), items.column("paths").to_pylist())) if items is not None \
        and items.num_rows else {}

    drop_paths: set[str] = set()
    for target in targets:
        if target in item_paths:
            drop_paths.update(item_paths[target])
            drop_paths.update(p for p, i in file_items.items() if i == target)
            continue
        key = path_key(target)
        matched = {p for p in file_items if under(p, key)}
        matched |= {p for paths in item_paths.values() for p in paths if under(p, key)}
        if not matched:
            raise InputError(f"{target} is neither an item id nor a path in the library; nothing was removed")
        drop_paths |= matched

    touched = {i for i, paths in item_paths.items() if drop_paths.intersection(paths)}
    keep_rows = {i: sorted(set(item_paths[i]) - drop_paths) for i in touched}
    delete = [i for i, paths in keep_rows.items() if not paths]
    update = [i for i, paths in keep_rows.items() if paths]
    rows = None
    if update:
        schema = store.schema()
        rows = store.items_by("id", update)
        paths = pa.array([keep_rows[i] for i in rows.column("id").to_pylist()], type=pa.list_(pa.string()))
        rows = rows.set_column(rows.schema.get_field_index("paths"), "paths", paths).select(schema.names).cast(schema)
    if touched:
        store.commit_items(rows, delete)
    store.delete(store.files(), "path", sorted(drop_paths))
    return len(drop_paths)


__all__ = ["remove_targets", "sql_in"]
