"""Which model to use when none is named, and the offline fallback to ``lite``.

Order: an explicit spec, then ``POLYMODAL_MODEL``, then ``model`` in the config file, then the built-in
default, a real CLIP. The built-in default is used only when its weights are cached or the hub answers
within a few seconds; otherwise polymodal says so in one line and uses ``lite``. The probe runs in a daemon
thread with a hard deadline, because a DNS lookup can block far longer than any socket timeout.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.request
from dataclasses import dataclass

from polymodal.config import load_settings

DEFAULT_MODEL = "hf:openai/clip-vit-base-patch32"
FALLBACK_MODEL = "lite"
PROBE_SECONDS = 3.0

log = logging.getLogger("polymodal")


@dataclass(frozen=True)
class Resolution:
    spec: str  # what to load
    notice: str | None  # one line for the user when the default could not be used


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _hub_answers(repo_id: str, seconds: float = PROBE_SECONDS) -> str | None:
    """None when the hub answered for ``repo_id`` in time, else the reason it did not."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    url = f"{endpoint}/api/models/{repo_id}"
    result: list[str | None] = []

    def probe() -> None:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=seconds):
                result.append(None)
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            if isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError):
                result.append(f"the model hub did not answer within {seconds:g} s")
            else:
                result.append(f"the model hub is not reachable ({type(exc).__name__})")

    thread = threading.Thread(target=probe, daemon=True, name="polymodal-hub-probe")
    thread.start()
    thread.join(seconds + 0.5)
    if not result:
        return f"the model hub did not answer within {seconds:g} s"
    return result[0]


def default_unavailable_reason() -> str | None:
    """None when the built-in default can be loaded now; else why not."""
    from polymodal.models.hf import is_cached

    repo = DEFAULT_MODEL.split(":", 1)[1]
    if is_cached(repo):
        return None
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if _truthy(var):
            return f"{var} is set and its weights are not cached"
    return _hub_answers(repo)


def resolve_model(spec: str | None = None) -> Resolution:
    if spec:
        return Resolution(spec, None)
    settings = load_settings()
    if settings.model:
        return Resolution(settings.model, None)
    reason = default_unavailable_reason()
    if reason is None:
        return Resolution(DEFAULT_MODEL, None)
    repo = DEFAULT_MODEL.split(":", 1)[1]
    return Resolution(
        FALLBACK_MODEL,
        f"the default model {DEFAULT_MODEL} is not available ({reason}); using the offline '{FALLBACK_MODEL}' "
        f"model. For better results, fetch it once while online: hf download {repo}",
    )
