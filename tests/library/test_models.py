"""A library records its model: another model is refused with the fix named; ``reindex`` rebuilds embeddings."""

from __future__ import annotations

import json
import shutil

import pytest

from polymodal.errors import ModelMismatchError
from polymodal.library import Library
from polymodal.library.schema import SCHEMA_VERSION
from tiny_models import make_tiny_clip


def test_model_dim_and_schema_are_recorded(tmp_path, photo_dir, lite_encoder):
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    lib.add([photo_dir / "cat.png"])
    meta = json.loads((tmp_path / "lib" / "library.json").read_text())
    assert (meta["model"], meta["dim"], meta["schema_version"], meta["backend"]) == ("lite", 384, SCHEMA_VERSION,
                                                                                      "lite")


def test_another_model_is_refused_naming_reindex(tmp_path, photo_dir, lite_encoder):
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    lib.add([photo_dir / "cat.png"])
    with pytest.raises(ModelMismatchError) as err:
        Library.open(tmp_path / "lib", model="hf:openai/clip-vit-base-patch32")
    msg = str(err.value)
    assert "polymodal reindex --model hf:openai/clip-vit-base-patch32" in msg and "'lite'" in msg
    assert err.value.exit_code == 2


def test_a_newer_schema_is_refused(tmp_path, photo_dir, lite_encoder):
    Library.open(tmp_path / "lib", model=lite_encoder).add([photo_dir / "cat.png"])
    meta = json.loads((tmp_path / "lib" / "library.json").read_text())
    meta["schema_version"] = SCHEMA_VERSION + 1
    (tmp_path / "lib" / "library.json").write_text(json.dumps(meta))
    with pytest.raises(Exception, match="newer than this polymodal"):
        Library.open(tmp_path / "lib")


@pytest.mark.slow
def test_reindex_rebuilds_embeddings_with_another_model(tmp_path, photo_dir, lite_encoder):
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    lib.add([photo_dir])
    (photo_dir / "horse.png").unlink()  # an item whose file is gone cannot be re-embedded
    tiny = str(make_tiny_clip(tmp_path / "tiny-clip"))
    report = lib.reindex(tiny)
    assert (report.updated, report.removed) == (7, 1)
    assert "horse.png" in report.failures[0].path
    reopened = Library.open(tmp_path / "lib")
    assert (reopened.model, reopened.meta.dim, reopened.status().items) == (tiny, 16, 7)
    assert len(reopened.search("a cat", k=3, floor=False)) == 3  # the tiny model answers, whatever its ranking
    # Only the new table is left, and the lite model is now the one refused.
    tables = set(reopened.store._table_names())
    assert tables == {reopened.meta.items_table, "files", "jobs"}
    with pytest.raises(ModelMismatchError, match="reindex --model lite"):
        Library.open(tmp_path / "lib", model="lite")
    # Back to lite: scores are those of lite again.
    lib2 = Library.open(tmp_path / "lib")
    lib2.reindex(lite_encoder)
    assert lib2.search("a cat", k=1, floor=False)[0].path.endswith("cat.png")


@pytest.mark.slow
def test_a_failed_reindex_leaves_the_library_as_it_was(tmp_path, photo_dir, lite_encoder, monkeypatch):
    lib = Library.open(tmp_path / "lib", model=lite_encoder)
    lib.add([photo_dir])
    before = lib.search("a cat", k=3, floor=False)

    def boom(batch):
        raise RuntimeError("out of memory, say")

    monkeypatch.setattr(lite_encoder, "_embed_image_batch", boom)
    with pytest.raises(RuntimeError):
        lib.reindex(lite_encoder)
    monkeypatch.undo()
    again = Library.open(tmp_path / "lib", model=lite_encoder)
    assert [h.id for h in again.search("a cat", k=3, floor=False)] == [h.id for h in before]
    assert again.status().last_job.state == "failed"
    shutil.rmtree(photo_dir / "sub", ignore_errors=True)
    again.reindex()  # the default: the library's own model; drops the half-built table
    assert len(again.store._table_names()) == 3


@pytest.mark.slow
def test_runtime_torch_finds_the_same_hits_as_the_default(tmp_path, photo_dir, lite_encoder):
    """``Library.open(runtime=, precision=)`` loads the encoder with them: torch and ONNX rank alike."""
    Library.open(tmp_path / "lib", model=lite_encoder).add([photo_dir])
    default = Library.open(tmp_path / "lib")
    torch_lib = Library.open(tmp_path / "lib", runtime="torch", precision="fp32")
    for query in ("a cat", "a cup of coffee", "a rocket"):
        a = default.search(text=query, k=5, exact=True, floor=False)
        b = torch_lib.search(text=query, k=5, exact=True, floor=False)
        assert [h.id for h in a] == [h.id for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-3)
    assert torch_lib.encoder().runtimes["text"] == "torch"
