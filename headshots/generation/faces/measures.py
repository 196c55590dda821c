"""Cheap image measurements: sharpness, exposure and a perceptual hash, in numpy only."""

from __future__ import annotations

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
