"""An operator's body-pose model for reference photos: COCO keypoints from an ONNX heatmap model.

Without one, a reference photo's pose is the face's (dlib's 68 landmarks, the shoulders derived
from them: :mod:`.control`). Where the operator sets ``HEADSHOTS_POSE_MODEL`` to an ONNX file of
a top-down heatmap pose model (SimpleBaseline, HRNet, ViTPose exports: one RGB image in, 17 COCO
keypoint heatmaps out), its shoulders, elbows, wrists and hips replace the derived ones, so a
reference with a turned torso or crossed arms is followed as it is. Which model, and under which
licence, is the operator's choice: nothing is downloaded or bundled.

The contract, checked on load (:class:`BodyPoseModel`):

- input ``(1, 3, H, W)`` float32 RGB, ImageNet-normalised (fixed H and W, or 256 x 192 where
  the export left them dynamic); the whole reference is letterboxed into it;
- first output ``(1, 17, h, w)`` heatmaps in COCO order; a keypoint is the peak of its map,
  kept where the peak reaches :data:`MIN_SCORE`.

onnxruntime is imported on first use only.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from headshots.errors import ConfigurationError, ModelMissing

logger = logging.getLogger(__name__)

#: COCO's 17 keypoints, in the order heatmap models output them.
COCO_POINTS = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
#: OpenPose's 18 body points (see :data:`headshots.generation.control.BODY_POINTS`) as COCO
#: indices; the neck (OpenPose 1) is not a COCO point: the shoulders' midpoint.
OPENPOSE_FROM_COCO = (0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
#: A heatmap peak below this is no keypoint (the usual threshold of the top-down models' demos).
MIN_SCORE = 0.3
#: The input size of an export with dynamic height and width (the COCO 256 x 192 models').
DEFAULT_INPUT = (256, 192)
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

#: One keypoint: (x, y) in the reference's pixels, or None where the model does not see it.
Point = tuple[float, float] | None


class BodyPoseModel:
    """A loaded heatmap pose model; call it with an RGB array to get OpenPose's 18 points.

    Calls are serialised (one onnxruntime session, used from the worker's threads).
    """

    def __init__(self, session: Any, name: str) -> None:
        self._session = session
        self.name = name
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ConfigurationError(
                f"pose model {name}: expected one (1, 3, H, W) image input, got "
                f"{[tuple(i.shape) for i in inputs]}"
            )
        shape = inputs[0].shape
        height, width = shape[2], shape[3]
        fixed = isinstance(height, int) and isinstance(width, int)
        self.input_name = str(inputs[0].name)
        self.input_size: tuple[int, int] = (height, width) if fixed else DEFAULT_INPUT
        out = outputs[0].shape
        if len(out) != 4 or (isinstance(out[1], int) and out[1] != len(COCO_POINTS)):
            raise ConfigurationError(
                f"pose model {name}: expected (1, 17, h, w) COCO heatmaps as its first output, "
                f"got {tuple(out)}"
            )
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path, providers: list[str] | None = None) -> BodyPoseModel:
        """Open ``path`` (an ONNX file); :class:`ModelMissing` / :class:`ConfigurationError`
        with the reason when it is absent or not a heatmap pose model."""
        if not path.is_file():
            raise ModelMissing(f"pose model file missing: {path}")
        import onnxruntime

        from headshots.generation.faces.insightface_backend import onnx_providers

        try:
            session = onnxruntime.InferenceSession(
                str(path), providers=providers or onnx_providers()
            )
        except Exception as exc:  # onnxruntime says what is wrong with the file
            raise ConfigurationError(f"pose model {path} could not be loaded: {exc}") from exc
        logger.info("body pose model %s loaded", path.name)
        return cls(session, path.name)

    def __call__(self, pixels: np.ndarray) -> list[Point]:
        """OpenPose's 18 body points of the person in ``pixels`` (H, W, 3 RGB uint8), in its
        pixel coordinates; None where the model does not see one."""
        tensor, scale, offset = self._letterbox(np.asarray(pixels, dtype=np.uint8))
        with self._lock:
            heatmaps = np.asarray(
                self._session.run(None, {self.input_name: tensor})[0], dtype=np.float32
            )
        coco = decode_heatmaps(heatmaps[0], self.input_size)
        # Back from the model's input to the reference's pixels (undo the letterbox).
        in_reference: list[Point] = [
            None if p is None else ((p[0] - offset[0]) / scale, (p[1] - offset[1]) / scale)
            for p in coco
        ]
        return openpose_from_coco(in_reference)

    def _letterbox(self, pixels: np.ndarray) -> tuple[np.ndarray, float, tuple[float, float]]:
        """The model's input tensor of the whole image, aspect kept and padded with black;
        the scale and offset that map the image's pixels into it."""
        height, width = self.input_size
        image = Image.fromarray(pixels).convert("RGB")
        scale = min(width / image.width, height / image.height)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        offset = ((width - size[0]) / 2, (height - size[1]) / 2)
        canvas = Image.new("RGB", (width, height))
        canvas.paste(
            image.resize(size, Image.Resampling.BILINEAR), (round(offset[0]), round(offset[1]))
        )
        array = (np.asarray(canvas, dtype=np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        tensor = np.ascontiguousarray(array.transpose(2, 0, 1)[None], dtype=np.float32)
        return tensor, scale, (float(round(offset[0])), float(round(offset[1])))


def decode_heatmaps(heatmaps: np.ndarray, input_size: tuple[int, int]) -> list[Point]:
    """Each map's peak in the model input's pixels (None below :data:`MIN_SCORE`).

    The peak is nudged a quarter cell towards the higher neighbour, as the top-down models'
    own decoders do (the maps are a quarter of the input's resolution or coarser).
    """
    maps = np.asarray(heatmaps, dtype=np.float32)
    _, map_h, map_w = maps.shape
    stride_x, stride_y = input_size[1] / map_w, input_size[0] / map_h
    points: list[Point] = []
    for channel in maps:
        index = int(np.argmax(channel))
        y, x = divmod(index, map_w)
        if float(channel[y, x]) < MIN_SCORE:
            points.append(None)
            continue
        dx = np.sign(channel[y, min(x + 1, map_w - 1)] - channel[y, max(x - 1, 0)]) * 0.25
        dy = np.sign(channel[min(y + 1, map_h - 1), x] - channel[max(y - 1, 0), x]) * 0.25
        # Cell centres: cell (x, y) covers [x * stride, (x + 1) * stride) of the input.
        points.append(((x + dx + 0.5) * stride_x - 0.5, (y + dy + 0.5) * stride_y - 0.5))
    return points


def openpose_from_coco(coco: list[Point]) -> list[Point]:
    """OpenPose's 18 body points from COCO's 17: the neck is the shoulders' midpoint."""
    if len(coco) != len(COCO_POINTS):
        raise ValueError(f"expected {len(COCO_POINTS)} COCO points, got {len(coco)}")
    body: list[Point] = [None if i is None else coco[i] for i in OPENPOSE_FROM_COCO]
    left, right = coco[5], coco[6]
    if left is not None and right is not None:
        body[1] = ((left[0] + right[0]) / 2, (left[1] + right[1]) / 2)
    return body
