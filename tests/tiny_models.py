"""Tiny random models saved the way real ones are, so tests load them through the real spec paths.

Every builder writes a directory a user could have downloaded: transformers' config.json + safetensors +
tokenizer + image-processor files, or open_clip's open_clip_config.json + open_clip_model.safetensors.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import torch

IMAGE_SIZE = 32
PATCH = 8


def _clip_bpe_files(out: Path) -> None:
    """vocab.json + merges.txt of OpenAI's CLIP tokenizer, rebuilt from the BPE file open_clip ships."""
    import open_clip.tokenizer as oct

    tok = oct.SimpleTokenizer()
    merges = gzip.open(oct.default_bpe()).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    # The hub's CLIP vocab names the two specials as below; the ids (49406, 49407) are the same.
    renamed = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {renamed.get(k, k): v for k, v in tok.encoder.items()}
    (out / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


def make_tiny_clip(out: Path, seed: int = 0) -> Path:
    """A random CLIPModel (vocab of OpenAI's BPE, so clip.tokenize ids fit) with CLIP's tokenizer and processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    config = CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, eos_token_id=2),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=IMAGE_SIZE, patch_size=PATCH),
        projection_dim=16,
    )
    CLIPModel(config).eval().save_pretrained(out)
    _clip_bpe_files(out)
    CLIPTokenizer(str(out / "vocab.json"), str(out / "merges.txt")).save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
                       ).save_pretrained(out)
    return out


def _wordlevel_tokenizer(out: Path, words: list[str], *, bert: bool = False) -> None:
    """A small word-level fast tokenizer saved with tokenizer.json (no download, no sentencepiece)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {w: i for i, w in enumerate([*specials, *words])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    if bert:
        tk.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
        )
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", model_max_length=16)
    fast.save_pretrained(out)


WORDS = "a an the photo of cat dog car red green blue picture small large coffee cup".split()


def make_tiny_siglip(out: Path, seed: int = 0) -> Path:
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    config = SiglipConfig(
        text_config=dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=16),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=IMAGE_SIZE, patch_size=PATCH),
    )
    SiglipModel(config).eval().save_pretrained(out)
    _wordlevel_tokenizer(out, WORDS)
    SiglipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(out)
    return out


def make_tiny_chinese_clip(out: Path, seed: int = 0) -> Path:
    from transformers import ChineseCLIPConfig, ChineseCLIPImageProcessor, ChineseCLIPModel

    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    config = ChineseCLIPConfig(
        text_config=dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=16),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=IMAGE_SIZE, patch_size=PATCH, projection_dim=16),
        projection_dim=16,
    )
    ChineseCLIPModel(config).eval().save_pretrained(out)
    _wordlevel_tokenizer(out, WORDS, bert=True)
    ChineseCLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                              crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(out)
    return out


TINY_OPEN_CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": IMAGE_SIZE, "layers": 2, "width": 32, "patch_size": PATCH, "head_width": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2},
}


def make_tiny_open_clip(out: Path, seed: int = 0) -> Path:
    """open_clip's local-dir format: open_clip_config.json + open_clip_model.safetensors."""
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    cfg = {"model_cfg": TINY_OPEN_CLIP_CONFIG, "preprocess_cfg": {
        "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}}
    (out / "open_clip_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    model = open_clip.CLIP(**TINY_OPEN_CLIP_CONFIG).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "open_clip_model.safetensors"))
    return out
