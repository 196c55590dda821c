"""What a job will take on this worker before any has run: the first ETA a person is told.

Measured durations replace this as soon as there are any (``queue.progress.average_duration``);
until then a built-in number would be wrong by orders of magnitude (a fixed 19 minutes was
promised for a job that took 14 s on the tiny model). So a worker, once its model is found,
publishes configured steps x a per-step cost for its model family and device:

- CUDA figures are the H200 measurements of issue 20 (bf16, ``bench/gpu_job.py``, 2026-12-04),
  scaled by streaming multiprocessors for smaller cards (an estimate, not measured there);
- CPU figures are orders of magnitude, not measurements of a real model (nobody runs a real
  one there); a tiny test model (a UNet under 1 % of SD1.5's width) has its own figures;
- anything else (MPS, an unreadable model) publishes nothing: the chat then says "a few
  minutes" instead of a number.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from headshots.errors import HeadshotsError

if TYPE_CHECKING:
    from headshots.generation.models import ModelSource
    from headshots.settings import Settings

logger = logging.getLogger(__name__)

#: The photos and images a typical job has (the first ETA is told before the photos arrive).
TYPICAL_PHOTOS = 10
TYPICAL_IMAGES = 10


@dataclass(frozen=True)
class StepCosts:
    """Seconds, on one device, for one model family."""

    #: One optimizer step of LoRA training (batch 1).
    train_step_s: float
    #: One sampler step of one image (CFG included).
    sample_step_s: float
    #: Per training job beside the steps: base model load, likeness validations.
    train_fixed_s: float
    #: Per generating job beside the images: loads, the contact sheet, delivery.
    generate_fixed_s: float
    #: Per image beside sampling: detail pass, face refine, likeness ranking.
    per_image_s: float

    def scaled(self, factor: float) -> StepCosts:
        """Steps and per-image work ``factor`` times as costly; the fixed parts unchanged."""
        return StepCosts(
            self.train_step_s * factor, self.sample_step_s * factor, self.train_fixed_s,
            self.generate_fixed_s, self.per_image_s * factor,
        )  # fmt: skip


#: One H200, bf16 (issue 20): SD1.5 step 195 ms, 10 images x 50 steps in 11.1 s, base load
#: 13.6 s + validations ~18 s, postprocess 20.7 s + rank 11.8 s for 10 images; SDXL step
#: 1,208 ms, 5 images in 25.1 s, postprocess 35.1 s + rank 12.1 s for 5.
_CUDA = {
    "sd15": StepCosts(0.195, 0.022, 32.0, 10.0, 3.3),
    "sdxl": StepCosts(1.21, 0.10, 45.0, 15.0, 9.4),
}
_H200_MULTIPROCESSORS = 132
#: Orders of magnitude for a 2-4 core CPU, fp32.
_CPU = {
    "sd15": StepCosts(8.0, 2.0, 60.0, 20.0, 20.0),
    "sdxl": StepCosts(30.0, 8.0, 120.0, 40.0, 60.0),
}
#: A tiny random-weight test model (channels ~32-64) still pays the fixed costs of a job:
#: model load, face checks, the detail pass and ranking on the CPU.
_TINY_CPU = StepCosts(0.05, 0.02, 4.0, 4.0, 0.8)
#: Sum of squared UNet block widths of SD1.5 (320, 640, 1280, 1280): compute scales with it.
_SD15_WIDTH = 320**2 + 640**2 + 1280**2 + 1280**2


def expected_durations(
    settings: Settings, *, photos: int = TYPICAL_PHOTOS, images: int = TYPICAL_IMAGES
) -> dict[str, float] | None:
    """``{"train": s, "generate": s}`` for a typical job on this host, or ``None`` (unknown).

    Never downloads: the worker has found its model before (``StageSet.ready``)."""
    from headshots.generation.models import resolve_device, resolve_model

    try:
        source = resolve_model(settings.model_copy(update={"hf_offline": True}))
        device = resolve_device(settings)
    except HeadshotsError as exc:
        logger.info("no ETA estimate before the first job: %s", exc)
        return None
    costs = step_costs(source, device.type, _multiprocessors(device.type))
    if costs is None:
        return None
    return durations(costs, settings, photos=photos, images=images)


def step_costs(source: ModelSource, device: str, multiprocessors: int = 0) -> StepCosts | None:
    """The per-step costs of ``source`` on ``device`` (``None`` where no figure is known).

    FLUX.2 [klein] has no measured figure yet (no GPU run of it so far): unknown, except for a
    tiny test model, whose fixed costs dominate whatever its family.
    """
    if device == "cpu" and _is_tiny(source):
        return _TINY_CPU
    if device == "cpu":
        return _CPU.get(source.family)
    if device == "cuda":
        known = _CUDA.get(source.family)
        if known is None:
            return None
        costs = known
        if multiprocessors and multiprocessors < _H200_MULTIPROCESSORS:
            costs = costs.scaled(_H200_MULTIPROCESSORS / multiprocessors)
        return costs
    return None


def durations(
    costs: StepCosts, settings: Settings, *, photos: int, images: int
) -> dict[str, float]:
    """Configured steps x per-step costs, per part of a job."""
    from headshots.generation.train import default_steps
    from headshots.style.presets import load_presets

    train_steps = settings.train_steps or default_steps(photos)
    presets = load_presets()
    sample_steps = settings.sample_steps or max(p.steps for p in presets.values())
    return {
        "train": costs.train_fixed_s + train_steps * costs.train_step_s,
        "generate": costs.generate_fixed_s
        + images * (sample_steps * costs.sample_step_s + costs.per_image_s),
    }


def _is_tiny(source: ModelSource) -> bool:
    """A tiny random-weight test model (channels ~32-64, a transformer of ~32 wide)."""
    import json

    if source.family == "flux2-klein":
        try:
            config = json.loads((source.path / "transformer" / "config.json").read_text())
            inner = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
        except (OSError, ValueError, TypeError, KeyError):
            return False
        return inner < 256
    return _unet_width(source) < _SD15_WIDTH / 100


def _unet_width(source: ModelSource) -> float:
    import json

    try:
        config = json.loads((source.path / "unet" / "config.json").read_text())
        widths = [int(c) for c in config.get("block_out_channels", [])]
    except (OSError, ValueError, TypeError):
        widths = []
    return float(sum(c * c for c in widths)) if widths else float(_SD15_WIDTH)


def _multiprocessors(device: str) -> int:
    if device != "cuda":
        return 0
    import torch

    try:
        return int(torch.cuda.get_device_properties(0).multi_processor_count)
    except (RuntimeError, AssertionError):
        return 0
