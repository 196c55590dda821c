"""Training examples from an accepted selfie: a head-and-shoulders square and a face close-up.

FaceChain and EasyPhoto train on face-centred crops; the head-and-shoulders view teaches the
framing we generate, the close-up the detail of the face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from headshots.generation.faces.types import Face

#: Face box height as a share of the head-and-shoulders frame (the issue: about a third).
PORTRAIT_FACE_SHARE = 1 / 3
#: Where the face centre sits, from the top of the portrait frame: above the middle, so the
#: shoulders are in and there is a little room above the hair.
PORTRAIT_FACE_CENTER_Y = 0.42
#: Face box height as a share of the close-up frame.
CLOSEUP_FACE_SHARE = 0.6


@dataclass(frozen=True)
class TrainingExample:
    image: Image.Image
    caption: str


def make_training_crops(
    image: Image.Image,
    face: Face,
    *,
    resolution: int,
    subject_class: str,
    token: str = "ohwx",
    caption: str | None = None,
) -> list[TrainingExample]:
    """Return a head-and-shoulders square and a tighter face crop, both ``resolution`` px square.

    ``caption`` describes the photo (``presets.training_caption``: the token, the class and the
    person's stated features); by default it is ``photo of <token> <class>``.

    Where the frame reaches past the photo's edge, the edge pixels are stretched outwards and
    blurred, which a diffusion model learns as background rather than as a black border.
    """
    rgb = image.convert("RGB")
    caption = caption or f"photo of {token} {subject_class}"
    face_height = max(face.height, face.width, 1.0)
    center_x, center_y = face.center

    portrait_side = face_height / PORTRAIT_FACE_SHARE
    portrait_box = (
        center_x - portrait_side / 2,
        center_y - PORTRAIT_FACE_CENTER_Y * portrait_side,
        center_x + portrait_side / 2,
        center_y + (1 - PORTRAIT_FACE_CENTER_Y) * portrait_side,
    )
    closeup_side = face_height / CLOSEUP_FACE_SHARE
    closeup_box = (
        center_x - closeup_side / 2,
        center_y - closeup_side / 2,
        center_x + closeup_side / 2,
        center_y + closeup_side / 2,
    )
    return [
        TrainingExample(_padded_crop(rgb, portrait_box, resolution), caption),
        TrainingExample(_padded_crop(rgb, closeup_box, resolution), caption),
    ]


def _padded_crop(
    image: Image.Image, box: tuple[float, float, float, float], resolution: int
) -> Image.Image:
    left, top, right, bottom = (round(v) for v in box)
    pad_left = max(0, -left)
    pad_top = max(0, -top)
    pad_right = max(0, right - image.width)
    pad_bottom = max(0, bottom - image.height)
    if pad_left or pad_top or pad_right or pad_bottom:
        pixels = np.asarray(image)
        padded = np.pad(pixels, ((pad_top, pad_bottom), (pad_left, pad_right), (0, 0)), mode="edge")
        canvas = Image.fromarray(padded)
        blur_radius = max(2.0, (right - left) / 40)
        blurred = canvas.filter(ImageFilter.GaussianBlur(blur_radius))
        # Keep the real photo sharp; only the stretched border is blurred.
        blurred.paste(image, (pad_left, pad_top))
        image = blurred
        left, right = left + pad_left, right + pad_left
        top, bottom = top + pad_top, bottom + pad_top
    crop = image.crop((left, top, right, bottom))
    return crop.resize((resolution, resolution), Image.Resampling.LANCZOS)
