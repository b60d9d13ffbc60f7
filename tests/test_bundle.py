"""Exported bundles and the torch-free load path: parity with the source, loading where torch cannot be
imported, the export cache's identity, corruption, concurrency and a read-only cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import polymodal
from polymodal.errors import InputError, ModelLoadError
from polymodal.models.bundle import BUNDLE_FILE, BundleEncoder
from tiny_models import make_tiny_chinese_clip, make_tiny_clip, make_tiny_open_clip, make_tiny_siglip

#: what the torch-free path must never import
HEAVY = ("torch", "transformers", "sentence_transformers", "open_clip", "lancedb")

#: a subprocess prelude in which the heavy packages cannot be imported, as if they were not installed: a None in
#: sys.modules makes ``import torch`` fail and ``importlib.util.find_spec("torch")`` answer None (pylance asks)
BLOCKER = textwrap.dedent(f"""
    import sys
    for _name in {HEAVY!r}:
        sys.modules[_name] = None
    def loaded_heavy():
        return [k for k, v in sys.modules.items() if v is not None and k.split(".")[0] in {HEAVY!r}]
""")

TEXTS = ["a cat", "a cup of coffee on a table", "a rocket on its launch pad", "Ünïcödé ✓ text, 42!"]


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _run_blocked(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True,
                          env=full, timeout=120)


def test_the_import_blocker_blocks():
    """Positive control: the hook the torch-free tests rely on does refuse torch."""
    res = _run_blocked("import torch\n")
    assert res.returncode != 0 and "import of torch halted" in res.stderr
    res = _run_blocked("from transformers import AutoModel\n")
    assert res.returncode != 0 and "ModuleNotFoundError" in res.stderr


@pytest.fixture(scope="module")
def lite_bundle(tmp_path_factory, lite) -> Path:
    from polymodal.models.exports import export

    return export("lite", tmp_path_factory.mktemp("bundles") / "lite")


def test_lite_bundle_equals_its_source_and_loads_without_torch(lite_bundle, photos, tmp_path):
    meta = json.loads((lite_bundle / BUNDLE_FILE).read_text())
    assert meta["source"]["spec"] == "lite" and meta["dim"] == 384 and meta["postprocess"]["kind"] == "conse"
    assert {n: e["runtime"] for n, e in meta["networks"].items()} == {"image": "onnx-fp32", "text": "onnx-fp32"}
    imgs = [str(photos[n]) for n in ("cat", "coffee", "rocket", "flower")]
    torch_ref = polymodal.load_model("lite", runtime="torch")
    want_i, want_t = torch_ref.encode_images(imgs), torch_ref.encode_texts(TEXTS)
    out = tmp_path / "emb.npz"
    res = _run_blocked(f"""
        import numpy as np, sys, polymodal
        m = polymodal.load_model({str(lite_bundle)!r})
        np.savez({str(out)!r}, i=m.encode_images({imgs!r}), t=m.encode_texts({TEXTS!r}))
        print(m.runtimes, m.info.backend, loaded_heavy())
    """)
    assert res.returncode == 0, res.stderr
    assert "'image': 'onnx-fp32'" in res.stdout and "lite []" in res.stdout
    got = np.load(out)
    assert _cos(got["i"], want_i).min() >= 0.999  # the export's fp32 parity bound
    assert _cos(got["t"], want_t).min() >= 0.999


@pytest.mark.slow
@pytest.mark.parametrize("make", [make_tiny_clip, make_tiny_siglip, make_tiny_chinese_clip, make_tiny_open_clip],
                         ids=["clip", "siglip", "chinese_clip", "open_clip"])
def test_every_backend_bundles_and_loads_without_torch(make, tmp_path, photos):
    from polymodal.models.exports import export

    src = make(tmp_path / "model")
    bundle = export(str(src), tmp_path / "bundle")
    ref = polymodal.load_model(str(src), runtime="torch")
    imgs = [str(photos[n]) for n in ("cat", "coffee", "china")]
    texts = ["a cat", "a red car", "a photo of a small dog"]
    out = tmp_path / "emb.npz"
    res = _run_blocked(f"""
        import numpy as np, polymodal
        m = polymodal.load_model({str(bundle)!r})
        np.savez({str(out)!r}, i=m.encode_images({imgs!r}), t=m.encode_texts({texts!r}), s=m.logit_scale)
    """)
    assert res.returncode == 0, res.stderr
    got = np.load(out)
    assert _cos(got["i"], ref.encode_images(imgs)).min() >= 0.999
    assert _cos(got["t"], ref.encode_texts(texts)).min() >= 0.999
    assert float(got["s"]) == pytest.approx(ref.logit_scale, rel=1e-6)


def test_a_warm_cache_loads_the_spec_without_torch(lite, photos, tmp_path):
    """After the first load (the `lite` fixture), `load_model("lite")` reads the cached bundle."""
    polymodal.load_model("lite")  # make sure this session's cache holds the fp32 bundle
    out = tmp_path / "t.npy"
    res = _run_blocked(f"""
        import numpy as np, polymodal
        m = polymodal.load_model("lite")
        np.save({str(out)!r}, m.encode_texts(["a cat"]))
        m.encode_images([{str(photos["cat"])!r}])
        print(type(m).__name__, m.name)
    """)
    assert res.returncode == 0, res.stderr
    assert "BundleEncoder lite" in res.stdout
    assert _cos(np.load(out), lite.encode_texts(["a cat"]))[0] >= 0.999


@pytest.mark.slow
def test_cli_commands_on_a_warm_cache_import_no_torch(lite, photos, tmp_path):
    polymodal.load_model("lite")
    for argv in (["embed", "--text", "a cat", "--json", "-m", "lite"],
                 ["classify", str(photos["cat"]), "--labels", "cat,dog,car", "-m", "lite", "--json"]):
        res = _run_blocked(f"""
            import sys
            from polymodal.cli import main
            code = main({argv!r})
            assert not loaded_heavy()
            sys.exit(code)
        """)
        assert res.returncode == 0, (argv, res.stderr)
    assert '"cat"' in res.stdout


@pytest.mark.slow
def test_a_changed_weight_file_is_exported_again(tmp_path, monkeypatch):
    from polymodal.models import runtime

    monkeypatch.setenv("POLYMODAL_CACHE_DIR", str(tmp_path / "cache"))
    src = make_tiny_clip(tmp_path / "m", seed=3)
    calls: list[str] = []
    real = runtime._export_fp32

    def counting(module, example, dynamic, path):  # type: ignore[no-untyped-def]
        calls.append(path.name)
        real(module, example, dynamic, path)

    monkeypatch.setattr(runtime, "_export_fp32", counting)
    first = polymodal.load_model(str(src))
    assert isinstance(first, BundleEncoder) and sorted(calls) == ["image-fp32.onnx", "text-fp32.onnx"]
    calls.clear()
    assert isinstance(polymodal.load_model(str(src)), BundleEncoder) and calls == []
    make_tiny_clip(src, seed=4)  # same place, new weights
    changed = polymodal.load_model(str(src))
    assert sorted(calls) == ["image-fp32.onnx", "text-fp32.onnx"]
    assert changed.folder != first.folder


def _copy(bundle: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "copy"
    shutil.copytree(bundle, dest)
    return dest


def _cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "polymodal", *argv], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_a_truncated_network_is_named_with_exit_3(lite_bundle, tmp_path):
    bundle = _copy(lite_bundle, tmp_path)
    text = bundle / "text.onnx"
    text.write_bytes(text.read_bytes()[: text.stat().st_size // 2])
    res = _cli("embed", "--text", "a cat", "-m", str(bundle))
    assert res.returncode == 3, res.stderr
    assert "text.onnx" in res.stderr and "damaged" in res.stderr and "Traceback" not in res.stderr


def test_a_flipped_byte_is_caught_not_computed_with(lite_bundle, tmp_path):
    bundle = _copy(lite_bundle, tmp_path)
    text = bundle / "text.onnx"
    data = bytearray(text.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different weights
    text.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"text\.onnx is damaged"):
        polymodal.load_model(str(bundle)).encode_texts(["a cat"])


def test_a_byte_flipped_after_a_good_load_is_caught_even_with_its_mtime_put_back(lite_bundle, tmp_path):
    # a network's digest is remembered per file version; the version includes the change time, which a
    # write moves and no user-space call sets back, so restoring size and mtime does not hide the change
    bundle = _copy(lite_bundle, tmp_path)
    polymodal.load_model(str(bundle)).encode_texts(["a cat"])  # checked and remembered as good
    text = bundle / "text.onnx"
    before = text.stat()
    with open(text, "r+b") as fh:
        fh.seek(before.st_size // 2)
        byte = fh.read(1)
        fh.seek(before.st_size // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(text, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert text.stat().st_mtime_ns == before.st_mtime_ns and text.stat().st_size == before.st_size
    with pytest.raises(ModelLoadError, match=r"text\.onnx is damaged"):
        polymodal.load_model(str(bundle)).encode_texts(["a cat"])


@pytest.mark.parametrize("damage,message", [
    (lambda b: (b / "tokenizer.json").unlink(), "tokenizer.json"),
    (lambda b: (b / BUNDLE_FILE).unlink(), "holds no model"),
    (lambda b: (b / BUNDLE_FILE).write_text("{not json"), BUNDLE_FILE),
])
def test_a_bundle_missing_a_part_is_refused_by_name(lite_bundle, tmp_path, damage, message):
    bundle = _copy(lite_bundle, tmp_path)
    damage(bundle)
    res = _cli("embed", "--text", "a cat", "-m", str(bundle))
    assert res.returncode == 3, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr


def test_a_bundle_from_a_newer_format_is_refused(lite_bundle, tmp_path):
    bundle = _copy(lite_bundle, tmp_path)
    meta = json.loads((bundle / BUNDLE_FILE).read_text())
    meta["version"] = 99
    (bundle / BUNDLE_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="format version 99"):
        polymodal.load_model(str(bundle))


def test_bundle_options_are_checked(lite_bundle):
    with pytest.raises(InputError, match="ONNX Runtime only"):
        polymodal.load_model(str(lite_bundle), runtime="torch")
    with pytest.raises(InputError, match="exported at fp32, not int8"):
        polymodal.load_model(str(lite_bundle), precision="int8")


@pytest.mark.slow
def test_a_damaged_or_foreign_cache_entry_is_rebuilt(tmp_path, monkeypatch, polymodal_log):
    monkeypatch.setenv("POLYMODAL_CACHE_DIR", str(tmp_path / "cache"))
    src = make_tiny_clip(tmp_path / "m", seed=5)
    first = polymodal.load_model(str(src))
    want = first.encode_texts(["a cat"])
    (first.folder / "text.onnx").write_bytes(b"garbage")
    again = polymodal.load_model(str(src))  # the size check fails at load: rebuilt, said once
    assert any("unusable" in m and "exporting it again" in m for m in polymodal_log)
    np.testing.assert_allclose(again.encode_texts(["a cat"]), want, atol=1e-6)
    meta = json.loads((again.folder / BUNDLE_FILE).read_text())
    meta["polymodal"] = "0.0.1"  # written by another polymodal version
    (again.folder / BUNDLE_FILE).write_text(json.dumps(meta))
    polymodal_log.clear()
    third = polymodal.load_model(str(src))
    assert any("written by polymodal 0.0.1" in m for m in polymodal_log)
    assert json.loads((third.folder / BUNDLE_FILE).read_text())["polymodal"] == polymodal.__version__


@pytest.mark.slow
def test_two_processes_loading_a_new_model_at_once_export_it_once(tmp_path):
    src = make_tiny_clip(tmp_path / "m", seed=6)
    env = {**os.environ, "POLYMODAL_CACHE_DIR": str(tmp_path / "cache")}
    argv = [sys.executable, "-m", "polymodal", "-v", "embed", "--text", "a cat", "-m", str(src), "--json"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    exports = sum(err.count("exporting the text network") for _, err in outs)
    assert exports == 1, outs
    assert json.loads(outs[0][0]) == json.loads(outs[1][0])


@pytest.mark.slow
def test_a_read_only_cache_still_works_and_says_so(tmp_path, monkeypatch, polymodal_log):
    if os.geteuid() == 0:
        # root writes through permission bits; a file where the cache's folder should be is unwritable for all
        cache = tmp_path / "cache"
        cache.mkdir()
        (cache / "bundles").write_text("not a folder")
    else:
        cache = tmp_path / "cache"
        cache.mkdir(mode=0o500)
    monkeypatch.setenv("POLYMODAL_CACHE_DIR", str(cache))
    src = make_tiny_clip(tmp_path / "m", seed=7)
    enc = polymodal.load_model(str(src))
    assert isinstance(enc, BundleEncoder) and enc.encode_texts(["a cat"]).shape == (1, 16)
    assert sum("cannot be written" in m for m in polymodal_log) == 1


def test_models_export_cli(tmp_path, lite):
    out = tmp_path / "lite-bundle"
    res = _cli("models", "export", "lite", str(out), "--json")
    assert res.returncode == 0, res.stderr
    meta = json.loads(res.stdout)
    assert meta["source"]["spec"] == "lite" and (out / "text.onnx").is_file() and (out / "backgrounds.npz").is_file()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    res = _cli("models", "export", "lite", str(taken))
    assert res.returncode == 3 and "not an empty directory" in res.stderr
    assert (taken / "notes.txt").read_text() == "mine"


def test_a_library_built_with_a_model_is_searched_with_its_bundle(lite_bundle, photos, tmp_path):
    from polymodal.library import Library

    folder = tmp_path / "photos"
    folder.mkdir()
    for n in ("cat", "coffee", "rocket"):
        shutil.copy(photos[n], folder / photos[n].name)
    lib = Library.open(tmp_path / "lib", model="lite")
    lib.add([folder])
    want = [(h.path, h.score) for h in lib.search(text="a cat", k=3, floor=False)]
    assert lib.status().runtimes == {"image": "onnx-fp32", "text": "onnx-fp32"}
    fresh = Library.open(tmp_path / "lib")  # status of a library whose model is not loaded: from the cache
    assert fresh.status().runtimes == {"image": "onnx-fp32", "text": "onnx-fp32"} and fresh._encoder is None
    res = _cli("status", "--library", str(tmp_path / "lib"))
    assert "runtime   image onnx-fp32, text onnx-fp32" in res.stdout, res.stderr
    with_bundle = Library.open(tmp_path / "lib", model=str(lite_bundle))
    got = [(h.path, h.score) for h in with_bundle.search(text="a cat", k=3, floor=False)]
    assert [p for p, _ in got] == [p for p, _ in want]
    assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-5)


@pytest.mark.slow
def test_a_fine_tuned_lite_bundles_and_loads_without_torch(tmp_path, photos, lite):
    import torch

    from polymodal.models.lite.tuned import save_tuned

    torch.manual_seed(0)
    src = tmp_path / "my-lite"
    save_tuned(src, torch.randn(384, 1280) * 0.02, torch.zeros(384), logit_scale=20.0, wise_alpha=0.5)
    from polymodal.models.exports import export

    bundle = export(str(src), tmp_path / "bundle")
    ref = polymodal.load_model(str(src), runtime="torch")
    imgs = [str(photos[n]) for n in ("cat", "coffee", "rocket")]
    out = tmp_path / "emb.npy"
    res = _run_blocked(f"""
        import numpy as np, polymodal
        m = polymodal.load_model({str(bundle)!r})
        np.save({str(out)!r}, m.encode_images({imgs!r}))
        assert m.logit_scale == 20.0 and m.info.backend == "lite-tuned"
    """)
    assert res.returncode == 0, res.stderr
    assert _cos(np.load(out), ref.encode_images(imgs)).min() >= 0.999


def test_a_warm_cache_search_imports_no_torch_nor_lancedb(lite, photos, tmp_path):
    from polymodal.library import Library

    folder = tmp_path / "photos"
    folder.mkdir()
    for n in ("cat", "coffee", "rocket", "flower"):
        shutil.copy(photos[n], folder / photos[n].name)
    Library.open(tmp_path / "lib", model="lite").add([folder])
    res = _run_blocked(f"""
        import sys
        from polymodal.cli import main
        code = main(["search", "a cat", "--library", {str(tmp_path / "lib")!r}, "--json", "-k", "2"])
        assert not loaded_heavy()
        sys.exit(code)
    """)
    assert res.returncode == 0, res.stderr
    hits = json.loads(res.stdout)
    assert hits[0]["path"].endswith("chelsea.png")
