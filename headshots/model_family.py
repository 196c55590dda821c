"""Which family a base model folder holds, read from its JSON files alone (no torch).

The chats ask it whether to offer a quick draft or a reference photo, and ``headshots.bot`` may
not import ``headshots.generation`` (which loads the models): so this lives beside both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from headshots.errors import ConfigurationError, ModelMissing

if TYPE_CHECKING:
    from headshots.queue.contracts import ControlHint
    from headshots.settings import Settings

ModelFamily = Literal["sd15", "sdxl", "flux2-klein"]
MODEL_FAMILIES: tuple[ModelFamily, ...] = ("sd15", "sdxl", "flux2-klein")


_MISSING_HINT = (
    "set HEADSHOTS_BASE_MODEL to a local diffusers folder or a reachable Hugging Face id, "
    "HEADSHOTS_MODEL_DIR to the cache that holds it, and HEADSHOTS_HF_OFFLINE=1 only when the "
    "weights are already there (`headshots models fetch` fills that cache on a host with network)"
)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelMissing(f"cannot read {path}: {exc}; {_MISSING_HINT}") from exc
    if not isinstance(data, dict):
        raise ModelMissing(f"{path} is not a JSON object; {_MISSING_HINT}")
    return data


def detect_family(path: Path) -> ModelFamily:
    """``flux2-klein`` for a FLUX.2 [klein] folder (its pipeline class, or a FLUX.2 transformer
    with a Qwen3 text encoder), ``sdxl`` when the folder has a second text encoder (or says so),
    else ``sd15``."""
    index = _read_json(path / "model_index.json")
    class_name = str(index.get("_class_name", ""))
    transformer = index.get("transformer") or [None, ""]
    text_encoder = index.get("text_encoder") or [None, ""]
    if class_name.startswith("Flux2Klein") or (
        str(transformer[-1]) == "Flux2Transformer2DModel" and "Qwen3" in str(text_encoder[-1])
    ):
        return "flux2-klein"
    if "Flux" in class_name or "transformer" in index:
        raise ConfigurationError(
            f"{path} holds a {class_name or 'transformer'} model; supported families are "
            f"{', '.join(MODEL_FAMILIES)}; {_MISSING_HINT}"
        )
    if "XL" in class_name or "text_encoder_2" in index:
        return "sdxl"
    return "sd15"


def quick_drafts_possible(settings: Settings) -> bool:
    """Whether a quick draft can be made: an LCM-LoRA for the SD families, the step-distilled
    variant for klein (the undistilled klein base has none, whatever HEADSHOTS_LCM_LORA says).

    The chats call it to show the button, so it reads only a local folder's model_index.json:
    a Hugging Face id is judged by the LCM-LoRA setting alone (the worker then says why not).
    """
    folder = Path(settings.base_model).expanduser()
    try:
        index = json.loads((folder / "model_index.json").read_text())
        family = detect_family(folder)
    except (OSError, ValueError, ModelMissing, ConfigurationError):
        return bool(settings.lcm_lora)
    if family == "flux2-klein":
        return bool(index.get("is_distilled"))
    return bool(settings.lcm_lora)


CONTROL_HINTS: tuple[ControlHint, ...] = ("pose", "canny")

#: Why a FLUX.2 [klein] base never offers a reference photo (the doctor and the worker say it).
KLEIN_NO_CONTROLNET = (
    "diffusers has no ControlNet for FLUX.2 [klein] yet, so a reference photo cannot steer it"
)


def configured_controlnet(settings: Settings, family: ModelFamily, hint: ControlHint) -> str | None:
    """The ControlNet (folder or Hugging Face id) of ``hint`` for ``family``, if one is set."""
    if family == "flux2-klein":
        return None
    value: str | None = getattr(settings, f"controlnet_{family}_{hint}")
    return value or None


def local_family(settings: Settings) -> ModelFamily | None:
    """The base model's family when it is a readable local folder; None for a hub id."""
    try:
        return detect_family(Path(settings.base_model).expanduser())
    except (ModelMissing, ConfigurationError):
        return None


def reference_hints(settings: Settings) -> tuple[ControlHint, ...]:
    """The hints a chat may offer for a reference photo, pose first; empty: no offer at all.

    A hub id base is judged by any family's ControlNets (the worker says why when the
    family turns out not to match); a local folder by its own family's.
    """
    family = local_family(settings)
    families: tuple[ModelFamily, ...] = (family,) if family else ("sd15", "sdxl")
    return tuple(
        hint
        for hint in CONTROL_HINTS
        if any(configured_controlnet(settings, f, hint) for f in families)
    )
