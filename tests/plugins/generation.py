"""Shared pytest fixtures for the generation tests (registered in tests/conftest.py).

- ``tiny_model_path``: a tiny random-weight SD1.5-shaped model in diffusers layout, built once
  per session (64 px native). Point ``HEADSHOTS_BASE_MODEL`` at it to run the real stages.
- ``tiny_settings``: :class:`Settings` on that model, dlib faces, a local store under tmp.
- ``tiny_pipeline``: a freshly loaded pipeline of the tiny model.
- ``make_tiny_lora``: trains a small LoRA on the tiny model (``seed`` picks a different one).
- ``training_images``: a fixed small set of captioned images for training tests.
- ``tiny_sdxl_model_path`` / ``tiny_sdxl_settings`` / ``make_tiny_sdxl_lora``: the same for a
  tiny SDXL-shaped model (two text encoders, ``text_time`` added conditioning), 64 px native.
- ``tiny_klein_model_path`` / ``tiny_klein_settings`` / ``make_tiny_klein_lora``: the same for
  a tiny FLUX.2 [klein]-shaped model (Qwen3 text encoder, FLUX.2 transformer), 64 px native.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image


@dataclass(frozen=True)
class CaptionedImage:
    image: Image.Image
    caption: str


@pytest.fixture(scope="session", autouse=False)
def torch_threads() -> Iterator[None]:
    """Two threads: the suite shares two cores with other work."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory, torch_threads: None) -> Path:
    """A tiny SD1.5-shaped model on disk (built once per session, ~4 MB)."""
    from headshots.generation.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"), seed=0)


@pytest.fixture(scope="session")
def tiny_sdxl_model_path(tmp_path_factory: pytest.TempPathFactory, torch_threads: None) -> Path:
    """A tiny SDXL-shaped model on disk (built once per session, ~6 MB)."""
    from headshots.generation.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-sdxl-model"), seed=0, family="sdxl")


@pytest.fixture(scope="session")
def tiny_klein_model_path(tmp_path_factory: pytest.TempPathFactory, torch_threads: None) -> Path:
    """A tiny FLUX.2 [klein]-shaped model on disk (built once per session, ~1 MB)."""
    from headshots.generation.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-klein"), seed=0, family="flux2-klein")


@pytest.fixture(scope="session")
def tiny_controlnet_path(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> Path:
    """A random ControlNet shaped like the tiny SD1.5 UNet (``ControlNetModel.from_unet``)."""
    from headshots.generation.tiny import save_tiny_controlnet

    return save_tiny_controlnet(tiny_model_path, tmp_path_factory.mktemp("tiny-controlnet"))


@pytest.fixture(scope="session")
def tiny_sdxl_controlnet_path(
    tmp_path_factory: pytest.TempPathFactory, tiny_sdxl_model_path: Path
) -> Path:
    """A random ControlNet shaped like the tiny SDXL UNet (text_time conditioning and all)."""
    from headshots.generation.tiny import save_tiny_controlnet

    return save_tiny_controlnet(tiny_sdxl_model_path, tmp_path_factory.mktemp("tiny-sdxl-cn"))


def _tiny_settings(model_path: Path, tmp_path: Path) -> Any:
    from headshots.settings import Settings

    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        base_model=str(model_path),
        state_dir=tmp_path / "state",
        store_backend="local",
        face_backend="dlib",
        hf_offline=True,
        device="cpu",
        dtype="float32",
        train_steps=4,
    )


@pytest.fixture
def tiny_settings(tiny_model_path: Path, tmp_path: Path) -> Any:
    """Settings for the tiny model, the dlib backend, a local store, and 4 training steps."""
    return _tiny_settings(tiny_model_path, tmp_path)


@pytest.fixture
def tiny_sdxl_settings(tiny_sdxl_model_path: Path, tmp_path: Path) -> Any:
    """:func:`tiny_settings` on the tiny SDXL model."""
    return _tiny_settings(tiny_sdxl_model_path, tmp_path)


@pytest.fixture
def tiny_klein_settings(tiny_klein_model_path: Path, tmp_path: Path) -> Any:
    """:func:`tiny_settings` on the tiny klein model."""
    return _tiny_settings(tiny_klein_model_path, tmp_path)


@pytest.fixture
def tiny_pipeline(tiny_model_path: Path) -> Any:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        tiny_model_path, safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_training_images(count: int = 4, seed: int = 0, size: int = 64) -> list[CaptionedImage]:
    """Smooth random blobs (learnable, unlike white noise), all captioned with the token."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        coarse = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
        images.append(CaptionedImage(image, "photo of ohwx person"))
    return images


@pytest.fixture
def training_images() -> list[CaptionedImage]:
    return make_training_images()


def _lora_maker(
    model_path: Path, tmp_path_factory: pytest.TempPathFactory, family: str
) -> Callable[[int], bytes]:
    from diffusers import StableDiffusionPipeline

    from headshots.generation.models import pipeline_class
    from headshots.generation.train import LORA_WEIGHT_NAME, TrainConfig, train_lora

    cache: dict[int, bytes] = {}

    def make(seed: int) -> bytes:
        if seed not in cache:
            if family == "sd15":
                pipe = StableDiffusionPipeline.from_pretrained(
                    model_path, safety_checker=None, requires_safety_checker=False
                )
            else:
                pipe = pipeline_class(family).from_pretrained(model_path)
            out = tmp_path_factory.mktemp(f"lora-{family}-{seed}")
            config = TrainConfig(
                family=family,  # type: ignore[arg-type]
                resolution=64,
                steps=8,
                rank=4,
                learning_rate=5e-3,
                seed=seed,
                eval_samples=0,
                # SDXL's default; off here, where memory is no concern and time is.
                gradient_checkpointing=False,
            )
            train_lora(pipe, make_training_images(seed=seed), config, output_dir=out)
            cache[seed] = (out / LORA_WEIGHT_NAME).read_bytes()
        return cache[seed]

    return make


@pytest.fixture(scope="session")
def make_tiny_lora(
    tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[int], bytes]:
    """``make(seed) -> safetensors bytes`` of a LoRA trained for 8 steps (cached per seed)."""
    return _lora_maker(tiny_model_path, tmp_path_factory, "sd15")


@pytest.fixture(scope="session")
def make_tiny_sdxl_lora(
    tiny_sdxl_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[int], bytes]:
    """:func:`make_tiny_lora` on the tiny SDXL model."""
    return _lora_maker(tiny_sdxl_model_path, tmp_path_factory, "sdxl")


@pytest.fixture(scope="session")
def make_tiny_klein_lora(
    tiny_klein_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[int], bytes]:
    """:func:`make_tiny_lora` on the tiny klein model."""
    return _lora_maker(tiny_klein_model_path, tmp_path_factory, "flux2-klein")
