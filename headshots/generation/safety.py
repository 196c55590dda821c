"""The output check: no generated image reaches a chat before an NSFW classifier has seen it.

Prompts are reviewed (:mod:`headshots.style.policy`) and carry safety negatives, but a
diffusion model can still draw what nobody asked for, on a real person's face. So every image
is classified before it is delivered: diffusers' ``StableDiffusionSafetyChecker`` (a CLIP
ViT-L/14 with 17 concept and 3 "special care" embeddings) with its ``CLIPImageProcessor``. A
flagged image is never sent; the job record and the chat say how many were withheld.

``HEADSHOTS_SAFETY_CHECKER``:

- ``auto`` (default): the base model's own ``safety_checker/`` folder when it ships one (the
  original SD1.5 layout), else the hub id ``CompVis/stable-diffusion-safety-checker``;
- a local folder or a Hugging Face id of a checker in that layout;
- ``none``: no output check (``headshots doctor`` warns loudly).

A configured check that cannot load fails closed: the worker loads it at start-up
(``GenerationStages.ready``) and exits before taking a job when it cannot, and a job that
still meets a missing checker fails; an unchecked image is never delivered because weights
went missing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headshots.errors import ModelMissing

if TYPE_CHECKING:
    from PIL import Image

    from headshots.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_CHECKER = "CompVis/stable-diffusion-safety-checker"
_DISABLED = ("none", "off", "false", "0", "")


def checker_setting(settings: Settings, base_model_path: Path | None) -> str | None:
    """The checker to load (folder or hub id), or ``None`` when the check is switched off."""
    value = (settings.safety_checker or "").strip()
    if value.lower() in _DISABLED:
        return None
    if value.lower() == "auto":
        own = base_model_path / "safety_checker" if base_model_path is not None else None
        if own is not None and (own / "config.json").is_file():
            return str(base_model_path)  # the pipeline layout: weights in safety_checker/
        return DEFAULT_CHECKER
    return value


def resolve_checker(settings: Settings, name: str) -> tuple[Path, str | None]:
    """(folder, subfolder) holding the checker; downloads a hub id into the model cache."""
    local = Path(name).expanduser()
    if local.is_dir():
        if (local / "safety_checker" / "config.json").is_file():
            return local, "safety_checker"
        if (local / "config.json").is_file():
            return local, None
        raise ModelMissing(f"{local} holds no safety checker (no config.json); {_HINT}")
    if local.is_absolute() or name.startswith((".", "~")):
        raise ModelMissing(f"safety checker folder {local} does not exist; {_HINT}")
    from huggingface_hub import snapshot_download

    try:
        snapshot = snapshot_download(
            repo_id=name,
            cache_dir=settings.models_path / "hub",
            local_files_only=settings.hf_offline,
            allow_patterns=["*.json", "*.safetensors", "*.txt"],
        )
    except Exception as exc:  # huggingface_hub raises a zoo of network/offline errors
        raise ModelMissing(
            f"safety checker {name!r} is not cached and could not be fetched: "
            f"{type(exc).__name__}: {exc}; {_HINT}"
        ) from exc
    return Path(snapshot), None


_HINT = (
    "fetch it ahead with `headshots models fetch` on a host with network, or set "
    "HEADSHOTS_SAFETY_CHECKER to a local folder or a reachable Hugging Face id (or 'none' "
    "to deliver unchecked images, which headshots doctor reports)"
)


def _processor_class() -> Any:
    # transformers 5 splits the processor by backend; its PIL one needs no torchvision.
    try:
        from transformers import CLIPImageProcessorPil

        return CLIPImageProcessorPil
    except ImportError:  # transformers 4
        from transformers import CLIPImageProcessor

        return CLIPImageProcessor


def _image_processor(path: Path, subfolder: str | None) -> Any:
    processor = _processor_class()
    folder = path / "feature_extractor" if subfolder else path
    if (folder / "preprocessor_config.json").is_file():
        return processor.from_pretrained(folder)
    # The CompVis repo keeps its processor config beside the model; a bare weights folder gets
    # CLIP's standard 224 px preprocessing, which is what the checker was trained with.
    return processor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})


class SafetyChecker:
    """Loaded once per worker; :meth:`flags` says which images must never be delivered."""

    def __init__(self, model: Any, processor: Any, name: str) -> None:
        self.model = model
        self.processor = processor
        self.name = name

    @classmethod
    def load(cls, settings: Settings, name: str) -> SafetyChecker:
        from diffusers.pipelines.stable_diffusion.safety_checker import (
            StableDiffusionSafetyChecker,
        )

        from headshots.generation.models import MODEL_LOADS, resolve_device

        path, subfolder = resolve_checker(settings, name)
        where: dict[str, Any] = {"subfolder": subfolder} if subfolder else {}
        try:
            with MODEL_LOADS:
                model: Any = StableDiffusionSafetyChecker.from_pretrained(path, **where)
        except (OSError, ValueError) as exc:
            raise ModelMissing(
                f"cannot load the safety checker from {path}: {exc}; {_HINT}"
            ) from exc
        model.to(resolve_device(settings)).eval()
        logger.info("output check: safety checker %s", name)
        return cls(model, _image_processor(path, subfolder), name)

    def flags(self, images: Sequence[Image.Image], batch_size: int = 8) -> list[bool]:
        """``True`` for every image the checker flags (in order)."""
        import numpy as np
        import torch

        flagged: list[bool] = []
        for start in range(0, len(images), batch_size):
            chunk = [image.convert("RGB") for image in images[start : start + batch_size]]
            pixels = self.processor(chunk, return_tensors="pt").pixel_values
            parameter = next(self.model.parameters())
            with torch.no_grad():
                # The checker blanks flagged images in the array it is given; we only need the
                # flags, so it gets placeholders instead of our pixels.
                _, has_nsfw = self.model(
                    clip_input=pixels.to(parameter.device, parameter.dtype),
                    images=np.zeros((len(chunk), 1, 1, 3), dtype=np.float32),
                )
            flagged.extend(bool(flag) for flag in has_nsfw)
        return flagged


def load_safety_checker(settings: Settings, base_model_path: Path | None) -> SafetyChecker | None:
    """The configured output check, or ``None`` when it is switched off (logged loudly)."""
    name = checker_setting(settings, base_model_path)
    if name is None:
        logger.warning(
            "HEADSHOTS_SAFETY_CHECKER=none: generated images are delivered without an output check"
        )
        return None
    return SafetyChecker.load(settings, name)


def save_random_checker(
    path: Path, *, seed: int = 0, image_size: int = 32, flag_everything: bool = False
) -> Path:
    """A tiny random-weight checker in the published layout (tests, ``dev`` models, no download).

    Its concept thresholds are above any cosine similarity, so it flags nothing, unless
    ``flag_everything`` puts them below every one.
    """
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import (
        StableDiffusionSafetyChecker,
    )
    from transformers import CLIPConfig

    config = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4,
                     "num_hidden_layers": 1, "vocab_size": 99, "bos_token_id": 0,
                     "eos_token_id": 1, "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4,
                       "num_hidden_layers": 2, "image_size": image_size, "patch_size": 8},
        projection_dim=16,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = StableDiffusionSafetyChecker(config)
        with torch.no_grad():
            model.concept_embeds.normal_()
            model.special_care_embeds.normal_()
            threshold = -2.0 if flag_everything else 2.0
            model.concept_embeds_weights.fill_(threshold)
            model.special_care_embeds_weights.fill_(2.0)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    _processor_class()(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    ).save_pretrained(path)
    return path
