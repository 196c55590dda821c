"""Where the base model comes from, which family it is, and on which device/dtype it runs.

The base model is a Hugging Face id (fetched into ``settings.models_path``) or a local directory
in diffusers layout. Every failure to find weights becomes :class:`ModelMissing` naming the
settings an operator can change, because "OSError: couldn't connect to huggingface.co" buried in
a traceback is the most common first-run failure of diffusers services.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headshots.errors import ConfigurationError, ModelMissing

# Re-exported: the generation side names the family from here.
from headshots.model_family import _MISSING_HINT, _read_json
from headshots.model_family import ModelFamily as ModelFamily
from headshots.model_family import detect_family as detect_family

if TYPE_CHECKING:
    import torch

    from headshots.settings import Settings

logger = logging.getLogger(__name__)

#: Held by every model load of this package. diffusers builds a model under accelerate's
#: ``init_empty_weights``, which patches ``nn.Module.register_parameter`` for the whole
#: process, not the thread: a model another thread builds meanwhile gets meta parameters, and
#: transformers then fails on them ("Unsupported device type 'meta'"). bench/soak.py met it
#: once, when a job's worker thread loaded the base model while another still did. peft and
#: diffusers' adapter loads patch the same way (``low_cpu_mem_usage``), and an adapter added
#: meanwhile would get meta parameters too: every adapter injection holds it as well. Process
#: state is what it guards, so it is the process's one lock (reentrant: a load may nest one).
MODEL_LOADS = threading.RLock()


@dataclass(frozen=True)
class FamilyFacts:
    """What an operator weighs when choosing a base model family (``headshots doctor``)."""

    title: str
    licence: str
    vram: str


FAMILY_FACTS: dict[ModelFamily, FamilyFacts] = {
    "sd15": FamilyFacts(
        "Stable Diffusion 1.5",
        "CreativeML OpenRAIL-M (use restrictions; check the checkpoint's own card)",
        "5.0 GB peak training at 512 px (measured on an H200); less to generate",
    ),
    "sdxl": FamilyFacts(
        "Stable Diffusion XL",
        "CreativeML OpenRAIL++-M",
        "18.6 GB peak training at 1024 px with checkpointing (measured on an H200)",
    ),
    "flux2-klein": FamilyFacts(
        "FLUX.2 [klein]",
        "Apache-2.0 for klein 4B (the 9B is under the FLUX non-commercial licence)",
        "~13 GB for the 4B (BFL's figure); resident with its Qwen3 encoder here, ~17 GB in "
        "bf16 (7.8 GB transformer + 8 GB encoder), which leaves the GPU while training",
    ),
}

#: diffusers pipelines register their modules at runtime, so static types cannot follow them.
DiffusersPipeline = Any


@dataclass(frozen=True)
class ModelSource:
    """A resolved base model: a local folder in diffusers layout and its family."""

    name: str
    path: Path
    family: ModelFamily

    @property
    def native_resolution(self) -> int:
        """Training/generation side length the model was built for (512 SD1.5, 1024 SDXL/klein).

        A UNet says it by its latent ``sample_size`` times the VAE's downsampling; FLUX.2's
        transformer has no size, so its VAE's ``sample_size`` (in pixels) says it.
        """
        vae_config = _read_json(self.path / "vae" / "config.json")
        if self.family == "flux2-klein":
            pixels = vae_config.get("sample_size", 1024)
            return int(pixels[0] if isinstance(pixels, list) else pixels)
        unet_config = _read_json(self.path / "unet" / "config.json")
        sample_size = unet_config.get("sample_size", 64)
        if isinstance(sample_size, list):
            sample_size = sample_size[0]
        vae_factor = 2 ** (len(vae_config.get("block_out_channels", [0, 0, 0, 0])) - 1)
        return int(sample_size) * int(vae_factor)


def resolve_model(settings: Settings, model: str | None = None) -> ModelSource:
    """Find the base model locally, downloading it into ``settings.models_path`` if allowed."""
    name = model or settings.base_model
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "model_index.json").is_file():
            raise ModelMissing(
                f"{local} has no model_index.json (not a diffusers folder); {_MISSING_HINT}"
            )
        return ModelSource(name=name, path=local.resolve(), family=detect_family(local))
    if local.is_absolute() or name.startswith((".", "~")):
        raise ModelMissing(f"base model folder {local} does not exist; {_MISSING_HINT}")

    from huggingface_hub import snapshot_download

    cache_dir = settings.models_path / "hub"
    try:
        snapshot = snapshot_download(
            repo_id=name,
            cache_dir=cache_dir,
            local_files_only=settings.hf_offline,
            # Only what diffusers needs: the single-file checkpoints in many repos are 2-7 GB each.
            allow_patterns=["*.json", "*.txt", "*.safetensors", "tokenizer*/*", "*.model"],
            ignore_patterns=["*.ckpt", "*.pt", "*.bin", "*/*fp16*", "*.onnx*"],
        )
    except Exception as exc:  # huggingface_hub raises a zoo of network/offline errors
        mode = "offline" if settings.hf_offline else "online"
        raise ModelMissing(
            f"base model {name!r} is not in {cache_dir} and could not be fetched ({mode}): "
            f"{type(exc).__name__}: {exc}; {_MISSING_HINT}"
        ) from exc
    path = Path(snapshot)
    return ModelSource(name=name, path=path, family=detect_family(path))


def resolve_device(settings: Settings) -> torch.device:
    """``auto`` picks CUDA when present, else CPU (MPS is opt-in: its fp16 LoRA path is flaky)."""
    import torch

    if settings.device != "auto":
        try:
            return torch.device(settings.device)
        except RuntimeError as exc:
            raise ConfigurationError(f"HEADSHOTS_DEVICE={settings.device!r}: {exc}") from exc
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(settings: Settings, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on CUDA that supports it, else fp16 on CUDA, and fp32 on CPU."""
    import torch

    if settings.dtype != "auto":
        dtype: torch.dtype = getattr(torch, settings.dtype)
        return dtype
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # Half precision on CPU is slow and numerically poor for diffusion: keep fp32.
    return torch.float32


def denoiser(pipe: DiffusersPipeline) -> Any:
    """The network LoRAs go into: the UNet of SD1.5/SDXL, the transformer of FLUX.2."""
    unet = getattr(pipe, "unet", None)
    return unet if unet is not None else pipe.transformer


def pipeline_class(family: ModelFamily) -> Any:
    """The diffusers text-to-image pipeline class of ``family``."""
    from diffusers import Flux2KleinPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

    classes: dict[ModelFamily, Any] = {
        "sd15": StableDiffusionPipeline,
        "sdxl": StableDiffusionXLPipeline,
        "flux2-klein": Flux2KleinPipeline,
    }
    return classes[family]


def load_base_pipeline(settings: Settings, model: str | None = None) -> DiffusersPipeline:
    """Load the text-to-image pipeline of the base model on the configured device and dtype."""
    source = resolve_model(settings, model)
    device = resolve_device(settings)
    dtype = resolve_dtype(settings, device)
    logger.info("loading %s base model %s on %s (%s)", source.family, source.name, device, dtype)
    try:
        # `dtype=` (diffusers >= 0.40, the floor in pyproject.toml): older releases silently
        # ignore it and load fp32, twice the GPU memory; newer ones deprecate `torch_dtype=`.
        kwargs: dict[str, Any] = {"dtype": dtype}
        if source.family == "sd15":
            # Headshots are filtered by our own checks; the CLIP safety checker is not shipped
            # with most community checkpoints and would fail to load.
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        with MODEL_LOADS:
            pipe = pipeline_class(source.family).from_pretrained(source.path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelMissing(
            f"cannot load base model from {source.path}: {exc}; {_MISSING_HINT}"
        ) from exc
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe  # type: ignore[no-any-return]
