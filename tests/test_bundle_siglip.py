"""SigLIP's sentencepiece tokenizer (transformers' SiglipTokenizer, which has no ``tokenizers`` backend) bundled.

A tiny sentencepiece model is trained here, saved with a random SiglipModel the way the hub's SigLIP checkpoints
are (spiece.model + tokenizer_config.json), loaded through the real spec path, and exported: the bundle's
tokenizer must give the slow tokenizer's ids, padding and TextTooLongError, and the bundle's text embeddings must
match torch's in a process where torch, transformers and sentencepiece cannot be imported. Chinese-CLIP's hub
layout (vocab.txt read by BertTokenizer, no tokenizer.json) is checked the same way.
"""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import sentencepiece  # noqa: F401 - a core dependency (SigLIP tokenizers); never skipped
import torch

import polymodal
from polymodal.errors import ModelLoadError, TextTooLongError
from polymodal.models.textspec import BundleTokenizer, export_tokenizer
from test_bundle_text import LONG, TEXTS, _inputs_or_error, _random_texts, _same
from tiny_models import IMAGE_SIZE, PATCH

# SiglipTokenizer warns when a text ends with its own </s>, one of the cases compared here
pytestmark = pytest.mark.filterwarnings("ignore:This sequence already has")

#: the cases SiglipTokenizer treats on their own: its added tokens inside a text (split there, stripped around,
#: no second </s> after a final one), "▁" typed by the user, punctuation-only texts, leading and repeated spaces,
#: compatibility characters the sentencepiece normaliser rewrites, combining marks after them
SIGLIP_TEXTS = [
    "a</s>b", "a </s> b", "</s>", "cat</s>", "cat </s></s>", "<unk>", "a<unk>b</s>", "</S> <UNK>", "▁a▁▁b▁", " ▁",
    "!!!", "...", "  spaced   out  ", "¨", "a ¨", "¨a", "</s>¨", "a</s> ¨b", "ｈ̟ ｒ̈́", "▁̭dog", "Ｒｅｄ　ＣＡＲ",
    "under_score snake_case", "x²+y² ≤ ½", "Ⅻ ㎏ ﬀ", "\x07bell\x00nul", "tab\t\tnew\n\nline", "e\u0301 é",
    "ΟΔΟΣ Σ", "İI ı", "😀 🐱‍👤 🇫🇷", "3.14159 -2e10 1,000,000",
]
WORDS = ("a an the photo picture of cat dog car red green blue small large coffee cup table beach sky bird flower "
         "garden window running sitting near with on in").split()
SYLLABLES = "ka to ri mo na lu pe sa di ve ban tor mil gre sto pha quin zel".split()


def _corpus(seed: int = 0) -> list[str]:
    rng = random.Random(seed)

    def word() -> str:
        r = rng.random()
        if r < 0.5:
            return rng.choice(WORDS)
        if r < 0.85:
            return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3)))
        return str(rng.randint(0, 2000))

    lines = [" ".join(word() for _ in range(rng.randint(3, 12))) for _ in range(800)]
    return [*lines, "café naïve zoë façade straße über", "北京 猫 东京 的 猫", "hello world"]


def train_spm(out: Path, model_type: str = "unigram", vocab_size: int = 500, **options: object) -> Path:
    """A sentencepiece model with T5's (and SigLIP's) ids: <pad> 0, </s> 1, <unk> 2, no <s>."""
    import sentencepiece as spm

    out.mkdir(parents=True, exist_ok=True)
    settings: dict[str, object] = {"pad_id": 0, "eos_id": 1, "unk_id": 2, "bos_id": -1, "character_coverage": 1.0,
                                   "minloglevel": 2, **options}
    spm.SentencePieceTrainer.train(sentence_iterator=iter(_corpus()), model_prefix=str(out / model_type),
                                   model_type=model_type, vocab_size=vocab_size, **settings)
    return out / f"{model_type}.model"


def make_spm_siglip(out: Path, spm_model: Path, strip: bool, seed: int = 0) -> Path:
    """A random SiglipModel with a SiglipTokenizer over ``spm_model``, context 64 like the hub's SigLIP.

    ``strip``: the added tokens strip the spaces around them, as the hub's SigLIP tokenizer_config.json says."""
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipTokenizer

    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    tok = SiglipTokenizer(vocab_file=str(spm_model))
    config = SiglipConfig(
        text_config=dict(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=64),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=IMAGE_SIZE, patch_size=PATCH),
    )
    SiglipModel(config).eval().save_pretrained(out)
    tok.save_pretrained(out)
    if strip:
        cfg_path = out / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        for entry in cfg["added_tokens_decoder"].values():
            entry["lstrip"] = entry["rstrip"] = True
        cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
    SiglipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(out)
    return out


#: (model type, whether the added tokens strip spaces, sentencepiece trainer options)
VARIANTS = {
    "unigram": ("unigram", True, {}),
    "bpe": ("bpe", False, {}),
    "unigram-bytes": ("unigram", False, {"byte_fallback": True, "character_coverage": 0.9995}),
}


def _variant(name: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_type, strip, options = VARIANTS[name]
    folder = tmp_path_factory.mktemp(f"siglip-{name}")
    return make_spm_siglip(folder / "model", train_spm(folder / "spm", model_type, **options), strip)


@pytest.fixture(scope="module", params=list(VARIANTS))
def source(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _variant(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def encoder(source: Path) -> polymodal.Encoder:
    return polymodal.load_model(str(source), runtime="torch")


@pytest.fixture(scope="module")
def bundle(encoder: polymodal.Encoder, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("siglip-bundle")
    spec = export_tokenizer(encoder, folder)
    assert json.loads(json.dumps(spec)) == spec  # it goes into the bundle's JSON metadata
    return folder, spec


def test_the_source_is_a_slow_sentencepiece_tokenizer(encoder, bundle) -> None:
    from transformers import SiglipTokenizer

    assert type(encoder.tokenizer) is SiglipTokenizer and getattr(encoder.tokenizer, "backend_tokenizer", None) is None
    assert encoder.context_length == 64
    _, spec = bundle
    assert spec["clean"] == "siglip" and spec["padding"] == "max_length" and spec["outputs"] == ["input_ids"]
    assert spec["pad_id"] == encoder.tokenizer.pad_token_id == encoder.tokenizer.eos_token_id
    strips = {a.lstrip and a.rstrip for a in encoder.tokenizer.added_tokens_decoder.values()}
    assert {s["lstrip"] and s["rstrip"] for s in spec["siglip"]["specials"]} == strips and len(strips) == 1


def test_token_ids_equal_siglip_tokenizer(encoder, bundle) -> None:
    tok = BundleTokenizer(*bundle)
    assert tok.context_length == encoder.context_length
    texts = [*TEXTS, *SIGLIP_TEXTS]
    for text in [*texts, LONG]:
        for truncate in (True, False):
            _same(_inputs_or_error(encoder.text_inputs, [text], truncate),
                  _inputs_or_error(tok.inputs, [text], truncate))
    for truncate in (True, False):
        _same(_inputs_or_error(encoder.text_inputs, texts, truncate), _inputs_or_error(tok.inputs, texts, truncate))
        _same(_inputs_or_error(encoder.text_inputs, [*texts, LONG], truncate),
              _inputs_or_error(tok.inputs, [*texts, LONG], truncate))


def test_token_ids_on_random_text(encoder, bundle) -> None:
    """Mixed scripts, emoji, combining marks and full-width forms, past the fixed lists' cases."""
    tok = BundleTokenizer(*bundle)
    rng = random.Random(5)
    pools = [range(0x21, 0x7F), range(0xFF01, 0xFFEF), range(0x300, 0x370), range(0x20, 0x3000)]
    texts = _random_texts(1500, seed=3) + [
        "".join(chr(rng.choice(rng.choice(pools))) if rng.random() < 0.8 else " " for _ in range(rng.randint(1, 14)))
        for _ in range(1500)
    ]
    _same(encoder.text_inputs(texts, True), tok.inputs(texts, True))


def test_too_long_is_refused_at_the_same_length(encoder, bundle) -> None:
    """Around the context: 64 ids with </s> pass, 65 are refused (or cut, when truncating) on both sides."""
    tok = BundleTokenizer(*bundle)
    lengths = {}
    for n in range(1, 80):
        text = " ".join(["cat"] * n)
        lengths[len(encoder.tokenizer(text)["input_ids"])] = text
    assert {64, 65} <= set(lengths)
    for n in (63, 64, 65):
        for truncate in (True, False):
            _same(_inputs_or_error(encoder.text_inputs, [lengths[n]], truncate),
                  _inputs_or_error(tok.inputs, [lengths[n]], truncate))
    with pytest.raises(TextTooLongError):
        tok.inputs(["short", lengths[65]], truncate=False)
    # A final </s> is not doubled, so a text of 64 ids ending with it still fits.
    _same(encoder.text_inputs([lengths[64] + "</s>"], False), tok.inputs([lengths[64] + "</s>"], False))


HEAVY = ("torch", "transformers", "sentence_transformers", "open_clip", "sentencepiece")
BLOCKER = textwrap.dedent(f"""
    import sys
    for _name in {HEAVY!r}:
        sys.modules[_name] = None
""")


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.slow
def test_bundle_embeds_texts_without_torch_nor_sentencepiece(tmp_path_factory, tmp_path) -> None:
    """One bundle (the variants differ only in their tokenizers, compared above), through `export`."""
    from polymodal.models.exports import export

    source = _variant("unigram", tmp_path_factory)
    encoder = polymodal.load_model(str(source), runtime="torch")
    bundle = export(str(source), tmp_path / "bundle")
    texts = [*TEXTS, *SIGLIP_TEXTS, LONG]
    out = tmp_path / "emb.npz"
    code = BLOCKER + textwrap.dedent(f"""
        import numpy as np, polymodal
        m = polymodal.load_model({str(bundle)!r})
        ids = m.tokenizer.inputs({texts!r}, True)["input_ids"]
        np.savez({str(out)!r}, t=m.encode_texts({texts!r}, truncate=True), ids=ids)
        heavy = [k for k, v in sys.modules.items() if v is not None and k.split(".")[0] in {HEAVY!r}]
        assert not heavy, heavy
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ),
                         timeout=120)
    assert res.returncode == 0, res.stderr
    got = np.load(out)
    np.testing.assert_array_equal(got["ids"], encoder.text_inputs(texts, True)["input_ids"])
    assert _cos(got["t"], encoder.encode_texts(texts, truncate=True)).min() >= 0.999


def test_unexportable_sentencepiece_models_are_named(encoder, tmp_path) -> None:
    """A sentencepiece setting the bundle does not reproduce is refused at export, not mis-tokenized later."""
    from transformers import SiglipTokenizer

    spm_model = train_spm(tmp_path / "spm", "unigram", 300, remove_extra_whitespaces=False)
    enc = copy.copy(encoder)  # the loaded model is shared; only its tokenizer changes here
    enc.tokenizer = SiglipTokenizer(vocab_file=str(spm_model))
    with pytest.raises(ModelLoadError, match="extra whitespace") as info:
        export_tokenizer(enc, tmp_path / "out")
    assert enc.name in str(info.value)


# --- Chinese-CLIP's hub layout: vocab.txt and a tokenizer_config.json naming BertTokenizer, no tokenizer.json

CC_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s", "##ing", "北", "京", "的", "猫", "狗", "东",
            "##京", "a", "b", "c", "é", "1", "2", "3", "!", ",", "."]


def make_chinese_clip_vocab_txt(out: Path, seed: int = 0) -> Path:
    from transformers import ChineseCLIPConfig, ChineseCLIPImageProcessor, ChineseCLIPModel

    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    config = ChineseCLIPConfig(
        text_config=dict(vocab_size=len(CC_VOCAB), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=16),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=IMAGE_SIZE, patch_size=PATCH, projection_dim=16),
        projection_dim=16,
    )
    ChineseCLIPModel(config).eval().save_pretrained(out)
    (out / "vocab.txt").write_text("\n".join(CC_VOCAB) + "\n", encoding="utf-8")
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "BertTokenizer", "do_lower_case": True, "tokenize_chinese_chars": True,
        "model_max_length": 512,
    }), encoding="utf-8")
    ChineseCLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                              crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(out)
    return out


def test_chinese_clip_vocab_txt_tokenizer(tmp_path) -> None:
    enc = polymodal.load_model(str(make_chinese_clip_vocab_txt(tmp_path / "cc")), runtime="torch")
    assert not (tmp_path / "cc" / "tokenizer.json").exists()
    spec = export_tokenizer(enc, tmp_path / "bundle")
    tok = BundleTokenizer(tmp_path / "bundle", spec)
    texts = [*TEXTS, *SIGLIP_TEXTS, "北京的猫和东京的狗", "猫猫猫 cats sitting"]
    for text in [*texts, LONG]:
        for truncate in (True, False):
            _same(_inputs_or_error(enc.text_inputs, [text], truncate), _inputs_or_error(tok.inputs, [text], truncate))
    _same(enc.text_inputs(texts, True), tok.inputs(texts, True))
