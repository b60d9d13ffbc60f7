"""Which model to use when none is named, and the offline fallback to ``lite``.

Order: an explicit spec, then ``POLYMODAL_MODEL``, then ``model`` in the config file, then the built-in
default, a real CLIP. The built-in default is used only when its weights are cached or the hub answers
within a few seconds; otherwise polymodal says so in one line and uses ``lite``. The probe runs in a daemon
thread with a hard deadline, because a DNS lookup can block far longer than any socket timeout.

A hub that did not answer is remembered in the cache dir (``hub-probe.json``) for ``PROBE_CACHE_SECONDS``, so
an offline machine pays the probe once a day instead of up to 3.5 s on every command. Only the negative answer
is kept: a positive one leads to the weights being downloaded, after which the cache check answers first, and
keeping "the hub answered" would send a later offline command to a download that cannot happen.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from polymodal.config import load_settings

DEFAULT_MODEL = "hf:openai/clip-vit-base-patch32"
FALLBACK_MODEL = "lite"
PROBE_SECONDS = 3.0
#: how long a hub that did not answer is believed: a machine offline now (a train, an air-gapped box) stays
#: so for hours, and a day bounds how long one that came back online keeps the fallback without being told
#: (the notice names the re-check); fetching the weights ends it at once, as they are looked for first
PROBE_CACHE_SECONDS = 24 * 3600
#: set to 1 to ignore a remembered answer and ask the hub again
RECHECK_ENV = "POLYMODAL_HUB_RECHECK"
PROBE_FILE = "hub-probe.json"

log = logging.getLogger("polymodal")


@dataclass(frozen=True)
class Resolution:
    spec: str  # what to load
    notice: str | None  # one line for the user when the default could not be used


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _hub_answers(repo_id: str, seconds: float = PROBE_SECONDS) -> str | None:
    """None when the hub answered for ``repo_id`` in time, else the reason it did not."""
    url = f"{_endpoint()}/api/models/{repo_id}"
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


def weights_cached(repo_id: str) -> bool:
    """Whether a hub model's config and weights are in the local Hugging Face cache.

    Light on purpose (no torch, no transformers): every command without a model named asks it. A repo with
    no folder in the cache is answered from the file system, without huggingface_hub's download module.
    """
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    if not (Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}").is_dir():
        return False
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return False
    return isinstance(try_to_load_from_cache(repo_id, "model.safetensors"), str)  # pickles are not loaded


def _probe_file() -> Path:
    from polymodal.paths import cache_dir

    return cache_dir() / PROBE_FILE


def _remembered(endpoint: str, repo_id: str) -> tuple[str, float] | None:
    """(reason, age in seconds) of a recent probe of this hub and repo that failed; None to probe again."""
    if _truthy(RECHECK_ENV):
        return None
    try:
        data = json.loads(_probe_file().read_text())
        age = time.time() - float(data["checked"])
        if data["endpoint"] == endpoint and data["repo"] == repo_id and 0 <= age < PROBE_CACHE_SECONDS:
            return str(data["reason"]), age
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none, unreadable or from another hub: probe
    return None


def _remember(endpoint: str, repo_id: str, reason: str | None) -> None:
    """Keep a failed probe's reason; forget any after the hub answered. A cache that cannot be written only
    means probing next time."""
    path = _probe_file()
    try:
        if reason is None:
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{PROBE_FILE}.{os.getpid()}")
        tmp.write_text(json.dumps({"endpoint": endpoint, "repo": repo_id, "reason": reason, "checked": time.time()}))
        os.replace(tmp, path)  # atomic: a concurrent command reads the old answer or the new, never half
    except OSError:
        pass


def _ago(seconds: float) -> str:
    return f"{seconds / 3600:.0f} h ago" if seconds >= 5400 else f"{max(1, round(seconds / 60))} min ago"


def default_unavailable_reason() -> str | None:
    """None when the built-in default can be loaded now; else why not."""
    repo = DEFAULT_MODEL.split(":", 1)[1]
    if weights_cached(repo):
        return None
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if _truthy(var):
            return f"{var} is set and its weights are not cached"
    endpoint = _endpoint()
    remembered = _remembered(endpoint, repo)
    if remembered is not None:
        said, age = remembered
        return f"{said}, checked {_ago(age)}; {RECHECK_ENV}=1 checks again"
    reason = _hub_answers(repo)
    _remember(endpoint, repo, reason)
    return reason


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
