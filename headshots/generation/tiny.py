"""Tiny random-weight SD1.5-, SDXL- and FLUX.2 [klein]-shaped models, built from configs.

Tests, the CLI's ``dev tiny-model`` and the benchmark use it: every code path of the real
pipeline (LoRA targets, VAE scaling, tokenizer, schedulers) runs, in seconds, on a CPU. Its
images are noise, so nothing judges them; only their plumbing.

The VAE has four blocks like SD's, so it downsamples by 8 and the native resolution is
``unet_sample_size * 8`` (64 px by default): face crops and aspect ratios keep their meaning.
The SDXL one (:func:`build_tiny_sdxl_pipeline`, ``dev tiny-model --family sdxl``) has both text
encoders and the ``text_time`` added conditioning, so it loads as ``StableDiffusionXLPipeline``.
The klein one (:func:`build_tiny_klein_pipeline`, ``--family flux2-klein``) has a Qwen3 text
encoder, a FLUX.2 transformer and VAE and a flow-matching scheduler, and loads as
``Flux2KleinPipeline``; its tokenizer is byte-level BPE built offline with ``tokenizers``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

_BOS = "<|startoftext|>"
_EOS = "<|endoftext|>"


def _byte_level_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes (CLIP's ``bytes_to_unicode``)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for code in codes]


def build_tiny_tokenizer() -> object:
    """A character-level CLIP tokenizer: every byte alone and at word end, no merges.

    Real CLIP vocabularies cannot be downloaded here; this one keeps CLIP's pre-tokenisation,
    special tokens and 77-token limit, which is all the pipeline relies on.
    """
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {}
    for symbol in _byte_level_alphabet():
        vocab[symbol] = len(vocab)
    for symbol in _byte_level_alphabet():
        vocab[symbol + "</w>"] = len(vocab)
    vocab[_BOS] = len(vocab)
    vocab[_EOS] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _tiny_text_config(tokenizer: Any, *, projection_dim: int = 32) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        projection_dim=projection_dim,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _tiny_vae(sample_size: int) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 16, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=sample_size * 8,
    )


def build_tiny_pipeline(seed: int = 0, *, sample_size: int = 8) -> Any:
    """Build the tiny SD1.5-shaped pipeline; the same ``seed`` gives bit-identical weights."""
    import torch
    from diffusers import PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    tokenizer: Any = build_tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=sample_size,
            in_channels=4,
            out_channels=4,
            layers_per_block=1,
            block_out_channels=(32, 64),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=32,
        )
        torch.manual_seed(seed + 1)
        vae = _tiny_vae(sample_size)
        torch.manual_seed(seed + 2)
        text_encoder = CLIPTextModel(_tiny_text_config(tokenizer))
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        skip_prk_steps=True,
        steps_offset=1,
        set_alpha_to_one=False,
    )
    pipe: Any = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


#: SDXL's micro-conditioning: six size/crop numbers, each embedded in this many channels.
_TINY_SDXL_TIME_EMBED_DIM = 8
_SDXL_TIME_IDS = 6


def build_tiny_sdxl_pipeline(seed: int = 0, *, sample_size: int = 8) -> Any:
    """Build a tiny SDXL-shaped pipeline; the same ``seed`` gives bit-identical weights.

    What makes a model SDXL is kept: two text encoders (the second with a projection, whose
    pooled output and the six ``add_time_ids`` condition the UNet through
    ``addition_embed_type="text_time"``), cross-attention over both encoders' hidden states
    side by side, linear attention projections and a deeper transformer in the lower level.
    Only the sizes shrink (diffusers' own SDXL fast tests use the same shape).
    """
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer: Any = build_tiny_tokenizer()
    first_config = _tiny_text_config(tokenizer)
    second_config = _tiny_text_config(tokenizer, projection_dim=32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=sample_size,
            in_channels=4,
            out_channels=4,
            layers_per_block=1,
            block_out_channels=(32, 64),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            transformer_layers_per_block=(1, 2),
            addition_embed_type="text_time",
            addition_time_embed_dim=_TINY_SDXL_TIME_EMBED_DIM,
            # The UNet's added embedding reads the time ids and the second encoder's pooled text.
            projection_class_embeddings_input_dim=(
                _SDXL_TIME_IDS * _TINY_SDXL_TIME_EMBED_DIM + second_config.projection_dim
            ),
            cross_attention_dim=first_config.hidden_size + second_config.hidden_size,
            norm_num_groups=32,
        )
        torch.manual_seed(seed + 1)
        vae = _tiny_vae(sample_size)
        torch.manual_seed(seed + 2)
        text_encoder = CLIPTextModel(first_config)
        torch.manual_seed(seed + 3)
        text_encoder_2 = CLIPTextModelWithProjection(second_config)
    # SDXL base's own scheduler settings.
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        timestep_spacing="leading",
        interpolation_type="linear",
        prediction_type="epsilon",
    )
    pipe: Any = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=build_tiny_tokenizer(),
        unet=unet,
        scheduler=scheduler,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


# --- FLUX.2 [klein] -----------------------------------------------------------------------------

#: Qwen3's chat template for one user turn with thinking switched off, which is all
#: ``Flux2KleinPipeline`` asks of it (``enable_thinking=False``: an empty think block).
_QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}"
    "<think>\n\n</think>\n\n{% endif %}{% endif %}"
)
_QWEN_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")


def build_tiny_qwen_tokenizer() -> object:
    """A byte-level BPE tokenizer in Qwen's shape, built offline with ``tokenizers``.

    Every byte is one token (no merges), so counts are easy to reason about in tests; the
    special tokens and the chat template are Qwen3's, so ``apply_chat_template`` behaves as
    with the real ``Qwen2TokenizerFast``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import Qwen2Tokenizer

    vocab = {symbol: index for index, symbol in enumerate(_byte_level_alphabet())}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(list(_QWEN_SPECIAL))
    return Qwen2Tokenizer(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        chat_template=_QWEN_CHAT_TEMPLATE,
        model_max_length=131072,
    )


#: Hidden layers of the tiny Qwen3 encoder; the pipeline stacks three of them (the real 4B
#: encoder has 36 and klein reads layers 9, 18 and 27).
_TINY_QWEN_LAYERS = 3
_TINY_QWEN_HIDDEN = 16


def build_tiny_klein_pipeline(seed: int = 0, *, sample_size: int = 64) -> Any:
    """Build a tiny FLUX.2 [klein]-shaped pipeline; the same ``seed`` gives identical weights.

    What makes it klein is kept: a Qwen3 causal LM whose stacked hidden states condition a
    ``Flux2Transformer2DModel`` (double- and single-stream blocks, 4-axis RoPE) over 2x2-patched
    latents of an ``AutoencoderKLFlux2`` (with its batch-norm latent statistics), sampled by
    flow matching. The VAE downsamples by 8, so ``sample_size`` is the native resolution.
    """
    import torch
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer: Any = build_tiny_qwen_tokenizer()
    latent_channels = 4
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = Flux2Transformer2DModel(
            patch_size=1,
            in_channels=latent_channels * 4,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=_TINY_QWEN_HIDDEN * 3,
            timestep_guidance_channels=32,
            mlp_ratio=2.0,
            axes_dims_rope=(4, 4, 4, 4),
            guidance_embeds=False,
        )
        torch.manual_seed(seed + 1)
        vae = AutoencoderKLFlux2(
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(16, 16, 16, 16),
            layers_per_block=1,
            latent_channels=latent_channels,
            norm_num_groups=8,
            sample_size=sample_size,
        )
        torch.manual_seed(seed + 2)
        text_encoder = Qwen3ForCausalLM(
            Qwen3Config(
                vocab_size=len(tokenizer),
                hidden_size=_TINY_QWEN_HIDDEN,
                intermediate_size=32,
                num_hidden_layers=_TINY_QWEN_LAYERS,
                num_attention_heads=2,
                num_key_value_heads=1,
                head_dim=8,
                max_position_embeddings=4096,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                tie_word_embeddings=True,
            )
        )
    # FLUX.2's own scheduler settings (resolution-dependent shift).
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000,
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    pipe: Any = Flux2KleinPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        is_distilled=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


TinyFamily = Literal["sd15", "sdxl", "flux2-klein"]
_BUILDERS: dict[str, Callable[[int], Any]] = {
    "sd15": build_tiny_pipeline,
    "sdxl": build_tiny_sdxl_pipeline,
    "flux2-klein": build_tiny_klein_pipeline,
}


def save_tiny_model(path: Path, seed: int = 0, *, family: TinyFamily = "sd15") -> Path:
    """Write the tiny ``family`` model in diffusers layout to ``path`` (a HEADSHOTS_BASE_MODEL)."""
    pipe = _BUILDERS[family](seed)
    path.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(path, safe_serialization=True)
    logger.info("wrote tiny %s model to %s", family, path)
    return path


def save_tiny_controlnet(base: Path, path: Path) -> Path:
    """A random ControlNet shaped like the tiny base model's UNet (``ControlNetModel.from_unet``),
    saved in diffusers layout: what the tests configure as ``HEADSHOTS_CONTROLNET_*``."""
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(base / "unet")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        controlnet = ControlNetModel.from_unet(unet)
        # from_unet zero-initialises the output convolutions (a fresh ControlNet changes
        # nothing); random ones make "with and without a reference" differ in a tiny test.
        with torch.no_grad():
            for block in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
                torch.nn.init.normal_(block.weight, std=0.05)
    path.mkdir(parents=True, exist_ok=True)
    controlnet.save_pretrained(path, safe_serialization=True)
    return path
