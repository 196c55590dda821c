"""Face analysis with dlib: HOG detector, 5-point landmarks, 128-d ResNet embeddings.

All three models were released into the public domain by dlib's author, so this backend is the
licence-clean default. The model files come from the ``face-recognition-models`` wheel; its
``__init__`` imports ``pkg_resources`` (absent in new setuptools), so we locate the files with
``importlib.util.find_spec`` instead of importing it.

dlib itself is imported on first use, so importing this module stays cheap for the chat bot.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from headshots.errors import ModelMissing
from headshots.generation.faces.types import Face, eye_centres, normalise_embedding

logger = logging.getLogger(__name__)

SHAPE_PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"
RECOGNITION_MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"

#: dlib's documented rule is "same person below 0.6 euclidean distance" on raw descriptors, whose
#: norms we measured at 1.36-1.59 (mean ~1.47). On unit vectors that is a distance of about
#: 0.6 / 1.47 = 0.41, i.e. cosine 1 - 0.41**2 / 2 = 0.92. Measured on the bundled photographs:
#: different people 0.78-0.89, augmented copies of one photo >= 0.99.
SAME_PERSON_THRESHOLD = 0.92
#: Photos are detected at this long side: phone photos are 4000 px, HOG time grows with area.
DETECTION_LONG_SIDE = 800
#: HOG finds face-like textures (the astronaut's mission patch, prints on shirts). A detection
#: counts when the 1x and the 2x-upsampled pass agree and one of them scores at least
#: MIN_CONFIRMED_SCORE, or when it is strong on its own (small faces show up only at 2x).
#: Measured on the bundled photos: the patch scored 0.04-0.20 at both scales (up to 0.62 at one
#: scale, after a tilt); the weakest real face (t1.jpg, partly turned) 0.21 at 1x / 0.37 at 2x;
#: frontal selfie faces 0.9-1.7. The margins are thin: HOG is the weak part of this backend.
STRONG_SINGLE_SCALE_SCORE = 0.8
MIN_CONFIRMED_SCORE = 0.3
#: A second face scoring below this is not a second person (see faces.prominence): a text name
#: badge fired at 0.23, textures at up to 0.62, out-of-focus posters at 0.08-0.59; the weakest
#: real second person measured (partly turned) at 0.66.
SECOND_FACE_MIN_SCORE = 0.63
_AGREEMENT_IOU = 0.3


def dlib_model_dir() -> Path:
    """Folder holding the dlib model files of the ``face-recognition-models`` package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing(
            "the dlib face models are missing: install the 'face-recognition-models' package"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class DlibAnalyzer:
    """:class:`FaceAnalyzer` on dlib. Thread-safe; models load on the first ``analyze`` call.

    dlib's detector and models are shared native objects that abort the whole process when two
    threads run them at once, so analyses are serialised with a lock.
    """

    name = "dlib"
    same_person_threshold = SAME_PERSON_THRESHOLD
    second_face_min_score = SECOND_FACE_MIN_SCORE

    def __init__(self, model_dir: Path | None = None) -> None:
        self._model_dir = model_dir
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._models: tuple[Any, Any, Any] | None = None

    def _load(self) -> tuple[Any, Any, Any]:
        with self._lock:
            if self._models is None:
                model_dir = self._model_dir or dlib_model_dir()
                paths = [model_dir / SHAPE_PREDICTOR_FILE, model_dir / RECOGNITION_MODEL_FILE]
                for path in paths:
                    if not path.is_file():
                        raise ModelMissing(f"dlib model file missing: {path}")
                import dlib  # heavy native module: only when faces are actually analysed

                logger.info("loading dlib face models from %s", model_dir)
                self._models = (
                    dlib.get_frontal_face_detector(),
                    dlib.shape_predictor(str(paths[0])),
                    dlib.face_recognition_model_v1(str(paths[1])),
                )
            return self._models

    def analyze(self, image: Image.Image) -> list[Face]:
        with self._run_lock:
            return self._analyze(image)

    def _analyze(self, image: Image.Image) -> list[Face]:
        detector, predictor, recognizer = self._load()
        import dlib

        rgb = image.convert("RGB")
        scale = min(1.0, DETECTION_LONG_SIDE / max(rgb.size))
        small = rgb
        if scale < 1.0:
            size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
            small = rgb.resize(size, Image.Resampling.BILINEAR)
        pixels = np.ascontiguousarray(np.asarray(small, dtype=np.uint8))
        boxes = detect_faces(detector, pixels)

        faces: list[Face] = []
        for box, score in boxes:
            rect = dlib.rectangle(*(round(v) for v in box))
            shape = predictor(pixels, rect)
            # The recognizer aligns its own 150x150 chip from the 5 landmarks.
            descriptor = np.asarray(recognizer.compute_face_descriptor(pixels, shape))
            points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32) / scale
            faces.append(
                Face(
                    box=(box[0] / scale, box[1] / scale, box[2] / scale, box[3] / scale),
                    landmarks=points,
                    score=float(score),
                    embedding=normalise_embedding(descriptor),
                    # dlib's 5 points: two corners of one eye, two of the other, the nose.
                    eyes=eye_centres(points[0:2].mean(axis=0), points[2:4].mean(axis=0)),
                )
            )
        faces.sort(key=lambda face: face.area, reverse=True)
        return faces


def detect_faces(
    detector: Any, pixels: np.ndarray
) -> list[tuple[tuple[float, float, float, float], float]]:
    """Run HOG at 1x and 2x and keep detections confirmed across scales or strong on their own."""
    passes = []
    for upsample in (0, 1):
        rects, scores, _ = detector.run(pixels, upsample)
        passes.append(
            [
                ((float(r.left()), float(r.top()), float(r.right()), float(r.bottom())), float(s))
                for r, s in zip(rects, scores, strict=True)
            ]
        )
    native, upsampled = passes
    kept: list[tuple[tuple[float, float, float, float], float]] = []
    # The 2x pass sees every face the 1x pass sees, and smaller ones too; use its boxes.
    for box, score in upsampled:
        matches = [
            other_score for other, other_score in native if _iou(box, other) > _AGREEMENT_IOU
        ]
        confirmed = bool(matches) and max([score, *matches]) >= MIN_CONFIRMED_SCORE
        if confirmed or score >= STRONG_SINGLE_SCALE_SCORE:
            kept.append((box, score))
    for box, score in native:
        seen = any(_iou(box, other) > _AGREEMENT_IOU for other, _ in upsampled)
        if not seen and score >= STRONG_SINGLE_SCALE_SCORE:
            kept.append((box, score))
    return kept


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
