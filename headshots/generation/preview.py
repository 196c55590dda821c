"""Instant zero-shot preview with IP-Adapter FaceID, while the LoRA is still training.

Needs two things we cannot assume: an IP-Adapter FaceID weight file
(``HEADSHOTS_IP_ADAPTER_FACEID``: a local file or folder, or ``owner/repo/weight_name``) and a
512-d ArcFace embedding from the insightface backend (dlib's 128-d embedding is another space,
and the adapter's projection expects ArcFace's). Without either, the preview is skipped and the
reason recorded.

The published ``ip-adapter-faceid_sd15.bin`` carries its LoRA inside (``N.to_q_lora.*`` keys of
its ``ip_adapter`` dict); diffusers' ``load_ip_adapter`` applies it as adapter ``faceid_0``. A
weight file without those keys gets its companion ``<stem>_lora.safetensors`` (the kohya layout
the authors publish beside it for web UIs) when one sits next to it.

Everything the preview adds to the resident pipeline (attention processors, the image
projection, the LoRA layers, the feature extractor diffusers registers) is removed again before
the next job, so the job's real headshots come from the exact base weights.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from headshots.errors import ModelMissing
from headshots.generation.models import MODEL_LOADS
from headshots.style.presets import PromptSpec

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from headshots.generation.faces import FaceAnalyzer
    from headshots.generation.pipeline import ResidentPipeline
    from headshots.settings import Settings

logger = logging.getLogger(__name__)

FACEID_WEIGHT_SD15 = "ip-adapter-faceid_sd15.bin"
COMPANION_LORA_SUFFIX = "_lora.safetensors"
FACEID_LORA_ADAPTER = "faceid_lora"
FACEID_DIM = 512
IP_ADAPTER_SCALE = 0.8
MAX_PREVIEW_STEPS = 30
DLIB_UNAVAILABLE = (
    "the FaceID preview is not available with the dlib backend (its 128-d face embeddings "
    "are not the 512-d ArcFace embeddings IP-Adapter FaceID was trained on)"
)


@dataclass
class PreviewImage:
    image: Image.Image
    #: How it was made: adapter file, which LoRA, steps, embedding shape.
    record: dict[str, Any] = field(default_factory=dict)


def preview_unavailable(settings: Settings, analyzer: FaceAnalyzer, family: str) -> str | None:
    """Why no preview can be made here, or ``None`` when it can."""
    if not settings.ip_adapter_faceid:
        return "HEADSHOTS_IP_ADAPTER_FACEID is not set"
    backend = getattr(analyzer, "name", "")
    if backend == "dlib":
        return DLIB_UNAVAILABLE
    if backend != "insightface":
        return f"IP-Adapter FaceID needs the insightface face backend, not {backend!r}"
    if family != "sd15":
        return "the FaceID preview is only wired for SD1.5 base models"
    return None


def adapter_location(spec: str) -> tuple[str, str | None, str]:
    """(``pretrained_model_name_or_path``, ``subfolder``, ``weight_name``) for load_ip_adapter."""
    path = Path(spec).expanduser()
    if path.is_file():
        return str(path.parent), None, path.name
    if path.is_dir():
        return str(path), None, FACEID_WEIGHT_SD15
    if path.is_absolute() or spec.startswith((".", "~")):
        raise ModelMissing(f"IP-Adapter FaceID file {path} does not exist")
    parts = spec.split("/")
    if len(parts) == 3:  # owner/repo/weight
        return "/".join(parts[:2]), None, parts[2]
    return spec, None, FACEID_WEIGHT_SD15


def companion_lora(location: str, weight: str) -> Path | None:
    """The published companion LoRA beside a local weight file, if there is one."""
    candidate = Path(location) / (Path(weight).stem + COMPANION_LORA_SUFFIX)
    return candidate if candidate.is_file() else None


def faceid_embeds(embedding: np.ndarray) -> torch.Tensor:
    """``ip_adapter_image_embeds`` entry for one face: (negative, positive) x 1 image x 1 x 512.

    diffusers' FaceID recipe: a zero vector is the unconditional half of classifier-free
    guidance. (A 3-d ``(2, 1, 512)`` tensor gives the same result; this is the documented one.)
    """
    import torch

    vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
    if vector.shape[0] != FACEID_DIM:
        raise ValueError(f"FaceID needs a {FACEID_DIM}-d embedding, got {embedding.shape}")
    reference = torch.from_numpy(vector).reshape(1, 1, 1, FACEID_DIM)
    return torch.cat([torch.zeros_like(reference), reference])


def make_preview(
    resident: ResidentPipeline,
    spec: PromptSpec,
    embedding: np.ndarray,
    *,
    check_cancelled: Callable[[], None] | None = None,
) -> PreviewImage:
    """One image of the person in the style, conditioned on the face embedding only.

    Raises whatever loading or sampling raises; the caller decides that a preview is optional.
    """
    import torch

    from headshots.generation.prompts import encode_prompts

    embeds = faceid_embeds(embedding)
    location, subfolder, weight = adapter_location(resident.settings.ip_adapter_faceid or "")
    record: dict[str, Any] = {"adapter": f"{location}/{weight}", "scale": IP_ADAPTER_SCALE}
    with resident.adapters(None, "preview") as pipe:
        # load_ip_adapter registers a feature extractor when the pipeline has none and
        # unload_ip_adapter keeps it (SD1.5 pipelines have a safety_checker slot): put it back.
        extractor = getattr(pipe, "feature_extractor", None)
        try:
            try:
                with MODEL_LOADS:
                    pipe.load_ip_adapter(
                        location,
                        subfolder=subfolder,
                        weight_name=weight,
                        image_encoder_folder=None,
                        local_files_only=resident.settings.hf_offline,
                        cache_dir=str(resident.settings.models_path / "hub"),
                    )
            except (OSError, ValueError) as exc:
                raise ModelMissing(
                    f"cannot load IP-Adapter FaceID from {location}/{weight}: {exc}; "
                    "check HEADSHOTS_IP_ADAPTER_FACEID and HEADSHOTS_HF_OFFLINE"
                ) from exc
            active = [name for name in (getattr(pipe.unet, "peft_config", None) or {})]
            if active:
                record["lora"] = "inside the adapter file"
            else:
                companion = companion_lora(location, weight)
                if companion is not None:
                    with MODEL_LOADS:
                        pipe.load_lora_weights(str(companion), adapter_name=FACEID_LORA_ADAPTER)
                    active = [FACEID_LORA_ADAPTER]
                    record["lora"] = companion.name
                else:
                    record["lora"] = None
            if active:
                # Loading an IP-Adapter switches the active LoRA adapters: name them again.
                pipe.set_adapters(active, adapter_weights=[1.0] * len(active))
            pipe.set_ip_adapter_scale(IP_ADAPTER_SCALE)
            # The token means nothing before the LoRA exists; the embedding carries the face.
            prompt = spec.prompt.replace(f"{spec.token} ", "")
            encoded = encode_prompts(pipe, prompt, spec.negative_prompt, family="sd15")
            steps = min(spec.steps, MAX_PREVIEW_STEPS)

            def on_step_end(_pipe: Any, _step: int, _t: Any, kwargs: dict[str, Any]) -> Any:
                if check_cancelled is not None:
                    check_cancelled()
                return kwargs

            output = pipe(
                **encoded.pipe_kwargs(),
                ip_adapter_image_embeds=[embeds.to(pipe.device, pipe.unet.dtype)],
                num_inference_steps=steps,
                guidance_scale=spec.cfg,
                width=spec.width,
                height=spec.height,
                generator=torch.Generator().manual_seed(spec.seeds[0]),
                callback_on_step_end=on_step_end,
            )
        finally:
            # Safe when loading failed half-way: it resets every attention processor.
            pipe.unload_ip_adapter()
            if getattr(pipe, "feature_extractor", None) is not extractor:
                pipe.register_modules(feature_extractor=extractor)
    record.update(steps=steps, embedding_shape=list(embeds.shape))
    image: Image.Image = output.images[0]
    return PreviewImage(image=image, record=record)


def save_random_faceid_adapter(
    folder: Path,
    unet: Any,
    *,
    seed: int = 0,
    rank: int = 4,
    lora_inside: bool = True,
    companion: bool = True,
    scale: float = 0.05,
) -> Path:
    """IP-Adapter FaceID weights of random values in the published layout, for ``unet``.

    ``ip-adapter-faceid_sd15.bin`` is a ``torch.save`` of two dicts, as the authors publish it:
    ``image_proj`` (their ``MLPProjModel``: ``proj.0`` 512 -> 1024, GELU, ``proj.2`` -> 4 tokens
    x cross-attention size, ``norm``) and ``ip_adapter``: one entry per attention processor of
    the UNet in ``attn_processors`` order, ``N.to_{q,k,v,out}_lora.{down,up}.weight`` for every
    one and ``N.to_k_ip.weight``/``N.to_v_ip.weight`` for the cross-attention ones (odd N). The
    companion ``ip-adapter-faceid_sd15_lora.safetensors`` holds the same LoRA in kohya naming
    (``lora_unet_<module path>_to_q.lora_down.weight``, no alphas). For tests and ``dev``
    models: nothing here is downloaded.
    """
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)

    def random(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * scale

    modules = dict(unet.named_modules())
    cross = int(unet.config.cross_attention_dim)
    tokens = 4
    ip_adapter: dict[str, torch.Tensor] = {}
    kohya: dict[str, torch.Tensor] = {}
    for number, name in enumerate(unet.attn_processors):
        module_path = name.removesuffix(".processor")
        attn = modules[module_path]
        hidden = int(attn.to_q.in_features)
        key_in = int(attn.to_k.in_features)
        shapes = {
            "to_q": (hidden, hidden),
            "to_k": (key_in, hidden),
            "to_v": (key_in, hidden),
            "to_out": (hidden, hidden),
        }
        for projection, (features_in, features_out) in shapes.items():
            down, up = random(rank, features_in), random(features_out, rank)
            if lora_inside:
                ip_adapter[f"{number}.{projection}_lora.down.weight"] = down
                ip_adapter[f"{number}.{projection}_lora.up.weight"] = up
            target = "to_out_0" if projection == "to_out" else projection
            kohya_name = f"lora_unet_{module_path.replace('.', '_')}_{target}"
            kohya[f"{kohya_name}.lora_down.weight"] = down.clone()
            kohya[f"{kohya_name}.lora_up.weight"] = up.clone()
        if name.endswith("attn2.processor"):
            ip_adapter[f"{number}.to_k_ip.weight"] = random(hidden, cross)
            ip_adapter[f"{number}.to_v_ip.weight"] = random(hidden, cross)
    image_proj = {
        "proj.0.weight": random(FACEID_DIM * 2, FACEID_DIM),
        "proj.0.bias": random(FACEID_DIM * 2),
        "proj.2.weight": random(cross * tokens, FACEID_DIM * 2),
        "proj.2.bias": random(cross * tokens),
        "norm.weight": torch.ones(cross),
        "norm.bias": torch.zeros(cross),
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FACEID_WEIGHT_SD15
    torch.save({"image_proj": image_proj, "ip_adapter": ip_adapter}, path)
    if companion:
        save_file(kohya, str(folder / (path.stem + COMPANION_LORA_SUFFIX)))
    return path


def describe_faceid_file(spec: str) -> str:
    """What a configured FaceID weight file holds (for ``headshots doctor``).

    Raises :class:`ModelMissing` when it is missing, unreadable or not a FaceID adapter. A hub
    id (``owner/repo/weight``) is only named: it is fetched on the first preview.
    """
    location, _, weight = adapter_location(spec)
    path = Path(location) / weight
    if not Path(location).is_dir():
        return f"{location}/{weight} (Hugging Face; fetched on the first preview)"
    if not path.is_file():
        raise ModelMissing(f"IP-Adapter FaceID file {path} does not exist")
    try:
        if weight.endswith(".safetensors"):
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                keys = list(handle.keys())
            image_proj = {
                k.removeprefix("image_proj.") for k in keys if k.startswith("image_proj.")
            }
            ip_keys = [k for k in keys if k.startswith("ip_adapter.")]
        else:
            import torch

            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            image_proj = set(state.get("image_proj", {}))
            ip_keys = list(state.get("ip_adapter", {}))
    except Exception as exc:  # torch/safetensors raise many types for a damaged file
        raise ModelMissing(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    if "norm.weight" not in image_proj or "proj.2.weight" not in image_proj:
        raise ModelMissing(f"{path} is not an IP-Adapter FaceID file (no FaceID image_proj keys)")
    lora = "LoRA inside" if any("_lora." in k for k in ip_keys) else "no LoRA inside"
    companion = companion_lora(location, weight)
    extra = f", companion {companion.name}" if companion is not None else ""
    layers = sum(k.endswith("to_k_ip.weight") for k in ip_keys)
    return f"{path} ({layers} cross-attention layers, {lora}{extra})"
