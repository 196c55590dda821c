"""How a delivered image looks after generation: the film colour grades and the crop to the
style's shape.

Numpy and Pillow only: the worker's post-processing, the team kit's preview and the team
export (both drawn in the chat process) share one implementation, so the preview shows the
grade the worker applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from headshots.generation.faces.types import Face
    from headshots.queue.contracts import AspectRatio


def _curve(points: list[tuple[float, float]]) -> np.ndarray:
    xs, ys = zip(*points, strict=True)
    curve: np.ndarray = np.interp(np.arange(256) / 255.0, xs, ys).clip(0, 1) * 255.0
    return curve


# Tone curves per channel (R, G, B) and a saturation factor: a plain-numpy approximation of
# the look of each stock, not a scan-derived LUT.
_GRADES: dict[str, tuple[list[list[tuple[float, float]]], float]] = {
    # Portra: lifted shadows, soft highlights, warm skin, slightly muted saturation.
    "film_portra": (
        [
            [(0, 0.04), (0.25, 0.28), (0.5, 0.54), (0.75, 0.79), (1, 0.97)],
            [(0, 0.03), (0.25, 0.26), (0.5, 0.51), (0.75, 0.76), (1, 0.96)],
            [(0, 0.05), (0.25, 0.25), (0.5, 0.48), (0.75, 0.72), (1, 0.93)],
        ],
        0.92,
    ),
    # Velvia: deep contrast and strong saturation.
    "film_velvia": (
        [
            [(0, 0.0), (0.25, 0.2), (0.5, 0.5), (0.75, 0.81), (1, 1.0)],
            [(0, 0.0), (0.25, 0.21), (0.5, 0.5), (0.75, 0.8), (1, 1.0)],
            [(0, 0.02), (0.25, 0.22), (0.5, 0.51), (0.75, 0.8), (1, 1.0)],
        ],
        1.3,
    ),
    # Ektar: punchy but clean, a touch warm in the mids.
    "ektar": (
        [
            [(0, 0.01), (0.25, 0.24), (0.5, 0.53), (0.75, 0.8), (1, 1.0)],
            [(0, 0.01), (0.25, 0.23), (0.5, 0.5), (0.75, 0.77), (1, 0.99)],
            [(0, 0.02), (0.25, 0.22), (0.5, 0.47), (0.75, 0.74), (1, 0.97)],
        ],
        1.12,
    ),
}


def apply_colour_grade(image: Image.Image, grade: str) -> Image.Image:
    """Apply one of the film looks (``none`` returns the image unchanged)."""
    if grade == "none":
        return image
    try:
        curves, saturation = _GRADES[grade]
    except KeyError:
        raise ValueError(f"unknown colour grade {grade!r}") from None
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    graded = np.empty_like(pixels)
    for channel, points in enumerate(curves):
        lut = _curve(points)
        graded[..., channel] = np.interp(pixels[..., channel], np.arange(256), lut)
    luma = graded @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    graded = luma[..., None] + (graded - luma[..., None]) * saturation
    return Image.fromarray(graded.clip(0, 255).astype(np.uint8), "RGB")


def crop_to_aspect(
    image: Image.Image, aspect_ratio: AspectRatio, face: Face | None = None
) -> Image.Image:
    """Largest crop of ``aspect_ratio`` (w:h); centred on the face when there is one."""
    ratio_w, ratio_h = (int(part) for part in aspect_ratio.split(":"))
    target = ratio_w / ratio_h
    width, height = image.size
    if abs(width / height - target) < 1e-3:
        return image
    if width / height > target:
        new_w, new_h = round(height * target), height
    else:
        new_w, new_h = width, round(width / target)
    if face is not None:
        cx, cy = face.center
        # Headshot framing: eyes a bit above the centre line.
        cy += 0.1 * new_h
    else:
        cx, cy = width / 2, height / 2
    left = round(min(max(cx - new_w / 2, 0), width - new_w))
    top = round(min(max(cy - new_h / 2, 0), height - new_h))
    return image.crop((left, top, left + new_w, top + new_h))
