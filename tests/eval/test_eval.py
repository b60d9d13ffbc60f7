"""Datasets, tasks, reports and the CLI on real photos with the offline model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from polymodal.cli import main
from polymodal.errors import InputError
from polymodal.eval import evaluate_retrieval, evaluate_zeroshot, load_image_folder, load_retrieval
from tiny_models import make_tiny_clip

CAPTIONS = {
    "cat": ["a cat", "a tabby cat looking at the camera"],
    "coffee": ["a cup of coffee"],
    "rocket": ["a space rocket launch", "a rocket on the launch pad"],
    "motorbike": ["a motorbike"],
    "flower": ["flowers"],
}


@pytest.fixture(scope="module")
def karpathy(tmp_path_factory, photos):
    root = tmp_path_factory.mktemp("karpathy")
    (root / "imgs").mkdir()
    images = []
    for i, (name, caps) in enumerate(CAPTIONS.items()):
        dst = root / "imgs" / (photos[name].stem + photos[name].suffix)
        shutil.copy(photos[name], dst)
        images.append({"filename": dst.name, "filepath": "imgs", "split": "test" if i < 5 else "train",
                       "sentences": [{"raw": c} for c in caps]})
    images.append({"filename": "other.png", "filepath": "imgs", "split": "train", "sentences": [{"raw": "x"}]})
    path = root / "dataset_tiny.json"
    path.write_text(json.dumps({"images": images}))
    return path


def test_karpathy_csv_jsonl_and_folder_agree(karpathy, tmp_path):
    k = load_retrieval(karpathy)
    assert len(k.images) == 5 and len(k.captions) == 7
    rows = [(str(p), c) for p, i in zip(k.images, range(5)) for c in np.array(k.captions)[k.caption_image == i]]
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("image,caption\n" + "".join(f'"{p}","{c}"\n' for p, c in rows))
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("".join(json.dumps({"image": p, "caption": c}) + "\n" for p, c in rows))
    folder = tmp_path / "folder"
    folder.mkdir()
    for i, p in enumerate(k.images):
        shutil.copy(p, folder / p.name)
        (folder / p.name).with_suffix(".txt").write_text("\n".join(np.array(k.captions)[k.caption_image == i]))
    for other in (load_retrieval(csv_path), load_retrieval(jsonl), load_retrieval(folder)):
        assert sorted(other.captions) == sorted(k.captions) and len(other.images) == 5


def test_bad_datasets(tmp_path, karpathy):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"annotations": []}))
    with pytest.raises(InputError, match="not a Karpathy"):
        load_retrieval(bad)
    missing = tmp_path / "m.csv"
    missing.write_text("image,caption\nnope.jpg,a cat\n")
    with pytest.raises(InputError, match=r"not found: .*nope\.jpg"):
        load_retrieval(missing)
    folder = tmp_path / "orphans"
    folder.mkdir()
    (folder / "lonely.txt").write_text("a caption without an image")
    with pytest.raises(InputError, match="no image beside"):
        load_retrieval(folder)
    classes = tmp_path / "classes"
    (classes / "cat").mkdir(parents=True)
    (classes / "dog").mkdir()
    shutil.copy(karpathy.parent / "imgs" / "chelsea.png", classes / "cat")
    with pytest.raises(InputError, match="holds no images"):
        load_image_folder(classes)


def test_retrieval_with_lite_on_real_photos_and_the_cache(karpathy, lite, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYMODAL_CACHE_DIR", str(tmp_path))  # an empty embedding cache
    data = load_retrieval(karpathy)
    first = evaluate_retrieval(data, lite, ks=(1, 5))
    assert first.embedded == 5
    assert first.text_to_image["R@1"] >= 0.8 and first.image_to_text["R@1"] >= 0.8
    assert first.text_to_image["R@5"] == 1.0
    again = evaluate_retrieval(data, lite, ks=(1, 5))
    assert again.embedded == 0 and again.text_to_image == first.text_to_image
    with pytest.raises(InputError, match="only 5"):
        evaluate_retrieval(data, lite, ks=(10,))


def test_zeroshot_folder(tmp_path, photos, lite):
    for cls, names in {"cat": ["cat"], "coffee": ["coffee"], "rocket": ["rocket"], "flower": ["flower"]}.items():
        (tmp_path / cls).mkdir()
        for n in names:
            shutil.copy(photos[n], tmp_path / cls)
    res = evaluate_zeroshot(load_image_folder(tmp_path), lite, "simple")
    assert res.acc1 == 1.0 and res.mean_per_class_recall == 1.0 and res.acc5 is None
    assert np.trace(np.array(res.confusion)) == 4
    names = tmp_path.parent / f"{tmp_path.name}-names.txt"
    names.write_text("kitty\nespresso\nflowers\nspace rocket\n")  # sorted folders: cat, coffee, flower, rocket
    renamed = load_image_folder(tmp_path, str(names))
    assert renamed.classes == ["kitty", "espresso", "flowers", "space rocket"]
    with pytest.raises(InputError, match="1000 names for 4 class folders"):
        load_image_folder(tmp_path, "imagenet")


@pytest.mark.slow
def test_cli_json_and_report_side_by_side(karpathy, tmp_path, tiny_dir, capsys, lite):
    tiny = tiny_dir / "eval-clip"
    if not tiny.exists():
        make_tiny_clip(tiny)
    report = tmp_path / "report"
    code = main(["eval", "retrieval", "--data", str(karpathy), "--model", "lite", "--model", str(tiny)])
    assert code == 4 and "R@10 asked for, but the image gallery has only 5" in capsys.readouterr().err
    code = main(["eval", "retrieval", "--data", str(karpathy), "--model", "lite", "--model", str(tiny),
                 "--ks", "1,5", "--json", "--report", str(report)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and [r["model"] for r in out] == ["lite", str(tiny)]
    assert set(out[0]["text_to_image"]) == set(out[0]["image_to_text"]) == {"R@1", "R@5"}
    assert out[0]["text_to_image"]["R@1"] > out[1]["text_to_image"]["R@1"]  # real model beats random weights
    page = (report / "report.md").read_text()
    assert "lite" in page and "recall_at_k.png" in page
    from PIL import Image

    assert Image.open(report / "recall_at_k.png").size[0] > 300
    code = main(["eval", "zeroshot", "--data", str(tmp_path / "nope"), "--model", "lite"])
    assert code == 4 and "not a folder" in capsys.readouterr().err
