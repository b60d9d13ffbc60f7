"""Config keys for generation: ``generator``, ``openai_base_url`` and ``openai_api_key`` from the config file
and the environment (the official client's variables win), used by ``generate`` and ``serve``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from images_api_server import KEY, ImagesAPI

from polymodal.cli import main
from polymodal.config import load_settings
from polymodal.errors import ConfigError
from polymodal.generation import generate, load_generator


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write the config file the code under test reads (POLYMODAL_CONFIG), with no OpenAI variables set."""
    path = tmp_path / "config.toml"
    monkeypatch.setenv("POLYMODAL_CONFIG", str(path))
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "POLYMODAL_GENERATOR", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(var, raising=False)

    def write(**keys: object) -> Path:
        path.write_text("".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in keys.items()), encoding="utf-8")
        return path

    return write


def test_keys_are_read_from_the_file_and_the_environment_wins(config, monkeypatch: pytest.MonkeyPatch) -> None:
    config(generator="openai:dall-e-3", openai_base_url="http://file.example/v1", openai_api_key="sk-from-file")
    s = load_settings()
    assert (s.generator, s.openai_base_url, s.openai_api_key) == ("openai:dall-e-3", "http://file.example/v1",
                                                                   "sk-from-file")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env.example/v1")
    monkeypatch.setenv("POLYMODAL_GENERATOR", "openai:gpt-image-1")
    s = load_settings()
    assert (s.generator, s.openai_base_url, s.openai_api_key) == ("openai:gpt-image-1", "http://env.example/v1",
                                                                   "sk-from-env")


def test_the_key_is_masked_in_repr_and_logs(config, caplog: pytest.LogCaptureFixture) -> None:
    config(openai_api_key="sk-VerySecret-123456", openai_base_url="http://127.0.0.1:9/v1")
    s = load_settings()
    assert "VerySecret" not in repr(s) and "VerySecret" not in str(s) and "***" in repr(s)
    gen = load_generator("openai:dall-e-2")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("polymodal").debug("settings %r, generator %r", s, gen)
    assert "VerySecret" not in caplog.text and "VerySecret" not in repr(gen)


def test_a_wrong_type_is_refused_without_echoing_the_value(config) -> None:
    path = config()
    path.write_text('openai_api_key = ["sk-Leaked-9876"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="'openai_api_key' must be a string") as err:
        load_settings()
    assert "Leaked" not in str(err.value)


def test_the_provider_uses_the_config_file_when_no_variable_is_set(config, scorer) -> None:
    with ImagesAPI() as api:
        config(openai_base_url=f"{api.base}/v1", openai_api_key=KEY)
        images = generate("a lighthouse", model="openai:dall-e-2", size=256, encoder=scorer)
    assert len(images) == 1 and len(api.posts) == 1
    assert api.posts[0]["headers"]["Authorization"] == f"Bearer {KEY}"


def test_the_official_variables_win_over_the_file(config, monkeypatch: pytest.MonkeyPatch, scorer) -> None:
    with ImagesAPI() as api:
        config(openai_base_url="http://127.0.0.1:9/v1", openai_api_key="sk-not-this-one")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{api.base}/v1")
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        generate("a lighthouse", model="openai:dall-e-2", size=256, encoder=scorer)
    assert api.posts[0]["headers"]["Authorization"] == f"Bearer {KEY}"


@pytest.mark.slow
def test_generate_without_model_uses_the_configured_generator(config, tiny_sd: Path, scorer,
                                                              tmp_path: Path) -> None:
    from polymodal.generation.provenance import read_provenance

    config(generator=f"diffusers:{tiny_sd}")
    gen = load_generator(device="cpu")
    assert gen.name == f"diffusers:{tiny_sd}"
    # `polymodal generate` without --model passes model=None, as here
    [image] = generate("a red square", model=None, n=1, size="16x16", steps=2, seed=3, encoder=scorer,
                       device="cpu", out=tmp_path / "out")
    assert image.model == f"diffusers:{tiny_sd}" and read_provenance(image.path)["model"] == image.model


@pytest.mark.slow
def test_serve_uses_the_configured_generator(config, tiny_sd: Path, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    """`polymodal serve` without --generator serves the configured one on /v1/images/generations."""
    from fastapi.testclient import TestClient

    import polymodal.server.run as server_run
    from polymodal.server import create_app

    config(generator=f"diffusers:{tiny_sd}")
    seen = []
    monkeypatch.setattr(server_run, "run", lambda cfg, **kw: seen.append(cfg))  # no socket: the config is what counts
    assert main(["serve", "--library", str(tmp_path / "lib"), "--model", "lite", "--port", "0"]) == 0
    [cfg] = seen
    assert cfg.generator == f"diffusers:{tiny_sd}"
    with TestClient(create_app(cfg), base_url="http://127.0.0.1:8000") as client:
        assert client.get("/api/version").json()["generator"] == f"diffusers:{tiny_sd}"
        r = client.post("/v1/images/generations", json={"prompt": "a red square", "n": 1, "size": "64x64"})
        assert r.status_code == 200 and len(r.json()["data"]) == 1
    # an explicit --generator wins over the file
    assert main(["serve", "--library", str(tmp_path / "lib"), "--generator", "openai:dall-e-2", "--port", "0"]) == 0
    assert seen[-1].generator == "openai:dall-e-2"
