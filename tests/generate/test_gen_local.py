"""The local backend end to end on a tiny random diffusers pipeline loaded from a directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from polymodal.errors import InputError, ModelLoadError, ModelSpecError, PromptTooLongError
from polymodal.generation import GeneratedImage, generate, load_generator, parse_generator_spec, score
from polymodal.generation.provenance import read_provenance


def test_spec_path_detects_the_pipeline_directory(tiny_sd: Path, generator) -> None:
    assert parse_generator_spec(str(tiny_sd)).scheme == "diffusers"
    assert parse_generator_spec(f"diffusers:{tiny_sd}").target == str(tiny_sd)
    assert generator.name == f"diffusers:{tiny_sd.resolve()}"
    assert type(generator.pipe).__name__ == "StableDiffusionPipeline"


@pytest.mark.slow
def test_n_images_of_the_asked_size_with_provenance(generator, scorer, tmp_path: Path) -> None:
    steps_seen: list[tuple[int, int]] = []
    images = generate("a red car on a street", n=3, keep=3, model=generator, size="48x32", steps=2, guidance=2.0,
                      negative="blurry", seed=11, encoder=scorer, out=tmp_path,
                      progress=lambda d, t: steps_seen.append((d, t)))
    assert len(images) == 3 and all(isinstance(i, GeneratedImage) for i in images)
    assert sorted(i.seed for i in images) == [11, 12, 13]
    assert steps_seen[-1] == (6, 6)  # 3 candidates x 2 steps, reported as they run
    assert [d for d, _ in steps_seen] == sorted(d for d, _ in steps_seen)
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(pngs) == 3 and len(list(tmp_path.glob("*.json"))) == 3
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
    for img in images:
        assert img.path is not None and img.path.exists() and img.sidecar is not None
        with Image.open(img.path) as im:
            assert im.size == (48, 32) and im.format == "PNG"
            chunks = dict(im.text)
        assert chunks["prompt"] == "a red car on a street"
        assert chunks["negative_prompt"] == "blurry"
        assert chunks["seed"] == str(img.seed)
        assert chunks["model"] == generator.name
        assert chunks["steps"] == "2" and float(chunks["guidance"]) == 2.0
        assert float(chunks["score"]) == pytest.approx(img.score, abs=1e-6)
        assert "Negative prompt: blurry" in chunks["parameters"] and f"Seed: {img.seed}" in chunks["parameters"]
        record = read_provenance(img.path)
        assert record == json.loads(json.dumps(img.metadata()))
        side = json.loads(img.sidecar.read_text())
        assert side["image"] == img.path.name and side["format"] == 1
        assert {k: side[k] for k in record} == record


@pytest.mark.slow
def test_same_seed_same_bytes_and_each_seed_alone(generator, scorer, tmp_path: Path) -> None:
    a = generate("a bowl of fruit", n=2, keep=2, model=generator, size=32, steps=1, seed=5, encoder=scorer,
                 out=tmp_path / "a")
    b = generate("a bowl of fruit", n=2, keep=2, model=generator, size=32, steps=1, seed=5, encoder=scorer,
                 out=tmp_path / "b")
    by_seed_a = {i.seed: i.path.read_bytes() for i in a}
    by_seed_b = {i.seed: i.path.read_bytes() for i in b}
    assert by_seed_a == by_seed_b
    # the second candidate's recorded seed alone makes the same pixels
    alone = generate("a bowl of fruit", n=1, model=generator, size=32, steps=1, seed=6, encoder=scorer)
    assert alone[0].image.tobytes() == next(i for i in a if i.seed == 6).image.tobytes()
    other = generate("a bowl of fruit", n=1, model=generator, size=32, steps=1, seed=99, encoder=scorer)
    assert other[0].image.tobytes() != alone[0].image.tobytes()


def test_unseeded_run_records_a_seed_that_reproduces_it(generator, scorer) -> None:
    first = generate("a lake", n=1, model=generator, size=32, steps=1, encoder=scorer)
    assert isinstance(first[0].seed, int)
    again = generate("a lake", n=1, model=generator, size=32, steps=1, seed=first[0].seed, encoder=scorer)
    assert again[0].image.tobytes() == first[0].image.tobytes()


def test_reranking_keeps_the_best_k_in_order(generator, scorer) -> None:
    every = generate("a small green cup", n=5, keep=5, model=generator, size=32, steps=1, seed=100, encoder=scorer)
    kept = generate("a small green cup", n=5, keep=2, model=generator, size=32, steps=1, seed=100, encoder=scorer)
    # scores computed independently of generate(), straight from the encoder
    independent = score([i.image for i in every], "a small green cup", scorer)
    by_seed = {i.seed: s for i, s in zip(every, independent)}
    best_two = sorted(by_seed, key=lambda s: -by_seed[s])[:2]
    assert [i.seed for i in kept] == best_two
    assert [i.rank for i in kept] == [1, 2] and all(i.candidates == 5 for i in kept)
    assert [i.score for i in kept] == pytest.approx([by_seed[s] for s in best_two], abs=1e-6)
    assert kept[0].score >= kept[1].score
    assert len({round(s, 6) for s in independent}) > 1  # distinct candidates, so the order is a real choice
    assert all(i.scorer == scorer.name for i in kept)
    from polymodal.generation.metrics import diversity

    spread = diversity(scorer.encode_images([i.image for i in every]))
    assert spread > 0 and all(i.diversity == pytest.approx(spread, abs=1e-6) for i in kept)


def test_default_settings_and_presets(generator) -> None:
    from polymodal.generation.local import _preset_for

    d = generator.defaults()
    assert (d.width, d.height) == (16, 16)  # unet sample_size 8 x vae scale 2, what the pipeline itself uses
    sd_turbo = _preset_for("stabilityai/sd-turbo")
    assert sd_turbo is not None and (sd_turbo.steps, sd_turbo.guidance, sd_turbo.width) == (1, 0.0, 512)
    assert _preset_for("/models/sd-turbo") == sd_turbo
    assert _preset_for("/cache/models--stabilityai--sd-turbo/snapshots/abc") == sd_turbo


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"prompt": ""}, "empty prompt"),
    ({"prompt": "   "}, "empty prompt"),
    ({"n": 0}, "n must be"),
    ({"n": -2}, "n must be"),
    ({"keep": 0}, "keep must be"),
    ({"n": 2, "keep": 3}, "keep=3 is more than the n=2"),
    ({"size": "33x32"}, "multiples of 8; the nearest is 32x32"),
    ({"size": "0x32"}, "must be positive"),
    ({"size": "8192x8192"}, "larger than 4096"),
    ({"size": "big"}, "not WIDTHxHEIGHT"),
    ({"steps": 0}, "steps must be at least 1"),
    ({"seed": -1}, "seed must be"),
])
def test_bad_input_is_refused_before_anything_is_written(generator, scorer, tmp_path: Path, kwargs, needle) -> None:
    args = {"prompt": "a cat", "model": generator, "size": 32, "steps": 1, "seed": 0, "encoder": scorer,
            "out": tmp_path / "out", **kwargs}
    with pytest.raises(InputError, match=needle):
        generate(**args)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_over_long_prompt_says_how_the_model_cuts_it(generator, scorer) -> None:
    words = "a painting of " + "a tall red lighthouse by the sea and " * 12 + "a zebra"  # ~110 tokens
    with pytest.raises(PromptTooLongError) as err:
        generate(words, n=1, model=generator, size=32, steps=1, seed=0, encoder=scorer)
    msg = str(err.value)
    assert "reads 77 including its start and end tokens and silently drops the rest" in msg and "--truncate" in msg
    import re

    tokens = generator.pipe.tokenizer(words, verbose=False)["input_ids"]
    assert f"drop the {len(tokens) - 77} tokens from 'a tall red lighthouse" in msg  # what it drops is named
    assert re.search(r"read up to '\.\.\.[a-z ]+by the sea and'", msg)
    cut = generate(words, n=1, model=generator, size=32, steps=1, seed=0, encoder=scorer, truncate=True)
    assert cut[0].prompt == words and cut[0].prompt_used is not None
    assert cut[0].prompt_used.startswith("a painting of") and "zebra" not in cut[0].prompt_used
    # the pipeline's own truncation: the cut prompt makes the same image as the full one
    same = generate(cut[0].prompt_used, n=1, model=generator, size=32, steps=1, seed=0, encoder=scorer)
    assert same[0].image.tobytes() == cut[0].image.tobytes()


def test_a_pipeline_that_is_not_text_to_image_is_refused(tmp_path: Path) -> None:
    from tiny_pipeline import make_unconditional

    ddpm = make_unconditional(tmp_path / "ddpm")
    with pytest.raises(ModelSpecError, match="DDPMPipeline, which is not a text-to-image pipeline"):
        load_generator(str(ddpm))


def test_an_encoder_directory_is_not_a_generator(tiny_clip_dir: Path) -> None:
    with pytest.raises(ModelSpecError, match="holds no image generator"):
        load_generator(str(tiny_clip_dir))
    with pytest.raises(ModelSpecError, match="transformers model"):
        load_generator(f"diffusers:{tiny_clip_dir}")


def test_hub_id_not_in_cache_names_the_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="hf download stabilityai/sd-turbo"):
        load_generator("diffusers:stabilityai/sd-turbo")
    with pytest.raises(ModelSpecError, match="write 'diffusers:stabilityai/sd-turbo'"):
        load_generator("stabilityai/sd-turbo")


@pytest.mark.slow
def test_generated_images_score_like_the_encoder_says(generator, scorer) -> None:
    res = generate("a photo of a dog", n=2, keep=2, model=generator, size=32, steps=1, seed=3, encoder=scorer)
    img = scorer.encode_images([r.image for r in res])
    txt = scorer.encode_texts(["a photo of a dog"])
    cos = (img @ txt.T)[:, 0]
    assert [r.score for r in res] == pytest.approx(list(2.5 * np.maximum(cos, 0)), abs=1e-5)


@pytest.mark.slow
def test_default_model_loads_from_the_hub_cache_offline(tiny_sd: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch, scorer) -> None:
    """The tiny pipeline placed in a hub cache as stabilityai/sd-turbo: the default spec finds it without a
    network and applies sd-turbo's settings (1 step, guidance 0, 512x512 unless asked otherwise)."""
    import shutil

    import huggingface_hub.constants as hc

    commit = "0" * 40
    repo = tmp_path / "hub" / "models--stabilityai--sd-turbo"
    shutil.copytree(tiny_sd, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE")  # the cache alone must keep it off the network
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    gen = load_generator()
    assert gen.name == "diffusers:stabilityai/sd-turbo"
    d = gen.defaults()
    assert (d.steps, d.guidance, d.width, d.height) == (1, 0.0, 512, 512)
    out = generate("a cat", model=gen, n=1, size=32, seed=0, encoder=scorer)
    assert out[0].steps == 1 and out[0].guidance == 0.0 and out[0].model == "diffusers:stabilityai/sd-turbo"
