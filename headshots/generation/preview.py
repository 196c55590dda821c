"""Instant zero-shot preview with IP-Adapter FaceID, while the LoRA is still training.

Needs two things we cannot assume: an IP-Adapter FaceID weight file
(``HEADSHOTS_IP_ADAPTER_FACEID``: a local file or ``repo_id/weight_name``) and a 512-d
insightface embedding (dlib's 128-d embedding is a different space). Without either, the
preview is skipped and the reason recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from headshots.errors import ModelMissing
from headshots.generation.presets import PromptSpec

if TYPE_CHECKING:
    from PIL import Image

    from headshots.generation.faces import FaceAnalyzer
    from headshots.generation.pipeline import ResidentPipeline
    from headshots.settings import Settings

logger = logging.getLogger(__name__)

FACEID_WEIGHT_SD15 = "ip-adapter-faceid_sd15.bin"
FACEID_DIM = 512
IP_ADAPTER_SCALE = 0.8


@dataclass
class PreviewOutcome:
    image: Image.Image | None
    skipped: str | None = None
    record: dict[str, Any] | None = None


def preview_unavailable(settings: Settings, analyzer: FaceAnalyzer, family: str) -> str | None:
    """Why no preview can be made here, or ``None`` when it can."""
    if not settings.ip_adapter_faceid:
        return "HEADSHOTS_IP_ADAPTER_FACEID is not set"
    if getattr(analyzer, "name", "") != "insightface":
        return "IP-Adapter FaceID needs the insightface face backend (512-d ArcFace embedding)"
    if family != "sd15":
        return "the FaceID preview is only wired for SD1.5 base models"
    return None


def _adapter_location(spec: str) -> tuple[str, str | None, str]:
    """(``pretrained_model_name_or_path``, ``subfolder``, ``weight_name``) for load_ip_adapter."""
    path = Path(spec).expanduser()
    if path.is_file():
        return str(path.parent), None, path.name
    if path.is_dir():
        return str(path), None, FACEID_WEIGHT_SD15
    parts = spec.split("/")
    if len(parts) == 3:  # owner/repo/weight
        return "/".join(parts[:2]), None, parts[2]
    return spec, None, FACEID_WEIGHT_SD15


def make_preview(
    resident: ResidentPipeline,
    spec: PromptSpec,
    embedding: np.ndarray,
) -> Image.Image:
    """One image of the person in the style, conditioned on the face embedding only."""
    import torch

    if embedding.shape[-1] != FACEID_DIM:
        raise ValueError(f"FaceID needs a {FACEID_DIM}-d embedding, got {embedding.shape}")
    location, subfolder, weight = _adapter_location(resident.settings.ip_adapter_faceid or "")
    with resident.adapters(None, "preview") as pipe:
        try:
            pipe.load_ip_adapter(
                location, subfolder=subfolder, weight_name=weight, image_encoder_folder=None
            )
        except (OSError, ValueError) as exc:
            raise ModelMissing(
                f"cannot load IP-Adapter FaceID from {location}/{weight}: {exc}; "
                "check HEADSHOTS_IP_ADAPTER_FACEID and HEADSHOTS_HF_OFFLINE"
            ) from exc
        try:
            pipe.set_ip_adapter_scale(IP_ADAPTER_SCALE)
            # Loading an IP-Adapter resets which LoRA adapters are active: none are here, but
            # if one ever is, set_adapters must be applied again after this point.
            reference = torch.from_numpy(np.asarray(embedding, dtype=np.float32)).reshape(
                1, 1, 1, -1
            )
            embeds = torch.cat([torch.zeros_like(reference), reference]).to(
                pipe.device, pipe.unet.dtype
            )
            prompt = spec.prompt.replace(
                f"{spec.token} ", ""
            )  # no LoRA yet: the token means nothing
            output = pipe(
                prompt=prompt,
                negative_prompt=spec.negative_prompt,
                ip_adapter_image_embeds=[embeds],
                num_inference_steps=min(spec.steps, 30),
                guidance_scale=spec.cfg,
                width=spec.width,
                height=spec.height,
                generator=torch.Generator().manual_seed(spec.seeds[0]),
            )
        finally:
            pipe.unload_ip_adapter()
    image: Image.Image = output.images[0]
    return image
