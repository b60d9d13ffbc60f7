"""A ViT-B/32 CLIP with random weights (same FLOPs as the real one), saved twice with the same weights:
as a transformers CLIPModel directory and as an open_clip directory.

open_clip's ``ViT-B-32-quickgelu`` is OpenAI's layout; the key mapping below turns its state dict into
transformers' (q/k/v split out of the fused in_proj, projections transposed). ``check_same_weights`` proves
the two copies compute the same features.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

ARCH = "ViT-B-32-quickgelu"


def _blocks(sd: dict, src: str, dst: str, layers: int, out: dict) -> None:
    for i in range(layers):
        p, q = f"{src}.{i}", f"{dst}.{i}"
        w, b = sd[f"{p}.attn.in_proj_weight"], sd[f"{p}.attn.in_proj_bias"]
        for name, wi, bi in zip(("q_proj", "k_proj", "v_proj"), w.chunk(3), b.chunk(3)):
            out[f"{q}.self_attn.{name}.weight"], out[f"{q}.self_attn.{name}.bias"] = wi, bi
        pairs = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
                 "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
        for a, c in pairs.items():
            out[f"{q}.{c}.weight"], out[f"{q}.{c}.bias"] = sd[f"{p}.{a}.weight"], sd[f"{p}.{a}.bias"]


def to_transformers(sd: dict, layers: int = 12) -> dict:
    out = {
        "vision_model.embeddings.class_embedding": sd["visual.class_embedding"],
        "vision_model.embeddings.position_embedding.weight": sd["visual.positional_embedding"],
        "vision_model.embeddings.patch_embedding.weight": sd["visual.conv1.weight"],
        "vision_model.pre_layrnorm.weight": sd["visual.ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": sd["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": sd["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": sd["visual.ln_post.bias"],
        "visual_projection.weight": sd["visual.proj"].T.contiguous(),
        "text_model.embeddings.token_embedding.weight": sd["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": sd["positional_embedding"],
        "text_model.final_layer_norm.weight": sd["ln_final.weight"],
        "text_model.final_layer_norm.bias": sd["ln_final.bias"],
        "text_projection.weight": sd["text_projection"].T.contiguous(),
        "logit_scale": sd["logit_scale"],
    }
    _blocks(sd, "visual.transformer.resblocks", "vision_model.encoder.layers", layers, out)
    _blocks(sd, "transformer.resblocks", "text_model.encoder.layers", layers, out)
    return out


def build(folder: Path) -> tuple[Path, Path]:
    """(transformers dir, open_clip dir), made once."""
    import open_clip
    from safetensors.torch import save_file
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    from tiny_models import _clip_bpe_files

    hf_dir, oc_dir = folder / "vitb32-hf", folder / "vitb32-open_clip"
    if (hf_dir / "model.safetensors").exists() and (oc_dir / "open_clip_model.safetensors").exists():
        return hf_dir, oc_dir
    torch.manual_seed(0)
    oc = open_clip.create_model(ARCH).eval()
    sd = oc.state_dict()
    oc_dir.mkdir(parents=True, exist_ok=True)
    cfg = {"model_cfg": open_clip.get_model_config(ARCH),
           "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                              "std": [0.26862954, 0.26130258, 0.27577711]}}
    (oc_dir / "open_clip_config.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in sd.items()}, str(oc_dir / "open_clip_model.safetensors"))

    hf = CLIPModel(CLIPConfig(text_config={"eos_token_id": 2}, projection_dim=512)).eval()
    missing, unexpected = hf.load_state_dict(to_transformers(sd), strict=False)
    assert not unexpected and all("position_ids" in k for k in missing), (missing, unexpected)
    hf_dir.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(hf_dir)
    _clip_bpe_files(hf_dir)
    CLIPTokenizer(str(hf_dir / "vocab.json"), str(hf_dir / "merges.txt")).save_pretrained(hf_dir)
    CLIPImageProcessor().save_pretrained(hf_dir)  # the ViT-B/32 defaults: 224, bicubic, OpenAI mean/std
    return hf_dir, oc_dir


def check_same_weights(hf_dir: Path, oc_dir: Path) -> float:
    """Largest feature difference between the two copies on the same input (should be ~1e-6)."""
    import open_clip
    from transformers import CLIPModel

    hf = CLIPModel.from_pretrained(hf_dir).eval()
    oc = open_clip.create_model(f"local-dir:{oc_dir}").eval()
    x = torch.randn(2, 3, 224, 224)
    tokens = open_clip.tokenize(["a photo of a cat", "a dog"])
    with torch.no_grad():
        a = hf.get_image_features(pixel_values=x).pooler_output - oc.encode_image(x)
        b = hf.get_text_features(input_ids=tokens).pooler_output - oc.encode_text(tokens)
    return float(max(a.abs().max(), b.abs().max()))
