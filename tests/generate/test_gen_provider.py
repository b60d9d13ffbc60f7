"""The OpenAI-compatible backend against a loopback server speaking the published Images API shapes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from images_api_server import KEY, ImagesAPI, Reply
from PIL import Image

from polymodal.cli import main
from polymodal.errors import ContentPolicyError, InputError, ProviderAuthError, ProviderError, RateLimitError
from polymodal.generation import generate, load_generator
from polymodal.generation.provenance import read_provenance


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ImagesAPI]:
    with ImagesAPI() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.base}/v1")
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.delenv("http_proxy", raising=False)
        monkeypatch.delenv("HTTP_PROXY", raising=False)
        yield server


def test_request_shape_b64_and_provenance(api: ImagesAPI, scorer, tmp_path: Path) -> None:
    images = generate("a lighthouse at dusk", model="openai:dall-e-2", n=3, keep=2, size="256x256",
                      encoder=scorer, out=tmp_path)
    assert len(api.posts) == 1
    post = api.posts[0]
    assert post["path"] == "/v1/images/generations"
    assert post["body"] == {"model": "dall-e-2", "prompt": "a lighthouse at dusk", "n": 3, "size": "256x256",
                            "response_format": "b64_json"}
    assert post["headers"]["Authorization"] == f"Bearer {KEY}"
    assert [i.rank for i in images] == [1, 2] and images[0].score >= images[1].score
    for img in images:
        assert img.seed is None and img.steps is None and img.guidance is None
        assert img.model == "openai:dall-e-2" and img.candidates == 3
        with Image.open(img.path) as im:
            assert im.size == (256, 256)
        record = read_provenance(img.path)
        assert record["revised_prompt"] == "a lighthouse at dusk, digital art"
        assert record["seed"] is None and record["model"] == "openai:dall-e-2"
        assert json.loads(img.sidecar.read_text())["score"] == pytest.approx(img.score)


def test_url_results_are_fetched_without_the_key(api: ImagesAPI, scorer) -> None:
    gen = load_generator("openai:dall-e-2", response_format="url")
    images = generate("a cat", model=gen, n=2, keep=2, size=256, encoder=scorer)
    assert api.posts[0]["body"]["response_format"] == "url"
    fetches = [r for r in api.requests if r["path"].startswith("/files/")]
    assert len(fetches) == 2 and all("Authorization" not in r["headers"] for r in fetches)
    assert all(i.image.size == (256, 256) for i in images)


def test_default_is_one_image_of_the_api_default_size(api: ImagesAPI, scorer) -> None:
    images = generate("a cat", model="openai", encoder=scorer)
    assert api.posts[0]["body"]["n"] == 1 and api.posts[0]["body"]["size"] == "1024x1024"
    assert api.posts[0]["body"]["model"] == "dall-e-2" and len(images) == 1


def test_dall_e_3_takes_one_image_per_request(api: ImagesAPI, scorer) -> None:
    generate("a cat", model="openai:dall-e-3", n=2, keep=1, size="1024x1024", encoder=scorer)
    assert [p["body"]["n"] for p in api.posts] == [1, 1]


def test_gpt_image_gets_no_response_format(api: ImagesAPI, scorer) -> None:
    generate("a cat", model="openai:gpt-image-1", n=1, size="1024x1024", encoder=scorer)
    assert "response_format" not in api.posts[0]["body"]


def test_wrong_key_is_refused_and_never_shown(api: ImagesAPI, monkeypatch: pytest.MonkeyPatch, scorer,
                                              capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    wrong = "sk-wrong-Key0987654321zyx"
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    with pytest.raises(ProviderAuthError, match="refused the API key \\(HTTP 401") as err:
        generate("a cat", model="openai:dall-e-2", size=256, encoder=scorer)
    assert wrong not in str(err.value) and "Key0987654321" not in str(err.value)
    code = main(["-v", "generate", "a cat", "--provider", "openai", "--size", "256x256", "--out", str(tmp_path),
                 "--encoder", "lite"])
    out, errtext = capsys.readouterr()
    assert code == 2
    assert "401" in errtext and "OPENAI_API_KEY" in errtext
    assert wrong not in out + errtext and "Key0987654321" not in out + errtext
    assert list(tmp_path.iterdir()) == []


def test_missing_key_says_which_variable(api: ImagesAPI, monkeypatch: pytest.MonkeyPatch, scorer) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ProviderAuthError, match=r"needs an API key .*none was given; set OPENAI_API_KEY"):
        generate("a cat", model="openai:dall-e-2", size=256, encoder=scorer)
    assert "Authorization" not in api.posts[0]["headers"]


def test_429_waits_the_retry_after_then_succeeds(api: ImagesAPI, scorer) -> None:
    rate = {"message": "Rate limit reached for images per minute", "type": "requests", "param": None,
            "code": "rate_limit_exceeded"}
    api.script = [Reply(429, rate, {"retry-after": "1"})]
    images = generate("a cat", model="openai:dall-e-2", size=256, encoder=scorer)
    assert len(images) == 1 and len(api.posts) == 2
    assert api.posts[1]["time"] - api.posts[0]["time"] >= 0.95


def test_429_with_a_long_retry_after_is_reported_not_waited(api: ImagesAPI, scorer) -> None:
    rate = {"message": "Rate limit reached", "type": "requests", "param": None, "code": "rate_limit_exceeded"}
    api.script = [Reply(429, rate, {"retry-after": "120"})]
    start = time.monotonic()
    with pytest.raises(RateLimitError, match=r"rate-limiting .*asked to wait 120 s") as err:
        generate("a cat", model="openai:dall-e-2", size=256, encoder=scorer)
    assert err.value.retry_after == 120 and time.monotonic() - start < 10 and len(api.posts) == 1


def test_server_errors_are_retried_then_reported(api: ImagesAPI, scorer) -> None:
    boom = {"message": "The server had an error", "type": "server_error", "param": None, "code": None}
    api.script = [Reply(500, boom, {"retry-after-ms": "10"})] * 3
    with pytest.raises(ProviderError, match="HTTP 500: The server had an error"):
        generate("a cat", model="openai:dall-e-2", size=256, encoder=scorer)
    assert len(api.posts) == 3  # the first try and two retries


def test_content_policy_refusal(api: ImagesAPI, scorer, capsys: pytest.CaptureFixture[str],
                                tmp_path: Path) -> None:
    policy = {"message": "Your request was rejected as a result of our safety system.",
              "type": "invalid_request_error", "param": None, "code": "content_policy_violation"}
    api.script = [Reply(400, policy)]
    with pytest.raises(ContentPolicyError, match="content policy: Your request was rejected"):
        generate("something", model="openai:dall-e-2", size=256, encoder=scorer)
    api.script = [Reply(400, policy)]
    assert main(["generate", "something", "--provider", "openai", "--size", "256", "--out", str(tmp_path),
                 "--encoder", "lite"]) == 4
    assert "content policy" in capsys.readouterr().err


def test_bad_size_known_model_refused_before_any_request(api: ImagesAPI, scorer) -> None:
    with pytest.raises(InputError, match="dall-e-3 draws only 1024x1024, 1792x1024, 1024x1792"):
        generate("a cat", model="openai:dall-e-3", size="256x256", encoder=scorer)
    assert api.posts == []


def test_bad_size_unknown_model_is_the_server_s_400(api: ImagesAPI, scorer, monkeypatch: pytest.MonkeyPatch) -> None:
    import images_api_server

    monkeypatch.setitem(images_api_server.SIZES, "local-sd", {"512x512"})
    with pytest.raises(InputError, match="cannot draw that size for local-sd: '300x300' is not one of"):
        generate("a cat", model="openai:local-sd", size="300x300", encoder=scorer)


def test_seed_steps_and_negative_are_refused(api: ImagesAPI, scorer) -> None:
    for kwargs in ({"seed": 1}, {"steps": 4}, {"guidance": 3.0}, {"negative": "blur"}):
        name = next(iter(kwargs))
        with pytest.raises(InputError, match=f"cannot take {name}: the Images API has no such parameter"):
            generate("a cat", model="openai:dall-e-2", size=256, encoder=scorer, **kwargs)
    assert api.posts == []


def test_unreachable_endpoint(monkeypatch: pytest.MonkeyPatch, scorer) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with pytest.raises(ProviderError, match=f"cannot reach the image API at http://127.0.0.1:{port}/v1"):
        generate("a cat", model="openai:dall-e-2", size=256, encoder=scorer)


def test_cli_end_to_end_json(api: ImagesAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["generate", "a red bicycle", "--provider", "openai", "--model", "dall-e-2", "-n", "2",
                 "--keep", "2", "--size", "512x512", "--response-format", "url", "--out", str(tmp_path),
                 "--encoder", "lite", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = json.loads(out)
    assert [r["rank"] for r in rows] == [1, 2] and rows[0]["score"] >= rows[1]["score"]
    assert all(Path(r["path"]).exists() and r["seed"] is None for r in rows)
    assert api.posts[0]["body"]["response_format"] == "url"
    assert KEY not in out + err


def test_retry_after_forms() -> None:
    import email.utils

    from polymodal.generation.provider import _redact, _retry_after

    assert _retry_after({"retry-after": "3"}) == 3.0
    assert _retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25  # OpenAI's finer header first
    assert _retry_after({"retry-after": "soon"}) is None
    assert 25 <= _retry_after({"retry-after": email.utils.formatdate(time.time() + 30, usegmt=True)}) <= 30
    assert _retry_after({}) is None
    assert _redact(f"bad key {KEY} and sk-proj-abc***xyz", KEY) == "bad key *** and sk-***"
