"""A tiny random Stable Diffusion pipeline saved the way a downloaded one is (model_index.json + components).

Loaded through ``AutoPipelineForText2Image.from_pretrained`` exactly as ``stabilityai/sd-turbo`` would be.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/tiny_models.py


def make_tiny_sd(out: Path, seed: int = 0) -> Path:
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from tiny_models import _clip_bpe_files

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=32,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"), up_block_types=("UpDecoderBlock2D",) * 2,
        sample_size=32,
    )
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, projection_dim=32,
    ))
    tok_dir = out / "_bpe"
    tok_dir.mkdir(exist_ok=True)
    _clip_bpe_files(tok_dir)
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=77)
    # sd-turbo's own scheduler: Euler ancestral with trailing timesteps, so one step starts from pure noise
    scheduler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                timestep_spacing="trailing", steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tokenizer, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(out)
    for f in tok_dir.iterdir():
        f.unlink()
    tok_dir.rmdir()
    return out


def make_unconditional(out: Path) -> Path:
    """A diffusers pipeline that is not text-to-image (DDPM: noise to image, no prompt)."""
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    out.mkdir(parents=True, exist_ok=True)
    unet = UNet2DModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=3,
                       out_channels=3, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=32)
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(out)
    return out


if __name__ == "__main__":
    p = make_tiny_sd(Path(sys.argv[1]))
    print(json.loads((p / "model_index.json").read_text()))
