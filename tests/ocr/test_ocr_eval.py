"""``eval ocr``: CER and line accuracy, on the drawn set and on hand-made cases."""

from __future__ import annotations

import json
import shutil

import pytest

from polymodal.errors import InputError
from polymodal.ocr.evaluate import edit_distance, load_ocr_truth, normalise

#: CER bound on the drawn set. Measured: 4.96% with every drawn line read exactly (line accuracy 1.0). All of
#: it is the astronaut photo's own text: the name patch on her suit, read as "HAWLEY" (6 characters the ground
#: truth does not list, over 121 true characters). 10% leaves room for a changed resampler or thread count to
#: flip a few characters (one is ~0.8%); a drawn line lost or misread fails the line-accuracy check below, and
#: a long line (19 characters, +16%) or the upside-down one read unturned also breaks the CER bound.
MAX_CER = 0.10


def test_edit_distance_and_normalise() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3
    assert edit_distance("北京", "北京") == 0
    assert normalise("Ｈｅｌｌｏ  World") == "helloworld"  # NFKC folds full-width forms; spaces go


def test_truth_formats(tmp_path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "a.txt").write_text("first\n\nsecond\n", encoding="utf-8")
    (tmp_path / "b.png").write_bytes(b"")  # no sidecar: not part of the set
    assert [(s.image.endswith("a.png"), s.lines) for s in load_ocr_truth(tmp_path)] == [(True, ["first", "second"])]
    rows = tmp_path / "set.jsonl"
    rows.write_text(json.dumps({"image": "a.png", "lines": ["x"]}) + "\n", encoding="utf-8")
    assert load_ocr_truth(rows)[0].image == str(tmp_path / "a.png")
    rows.write_text('{"image": "a.png"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"set.jsonl:1"):
        load_ocr_truth(rows)
    with pytest.raises(InputError):
        load_ocr_truth(tmp_path / "nothing")


def test_eval_ocr_on_the_drawn_set(rendered, tmp_path, capsys) -> None:
    from polymodal.cli import main

    folder = tmp_path / "set"
    folder.mkdir()
    for page in rendered:
        shutil.copy(page.path, folder / page.path.name)
        (folder / page.path.name).with_suffix(".txt").write_text("\n".join(d.text for d in page.lines),
                                                                  encoding="utf-8")
    assert main(["eval", "ocr", "--data", str(folder), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == len(rendered)
    assert out["lines"] == sum(len(p.lines) for p in rendered)
    assert out["cer"] <= MAX_CER, out
    assert out["line_accuracy"] == 1.0, out
