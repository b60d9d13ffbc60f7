"""Spec parsing, listing, plugins, and the default model with its offline fallback."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

import polymodal
from polymodal.errors import ConfigError, ModelSpecError
from polymodal.models import Backend, ModelEntry, list_models, parse_spec, register_backend
from polymodal.models.base import Encoder
from polymodal.models.default import DEFAULT_MODEL, resolve_model


@pytest.mark.parametrize(
    "spec,scheme,target",
    [("lite", "lite", ""), ("hf:openai/clip-vit-base-patch32", "hf", "openai/clip-vit-base-patch32"),
     ("open_clip:ViT-B-32/laion2b_s34b_b79k", "open_clip", "ViT-B-32/laion2b_s34b_b79k"),
     ("open_clip:hf-hub:timm/ViT-B-16-SigLIP", "open_clip", "hf-hub:timm/ViT-B-16-SigLIP")],
)
def test_parse_spec(spec, scheme, target):
    parsed = parse_spec(spec)
    assert (parsed.scheme, parsed.target) == (scheme, target)


@pytest.mark.parametrize("spec,msg", [
    ("nonsense-model", "names nothing"), ("", "empty"), ("hf:", "names no model"), ("lite:x", "takes nothing"),
])
def test_unknown_specs_list_what_works(spec, msg):
    with pytest.raises(ModelSpecError, match=msg) as err:
        parse_spec(spec)
    text = str(err.value)
    for example in ("lite", "hf:", "open_clip:", "local directory"):
        assert example in text


def test_directory_without_a_model_and_a_file(tmp_path):
    with pytest.raises(ModelSpecError, match="no model polymodal recognises"):
        parse_spec(str(tmp_path))
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelSpecError, match="is a file"):
        parse_spec(str(tmp_path / "weights.bin"))


def test_list_models_reports_lite_offline_and_the_default():
    entries = {e.name: e for e in list_models()}
    assert entries["lite"].available is True
    assert DEFAULT_MODEL in entries
    assert any(n.startswith("open_clip:ViT-B-32/") for n in entries)


class _Fake(Encoder):
    """A deterministic fake registered through the same call plugins use."""

    backend = "fake"

    @property
    def dim(self) -> int:
        return 4

    def preprocess_image(self, image):
        return np.asarray(image.resize((2, 2)), dtype=np.float32).mean()

    def _embed_image_batch(self, batch):
        return np.array([[1.0, x, 0.0, 0.0] for x in batch], dtype=np.float32)

    def _embed_text_batch(self, texts, truncate):
        return np.array([[1.0, float(len(t)), 0.0, 0.0] for t in texts], dtype=np.float32)


def test_a_registered_backend_loads_through_load_model():
    register_backend(Backend("fake", "a test backend", ("fake:x",), lambda spec, **kw: _Fake(spec.raw, **kw),
                             list_models=lambda: [ModelEntry("fake:x", "fake", "test", True)]))
    enc = polymodal.load_model("fake:anything")
    assert isinstance(enc, _Fake) and enc.name == "fake:anything"
    np.testing.assert_allclose(np.linalg.norm(enc.encode_texts(["ab", "abc"]), axis=1), 1.0, atol=1e-6)
    assert "fake:x" in {e.name for e in list_models()}


def test_offline_fallback_never_touches_the_network(monkeypatch):
    from polymodal.models import default

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(default, "_hub_answers", lambda *a, **k: pytest.fail("probed the network while offline"))
    res = resolve_model(None)
    assert res.spec == "lite"
    assert "HF_HUB_OFFLINE" in res.notice and "hf download openai/clip-vit-base-patch32" in res.notice


def test_fallback_loads_lite_and_says_so_once(monkeypatch):
    import logging

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    log = logging.getLogger("polymodal")
    log.addHandler(handler)
    try:
        enc = polymodal.load_model()
    finally:
        log.removeHandler(handler)
    assert enc.name == "lite"
    notices = [r for r in records if "not available" in r.getMessage()]
    assert len(notices) == 1 and "\n" not in notices[0].getMessage()


def test_silent_hub_hits_the_deadline(monkeypatch):
    """A hub that accepts connections and never answers must not hang the default-model check."""
    from polymodal.models import default

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()
    threading.Thread(target=lambda: stop.wait(30), daemon=True).start()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setattr(default, "PROBE_SECONDS", 0.5)
    start = time.monotonic()
    res = resolve_model(None)
    elapsed = time.monotonic() - start
    stop.set()
    server.close()
    assert res.spec == "lite" and "did not answer" in res.notice
    assert elapsed < 5  # the deadline held: no wait on the socket's or DNS's own timeouts


def test_env_and_config_choose_the_model(monkeypatch, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('model = "hf:/somewhere"\n')
    monkeypatch.setenv("POLYMODAL_CONFIG", str(cfg))
    assert resolve_model(None).spec == "hf:/somewhere"
    monkeypatch.setenv("POLYMODAL_MODEL", "lite")
    assert resolve_model(None).spec == "lite"
    assert resolve_model("open_clip:x/y").spec == "open_clip:x/y"


def test_bad_config_is_a_clear_error(monkeypatch, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('modle = "lite"\n')
    monkeypatch.setenv("POLYMODAL_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match="unknown keys"):
        resolve_model(None)
    cfg.write_text("model = [\n")
    with pytest.raises(ConfigError, match=str(cfg)):
        resolve_model(None)
