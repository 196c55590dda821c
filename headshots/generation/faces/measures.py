"""Cheap image measurements: sharpness, exposure and a perceptual hash, in numpy only."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

#: Face regions are resampled to this size before measuring sharpness, so that the variance of
#: the Laplacian does not grow or shrink with the face's size in pixels.
SHARPNESS_SIZE = 128
HASH_SIZE = 8


def grayscale(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float32)


def clamp_box(
    box: tuple[float, float, float, float], width: int, height: int
) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    left = int(max(0, min(width - 1, np.floor(x0))))
    top = int(max(0, min(height - 1, np.floor(y0))))
    right = int(max(left + 1, min(width, np.ceil(x1))))
    bottom = int(max(top + 1, min(height, np.ceil(y1))))
    return left, top, right, bottom


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: high for crisp edges, low for blur."""
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return 0.0
    lap = gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:] - 4 * gray[1:-1, 1:-1]
    return float(lap.var())


def face_sharpness(image: Image.Image, box: tuple[float, float, float, float]) -> float:
    """Sharpness of the face region, resampled to a fixed size first (see SHARPNESS_SIZE).

    Upscaling a small face would invent smoothness, so a face smaller than the measuring size is
    measured at its own size; the threshold then errs on the lenient side for small faces.
    """
    region = image.crop(clamp_box(box, image.width, image.height)).convert("L")
    if min(region.size) > SHARPNESS_SIZE:
        region = region.resize((SHARPNESS_SIZE, SHARPNESS_SIZE), Image.Resampling.BOX)
    return laplacian_variance(np.asarray(region, dtype=np.float32))


def face_brightness(image: Image.Image, box: tuple[float, float, float, float]) -> float:
    """Mean luma (0-255) of the face region."""
    region = image.crop(clamp_box(box, image.width, image.height))
    return float(grayscale(region).mean())


def difference_hash(image: Image.Image) -> str:
    """64-bit difference hash as 16 hex digits; near-identical photos differ in few bits.

    Robust to re-compression and resizing (which chat apps do), not to crops or flips.
    """
    small = image.convert("L").resize((HASH_SIZE + 1, HASH_SIZE), Image.Resampling.BOX)
    pixels = np.asarray(small, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).reshape(-1)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return f"{value:016x}"


def hash_distance(first: str, second: str) -> int:
    """Number of differing bits between two hashes from :func:`difference_hash`."""
    return (int(first, 16) ^ int(second, 16)).bit_count()


#: The eye region is resampled so the eyes sit this many pixels apart, level, at EYE_ROW.
_EYE_GAP = 64
_EYE_ROW = 40
_REGION = (128, 96)
#: Below this many pixels between the eyes a frame is too thin to see: no verdict.
MIN_EYE_GAP_PIXELS = 32
#: The strongest horizontal edge across the nose bridge at eye level, relative to the
#: strongest at the eyes themselves (lids, lashes). Measured on the bundled photographs and
#: their mirror images: bare faces 0.03-0.19; the same faces with dark frames drawn on
#: 0.70-1.84, thin brown ones 0.34-1.26 (tests/test_faces_measures.py). No photo of real
#: glasses ships in an installed package: thin metal frames are the weak case.
GLASSES_BRIDGE_RATIO = 0.45


def eye_region(
    image: Image.Image, eyes: tuple[tuple[float, float], tuple[float, float]]
) -> np.ndarray:
    """Grey pixels around the eyes, rotated level and scaled to a fixed eye distance."""
    (lx, ly), (rx, ry) = eyes
    gap = float(np.hypot(rx - lx, ry - ly))
    cos, sin = (rx - lx) / gap, (ry - ly) / gap
    step = gap / _EYE_GAP  # image pixels per region pixel
    mid_x, mid_y = (lx + rx) / 2, (ly + ry) / 2
    centre_u, centre_v = _REGION[0] / 2, _EYE_ROW
    # Region (u, v) -> image (x, y): rotate by the eye line's angle, scale, move to the eyes.
    coefficients = (
        step * cos,
        -step * sin,
        mid_x - step * (cos * centre_u - sin * centre_v),
        step * sin,
        step * cos,
        mid_y - step * (sin * centre_u + cos * centre_v),
    )
    region = image.convert("L").transform(
        _REGION, Image.Transform.AFFINE, coefficients, resample=Image.Resampling.BILINEAR
    )
    return np.asarray(region, dtype=np.float32)


def glasses_bridge_ratio(image: Image.Image, eyes: tuple[tuple[float, float], ...]) -> float:
    """How strongly a horizontal line crosses the nose bridge, relative to the eyes' own edges.

    A frame's bridge is a line across the top of the nose at eye level; bare skin there is
    smooth. Compared with the edges of the eyes in the same photo, so lighting, contrast and
    sharpness cancel out.
    """
    grey = eye_region(image, (eyes[0], eyes[1]))
    rows = np.abs(np.diff(grey, axis=0))  # vertical gradient: horizontal edges
    centre = _REGION[0] // 2
    band = slice(_EYE_ROW - 14, _EYE_ROW + 14)  # about a fifth of the eye gap up and down
    bridge = rows[band, centre - 8 : centre + 8].mean(axis=1).max()
    eye_edges = max(
        rows[_EYE_ROW - 10 : _EYE_ROW + 10, left : left + 24].mean(axis=1).max()
        for left in (centre - _EYE_GAP // 2 - 12, centre + _EYE_GAP // 2 - 12)
    )
    return float(bridge / (eye_edges + 1.0))


def wears_glasses(image: Image.Image, face: Any) -> bool | None:
    """True/False when the face shows glasses or not; None when it cannot tell (too small)."""
    eyes = getattr(face, "eyes", None)
    if not eyes:
        return None
    (lx, ly), (rx, ry) = eyes
    if np.hypot(rx - lx, ry - ly) < MIN_EYE_GAP_PIXELS:
        return None
    return glasses_bridge_ratio(image, eyes) >= GLASSES_BRIDGE_RATIO
