"""Bundled tokenizers and image preprocessing (models.textspec, models.preprocess) against each backend's own code.

Every backend is loaded through the real spec path (tiny random models saved to disk, and the offline lite
model); its tokenizer is exported to tokenizer.json + spec and read back without torch, and must give the same
ids, the same padding and the same TextTooLongError as the encoder's ``text_inputs``.
"""

from __future__ import annotations

import copy
import json
import random
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import polymodal
from polymodal.errors import ModelLoadError, TextTooLongError
from polymodal.models.preprocess import ImageTransform, export_preprocess
from polymodal.models.textspec import BundleTokenizer, export_tokenizer, fix_text
from tiny_models import make_tiny_chinese_clip, make_tiny_clip, make_tiny_open_clip, make_tiny_siglip

TEXTS = [
    "a photo of a cat", "A Dog!!  running   on the beach", "café crème brûlée", "", "3 red cars, 2 buses",
    "naïve Zoë FAÇADE", "北京的猫", "猫 and dog 🐱🐶", "thumbs 👍🏽 family 👨‍👩‍👧", "1234567890 3.14159 1,000",
    "it's we're they'll I'd", "Tom &amp; Jerry &lt;3", "&quot;quoted&quot; &#x2019;curly&#8217; &EACUTE;",
    "“smart” ‘quotes’", "ﬁne ﬂour", "ＬＯＵＤ　ＮＯＩＳＥＳ", "tab\tand\nnewline\r\nend", "  leading and trailing  ",
    "ÀÉÎÕÜ Straße İstanbul ΟΔΟΣ", "a<end_of_text>b", "<b>bold</b> &amp;amp;", "x" * 40,
    "hyphen-ated under_score dot.ted", "zero\u200bwidth\u200djoin", "c1\x85\x93controls\x07", "a photo of a dog",
]
LONG = "word " * 300  # past every context here, MiniLM's 256 included
BACKENDS = ["lite", "clip", "siglip", "chinese_clip", "open_clip"]
MAKERS = {"clip": make_tiny_clip, "siglip": make_tiny_siglip, "chinese_clip": make_tiny_chinese_clip,
          "open_clip": make_tiny_open_clip}


@pytest.fixture(scope="module", params=BACKENDS)
def encoder(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> polymodal.Encoder:
    name = request.param
    if name == "lite":
        return polymodal.load_model("lite", runtime="torch")
    path = MAKERS[name](tmp_path_factory.mktemp("bundle-text") / name)
    return polymodal.load_model(str(path), runtime="torch")


@pytest.fixture(scope="module")
def bundle(encoder: polymodal.Encoder, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("bundle")
    spec = export_tokenizer(encoder, folder)
    # The spec goes into the bundle's JSON metadata: it must survive the round trip unchanged.
    assert json.loads(json.dumps(spec)) == spec
    return folder, spec


def _inputs_or_error(fn, texts: list[str], truncate: bool) -> dict | str:
    try:
        return fn(texts, truncate)
    except TextTooLongError as exc:
        return f"TextTooLongError: {exc}"


def _same(expected: dict | str, got: dict | str) -> None:
    if isinstance(expected, str) or isinstance(got, str):
        assert got == expected
        return
    assert list(got) == list(expected)
    for name, arr in expected.items():
        assert got[name].dtype == np.int64, name
        np.testing.assert_array_equal(got[name], np.asarray(arr, dtype=np.int64), err_msg=name)


def test_token_ids_equal_the_encoders(encoder, bundle) -> None:
    tok = BundleTokenizer(*bundle)
    assert tok.context_length == encoder.context_length
    for text in [*TEXTS, LONG]:
        for truncate in (True, False):
            _same(_inputs_or_error(encoder.text_inputs, [text], truncate),
                  _inputs_or_error(tok.inputs, [text], truncate))
    # A batch pads to its longest text (or to the context): the padding must agree too.
    for truncate in (True, False):
        _same(_inputs_or_error(encoder.text_inputs, TEXTS, truncate), _inputs_or_error(tok.inputs, TEXTS, truncate))
        _same(_inputs_or_error(encoder.text_inputs, [*TEXTS, LONG], truncate),
              _inputs_or_error(tok.inputs, [*TEXTS, LONG], truncate))
    with pytest.raises(TextTooLongError):
        tok.inputs(["short", LONG], truncate=False)


def test_token_ids_on_random_text(encoder, bundle) -> None:
    """Mixed scripts, emoji, combining marks, entities and vocabulary words, past the fixed list's cases."""
    import ftfy

    tok = BundleTokenizer(*bundle)
    texts = [t for t in _random_texts(300, seed=3) if ftfy.fix_text(t) == ftfy.fix_text(t, fix_encoding=False)]
    _same(encoder.text_inputs(texts, True), tok.inputs(texts, True))


def _random_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = "a photo of the cat dog car red picture coffee beautiful arrived running 北京 naïve".split()
    pools = [range(0x20, 0x7F), range(0x80, 0x250), range(0x300, 0x370), range(0x400, 0x460), range(0x600, 0x650),
             range(0x2000, 0x2070), range(0x3000, 0x3010), range(0x4E00, 0x4E40), range(0xFF00, 0xFFF0),
             range(0x1F300, 0x1F340)]
    extras = ["&amp;", "&lt;", "&#x2019;", "&nbsp;", "\n", "  ", "'s", "<", "\u0345"]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 10)):
            r = rng.random()
            if r < 0.35:
                parts.append(rng.choice(words) + " ")
            elif r < 0.5:
                parts.append(rng.choice(extras))
            else:
                parts.append("".join(chr(rng.choice(rng.choice(pools))) for _ in range(rng.randint(1, 5))))
        out.append("".join(parts))
    return out


@pytest.fixture(scope="module")
def tiny_open_clip(tmp_path_factory: pytest.TempPathFactory) -> polymodal.Encoder:
    path = make_tiny_open_clip(tmp_path_factory.mktemp("oc") / "tiny")
    return polymodal.load_model(str(path), runtime="torch")


@pytest.fixture(scope="module")
def open_clip_bundle(tiny_open_clip, tmp_path_factory: pytest.TempPathFactory) -> BundleTokenizer:
    folder = tmp_path_factory.mktemp("oc-bundle")
    return BundleTokenizer(folder, export_tokenizer(tiny_open_clip, folder))


@pytest.fixture(scope="module")
def openai_clip(monkeypatch_module: pytest.MonkeyPatch) -> types.ModuleType:
    """OpenAI's ``clip`` package; its ``from pkg_resources import packaging`` is served by a stand-in."""
    import packaging.version

    monkeypatch_module.setitem(sys.modules, "pkg_resources", types.SimpleNamespace(packaging=packaging))
    import clip

    return clip


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()
    for name in [m for m in sys.modules if m == "clip" or m.startswith("clip.")]:
        del sys.modules[name]


def test_clip_bpe_equals_openai_and_open_clip(open_clip_bundle, openai_clip) -> None:
    import ftfy
    import open_clip

    # Texts that ftfy's mojibake repair would change are left out (see test_fix_text_is_ftfy_without_mojibake).
    texts = [*TEXTS, *(t for t in _random_texts(1500, seed=7)
                       if ftfy.fix_text(t) == ftfy.fix_text(t, fix_encoding=False))]
    ours = open_clip_bundle.inputs(texts, truncate=True)["input_ids"]
    np.testing.assert_array_equal(ours, open_clip.tokenizer.SimpleTokenizer()(texts).numpy())
    # open_clip renamed the special tokens (<end_of_text>, OpenAI's <|endoftext|>): their literal text differs.
    plain = [i for i, t in enumerate(texts) if "_of_text>" not in t]
    np.testing.assert_array_equal(ours[plain], openai_clip.tokenize([texts[i] for i in plain], truncate=True).numpy())
    with pytest.raises(RuntimeError):  # OpenAI's refusal of a long text; ours is a RuntimeError too
        openai_clip.tokenize([LONG])
    with pytest.raises(RuntimeError):
        open_clip_bundle.inputs([LONG], truncate=False)


def test_minilm_equals_transformers_on_the_model_dir(tmp_path) -> None:
    """The lite bundle against a fresh transformers tokenizer of the installed MiniLM directory."""
    from transformers import AutoTokenizer

    from polymodal.models.lite.minilm import model_dir

    spec = export_tokenizer(polymodal.load_model("lite", runtime="torch"), tmp_path)
    bundle = (tmp_path, spec)
    hf = AutoTokenizer.from_pretrained(str(model_dir()))
    tok = BundleTokenizer(*bundle)
    texts = [*TEXTS, LONG]
    expected = hf(texts, padding=True, truncation=True, max_length=256, return_tensors="np")
    _same({k: expected[k] for k in bundle[1]["outputs"]}, tok.inputs(texts, truncate=True))


def test_fix_text_is_ftfy_without_mojibake_repair() -> None:
    import ftfy

    for text in [*TEXTS, *_random_texts(3000, seed=11)]:
        assert fix_text(text) == ftfy.fix_text(text, fix_encoding=False), repr(text)
    # What is left out, measured: text decoded with the wrong codec stays as it is.
    assert ftfy.fix_text("cafÃ© crÃ¨me") == "café crème"
    assert fix_text("cafÃ© crÃ¨me") == "cafÃ© crÃ¨me"


def test_bundle_tokenizer_needs_no_torch(bundle) -> None:
    folder, spec = bundle
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from polymodal.models.textspec import BundleTokenizer\n"
        "from polymodal.models.preprocess import ImageTransform\n"
        f"tok = BundleTokenizer(Path({str(folder)!r}), json.loads({json.dumps(spec)!r}))\n"
        "tok.inputs(['a photo of a cat'], True)\n"
        "heavy = [m for m in ('torch', 'transformers', 'open_clip', 'ftfy', 'sentence_transformers') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("damage", ["missing", "corrupt", "empty"])
def test_missing_or_corrupt_tokenizer_file(bundle, tmp_path: Path, damage: str) -> None:
    _, spec = bundle
    target = tmp_path / "tokenizer.json"
    if damage == "corrupt":
        target.write_text('{"model": {"type": "BPE", "vocab": ', encoding="utf-8")
    elif damage == "empty":
        target.write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"tokenizer\.json") as info:
        BundleTokenizer(tmp_path, spec)
    assert info.value.exit_code == 3


def test_bad_spec_names_the_key(bundle) -> None:
    folder, spec = bundle
    with pytest.raises(ModelLoadError, match="padding"):
        BundleTokenizer(folder, {**spec, "padding": "sideways"})
    with pytest.raises(ModelLoadError, match="context_length"):
        BundleTokenizer(folder, {k: v for k, v in spec.items() if k != "context_length"})
    with pytest.raises(ModelLoadError, match="version"):
        BundleTokenizer(folder, {**spec, "version": 99})


def test_open_clip_hf_tokenizer(tiny_open_clip, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """open_clip's HFTokenizer (hf-hub models): pads to the context with the pad id, never refuses long texts,
    and with strip_sep_token writes 0 over [SEP]. Exercised on a tiny open_clip with a tiny BERT tokenizer."""
    import open_clip

    words = make_tiny_chinese_clip(tmp_path_factory.mktemp("cc-tok") / "m")
    enc = copy.copy(tiny_open_clip)  # the loaded model is shared; only its tokenizer changes here
    enc.tokenizer = open_clip.tokenizer.HFTokenizer(str(words), context_length=16, strip_sep_token=True)
    enc._context = 16
    spec = export_tokenizer(enc, tmp_path)
    assert spec["check_length"] is False and spec["clean"] == "whitespace" and spec["strip_sep_id"] is not None
    tok = BundleTokenizer(tmp_path, spec)
    for texts in ([*TEXTS, LONG], ["a photo of a cat"]):
        for truncate in (True, False):
            _same(enc.text_inputs(texts, truncate), tok.inputs(texts, truncate))


def test_unexpressible_tokenizers_raise(tiny_open_clip, tmp_path: Path) -> None:
    import open_clip

    enc = copy.copy(tiny_open_clip)
    enc.tokenizer = open_clip.tokenizer.SimpleTokenizer(reduction_mask="random")
    with pytest.raises(ModelLoadError, match=enc.name):
        export_tokenizer(enc, tmp_path / "out")


# --- image preprocessing


def _images(photos: dict[str, Path]) -> dict[str, Image.Image]:
    cat = Image.open(photos["cat"]).convert("RGB")
    return {
        "landscape": cat,
        "portrait": cat.transpose(Image.Transpose.ROTATE_90),
        "grayscale png": Image.open(photos["camera"]),
        "grayscale odd size": Image.open(photos["coins"]),
        "jpeg": Image.open(photos["rocket"]),
        "palette": cat.convert("P"),
        "rgba": cat.convert("RGBA"),
        "panorama": cat.resize((600, 31)),
    }


def test_pixels_equal_the_encoders(encoder, photos) -> None:
    spec = export_preprocess(encoder)
    assert json.loads(json.dumps(spec)) == spec
    transform = ImageTransform.from_dict(spec)
    # Same PIL operations everywhere but SigLIP; there only float32 rounding (x/255 vs x*(1/255)) differs.
    bound = 1e-5
    if spec["mode"] == "squash":
        # transformers' SigLIP processor resizes a uint8 tensor with torchvision's antialiased bicubic kernel,
        # which rounds some pixels one level away from PIL's: one level of 255, over std.
        bound = 1 / 255 / min(spec["std"]) + 1e-5
    for name, image in _images(photos).items():
        image.load()
        expected = np.asarray(encoder.preprocess_image(image), dtype=np.float32)
        got = transform.to_array(image)
        assert got.shape == expected.shape and got.dtype == np.float32, name
        diff = np.abs(got - expected)
        assert diff.max() <= bound, (name, float(diff.max()))
        assert diff.mean() <= 1e-3, (name, float(diff.mean()))


def test_transform_dict_round_trip() -> None:
    t = ImageTransform(resize=40, crop=32, mean=(0.5,) * 3, std=(0.25,) * 3, scale=1.0, mode="squash",
                       interpolation="bilinear", rounding="floor", convert="last")
    assert ImageTransform.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    # Only the sizes are required; the rest keep today's recipe.
    assert ImageTransform.from_dict({"resize": 256, "crop": 224}) == ImageTransform(resize=256, crop=224)


@pytest.mark.parametrize(("bad", "key"), [
    ({"resize": 32, "crop": 32, "colour": 1}, "colour"),
    ({"resize": 32}, "crop"),
    ({"resize": "32", "crop": 32}, "resize"),
    ({"resize": 32, "crop": 32, "mode": "stretch"}, "mode"),
    ({"resize": 32, "crop": 32, "interpolation": "lanczos"}, "interpolation"),
    ({"resize": 32, "crop": 32, "mean": [0.5, 0.5]}, "mean"),
    ({"resize": 32, "crop": 32, "std": [0.5, 0.0, 0.5]}, "std"),
    ({"resize": 32, "crop": 32, "scale": -1}, "scale"),
])
def test_transform_from_dict_names_the_bad_key(bad: dict, key: str) -> None:
    with pytest.raises(ModelLoadError, match=repr(key)):
        ImageTransform.from_dict(bad)


def test_unexpressible_open_clip_transform_raises(tiny_open_clip) -> None:
    from torchvision import transforms as T

    enc = copy.copy(tiny_open_clip)
    enc.preprocess = T.Compose([T.RandomResizedCrop(32), T.ToTensor()])
    with pytest.raises(ModelLoadError, match=enc.name):
        export_preprocess(enc)
