"""Generation through an OpenAI-compatible Images API (``POST {base}/images/generations``).

Reads ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` as the official client does, then the config file's
``openai_base_url`` / ``openai_api_key`` (explicit arguments win over both; see polymodal.config), sends
``prompt, n, size, model, response_format`` and decodes ``b64_json`` or fetches ``url`` results. HTTP 429 and
5xx are retried after the server's ``retry-after`` (else a short backoff); every error becomes a typed
polymodal error whose message never holds the key. Plain ``urllib`` keeps this free of extra dependencies.
"""

from __future__ import annotations

import base64
import email.utils
import io
import json
import logging
import re
import time
import urllib.error
import urllib.request
from typing import Any

from polymodal.errors import (
    ContentPolicyError,
    InputError,
    PolymodalError,
    ProviderAuthError,
    ProviderError,
    RateLimitError,
)
from polymodal.generation.base import Generator, ProgressCallback, check_prompt
from polymodal.generation.registry import GeneratorEntry, GeneratorSpec
from polymodal.generation.types import Candidate, GenerationRequest, Settings

log = logging.getLogger("polymodal")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "dall-e-2"  # what the Images API itself uses when no model is named


# What OpenAI's own models accept (Images API reference); other servers' models are checked by the server.
_MODELS: dict[str, dict[str, Any]] = {
    "dall-e-2": {"sizes": ("256x256", "512x512", "1024x1024"), "max_n": 10, "max_chars": 1000},
    "dall-e-3": {"sizes": ("1024x1024", "1792x1024", "1024x1792"), "max_n": 1, "max_chars": 4000},
    # gpt-image models always answer base64 and refuse response_format
    "gpt-image-1": {"sizes": ("1024x1024", "1536x1024", "1024x1536"), "max_n": 10, "max_chars": 32000,
                    "b64_only": True},
}

#: retried statuses: rate limit, server errors, and the two the official client also retries
_RETRY = {408, 409, 429, 500, 502, 503, 504}


def list_known() -> list[GeneratorEntry]:
    return [GeneratorEntry(f"openai:{m}", "openai", "OpenAI Images API, sizes " + ", ".join(v["sizes"]))
            for m, v in _MODELS.items()]


def load(spec: GeneratorSpec, device: str | None = None, **options: Any) -> OpenAIImages:
    return OpenAIImages(str(spec) if spec.target else f"openai:{DEFAULT_MODEL}", spec.target or DEFAULT_MODEL,
                        **options)


def _redact(text: str, key: str | None) -> str:
    """Servers echo keys in 401 messages ("Incorrect API key provided: sk-abc***"); none leaves this module."""
    if key:
        text = text.replace(key, "***")
    return re.sub(r"\b(sk|pk|key)-[A-Za-z0-9_\-*]{3,}", r"\1-***", text)


def _retry_after(headers: Any) -> float | None:
    """Seconds the server asked to wait: ``retry-after-ms`` (OpenAI), ``retry-after`` as seconds or HTTP date."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # unreadable: fall back to the backoff
    return max(0.0, parsed.timestamp() - time.time())


class OpenAIImages(Generator):
    backend = "openai"
    seedable = False
    default_n = 1  # every image is billed

    def __init__(self, name: str, model: str, *, api_key: str | None = None, base_url: str | None = None,
                 response_format: str = "b64_json", timeout: float = 180.0, max_retries: int = 2,
                 max_wait: float = 60.0) -> None:
        super().__init__(name)
        from polymodal.config import load_settings

        settings = load_settings()  # OPENAI_BASE_URL / OPENAI_API_KEY first, then the config file's keys
        self.model = model
        self.base_url = (base_url or settings.openai_base_url or DEFAULT_BASE_URL).rstrip("/")
        self._key = api_key or settings.openai_api_key
        if response_format not in ("b64_json", "url"):
            raise InputError(f"response_format must be b64_json or url, got {response_format!r}")
        self.response_format = response_format
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_wait = max_wait  # a retry-after longer than this is reported instead of waited out

    def __repr__(self) -> str:  # never the key
        return f"<OpenAIImages {self.model} at {self.base_url}>"

    def defaults(self) -> Settings:
        return Settings(0, 0.0, 1024, 1024)  # the Images API's own default size, which every model above draws

    def check(self, request: GenerationRequest) -> str | None:
        check_prompt(request.prompt)
        known = _MODELS.get(self.model)
        size = f"{request.width}x{request.height}"
        if known is None:
            return None
        if size not in known["sizes"]:
            raise InputError(f"size {size}: {self.model} draws only {', '.join(known['sizes'])}")
        if len(request.prompt) > known["max_chars"]:
            raise InputError(
                f"prompt is {len(request.prompt)} characters; {self.model} takes at most {known['max_chars']} and "
                "refuses longer ones (the API does not cut them); shorten it"
            )
        return None

    # -- HTTP ----------------------------------------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/{path}"
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "polymodal"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        data = json.dumps(body).encode("utf-8")
        for attempt in range(self.max_retries + 1):
            req = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    payload = resp.read()
                try:
                    parsed = json.loads(payload)
                except ValueError:
                    raise ProviderError(f"the image API at {self.base_url} answered something that is not JSON",
                                        200) from None
                if not isinstance(parsed, dict):
                    raise ProviderError(f"the image API at {self.base_url} answered an unexpected JSON shape", 200)
                return parsed
            except urllib.error.HTTPError as exc:
                status = exc.code
                raw = exc.read()
                wait = _retry_after(exc.headers)
                if status in _RETRY and attempt < self.max_retries:
                    delay = wait if wait is not None else 0.5 * 2**attempt
                    if delay <= self.max_wait:
                        log.info("image API answered %d; retrying in %.1f s", status, delay)
                        time.sleep(delay)
                        continue
                raise self._error(status, raw, wait) from None
            except urllib.error.URLError as exc:
                raise ProviderError(f"cannot reach the image API at {self.base_url}: {exc.reason}") from None
            except TimeoutError:
                raise ProviderError(
                    f"the image API at {self.base_url} did not answer in {self.timeout:.0f} s") from None
        raise AssertionError("unreachable")

    def _error(self, status: int, raw: bytes, wait: float | None) -> PolymodalError:
        message, code, param = "", None, None
        try:
            err = json.loads(raw).get("error") or {}
            if isinstance(err, dict):
                message, code, param = str(err.get("message") or ""), err.get("code"), err.get("param")
            else:
                message = str(err)
        except (ValueError, AttributeError):
            message = raw[:200].decode("utf-8", "replace")
        message = _redact(message, self._key)
        where = f"the image API at {self.base_url}"
        if status in (401, 403):
            if not self._key:
                return ProviderAuthError(f"{where} needs an API key (HTTP {status}) and none was given; set "
                                         "OPENAI_API_KEY", status)
            return ProviderAuthError(f"{where} refused the API key (HTTP {status}: {message}); check OPENAI_API_KEY",
                                     status)
        if status == 429:
            after = f"; it asked to wait {wait:.0f} s" if wait is not None else ""
            return RateLimitError(f"{where} is rate-limiting requests (HTTP 429: {message}){after}; try again later",
                                  wait)
        if status == 400 and (code == "content_policy_violation" or "safety system" in message):
            return ContentPolicyError(f"{where} refused the prompt under its content policy: {message}", status)
        if status == 400 and (param == "size" or "size" in message.lower()):
            return InputError(f"{where} cannot draw that size for {self.model}: {message}")
        if status == 400 and (param == "prompt" or code == "string_above_max_length"):
            return InputError(f"{where} refused the prompt: {message}")
        if status == 404:
            return ProviderError(f"{where} has no model {self.model!r} or no images/generations endpoint (HTTP 404: "
                                 f"{message})", status)
        return ProviderError(f"{where} answered HTTP {status}: {message or 'no message'}", status)

    def _fetch(self, url: str) -> bytes:
        # A result URL is a signed link to storage elsewhere: it gets no Authorization header.
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "polymodal"}),
                                        timeout=self.timeout) as resp:
                return bytes(resp.read())
        except (urllib.error.URLError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ProviderError(f"cannot download a generated image from the URL the API gave: {reason}") from None

    # -- generation ----------------------------------------------------------------------------------------------

    def make(self, request: GenerationRequest, progress: ProgressCallback | None = None) -> list[Candidate]:
        from PIL import Image, UnidentifiedImageError

        known = _MODELS.get(self.model, {})
        per_call = int(known.get("max_n", request.n))
        out: list[Candidate] = []
        while len(out) < request.n:
            n = min(per_call, request.n - len(out))
            body: dict[str, Any] = {"model": self.model, "prompt": request.prompt, "n": n,
                                    "size": f"{request.width}x{request.height}"}
            if not known.get("b64_only"):
                body["response_format"] = self.response_format
            reply = self._post("images/generations", body)
            items = reply.get("data")
            if not isinstance(items, list) or not items:
                raise ProviderError(f"the image API at {self.base_url} answered no images (no 'data' list)")
            for item in items:
                if item.get("b64_json"):
                    try:
                        blob = base64.b64decode(item["b64_json"], validate=True)
                    except ValueError:
                        raise ProviderError("the image API answered b64_json that is not base64") from None
                elif item.get("url"):
                    blob = self._fetch(str(item["url"]))
                else:
                    raise ProviderError("the image API answered an image with neither b64_json nor url")
                try:
                    image = Image.open(io.BytesIO(blob))
                    image.load()
                except (UnidentifiedImageError, OSError) as exc:
                    raise ProviderError(f"the image API answered data that is not an image: {exc}") from None
                out.append(Candidate(image=image.convert("RGB"), seed=None,
                                     revised_prompt=item.get("revised_prompt"),
                                     extra={"created": reply.get("created")}))
                if progress is not None:
                    progress(min(len(out), request.n), request.n)
        return out[: request.n]
