"""The ControlNets a reference photo steers through: where they come from, and their pipelines.

One ControlNet per family and hint (``HEADSHOTS_CONTROLNET_SD15_POSE`` ...), loaded once per
worker and kept resident beside the base, like the base itself. The ControlNet pipelines are
built from the resident pipeline's modules, so the person's LoRA (loaded into the shared UNet)
is active in them, and nothing is loaded twice.

diffusers' ControlNet pipelines exist for SD1.5 and SDXL; it has none for FLUX.2 [klein], so a
klein worker refuses a reference with the reason (``KLEIN_NO_CONTROLNET``) and the chats never
offer one there (``headshots.model_family.reference_hints``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headshots.errors import ConfigurationError, ModelMissing
from headshots.model_family import KLEIN_NO_CONTROLNET, ModelFamily, configured_controlnet

if TYPE_CHECKING:
    from headshots.queue.contracts import ControlHint
    from headshots.settings import Settings

logger = logging.getLogger(__name__)

#: What diffusers reads of a ControlNet repo: safetensors first, the older .bin only when a
#: repo has no safetensors (thibaud/controlnet-openpose-sdxl-1.0 ships only a .bin).
_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def controlnet_env(family: ModelFamily, hint: ControlHint) -> str:
    """The setting of ``family`` and ``hint``, e.g. ``HEADSHOTS_CONTROLNET_SD15_POSE``."""
    return f"HEADSHOTS_CONTROLNET_{family.upper()}_{hint.upper()}"


def require_controlnet(settings: Settings, family: ModelFamily, hint: ControlHint) -> str:
    """The configured ControlNet's name; :class:`ConfigurationError` saying what to set."""
    if family == "flux2-klein":
        raise ConfigurationError(f"a reference photo was asked for: {KLEIN_NO_CONTROLNET}")
    name = configured_controlnet(settings, family, hint)
    if name is None:
        raise ConfigurationError(
            f"this worker has no {hint} ControlNet for its {family} base model: set "
            f"{controlnet_env(family, hint)} to a diffusers ControlNet folder or Hugging Face id"
        )
    return name


def _has_weights(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any((folder / w).is_file() for w in _WEIGHTS)


def resolve_controlnet(settings: Settings, family: ModelFamily, hint: ControlHint) -> Path:
    """The configured ControlNet's folder: local, or fetched into ``settings.models_path``."""
    name = require_controlnet(settings, family, hint)
    local = Path(name).expanduser()
    if local.is_dir():
        if not _has_weights(local):
            raise ModelMissing(
                f"{local} is not a diffusers ControlNet folder (config.json and "
                f"{' or '.join(_WEIGHTS)}); check {controlnet_env(family, hint)}"
            )
        return local.resolve()
    if local.is_absolute() or name.startswith((".", "~")):
        raise ModelMissing(
            f"ControlNet folder {local} does not exist; check {controlnet_env(family, hint)}"
        )
    from huggingface_hub import snapshot_download

    cache_dir = settings.models_path / "hub"
    try:
        for weights in _WEIGHTS:
            folder = Path(
                snapshot_download(
                    repo_id=name,
                    cache_dir=cache_dir,
                    local_files_only=settings.hf_offline,
                    allow_patterns=["config.json", weights],
                )
            )
            if _has_weights(folder):
                return folder
    except Exception as exc:  # huggingface_hub raises a zoo of network/offline errors
        mode = "offline" if settings.hf_offline else "online"
        raise ModelMissing(
            f"ControlNet {name!r} is not in {cache_dir} and could not be fetched ({mode}): "
            f"{type(exc).__name__}: {exc}; check {controlnet_env(family, hint)}, "
            "HEADSHOTS_MODEL_DIR and HEADSHOTS_HF_OFFLINE"
        ) from exc
    raise ModelMissing(f"ControlNet {name!r} has no diffusers weights ({' or '.join(_WEIGHTS)})")


def load_controlnet(settings: Settings, family: ModelFamily, hint: ControlHint) -> Any:
    """The configured ControlNet on the worker's device and dtype."""
    from diffusers import ControlNetModel

    from headshots.generation.models import MODEL_LOADS, resolve_device, resolve_dtype

    path = resolve_controlnet(settings, family, hint)
    device = resolve_device(settings)
    dtype = resolve_dtype(settings, device)
    try:
        with MODEL_LOADS:
            model = ControlNetModel.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelMissing(
            f"cannot load the {hint} ControlNet from {path}: {exc}; "
            f"check {controlnet_env(family, hint)}"
        ) from exc
    logger.info("%s ControlNet %s resident on %s (%s)", hint, path, device, dtype)
    return model.to(device)


def controlnet_pipeline(pipe: Any, controlnet: Any, family: ModelFamily, *, img2img: bool) -> Any:
    """A ControlNet pipeline (text-to-image or img2img) over the resident pipeline's modules."""
    from diffusers import (
        StableDiffusionControlNetImg2ImgPipeline,
        StableDiffusionControlNetPipeline,
        StableDiffusionXLControlNetImg2ImgPipeline,
        StableDiffusionXLControlNetPipeline,
    )

    if family == "flux2-klein":
        raise ConfigurationError(KLEIN_NO_CONTROLNET)
    components = dict(pipe.components)
    classes: dict[tuple[str, bool], Any] = {
        ("sdxl", True): StableDiffusionXLControlNetImg2ImgPipeline,
        ("sdxl", False): StableDiffusionXLControlNetPipeline,
        ("sd15", True): StableDiffusionControlNetImg2ImgPipeline,
        ("sd15", False): StableDiffusionControlNetPipeline,
    }
    extra: dict[str, Any] = {} if family == "sdxl" else {"requires_safety_checker": False}
    runner: Any = classes[(family, img2img)](**components, controlnet=controlnet, **extra)
    runner.set_progress_bar_config(disable=True)
    return runner
