"""The upscale to the delivered size: enlarge, then a tiled img2img detail pass.

Resampling alone (Lanczos plus sharpening) only spreads the generated pixels: pores, hair and
fabric stay as soft as they were at 512 px. What the walkthrough calls "tiled upscale" redraws
detail: the image is enlarged to the delivered size, cut into overlapping tiles of the model's
native resolution, and each tile runs through img2img at low strength with the same base model,
prompt and the person's LoRA (at reduced weight, so skin and hair get detail without the face
drifting), then the tiles are blended back with linear ramps across their overlaps.

The enlargement itself is Lanczos, or a super-resolution network when the operator configures
weights (``HEADSHOTS_SUPER_RESOLUTION``): :func:`load_super_resolution` reads any architecture
``spandrel`` recognises (ESRGAN, Real-ESRGAN compact, SPAN, SwinIR, ...) from its state dict.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from headshots.errors import ConfigurationError, ModelMissing

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

#: ``detail(tiles, index_of_first) -> tiles``: one img2img call on a batch of same-size tiles.
TileImg2Img = Callable[[list[Image.Image], int], list[Image.Image]]


@dataclass(frozen=True)
class DetailSettings:
    """How hard the detail pass redraws: low enough that identity and composition stay."""

    strength: float = 0.3
    #: The person's LoRA weight during the pass (1.0 in generation and face refine).
    lora_scale: float = 0.6
    #: Sampling steps of the pass before ``strength`` (img2img runs ``steps x strength``).
    steps: int = 20
    #: Overlap between neighbouring tiles, as a share of the tile side.
    overlap: float = 0.125
    #: Tiles per img2img call (SD1.5 at 512 px: 4 tiles + CFG = a UNet batch of 8).
    batch: int = 4


def _multiple_of_8(value: float) -> int:
    return max(8, round(value / 8) * 8)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` px covering ``length`` px, overlapping >= ``overlap``."""
    if tile >= length:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    stride = (length - tile) / (count - 1)
    return [round(index * stride) for index in range(count)]


def tile_boxes(size: tuple[int, int], tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) of every tile, row by row."""
    width, height = size
    tile_w, tile_h = min(tile, width), min(tile, height)
    return [
        (left, top, left + tile_w, top + tile_h)
        for top in tile_starts(height, tile_h, overlap)
        for left in tile_starts(width, tile_w, overlap)
    ]


def _ramp(length: int, overlap: int, fade_start: bool, fade_end: bool) -> np.ndarray:
    weights = np.ones(length, dtype=np.float32)
    if overlap <= 0:
        return weights
    ramp = (np.arange(overlap, dtype=np.float32) + 1) / (overlap + 1)
    if fade_start:
        weights[:overlap] = np.minimum(weights[:overlap], ramp)
    if fade_end:
        weights[-overlap:] = np.minimum(weights[-overlap:], ramp[::-1])
    return weights


def tiled_img2img(
    image: Image.Image, detail: TileImg2Img, *, tile: int, overlap: int, batch: int = 4
) -> tuple[Image.Image, int]:
    """Run ``detail`` on overlapping tiles of ``image`` and blend them; returns (image, tiles).

    Edges shared with a neighbour fade linearly across the overlap; edges on the image border
    keep full weight, so every pixel's weights sum to more than zero and no seam shows.
    """
    rgb = image.convert("RGB")
    width, height = rgb.size
    boxes = tile_boxes(rgb.size, tile, overlap)
    total = np.zeros((height, width, 3), dtype=np.float32)
    weight = np.zeros((height, width, 1), dtype=np.float32)
    redrawn_tiles: list[Image.Image] = []
    for first in range(0, len(boxes), max(1, batch)):
        chunk = boxes[first : first + max(1, batch)]
        redrawn_tiles.extend(detail([rgb.crop(box) for box in chunk], first))
    for box, redrawn in zip(boxes, redrawn_tiles, strict=True):
        left, top, right, bottom = box
        redrawn = redrawn.convert("RGB")
        if redrawn.size != (right - left, bottom - top):
            redrawn = redrawn.resize((right - left, bottom - top), Image.Resampling.LANCZOS)
        mask = np.outer(
            _ramp(bottom - top, overlap, top > 0, bottom < height),
            _ramp(right - left, overlap, left > 0, right < width),
        )[..., None]
        total[top:bottom, left:right] += np.asarray(redrawn, dtype=np.float32) * mask
        weight[top:bottom, left:right] += mask
    blended = total / np.maximum(weight, 1e-6)
    return Image.fromarray(blended.clip(0, 255).round().astype(np.uint8), "RGB"), len(boxes)


# --- super resolution -----------------------------------------------------------------------


class SuperResolution:
    """A super-resolution network loaded by spandrel; ``__call__`` enlarges one image."""

    def __init__(self, descriptor: Any, *, name: str) -> None:
        self.descriptor = descriptor
        self.name = name

    @property
    def scale(self) -> int:
        return int(self.descriptor.scale)

    @property
    def architecture(self) -> str:
        return str(self.descriptor.architecture.name)

    def __call__(self, image: Image.Image) -> Image.Image:
        import torch

        pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        tensor: torch.Tensor = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)
        parameter = next(self.descriptor.model.parameters())
        tensor = tensor.to(device=parameter.device, dtype=parameter.dtype)
        with torch.no_grad():
            output = self.descriptor(tensor)
        array = output.squeeze(0).permute(1, 2, 0).float().clamp(0, 1).cpu().numpy()
        return Image.fromarray((array * 255.0).round().astype(np.uint8), "RGB")


def load_super_resolution(path: Path, *, device: str | None = None) -> SuperResolution:
    """Load super-resolution weights (``.pth``/``.safetensors``) with spandrel.

    Raises :class:`ModelMissing` when the file or spandrel is missing, and
    :class:`ConfigurationError` when the weights are not a single-image super-resolution model.
    """
    if not path.is_file():
        raise ModelMissing(
            f"no super-resolution weights at {path}: check HEADSHOTS_SUPER_RESOLUTION"
        )
    try:
        import spandrel
    except (ImportError, RuntimeError) as exc:
        # spandrel imports torchvision, which needs a build matching the installed torch.
        raise ModelMissing(
            f"HEADSHOTS_SUPER_RESOLUTION is set but spandrel cannot be imported ({exc}); "
            "install the superres extra (spandrel, with a torchvision matching torch)"
        ) from exc
    try:
        descriptor = spandrel.ModelLoader(device=device).load_from_file(str(path))
    except spandrel.UnsupportedModelError as exc:
        raise ConfigurationError(f"{path}: not an architecture spandrel knows ({exc})") from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.purpose != "SR":
        raise ConfigurationError(
            f"{path}: a {descriptor.architecture.name} {descriptor.purpose} model, "
            "not a super-resolution one"
        )
    descriptor.eval()
    logger.info(
        "super resolution %s x%d from %s", descriptor.architecture.name, descriptor.scale, path
    )
    return SuperResolution(descriptor, name=path.name)


# --- the whole upscale ----------------------------------------------------------------------


def enlarge(
    image: Image.Image, size: tuple[int, int], super_resolution: SuperResolution | None = None
) -> Image.Image:
    """``image`` at ``size``: through the super-resolution network first when there is one."""
    if super_resolution is not None and max(size) > max(image.size):
        image = super_resolution(image)
    if image.size == size:
        return image
    return image.convert("RGB").resize(size, Image.Resampling.LANCZOS)


def upscale_with_detail(
    image: Image.Image,
    size: tuple[int, int],
    *,
    detail: TileImg2Img | None,
    tile: int,
    settings: DetailSettings = DetailSettings(),
    super_resolution: SuperResolution | None = None,
) -> tuple[Image.Image, dict[str, Any]]:
    """Enlarge ``image`` to ``size`` and redraw its detail tile by tile; returns it and a record.

    The detail pass runs at the nearest multiple of 8 (what the VAE needs) and the result is
    resampled to the exact delivered size afterwards.
    """
    record: dict[str, Any] = {
        "from": list(image.size),
        "to": list(size),
        "enlarge": f"{super_resolution.architecture} x{super_resolution.scale}"
        if super_resolution is not None
        else "lanczos",
    }
    working = (_multiple_of_8(size[0]), _multiple_of_8(size[1]))
    enlarged = enlarge(image, working, super_resolution)
    if detail is not None:
        overlap = _multiple_of_8(tile * settings.overlap) if tile >= 64 else max(1, tile // 8)
        enlarged, tiles = tiled_img2img(
            enlarged, detail, tile=tile, overlap=overlap, batch=settings.batch
        )
        record.update(
            detail_tiles=tiles,
            detail_tile=tile,
            detail_strength=settings.strength,
            detail_lora_scale=settings.lora_scale,
        )
    if enlarged.size != size:
        enlarged = enlarged.resize(size, Image.Resampling.LANCZOS)
    return enlarged, record
