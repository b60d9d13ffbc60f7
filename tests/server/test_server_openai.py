"""The official ``openai`` client against a running server on loopback, with only base_url changed."""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "generate"))  # tiny_pipeline


def _client(url: str, key: str = "unused"):
    import openai

    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)


def test_text_embeddings_match_the_encoder(live, lite):
    client = _client(live.url)
    texts = ["a cat", "a rocket launch"]
    r = client.embeddings.create(model=lite.name, input=texts)  # the client asks for base64 by default
    got = np.array([d.embedding for d in r.data], np.float32)
    assert [d.index for d in r.data] == [0, 1] and r.model == lite.name and r.object == "list"
    np.testing.assert_allclose(got, lite.encode_texts(texts), atol=1e-5)
    one = client.embeddings.create(model=lite.name, input="a cat", encoding_format="float")
    np.testing.assert_allclose(one.data[0].embedding, got[0], atol=1e-5)


def test_image_embeddings_from_a_data_url_and_plain_base64(live, lite, photos):
    client = _client(live.url)
    raw = photos["rocket"].read_bytes()
    b64 = base64.b64encode(raw).decode()
    r = client.embeddings.create(model=lite.name, input=[f"data:image/jpeg;base64,{b64}", b64, "a rocket"])
    got = np.array([d.embedding for d in r.data], np.float32)
    want = lite.encode_images([raw])[0]
    np.testing.assert_allclose(got[0], want, atol=1e-5)
    np.testing.assert_allclose(got[1], want, atol=1e-5)
    np.testing.assert_allclose(got[2], lite.encode_texts(["a rocket"])[0], atol=1e-5)
    # the image is closer to its caption than to a cat
    assert float(got[0] @ got[2]) > float(got[0] @ lite.encode_texts(["a cat"])[0])


def test_errors_come_back_as_openai_errors(live, lite):
    import openai

    client = _client(live.url)
    with pytest.raises(openai.NotFoundError) as exc:
        client.images.generate(prompt="a cat")
    assert "no image generator" in exc.value.message
    with pytest.raises(openai.BadRequestError) as bad:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert bad.value.code == "model_not_found" and bad.value.param == "model"
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=lite.name, input=[[1, 2, 3]])
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=lite.name, input="data:image/png;base64,AAAA")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=lite.name, input="x", dimensions=7)


def test_a_token_is_the_api_key(served_library, lite):
    import openai
    from server_helpers import TOKEN, LiveServer

    from polymodal.server import ServerConfig, create_app

    lib, _ = served_library
    app = create_app(ServerConfig(library=lib.root, token=TOKEN), library=lib)
    with LiveServer(app) as server:
        with pytest.raises(openai.AuthenticationError):
            _client(server.url, "wrong").embeddings.create(model=lite.name, input="a cat")
        r = _client(server.url, TOKEN).embeddings.create(model=lite.name, input="a cat")
        assert len(r.data[0].embedding) == lite.dim


@pytest.fixture(scope="module")
def generating(tmp_path_factory, served_library):
    from server_helpers import LiveServer
    from tiny_pipeline import make_tiny_sd

    from polymodal.generation import load_generator
    from polymodal.server import ServerConfig, create_app

    pipe = make_tiny_sd(tmp_path_factory.mktemp("tiny-sd") / "sd")
    lib, _ = served_library
    gen = load_generator(f"diffusers:{pipe}", device="cpu")
    app = create_app(ServerConfig(library=lib.root), library=lib, generator=gen)
    with LiveServer(app) as server:
        yield server, gen


@pytest.mark.slow
def test_images_generate_with_a_tiny_local_pipeline(generating):
    server, gen = generating
    client = _client(server.url)
    r = client.images.generate(model=gen.name, prompt="a red square", n=2, size="64x64",
                               response_format="b64_json", user="test")
    assert r.created > 0 and len(r.data) == 2
    for d in r.data:
        img = Image.open(io.BytesIO(base64.b64decode(d.b64_json)))
        assert img.size == (64, 64) and img.format == "PNG"
    r = client.images.generate(prompt="a red square", n=1, size="64x64", response_format="url")
    import httpx

    png = httpx.get(r.data[0].url, timeout=30)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    import openai

    with pytest.raises(openai.BadRequestError):
        client.images.generate(prompt="x", n=11)
    with pytest.raises(openai.BadRequestError):
        client.images.generate(prompt="   ")
