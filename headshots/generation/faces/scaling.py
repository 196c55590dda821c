"""Two views of one photo for face analysis: a reduced copy to detect in, and face crops from the
full-resolution photo to align and embed from.

Detectors work at a fixed scale (SCRFD at 640 px, dlib's HOG windows of 80 px), so their cost
grows with the photo's area while their result does not improve: phone photos and upscaled
headshots are 2000-4000 px. The identity embedding is the other way round: it should see the
face's own pixels, not the reduced copy's, and only the region around the face, so its cost no
longer depends on the photo's size either.

Coordinates follow the pixel-centre convention that OpenCV, dlib and Pillow's resampling
share: pixel ``i`` covers ``[i - 0.5, i + 0.5]``, so resizing by ``s`` maps ``x`` to
``(x + 0.5) * s - 0.5``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

#: Shrinking a face crop by a large factor first takes integer box averages down to this many
#: times the target size (Pillow's ``reducing_gap``), then resamples: fast, and no aliasing.
_REDUCING_GAP = 2.0


@dataclass(frozen=True)
class ScaledView:
    """A region of a full-resolution image, resized; maps points between the two.

    ``origin`` is the region's top-left pixel in the full image, ``scale`` the view's pixels per
    full-resolution pixel along x and y (below 1 when reduced).
    """

    image: Image.Image
    origin: tuple[int, int] = (0, 0)
    scale: tuple[float, float] = (1.0, 1.0)

    def to_full(self, points: np.ndarray) -> np.ndarray:
        """``(n, 2)`` points of the view in full-resolution coordinates (float32)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        scale = np.asarray(self.scale)
        full: np.ndarray = (pts + 0.5) / scale - 0.5 + np.asarray(self.origin)
        return full.astype(np.float32)

    def to_view(self, points: np.ndarray) -> np.ndarray:
        """``(n, 2)`` full-resolution points in the view's coordinates (float32)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        scale = np.asarray(self.scale)
        view: np.ndarray = (pts - np.asarray(self.origin) + 0.5) * scale - 0.5
        return view.astype(np.float32)

    def box_to_full(
        self, box: tuple[float, float, float, float]
    ) -> tuple[float, float, float, float]:
        """A detector's box in the view (corners as continuous coordinates), in the full image."""
        (x0, y0), (x1, y1) = self.to_full(np.array([box[:2], box[2:]], dtype=np.float64))
        return float(x0), float(y0), float(x1), float(y1)

    def box_to_view(
        self, box: tuple[float, float, float, float]
    ) -> tuple[float, float, float, float]:
        (x0, y0), (x1, y1) = self.to_view(np.array([box[:2], box[2:]], dtype=np.float64))
        return float(x0), float(y0), float(x1), float(y1)


def detection_view(image: Image.Image, long_side: int) -> ScaledView:
    """The whole RGB image with its long side reduced to ``long_side`` (never enlarged).

    Bilinear with Pillow's support scaled to the reduction, so it averages like a box filter:
    what detectors are trained on (downscaled photos), without the aliasing of a point sample.
    """
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    if max(rgb.size) <= long_side:
        return ScaledView(rgb)
    factor = long_side / max(rgb.size)
    size = (max(1, round(rgb.width * factor)), max(1, round(rgb.height * factor)))
    small = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=_REDUCING_GAP)
    return ScaledView(small, scale=(size[0] / rgb.width, size[1] / rgb.height))


def face_view(
    image: Image.Image,
    box: tuple[float, float, float, float],
    *,
    margin: float,
    max_face_side: float,
) -> ScaledView:
    """The full-resolution region around a face ``box`` (full-image coordinates), for alignment.

    ``margin`` is added on every side, as a fraction of the box's long side: enough to hold the
    aligned chip of a tilted face. The region is clipped to the image: the aligners fill what
    lies outside with black either way, so a clipped crop aligns exactly like the whole image.
    When the face is larger than ``max_face_side`` pixels the region is reduced to that, with
    area averaging: an aligner's bilinear warp would alias it, and a larger face adds nothing.
    """
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    side = max(box[2] - box[0], box[3] - box[1], 1.0)
    pad = margin * side
    left = max(0, math.floor(box[0] - pad))
    top = max(0, math.floor(box[1] - pad))
    right = min(rgb.width, math.ceil(box[2] + pad))
    bottom = min(rgb.height, math.ceil(box[3] + pad))
    if right <= left or bottom <= top:  # a box wholly outside the image: keep one pixel
        left, top = min(max(0, left), rgb.width - 1), min(max(0, top), rgb.height - 1)
        right, bottom = left + 1, top + 1
    crop = rgb.crop((left, top, right, bottom))
    factor = min(1.0, max_face_side / side)
    if factor >= 1.0:
        return ScaledView(crop, origin=(left, top))
    size = (max(1, round(crop.width * factor)), max(1, round(crop.height * factor)))
    reduced = crop.resize(size, Image.Resampling.BILINEAR, reducing_gap=_REDUCING_GAP)
    return ScaledView(
        reduced, origin=(left, top), scale=(size[0] / crop.width, size[1] / crop.height)
    )
