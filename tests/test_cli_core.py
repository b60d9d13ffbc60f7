"""The polymodal command, in-process through main() and as the installed entry points."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from polymodal import __version__
from polymodal.cli import build_parser, main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version_and_help_on_every_command():
    out = subprocess.run([sys.executable, "-m", "polymodal", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"polymodal {__version__}"
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"models", "embed", "match", "classify"} <= set(commands)
    for name in commands:
        res = subprocess.run([sys.executable, "-m", "polymodal", name, "--help"], capture_output=True, text=True)
        assert res.returncode == 0 and "usage: polymodal " + name in res.stdout


def test_the_quick_exit_keeps_exit_handlers_output_and_exit_code(tmp_path):
    # run() ends the process without Python's teardown; what a user or library relies on must still happen
    marker = tmp_path / "atexit-ran"
    script = (
        "import atexit, pathlib, sys\n"
        f"atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text('yes'))\n"
        "sys.argv = ['polymodal', *sys.argv[1:]]\n"
        "from polymodal.cli import run\n"
        "run()\n"
    )
    ok = subprocess.run([sys.executable, "-c", script, "models", "--json"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) and marker.read_text() == "yes"  # all of stdout came out, handlers ran
    marker.unlink()
    bad = subprocess.run([sys.executable, "-c", script, "classify", str(tmp_path / "missing.jpg"),
                          "--labels", "a,b"], capture_output=True, text=True)
    assert bad.returncode == 4 and "missing.jpg" in bad.stderr and marker.read_text() == "yes"


def test_console_script_classifies_a_bundled_photo_offline(photos, lite):
    # `lite` first: the one-time ONNX export then happens in-process, and the script only loads it.
    exe = __import__("shutil").which("polymodal")
    assert exe, "the console script is installed by the README's install command"
    res = subprocess.run([exe, "classify", str(photos["cat"]), "--labels", "cat,dog,car,coffee", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data[0]["path"] == str(photos["cat"]) and data[0]["labels"][0]["label"] == "cat"
    assert "using the offline 'lite' model" in res.stderr  # the one-line fallback notice


def test_classify_json_shape(capsys, photos):
    code, out, _ = run(capsys, "classify", str(photos["coffee"]), str(photos["cat"]), "--labels",
                       "cat, dog ,car,coffee", "--json", "--model", "lite", "--top", "3")
    assert code == 0
    data = json.loads(out)
    assert [d["path"] for d in data] == [str(photos["coffee"]), str(photos["cat"])]
    assert [d["labels"][0]["label"] for d in data] == ["coffee", "cat"]
    for d in data:
        assert len(d["labels"]) == 3 and set(d["labels"][0]) == {"label", "score"}
        scores = [x["score"] for x in d["labels"]]
        assert scores == sorted(scores, reverse=True)


def test_embed_json_keeps_input_order_and_out_file(capsys, photos, tmp_path, lite):
    code, out, _ = run(capsys, "embed", str(photos["rocket"]), str(photos["cat"]), "--text", "a cat",
                       "--text", "a rocket", "--json", "--model", "lite")
    assert code == 0
    data = json.loads(out)
    assert [d["input"] for d in data] == [str(photos["rocket"]), str(photos["cat"]), "a cat", "a rocket"]
    direct = np.concatenate([lite.encode_images([photos["rocket"], photos["cat"]]),
                             lite.encode_texts(["a cat", "a rocket"])])
    np.testing.assert_allclose(np.array([d["embedding"] for d in data]), direct, atol=1e-5)
    target = tmp_path / "e.npy"
    code, out, _ = run(capsys, "embed", str(photos["cat"]), "-t", "x", "--out", str(target), "-m", "lite")
    assert code == 0 and np.load(target).shape == (2, 384)


def test_match_prints_a_table_and_json(capsys, photos):
    code, out, _ = run(capsys, "match", str(photos["cat"]), "--text", "a cat", "--text", "a rocket", "-m", "lite")
    assert code == 0 and "a cat" in out and str(photos["cat"]) in out
    code, out, _ = run(capsys, "match", str(photos["cat"]), "-t", "a cat", "-t", "a rocket", "-m", "lite", "--json")
    texts = json.loads(out)[0]["texts"]
    assert texts[0]["similarity"] > texts[1]["similarity"]
    assert sum(t["prob"] for t in texts) == pytest.approx(1.0, abs=1e-4)


def test_models_json(capsys):
    code, out, _ = run(capsys, "models", "--json", "--available")
    data = json.loads(out)
    assert code == 0 and [d["name"] for d in data if d["backend"] == "lite"] == ["lite"]
    assert all(d["available"] for d in data)


def test_models_exports_lists_parity_reports(capsys, lite):
    code, out, _ = run(capsys, "models", "--exports", "--json")
    reports = json.loads(out)
    assert code == 0
    lite_image = [r for r in reports if r["folder"].startswith("lite-") and r["network"] == "image"]
    assert lite_image and all(r["min_cosine"] >= 0.999 and r["passed"] for r in lite_image if r["precision"] == "fp32")
    code, out, _ = run(capsys, "models", "--exports")
    assert "TOP-10 KEPT" in out


@pytest.mark.parametrize(
    "argv,code,needle",
    [
        (["classify", "/no/such/photo.jpg", "--labels", "a,b", "-m", "lite"], 4, "/no/such/photo.jpg"),
        (["classify", "IMG", "--labels", " , ", "-m", "lite"], 4, "label list is empty"),
        (["embed", "-t", "x", "-m", "no-such-model"], 3, "names nothing"),
        (["embed", "-m", "lite"], 4, "nothing to embed"),
        (["embed", "--text", "word " * 300, "-m", "lite"], 4, "--truncate"),
    ],
)
def test_bad_input_exit_codes(capsys, photos, argv, code, needle):
    argv = [str(photos["cat"]) if a == "IMG" else a for a in argv]
    got, out, err = run(capsys, *argv)
    assert got == code
    assert needle in err and "Traceback" not in err and out == ""
