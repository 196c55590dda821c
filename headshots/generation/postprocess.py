"""After generation: crop, upscale to the delivered size, face refine, colour grade, grain.

Order matters: the upscale's tiled detail pass (see :mod:`upscale`) redraws the whole image at
the delivered size first, then the face refine re-renders the face *at that final size* (a
face refined before an upscale would be blurred again by it). Both img2img passes run on the
resident modules with the job's LoRA active, so the face stays the person's. The rest is Pillow
and numpy. Provenance (XMP, EXIF, C2PA) lives in :mod:`provenance`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Re-exported: callers that only post-process find the provenance notice and reader here too.
from headshots.generation.provenance import AI_NOTICE as AI_NOTICE
from headshots.generation.provenance import encode_png
from headshots.generation.provenance import read_provenance as read_provenance
from headshots.generation.upscale import DetailSettings, TileImg2Img, upscale_with_detail

# Re-exported: the grades and the crop are shared with the team kit (its preview and export).
from headshots.style.look import apply_colour_grade as apply_colour_grade
from headshots.style.look import crop_to_aspect as crop_to_aspect
from headshots.style.presets import ColourGrade

if TYPE_CHECKING:
    from headshots.generation.faces import Face, FaceAnalyzer
    from headshots.generation.prompts import EncodedPrompts
    from headshots.generation.upscale import SuperResolution
    from headshots.queue.contracts import AspectRatio

logger = logging.getLogger(__name__)

# --- face refine ------------------------------------------------------------------------


@dataclass(frozen=True)
class RefineSettings:
    padding: float = 0.6  # extra context around the face box, as a share of its size
    strength: float = 0.35  # low: fix detail, keep identity and pose
    feather: float = 0.12  # mask blur as a share of the crop side


def face_crop_box(
    face: Face, image_size: tuple[int, int], padding: float
) -> tuple[int, int, int, int]:
    """A square box around the face, padded, clamped inside the image."""
    x0, y0, x1, y1 = face.box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * padding)
    side = min(side, *image_size)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = round(min(max(cx - side / 2, 0), image_size[0] - side))
    top = round(min(max(cy - side / 2, 0), image_size[1] - side))
    return left, top, left + int(side), top + int(side)


def feathered_mask(size: int, feather: float) -> Image.Image:
    """An opaque square that fades to transparent at its edges (no visible paste seam)."""
    margin = max(1, int(size * feather))
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).rectangle((margin, margin, size - margin, size - margin), fill=255)
    return mask.filter(ImageFilter.GaussianBlur(margin / 2))


def refine_face(
    image: Image.Image,
    face: Face,
    img2img: Callable[[Image.Image], Image.Image],
    *,
    resolution: int,
    settings: RefineSettings = RefineSettings(),
) -> Image.Image:
    """Re-render the padded face crop at ``resolution`` with ``img2img`` and blend it back.

    Faces are small in a portrait, so the base model draws them with few latent pixels; a
    second pass over just the face, at the model's full resolution, restores eyes and teeth.
    """
    box = face_crop_box(face, image.size, settings.padding)
    side = box[2] - box[0]
    if side < 8:
        return image
    crop = image.crop(box).resize((resolution, resolution), Image.Resampling.LANCZOS)
    refined = img2img(crop).resize((side, side), Image.Resampling.LANCZOS)
    result = image.copy()
    result.paste(refined, box[:2], feathered_mask(side, settings.feather))
    return result


class DiffusersImg2Img:
    """An img2img pipeline call bound to one image's encoded prompts and seed.

    ``run(image)`` redraws one image (the face refine); ``batch(images, first)`` redraws several
    same-size images in one call (the upscale's tiles), image ``k`` seeded ``seed + first + k``
    so every tile has its own noise and a re-run gives the same result.
    """

    def __init__(
        self,
        pipe: Any,
        *,
        prompts: EncodedPrompts,
        steps: int,
        cfg: float,
        seed: int,
        strength: float,
    ) -> None:
        self.pipe = pipe
        self.prompts = prompts
        self.steps = max(steps, int(np.ceil(1 / strength)))
        self.cfg = cfg
        self.seed = seed
        self.strength = strength

    def batch(self, images: list[Image.Image], first: int = 0) -> list[Image.Image]:
        import torch

        generators = [
            torch.Generator().manual_seed(self.seed + first + offset)
            for offset in range(len(images))
        ]
        output = self.pipe(
            **self.prompts.pipe_kwargs(len(images)),
            image=images,
            strength=self.strength,
            num_inference_steps=self.steps,
            guidance_scale=self.cfg,
            generator=generators,
        )
        redrawn: list[Image.Image] = list(output.images)
        return redrawn

    def run(self, image: Image.Image) -> Image.Image:
        return self.batch([image])[0]


def diffusers_img2img(
    pipe: Any,
    *,
    prompts: EncodedPrompts,
    steps: int,
    cfg: float,
    seed: int,
    strength: float,
) -> DiffusersImg2Img:
    """Bind an img2img pipeline call to one image's encoded prompts and seed."""
    return DiffusersImg2Img(
        pipe, prompts=prompts, steps=steps, cfg=cfg, seed=seed, strength=strength
    )


# --- grades, grain --------------------------------------------------------------------------


def add_film_grain(image: Image.Image, *, strength: float = 0.035, seed: int = 0) -> Image.Image:
    """Luminance grain, stronger in the mid-tones as on film; seeded so re-runs match."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, strength, pixels.shape[:2]).astype(np.float32)
    luma = pixels.mean(axis=2)
    midtone = 4.0 * luma * (1.0 - luma)
    grained = pixels + (noise * (0.4 + 0.6 * midtone))[..., None]
    return Image.fromarray((grained.clip(0, 1) * 255.0 + 0.5).astype(np.uint8), "RGB")


# --- provenance -------------------------------------------------------------------------


def encode_with_provenance(image: Image.Image, metadata: dict[str, Any]) -> bytes:
    """PNG bytes carrying the AI notice in XMP (IPTC DigitalSourceType), EXIF and text chunks."""
    return encode_png(image, metadata)


# --- the whole chain ----------------------------------------------------------------------


@dataclass(frozen=True)
class PostprocessOptions:
    colour_grade: ColourGrade = "none"
    film_grain: bool = True
    #: The delivered size; ``None`` keeps the generated size.
    output_size: tuple[int, int] | None = None
    aspect_ratio: AspectRatio | None = None
    refine: bool = True
    detail: DetailSettings = field(default_factory=DetailSettings)


def postprocess_image(
    image: Image.Image,
    options: PostprocessOptions,
    *,
    analyzer: FaceAnalyzer | None = None,
    img2img: Callable[[Image.Image], Image.Image] | None = None,
    detail: TileImg2Img | None = None,
    super_resolution: SuperResolution | None = None,
    refine_resolution: int = 512,
    seed: int = 0,
) -> tuple[Image.Image, dict[str, Any]]:
    """Run the chain on one image; returns it and a record of what was applied.

    ``detail`` is the upscale's tile img2img (tiles of ``refine_resolution``, the model's
    native size), ``img2img`` the face refine's.
    """
    applied: dict[str, Any] = {"face_found": False, "refined": False}
    if options.aspect_ratio is not None:
        image = crop_to_aspect(image, options.aspect_ratio)
        applied["aspect_ratio"] = options.aspect_ratio
    if options.output_size is not None and image.size != options.output_size:
        image, upscale_record = upscale_with_detail(
            image,
            options.output_size,
            detail=detail,
            tile=refine_resolution,
            settings=options.detail,
            super_resolution=super_resolution,
        )
        applied["upscale"] = upscale_record
    face = None
    if analyzer is not None:
        faces = analyzer.analyze(image.convert("RGB"))
        face = faces[0] if faces else None
        applied["face_found"] = face is not None
    if face is not None and options.refine and img2img is not None:
        # On the final-size face: nothing after this resamples it.
        image = refine_face(image, face, img2img, resolution=refine_resolution)
        applied["refined"] = True
    if options.colour_grade != "none":
        image = apply_colour_grade(image, options.colour_grade)
    applied["colour_grade"] = options.colour_grade
    if options.film_grain:
        image = add_film_grain(image, seed=seed)
    applied["film_grain"] = options.film_grain
    applied["size"] = list(image.size)
    return image, applied
