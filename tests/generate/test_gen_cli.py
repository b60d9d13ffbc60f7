"""``polymodal generate`` end to end with a local pipeline directory, and the generator registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from polymodal.cli import main
from polymodal.errors import ModelSpecError
from polymodal.generation import (
    GeneratorBackend,
    generate,
    generator_backends,
    list_generators,
    parse_generator_spec,
    register_generator,
)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_generate_json_keeps_the_best_and_reproduces(tiny_sd: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    args = ["generate", "a red car", "--model", str(tiny_sd), "-n", "3", "--keep", "2", "--size", "40x32",
            "--steps", "1", "--seed", "21", "--encoder", "lite", "--json"]
    code, out, err = _run(capsys, *args, "--out", str(tmp_path / "a"))
    assert code == 0, err
    rows = json.loads(out)
    assert len(rows) == 2 and rows[0]["score"] >= rows[1]["score"] and [r["rank"] for r in rows] == [1, 2]
    assert {"path", "score", "seed", "prompt", "model", "steps", "guidance", "scorer"} <= set(rows[0])
    assert all(r["seed"] in (21, 22, 23) and r["candidates"] == 3 and r["scorer"] == "lite" for r in rows)
    for r in rows:
        with Image.open(r["path"]) as im:
            assert im.size == (40, 32)
    code, out2, err = _run(capsys, *args, "--out", str(tmp_path / "b"))
    assert code == 0, err
    again = json.loads(out2)
    assert [r["seed"] for r in again] == [r["seed"] for r in rows]
    assert [Path(r["path"]).read_bytes() for r in again] == [Path(r["path"]).read_bytes() for r in rows]


@pytest.mark.slow
def test_generate_table_and_add_to_library(tiny_sd: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    lib = tmp_path / "lib"
    code, out, err = _run(capsys, "generate", "a blue coffee cup", "--model", f"diffusers:{tiny_sd}", "-n", "2",
                          "--size", "32", "--steps", "1", "--seed", "3", "--encoder", "lite",
                          "--out", str(tmp_path / "imgs"), "--add", "--library", str(lib))
    assert code == 0, err
    assert out.splitlines()[0].split() == ["PATH", "CLIPSCORE", "SEED"]
    saved = out.splitlines()[1].split()[0]
    assert "kept 1 of 2 candidates, scored with lite" in err and "added 1 image(s)" in err
    from polymodal.library.api import Library

    library = Library.open(lib, create=False)
    assert library.model == "lite"
    hit = library.get(saved)
    assert hit is not None
    found = library.search(text="a blue coffee cup", k=5, floor=False)
    assert [Path(h.path).resolve() for h in found] == [Path(saved).resolve()]


@pytest.mark.parametrize(("extra", "code", "needle"), [
    (["-n", "0"], 4, "n must be a whole number of at least 1"),
    (["--keep", "5", "-n", "2"], 4, "keep=5 is more than the n=2"),
    (["--size", "30x30"], 4, "multiples of 8"),
    (["--size", "12x"], 4, "not WIDTHxHEIGHT"),
])
def test_bad_options_exit_codes(tiny_sd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                extra: list[str], code: int, needle: str) -> None:
    got, _out, err = _run(capsys, "generate", "a cat", "--model", str(tiny_sd), "--steps", "1", "--encoder", "lite",
                          "--out", str(tmp_path / "o"), *extra)
    assert got == code and needle in err
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_bad_prompt_and_model_exit_codes(tiny_sd: Path, tiny_clip_dir: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "generate", "  ", "--model", str(tiny_sd), "--out", str(tmp_path))
    assert code == 4 and "empty prompt" in err
    code, _, err = _run(capsys, "generate", "a cat", "--model", str(tiny_clip_dir), "--out", str(tmp_path))
    assert code == 3 and "holds no image generator" in err
    (tmp_path / "f").write_text("x")
    code, _, err = _run(capsys, "generate", "a cat", "--model", str(tiny_sd), "--out", str(tmp_path / "f"))
    assert code == 4 and "is a file" in err
    long = "a painting of " + "a tall red lighthouse by the sea and " * 12
    code, _, err = _run(capsys, "generate", long, "--model", str(tiny_sd), "--size", "32", "--steps", "1",
                        "--encoder", "lite", "--out", str(tmp_path / "o"))
    assert code == 4 and "reads 77 including its start and end tokens" in err and "--truncate" in err


def test_registry_shape_and_plugins(generator, scorer) -> None:
    assert {"diffusers", "openai"} <= set(generator_backends())
    names = {e.name for e in list_generators()}
    assert "diffusers:stabilityai/sd-turbo" in names and "openai:dall-e-3" in names
    for bad, needle in [("", "empty generator spec"), ("diffusers:", "names no model"),
                        ("nope:thing", "names nothing polymodal can load")]:
        with pytest.raises(ModelSpecError, match=needle):
            parse_generator_spec(bad)
    # a plugin registered through the same call the built-ins use, loaded through the real spec path
    register_generator(GeneratorBackend("fake", "test plugin", ("fake:x",), lambda spec, device=None, **o: generator))
    try:
        assert parse_generator_spec("fake:x").scheme == "fake"
        out = generate("a cat", model="fake:x", n=1, size=32, steps=1, seed=0, encoder=scorer)
        assert out[0].image.size == (32, 32)
    finally:
        from polymodal.generation import registry

        registry.REGISTRY.unregister("fake")


def test_top_level_api_is_the_function() -> None:
    import polymodal
    import polymodal.generation.local  # importing the package must not shadow the function

    assert callable(polymodal.generate) and polymodal.generate is generate
    assert polymodal.GeneratedImage.__name__ == "GeneratedImage"
