"""Write a FLUX.2 [klein] 4B-shaped random-weight model folder (offline; not a test). Usage:

    .venv/bin/python bench/klein_shape.py /tmp/klein-shape [--device cuda]

The transformer, VAE and text encoder use the published configs of FLUX.2-klein-base-4B
(transformer: 5 double- and 20 single-stream blocks of 24 heads x 128, joint attention over
3 x 2560 text channels; VAE 128/256/512/512 with 32 latent channels; Qwen3-4B text encoder, 36
layers of 2560) with random weights, so timings and memory have the real model's shape. Weights
are written in bf16 (~16 GB). The tokenizer is the tiny byte-level one (the real Qwen vocabulary
cannot be downloaded here); it spends about four times the tokens on a prompt, which stays far
below the 512-token sequence every prompt is padded to, so the encoder's cost is the real one.
``--device cuda`` builds on the GPU (seconds instead of minutes of CPU initialisation).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: FLUX.2-klein-base-4B transformer/config.json.
TRANSFORMER = {
    "patch_size": 1,
    "in_channels": 128,
    "num_layers": 5,
    "num_single_layers": 20,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 7680,
    "timestep_guidance_channels": 256,
    "mlp_ratio": 3.0,
    "axes_dims_rope": (32, 32, 32, 32),
    "rope_theta": 2000,
    "guidance_embeds": False,
}
#: Qwen3-4B, the klein 4B text encoder.
QWEN3_4B = {
    "hidden_size": 2560,
    "intermediate_size": 9728,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 40960,
    "rope_theta": 1_000_000,
    "tie_word_embeddings": True,
    "vocab_size": 151936,
}


def build_klein_shaped_pipeline(device: str = "cpu", seed: int = 0) -> Any:
    import torch
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from headshots.generation.tiny import build_tiny_qwen_tokenizer

    tokenizer: Any = build_tiny_qwen_tokenizer()
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            transformer = Flux2Transformer2DModel(**TRANSFORMER)
            vae = AutoencoderKLFlux2(latent_channels=32, block_out_channels=(128, 256, 512, 512))
            text_encoder = Qwen3ForCausalLM(
                Qwen3Config(
                    **QWEN3_4B,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
            )
    finally:
        torch.set_default_dtype(previous)
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000,
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    return Flux2KleinPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        is_distilled=False,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", type=Path)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    started = time.monotonic()
    pipe = build_klein_shaped_pipeline(args.device)
    params = sum(p.numel() for p in pipe.transformer.parameters()) / 1e9
    text = sum(p.numel() for p in pipe.text_encoder.parameters()) / 1e9
    pipe.save_pretrained(args.path, safe_serialization=True)
    print(
        f"klein-shaped model ({params:.2f} B transformer, {text:.2f} B text encoder) written to "
        f"{args.path} in {time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
