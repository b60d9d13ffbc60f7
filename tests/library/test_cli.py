"""The library commands end to end through ``polymodal.cli.main``: output forms, exit codes, messages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from polymodal.cli import main


@pytest.fixture(autouse=True)
def _reuse_lite(lite_encoder, monkeypatch):
    """Every command would load lite afresh (seconds each); hand them the session's copy through the real hook."""
    import polymodal.models as models

    real = models.load_model

    def load_model(spec=None, **kw):
        return lite_encoder if spec in (None, "lite") else real(spec, **kw)

    monkeypatch.setattr(models, "load_model", load_model)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cli_lib(tmp_path, photo_dir, capsys) -> tuple[Path, Path]:
    Image.open(photo_dir / "cat.png").convert("RGB").resize((300, 200)).save(photo_dir / "cat_small.jpg", quality=85)
    (photo_dir / "copies").mkdir()
    shutil.copy(photo_dir / "coffee.png", photo_dir / "copies" / "coffee_again.png")
    (photo_dir / "broken.jpg").write_text("not an image")
    lib = tmp_path / "lib"
    code, out, _ = run(capsys, "index", photo_dir, "--library", lib, "--model", "lite")
    assert code == 0
    assert "added 9" in out and "duplicates 1" in out and "failed 1" in out and "broken.jpg" in out
    return lib, photo_dir


def test_index_then_search_as_in_the_readme(tmp_path, photo_dir, capsys, monkeypatch):
    monkeypatch.setenv("POLYMODAL_LIBRARY", str(tmp_path / "default-lib"))
    code, out, _ = run(capsys, "index", photo_dir)
    assert code == 0 and "added 8" in out
    code, out, _ = run(capsys, "search", "a cat")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["#", "SCORE", "CONF", "DATE", "PATH"]
    assert lines[1].split()[-1] == str(photo_dir / "cat.png")
    code, out, _ = run(capsys, "index", photo_dir)
    assert "skipped 8" in out and "added 0" in out


def test_search_json_and_query_terms(cli_lib, capsys):
    lib, photos = cli_lib
    code, out, _ = run(capsys, "search", "a cat", "-L", lib, "-k", "3", "--json", "--all")
    hits = json.loads(out)
    assert code == 0 and len(hits) == 3 and {"id", "path", "score", "kind"} <= set(hits[0])
    assert Path(hits[0]["path"]).name in ("cat.png", "cat_small.jpg") and hits[0]["kind"] == "image"
    _, out, _ = run(capsys, "search", "an animal", "--not", "a cat", "-L", lib, "-k", "3", "--json", "--all")
    assert not {Path(h["path"]).name for h in json.loads(out)} & {"cat.png", "cat_small.jpg"}
    _, out, _ = run(capsys, "search", "--image", photos / "rocket.jpg", "-L", lib, "-k", "1", "--json")
    assert json.loads(out)[0]["path"].endswith("rocket.jpg")
    _, out, _ = run(capsys, "search", "5:a cup of coffee", "a cat", "-L", lib, "-k", "1", "--json")
    assert Path(json.loads(out)[0]["path"]).name in ("coffee.png", "coffee_again.png")
    _, out, _ = run(capsys, "search", "a cat", "-L", lib, "--path", "copies/*", "--json", "--all")
    assert [Path(h["path"]).name for h in json.loads(out)] in (["coffee.png"], ["coffee_again.png"])
    _, out, _ = run(capsys, "search", "a cat", "-L", lib, "--min-score", "0.99", "--all")
    assert out.strip() == "no matches"
    _, out, _ = run(capsys, "search", "a cat", "-L", lib, "--after", "2000", "--before", "2100", "--sort", "date",
                    "--type", "image", "--json", "--all")
    assert len(json.loads(out)) == 9


def test_similar_duplicates_tag_status_remove(cli_lib, capsys, tmp_path):
    lib, photos = cli_lib
    _, out, _ = run(capsys, "similar", photos / "cat.png", "-L", lib, "-k", "1", "--json")
    assert Path(json.loads(out)[0]["path"]).name == "cat_small.jpg"
    code, out, _ = run(capsys, "duplicates", "-L", lib, "--json")
    groups = json.loads(out)
    assert code == 0 and len(groups) == 2
    names = [sorted(Path(p).name for h in g["items"] for p in h["paths"]) for g in groups]
    assert ["cat.png", "cat_small.jpg"] in names and ["coffee.png", "coffee_again.png"] in names
    _, out, _ = run(capsys, "duplicates", "-L", lib)
    assert "2 files" in out
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ncoffee\nrocket\nmotorcycle\nhorse\nflower\n")
    code, out, _ = run(capsys, "tag", "-L", lib, "--labels", labels)
    assert code == 0 and out.startswith("tagged")
    _, out, _ = run(capsys, "search", "an animal", "-L", lib, "--tag", "cat", "--json", "--all")
    assert {Path(h["path"]).name for h in json.loads(out)} == {"cat.png", "cat_small.jpg"}
    code, out, _ = run(capsys, "status", "-L", lib, "--json")
    st = json.loads(out)
    assert code == 0 and st["items"] == 9 and st["model"] == "lite"
    assert st["failures"] == [{"path": str(photos / "broken.jpg"), "reason": "not a recognised image format"}]
    _, out, _ = run(capsys, "status", "-L", lib)
    assert "lite" in out and "broken.jpg" in out and "failures  1" in out
    code, out, _ = run(capsys, "remove", photos / "copies", "-L", lib)
    assert code == 0 and "removed 1 path" in out
    _, out, _ = run(capsys, "status", "-L", lib, "--json")
    assert json.loads(out)["items"] == 9 and json.loads(out)["files"] == 9
    cat_id = json.loads(run(capsys, "search", "a cat", "-L", lib, "-k", "1", "--json")[1])[0]["id"]
    assert run(capsys, "remove", cat_id, "-L", lib)[0] == 0
    assert json.loads(run(capsys, "status", "-L", lib, "--json")[1])["items"] == 8


def test_errors_have_exit_codes_and_say_what_to_do(cli_lib, capsys, tmp_path):
    lib, photos = cli_lib
    code, _, err = run(capsys, "index", photos, "-L", lib, "--model", "hf:openai/clip-vit-base-patch32")
    assert code == 2 and "polymodal reindex --model hf:openai/clip-vit-base-patch32" in err
    code, _, err = run(capsys, "search", "a cat", "-L", tmp_path / "nope")
    assert code == 4 and "no library at" in err and "polymodal index" in err
    code, _, err = run(capsys, "index", tmp_path / "missing", "-L", lib)
    assert code == 4 and "no such file or directory" in err
    code, _, err = run(capsys, "status", "-L", photos)
    assert code == 4 and "not a polymodal library" in err
    code, _, err = run(capsys, "remove", "nothing-like-this", "-L", lib)
    assert code == 4 and "nothing was removed" in err
    code, _, err = run(capsys, "search", "-L", lib)
    assert code == 4 and "nothing to search for" in err


def test_library_commands_pass_runtime_and_precision_to_load_model(cli_lib, capsys, monkeypatch, photos):
    """The model options of embed/match/classify reach load_model from the library commands too."""
    import polymodal.models as models

    lib, photo_dir = cli_lib
    seen: list[dict] = []
    reuse = models.load_model  # the autouse fixture's: hands back the session's lite

    def recording(spec=None, **kw):
        seen.append(kw)
        return reuse(spec, **kw)

    monkeypatch.setattr(models, "load_model", recording)
    options = ("--runtime", "torch", "--precision", "fp32", "--device", "cpu", "--batch-size", "4")
    assert run(capsys, "search", "a cat", "-L", lib, "--json", *options)[0] == 0
    assert run(capsys, "similar", photos["horse"], "-L", lib, "--json", "--runtime", "onnx", "--precision",
               "int8")[0] == 0  # a file outside the library: embedded with the library's model
    assert run(capsys, "tag", "-L", lib, "--labels", "cat,cup", *options)[0] == 0
    assert run(capsys, "index", photo_dir, "-L", tmp_lib := lib.parent / "lib2", "--model", "lite", *options)[0] == 0
    assert run(capsys, "reindex", "-L", tmp_lib, "--runtime", "onnx")[0] == 0
    want = {"device": "cpu", "batch_size": 4, "runtime": "torch", "precision": "fp32"}
    assert seen[0] == want and seen[1] == {"device": None, "batch_size": None, "runtime": "onnx", "precision": "int8"}
    assert seen[2] == want and seen[3] == want
    assert seen[4] == {"device": None, "batch_size": None, "runtime": "onnx", "precision": None}


@pytest.mark.parametrize("bad", [("--runtime", "tensorflow"), ("--precision", "fp16")])
@pytest.mark.parametrize("command", [("search", "a cat"), ("similar", "x"), ("index", "."), ("tag",), ("reindex",),
                                     ("serve",)])
def test_a_bad_runtime_or_precision_is_a_usage_error(command, bad, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command, *bad])
    assert exit_.value.code == 2 and "invalid choice" in capsys.readouterr().err
