"""ControlNet control images from a reference photo: an OpenPose drawing or Canny edges.

A reference photo frames the output ("this pose, this crop"). The photo is first fitted to the
generation's aspect and size (:func:`fit_reference`), so the control image and the img2img init
image line up pixel for pixel; then it becomes one of:

- ``pose``: OpenPose's body-and-face drawing, as the published OpenPose ControlNets were trained
  on (lllyasviel's ControlNet 1.1 annotator). OpenPose's own network is licensed for
  non-commercial use only, so the keypoints come from dlib's 68 face landmarks instead (public
  domain, shipped in ``face-recognition-models``) and the body is derived from the face: in a
  headshot the pose is the head and the shoulders. Where the operator configures a body-pose
  model (:mod:`.body_pose`), its shoulders, arms and hips replace the derived ones.
- ``canny``: Canny edges with the ControlNet annotator's default thresholds.

Everything here is deterministic: the members of a team must all get the same control image.
cv2 and dlib are imported on first use, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from headshots.errors import ModelMissing, SelfieRejected

# detect_faces is the dlib backend's detection policy (two HOG scales that must agree): it keeps
# its measured false positives out (the astronaut's mission patch, prints on shirts).
from headshots.generation.faces.dlib_backend import (
    DETECTION_LONG_SIDE,
    detect_faces,
    dlib_model_dir,
)
from headshots.queue.contracts import ControlHint

logger = logging.getLogger(__name__)

#: Finds faces in an RGB uint8 array (H, W, 3): one (68, 2) float array of dlib-order landmarks,
#: in that array's pixel coordinates, per face.
LandmarkFinder = Callable[[np.ndarray], list[np.ndarray]]
#: Finds a person's body in an RGB uint8 array: OpenPose's 18 body points in that array's pixel
#: coordinates, None where not seen (:class:`~headshots.generation.body_pose.BodyPoseModel`).
BodyFinder = Callable[[np.ndarray], list[tuple[float, float] | None]]
#: A box as (left, top, right, bottom) in pixels.
Box = tuple[float, float, float, float]
#: The body points a body-pose model sets (neck to ankles); the nose, eyes and ears stay dlib's,
#: which sees the face closer than a whole-body model does.
MODEL_BODY_POINTS = range(1, 14)

LANDMARK_MODEL_FILE = "shape_predictor_68_face_landmarks.dat"

#: The ControlNet annotator's Canny thresholds (its defaults, which the canny ControlNets saw).
CANNY_LOW = 100
CANNY_HIGH = 200

#: The annotator draws on a 512 px canvas and resizes the drawing to the output, so its stick
#: width and dot radii are in 512 px units; ours scale with the short side of the output.
ANNOTATOR_RESOLUTION = 512
STICK_WIDTH = 4
JOINT_RADIUS = 4
FACE_DOT_RADIUS = 3
LIMB_ALPHA = 0.6

#: OpenPose's 18 COCO body points; "right" is the person's right (image left, facing the camera).
BODY_POINTS = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)
#: The annotator's 17 drawn limbs (0-based point pairs), in its order; limb i has colour i.
LIMBS = (
    (1, 2),
    (1, 5),
    (2, 3),
    (3, 4),
    (5, 6),
    (6, 7),
    (1, 8),
    (8, 9),
    (9, 10),
    (1, 11),
    (11, 12),
    (12, 13),
    (1, 0),
    (0, 14),
    (14, 16),
    (0, 15),
    (15, 17),
)
#: OpenPose's 18 colours (RGB): joint i and limb i.
OPENPOSE_COLOURS = (
    (255, 0, 0),
    (255, 85, 0),
    (255, 170, 0),
    (255, 255, 0),
    (170, 255, 0),
    (85, 255, 0),
    (0, 255, 0),
    (0, 255, 85),
    (0, 255, 170),
    (0, 255, 255),
    (0, 170, 255),
    (0, 85, 255),
    (0, 0, 255),
    (85, 0, 255),
    (170, 0, 255),
    (255, 0, 255),
    (255, 0, 170),
    (255, 0, 85),
)

# Body-from-face proportions, in units of the landmark face: its width is the jaw span (points 0
# to 16), its height brows to chin. Tuned by eye on portraits against OpenPose's own output:
# OpenPose puts the neck point at the base of the neck, between the shoulder joints.
NECK_BELOW_CHIN = 0.6
SHOULDER_SPAN = 1.1
SHOULDER_DROP = 0.2
EAR_OUTSET = 0.06


class NoPoseFound(SelfieRejected):
    """The reference photo has no face to take a pose from; the message is for the chat.

    A :class:`SelfieRejected` because the error tree files "a photo is unusable" there (like
    :class:`~headshots.generation.faces.ImageRejected`); it carries its sentence as the reason.
    """

    def __init__(self, detail: str) -> None:
        message = f"No face was found in the reference photo: {detail}"
        super().__init__(message, [message])


@dataclass(frozen=True)
class ControlImage:
    """A ControlNet control image and the reference fitted exactly like it.

    ``image`` and ``fitted`` are RGB and the generation's size; ``crop_box`` is the part of the
    reference (in its pixels) that both were cut from. ``keypoints`` is JSON-friendly: for
    ``pose`` ``{"body": 18 x [x, y] or None, "face": 70 x [x, y], "source": "dlib68"}``
    normalised to 0..1 of the image; for ``canny`` ``{"low": 100, "high": 200}``.
    """

    image: Image.Image
    hint: ControlHint
    keypoints: dict[str, Any]
    fitted: Image.Image
    crop_box: tuple[int, int, int, int]

    def to_record(self) -> dict[str, Any]:
        """The hint and keypoints for a job record (no pixels)."""
        return {"hint": self.hint, "keypoints": self.keypoints}


class DlibLandmarks:
    """:data:`LandmarkFinder` on dlib's HOG detector and 68-point shape predictor.

    The caller keeps one instance (the predictor file is 100 MB, read on the first call). Calls
    are serialised: dlib's native objects abort the process when two threads use them at once.
    """

    def __init__(self, model_dir: Path | None = None) -> None:
        self._model_dir = model_dir
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._models: tuple[Any, Any] | None = None

    def _load(self) -> tuple[Any, Any]:
        with self._load_lock:
            if self._models is None:
                path = (self._model_dir or dlib_model_dir()) / LANDMARK_MODEL_FILE
                if not path.is_file():
                    raise ModelMissing(f"dlib model file missing: {path}")
                import dlib  # heavy native module: only when a pose is actually needed

                logger.info("loading dlib 68-point landmarks from %s", path)
                self._models = (dlib.get_frontal_face_detector(), dlib.shape_predictor(str(path)))
            return self._models

    def __call__(self, pixels: np.ndarray) -> list[np.ndarray]:
        """Return each face's 68 landmarks in ``pixels`` coordinates, largest face first."""
        detector, predictor = self._load()
        import dlib

        image = Image.fromarray(np.asarray(pixels, dtype=np.uint8))
        scale = min(1.0, DETECTION_LONG_SIDE / max(image.size))
        if scale < 1.0:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.BILINEAR)
        small = np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
        with self._run_lock:
            faces = []
            for box, _score in detect_faces(detector, small):
                shape = predictor(small, dlib.rectangle(*(round(v) for v in box)))
                points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
                faces.append(points / scale)
        faces.sort(key=lambda points: _box_area(_landmark_box(points)), reverse=True)
        return faces


def fit_box(
    image_size: tuple[int, int], size: tuple[int, int], face_box: Box | None = None
) -> tuple[int, int, int, int]:
    """Return the largest ``size``-aspect box of an ``image_size`` image, as (l, t, r, b).

    Centred on the image, or around ``face_box`` when given (clamped to the image).
    """
    width, height = image_size
    target = size[0] / size[1]
    if width / height > target:
        crop_width, crop_height = min(width, max(1, round(height * target))), height
    else:
        crop_width, crop_height = width, min(height, max(1, round(width / target)))
    centre_x, centre_y = width / 2, height / 2
    if face_box is not None:
        left, top, right, bottom = face_box
        # Aim half a face below the face's centre: the shoulders carry the pose and must stay
        # in frame, and a headshot leaves less room above the head than below the chin.
        centre_x = (left + right) / 2
        centre_y = (top + bottom) / 2 + (bottom - top) / 2
    left_edge = min(max(0, round(centre_x - crop_width / 2)), width - crop_width)
    top_edge = min(max(0, round(centre_y - crop_height / 2)), height - crop_height)
    return (left_edge, top_edge, left_edge + crop_width, top_edge + crop_height)


def fit_reference(
    reference: Image.Image, size: tuple[int, int], face_box: Box | None = None
) -> Image.Image:
    """Return ``reference`` as RGB, cropped to the aspect of ``size`` and resized to ``size``.

    See :func:`fit_box` for the crop; pass the same ``face_box`` to crop another image of the
    same size identically (:attr:`ControlImage.fitted` is this for the control image's crop).
    """
    box = fit_box(reference.size, size, face_box)
    return _crop_resize(reference, box, size)


def make_control_image(
    reference: Image.Image,
    hint: ControlHint,
    size: tuple[int, int],
    *,
    landmarks: LandmarkFinder | None = None,
    body: BodyFinder | None = None,
) -> ControlImage:
    """Return the ``hint`` control image of ``reference`` for a ``size`` (width, height) output.

    ``pose`` needs ``landmarks`` (a :class:`DlibLandmarks` the caller keeps; one is made for
    this call when omitted) and raises :class:`NoPoseFound` when the photo has no face; with
    several faces the largest sets the pose. ``body``: the operator's body-pose model, whose
    points replace the shoulders and the rest derived from the face where it sees them.
    """
    if size[0] < 1 or size[1] < 1:
        raise ValueError(f"a control image needs a positive size, not {size}")
    rgb = reference.convert("RGB")
    if hint == "canny":
        box = fit_box(rgb.size, size)
        fitted = _crop_resize(rgb, box, size)
        return ControlImage(
            image=canny_edges(fitted),
            hint="canny",
            keypoints={"low": CANNY_LOW, "high": CANNY_HIGH},
            fitted=fitted,
            crop_box=box,
        )
    if hint != "pose":
        raise ValueError(f"unknown control hint {hint!r}")
    finder = landmarks if landmarks is not None else DlibLandmarks()
    faces = finder(np.asarray(rgb, dtype=np.uint8))
    if not faces:
        raise NoPoseFound("send a photo where one face is clearly visible.")
    # The bot already refused photos of several people; what is left is a face in a poster or
    # a print, smaller than the person's own.
    points = max(faces, key=lambda face: _box_area(_landmark_box(face)))
    box = fit_box(rgb.size, size, _landmark_box(points))
    fitted = _crop_resize(rgb, box, size)
    keypoints = pose_keypoints(_to_fitted(points, box, size), size)
    if body is not None:
        keypoints = _with_body(keypoints, body(np.asarray(rgb, dtype=np.uint8)), box, size)
        keypoints["source"] = f"dlib68+{getattr(body, 'name', 'body model')}"
    return ControlImage(
        image=draw_pose(keypoints, size),
        hint="pose",
        keypoints=keypoints,
        fitted=fitted,
        crop_box=box,
    )


def pose_keypoints(landmarks: np.ndarray, size: tuple[int, int]) -> dict[str, Any]:
    """Return OpenPose body and face keypoints, normalised to ``size``, from 68 landmarks.

    Body points outside the image are None (OpenPose does not see them); face points are kept
    and drawn only where inside. Arms, hips and legs are None: a headshot does not show them.
    """
    points = np.asarray(landmarks, dtype=np.float64).reshape(68, 2)
    right_eye = points[36:42].mean(axis=0)  # dlib's 36-41 are the image-left eye
    left_eye = points[42:48].mean(axis=0)
    across = _unit(left_eye - right_eye, fallback=(1.0, 0.0))
    down = np.array([-across[1], across[0]])  # the face's own vertical axis, chin-wards
    chin = points[8]
    face_width = float(np.linalg.norm(points[16] - points[0]))
    face_height = float(np.dot(chin - (points[19] + points[24]) / 2, down))
    # The neck follows the head's roll, but people tilt the head more than the shoulders:
    # the shoulder line takes half the roll.
    body_down = _unit(down + np.array([0.0, 1.0]), fallback=(0.0, 1.0))
    body_across = np.array([body_down[1], -body_down[0]])
    neck = chin + NECK_BELOW_CHIN * face_height * down
    shoulder_drop = SHOULDER_DROP * face_height * body_down
    body: list[np.ndarray | None] = [None] * len(BODY_POINTS)
    body[0] = points[30]
    body[1] = neck
    body[2] = neck - SHOULDER_SPAN * face_width * body_across + shoulder_drop
    body[5] = neck + SHOULDER_SPAN * face_width * body_across + shoulder_drop
    body[14] = right_eye
    body[15] = left_eye
    body[16] = points[0] - EAR_OUTSET * face_width * across
    body[17] = points[16] + EAR_OUTSET * face_width * across
    # OpenPose's face model has 70 points: dlib's 68 and the pupils (right, then left).
    face = [*points, right_eye, left_eye]
    return {
        "body": [_inside_or_none(point, size) for point in body],
        "face": [_normalise(point, size) for point in face],
        "source": "dlib68",
    }


def _with_body(
    keypoints: dict[str, Any],
    found: list[tuple[float, float] | None],
    box: tuple[int, int, int, int],
    size: tuple[int, int],
) -> dict[str, Any]:
    """``keypoints`` with the body model's points (reference pixels) where it saw them."""
    if len(found) != len(BODY_POINTS):
        raise ValueError(f"a body finder gives {len(BODY_POINTS)} points, not {len(found)}")
    merged = list(keypoints["body"])
    for index in MODEL_BODY_POINTS:
        point = found[index]
        if point is not None:
            fitted = _to_fitted(np.array([point], dtype=np.float64), box, size)[0]
            merged[index] = _inside_or_none(fitted, size)
    return {**keypoints, "body": merged}


def draw_pose(keypoints: dict[str, Any], size: tuple[int, int]) -> Image.Image:
    """Return OpenPose's drawing of ``keypoints`` (see :func:`pose_keypoints`) at ``size``.

    As ControlNet 1.1's annotator draws it: on black, the joints as dots, then each limb as an
    ellipse blended at 0.6 over what is there, then the face points as white dots.
    """
    import cv2

    width, height = size
    scale = min(width, height) / ANNOTATOR_RESOLUTION
    stick = max(1, round(STICK_WIDTH * scale))
    joint_radius = max(1, round(JOINT_RADIUS * scale))
    face_radius = max(1, round(FACE_DOT_RADIUS * scale))
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    body = [_pixel(point, size) for point in keypoints["body"]]
    for point, colour in zip(body, OPENPOSE_COLOURS, strict=True):
        if point is not None:
            cv2.circle(canvas, point, joint_radius, colour, thickness=-1)
    for (start, end), colour in zip(LIMBS, OPENPOSE_COLOURS, strict=False):
        a, b = body[start], body[end]
        if a is None or b is None:
            continue
        length = math.hypot(a[0] - b[0], a[1] - b[1])
        angle = math.degrees(math.atan2(a[1] - b[1], a[0] - b[0]))
        centre = (int((a[0] + b[0]) / 2), int((a[1] + b[1]) / 2))
        polygon = np.asarray(
            cv2.ellipse2Poly(centre, (int(length / 2), stick), int(angle), 0, 360, 1),
            dtype=np.int32,
        )
        limb = canvas.copy()
        cv2.fillConvexPoly(limb, polygon, colour)
        canvas = np.asarray(cv2.addWeighted(canvas, 1 - LIMB_ALPHA, limb, LIMB_ALPHA, 0))
    for face_point in keypoints["face"]:
        pixel = _pixel(face_point, size)
        if pixel is not None:
            cv2.circle(canvas, pixel, face_radius, (255, 255, 255), thickness=-1)
    return Image.fromarray(canvas, mode="RGB")


def canny_edges(image: Image.Image) -> Image.Image:
    """Return the Canny edges of ``image``'s grey values as white on black RGB."""
    import cv2

    grey = np.ascontiguousarray(np.asarray(image.convert("L"), dtype=np.uint8))
    edges = np.asarray(cv2.Canny(grey, CANNY_LOW, CANNY_HIGH), dtype=np.uint8)
    return Image.fromarray(np.stack([edges] * 3, axis=-1), mode="RGB")


def _crop_resize(
    image: Image.Image, box: tuple[int, int, int, int], size: tuple[int, int]
) -> Image.Image:
    cropped = image.convert("RGB").crop(box)
    if cropped.size == size:
        return cropped
    return cropped.resize(size, Image.Resampling.LANCZOS)


def _to_fitted(
    points: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int]
) -> np.ndarray:
    """Map reference pixel coordinates into the fitted image (pixel centres stay centres)."""
    scale = np.array([size[0] / (box[2] - box[0]), size[1] / (box[3] - box[1])])
    offset = np.array([box[0], box[1]], dtype=np.float64)
    mapped: np.ndarray = (points - offset + 0.5) * scale - 0.5
    return mapped


def _landmark_box(points: np.ndarray) -> Box:
    low = points.min(axis=0)
    high = points.max(axis=0)
    return (float(low[0]), float(low[1]), float(high[0]), float(high[1]))


def _box_area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _unit(vector: np.ndarray, *, fallback: tuple[float, float]) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 1e-9 else np.array(fallback)


def _normalise(point: np.ndarray, size: tuple[int, int]) -> list[float]:
    # Rounded so the record is short and drawing from a stored record gives the same pixels.
    return [round(float(point[0]) / size[0], 5), round(float(point[1]) / size[1], 5)]


def _inside_or_none(point: np.ndarray | None, size: tuple[int, int]) -> list[float] | None:
    if point is None:
        return None
    x, y = _normalise(point, size)
    return [x, y] if 0 <= x < 1 and 0 <= y < 1 else None


def _pixel(point: Sequence[float] | None, size: tuple[int, int]) -> tuple[int, int] | None:
    """A normalised point in pixels, truncated like the annotator; None when outside."""
    if point is None:
        return None
    x, y = int(point[0] * size[0]), int(point[1] * size[1])
    if 0 <= point[0] and 0 <= point[1] and x < size[0] and y < size[1]:
        return (x, y)
    return None
