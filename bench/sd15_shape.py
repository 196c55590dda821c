"""Write an SD1.5-shaped random-weight model folder (offline; not a test). Usage:

    .venv/bin/python bench/sd15_shape.py /tmp/sd15-shape

The UNet, VAE and text encoder use Stable Diffusion 1.5's published configs (UNet 860 M
parameters: 320/640/1280/1280 channels, 2 layers per block, cross-attention 768; VAE
128/256/512/512; CLIP ViT-L/14 text encoder, 12 layers of 768) with random weights, so every
timing and memory figure has the real model's shape. The tokenizer is SD1.5's real CLIP BPE,
built offline from the merges ``open-clip-torch`` ships (tests/clip_bpe.py); without that
package it falls back to the tiny character-level one, which turns the long reference negative
prompt into ~20 windows of 77 tokens instead of ~4 and makes every sampler step several times
slower: don't benchmark generation with that fallback. ~4 GB on disk in fp32.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def _tokenizer() -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    try:
        from tests.clip_bpe import sd15_tokenizer

        return sd15_tokenizer()
    except Exception as exc:  # open-clip-torch missing: the tiny tokenizer (see above)
        from headshots.generation.tiny import build_tiny_tokenizer

        print(f"warning: SD1.5 CLIP tokenizer unavailable ({exc}); using the tiny one")
        return build_tiny_tokenizer()


def build_sd15_shaped_pipeline(seed: int = 0) -> Any:
    import torch
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer: Any = _tokenizer()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=(
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ),
        up_block_types=(
            "UpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
        ),
        cross_attention_dim=768,
        attention_head_dim=8,
        norm_num_groups=32,
        downsample_padding=1,
        flip_sin_to_cos=True,
        freq_shift=0,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=512,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_attention_heads=12,
            num_hidden_layers=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            projection_dim=768,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        skip_prk_steps=True,
        steps_offset=1,
        set_alpha_to_one=False,
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.monotonic()
    pipe = build_sd15_shaped_pipeline(args.seed)
    args.output.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(args.output, safe_serialization=True)
    unet_params = sum(p.numel() for p in pipe.unet.parameters()) / 1e6
    print(
        f"wrote {args.output} (UNet {unet_params:.0f} M params) "
        f"in {time.monotonic() - started:.0f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
