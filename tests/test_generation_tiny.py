from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from headshots.errors import ModelMissing
from headshots.generation.models import (
    detect_family,
    load_base_pipeline,
    resolve_dtype,
    resolve_model,
)
from headshots.generation.tiny import build_tiny_pipeline, build_tiny_tokenizer
from headshots.settings import Settings


def test_tiny_model_is_deterministic_per_seed(torch_threads: None) -> None:
    import torch

    a, b, c = build_tiny_pipeline(0), build_tiny_pipeline(0), build_tiny_pipeline(1)
    for name, tensor in a.unet.state_dict().items():
        assert torch.equal(tensor, b.unet.state_dict()[name])
    assert any(not torch.equal(t, c.unet.state_dict()[n]) for n, t in a.unet.state_dict().items())


def test_tokenizer_works_offline() -> None:
    tokenizer: Any = build_tiny_tokenizer()
    ids = tokenizer("portrait of ohwx man", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == "portraitofohwxman"


def test_saved_tiny_model_resolves_and_loads(
    tiny_settings: Settings, tiny_model_path: Path
) -> None:
    source = resolve_model(tiny_settings)
    assert source.family == "sd15" == detect_family(tiny_model_path)
    # The VAE downsamples by 8 like SD's, so crops and aspect ratios mean the same thing.
    assert source.native_resolution == 64
    pipe = load_base_pipeline(tiny_settings)
    assert pipe.vae_scale_factor == 8
    image = pipe("photo of ohwx person", num_inference_steps=2, height=64, width=64).images[0]
    assert image.size == (64, 64)


def test_missing_local_model_names_the_settings(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, base_model=str(tmp_path / "nope"), state_dir=tmp_path)  # type: ignore[call-arg]
    with pytest.raises(ModelMissing, match="HEADSHOTS_BASE_MODEL"):
        resolve_model(settings)


def test_unreachable_hub_model_offline_names_the_settings(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None, base_model="someone/not-cached", state_dir=tmp_path, hf_offline=True
    )  # type: ignore[call-arg]
    with pytest.raises(ModelMissing) as error:
        resolve_model(settings)
    assert "HEADSHOTS_HF_OFFLINE" in str(error.value) and "HEADSHOTS_MODEL_DIR" in str(error.value)


def test_dtype_auto_is_fp32_on_cpu_and_overridable(tmp_path: Path) -> None:
    import torch

    auto = Settings(_env_file=None, state_dir=tmp_path)  # type: ignore[call-arg]
    assert resolve_dtype(auto, torch.device("cpu")) == torch.float32
    forced = auto.model_copy(update={"dtype": "bfloat16"})
    assert resolve_dtype(forced, torch.device("cpu")) == torch.bfloat16


def test_tiny_sdxl_has_sdxl_shape_and_resolves_as_sdxl(
    tiny_sdxl_settings: Settings, tiny_sdxl_model_path: Path
) -> None:
    source = resolve_model(tiny_sdxl_settings)
    assert source.family == "sdxl" == detect_family(tiny_sdxl_model_path)
    assert source.native_resolution == 64
    pipe = load_base_pipeline(tiny_sdxl_settings)
    assert type(pipe).__name__ == "StableDiffusionXLPipeline"
    unet, first, second = pipe.unet.config, pipe.text_encoder.config, pipe.text_encoder_2.config
    assert type(pipe.text_encoder_2).__name__ == "CLIPTextModelWithProjection"
    assert unet.addition_embed_type == "text_time" and len(unet.block_out_channels) == 2
    # The UNet reads both encoders' hidden states side by side, and six time ids + pooled text.
    assert unet.cross_attention_dim == first.hidden_size + second.hidden_size
    assert unet.projection_class_embeddings_input_dim == (
        6 * unet.addition_time_embed_dim + second.projection_dim
    )
    assert pipe.vae_scale_factor == 8
    image = pipe("photo of ohwx person", num_inference_steps=2, height=64, width=48).images[0]
    assert image.size == (48, 64)


def test_tiny_sdxl_is_deterministic_per_seed(torch_threads: None) -> None:
    import torch

    from headshots.generation.tiny import build_tiny_sdxl_pipeline

    a, b = build_tiny_sdxl_pipeline(0), build_tiny_sdxl_pipeline(0)
    for module in ("unet", "text_encoder_2"):
        theirs = getattr(b, module).state_dict()
        for name, tensor in getattr(a, module).state_dict().items():
            assert torch.equal(tensor, theirs[name]), (module, name)


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_configured_dtype_reaches_every_loaded_module(
    family: str,
    tiny_model_path: Path,
    tiny_sdxl_model_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import torch

    monkeypatch.setenv("HEADSHOTS_DTYPE", "bfloat16")
    path = tiny_sdxl_model_path if family == "sdxl" else tiny_model_path
    settings = Settings(_env_file=None, base_model=str(path), state_dir=tmp_path, device="cpu")  # type: ignore[call-arg]
    pipe = load_base_pipeline(settings)
    modules = ["unet", "vae", "text_encoder"] + (["text_encoder_2"] if family == "sdxl" else [])
    for name in modules:
        assert getattr(pipe, name).dtype == torch.bfloat16, name
    image = pipe("photo of ohwx person", num_inference_steps=1, height=64, width=64).images[0]
    assert image.size == (64, 64)
