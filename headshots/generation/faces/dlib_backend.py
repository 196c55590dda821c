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
import os
import queue
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from headshots.errors import ModelMissing
from headshots.generation.faces.scaling import detection_view, face_view
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
#: HOG's window is 80 px (40 px in the 2x pass), so at 800 px the smallest face any check
#: accepts (8 % of the short side, 64 px at 800) is still found, in the 2x pass.
DETECTION_LONG_SIDE = 800
#: The landmarks and the descriptor are computed on the face's region of the full image: the
#: box plus this share of its side on every side. dlib's 150 px chip (padding 0.25) measured
#: 0.8-1.35 box sides wide on the bundled photos; turned by 45 degrees its corners reach 1.9
#: across, 0.45 beyond each side: 0.75 holds it, and the crop gives the whole image's descriptor.
CROP_MARGIN = 0.75
#: A face larger than this is reduced to it first: the chip is 150 px, and dlib would average a
#: huge face down through an image pyramid of the whole region, at a cost that grows with it.
MAX_FACE_SIDE = 300
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
#: Each concurrent analysis holds a HOG detector of its own (0.26 s to create, once). HOG is
#: ~75 % of an analysis; on 2 cores, two at once ranked ten 2048 px images in 2.0 s instead of
#: 3.4 s (bench/bench_selfie_check.py --large). Beyond four, the serialised descriptor
#: (~0.08 s a face) bounds ten images near 1 s anyway.
MAX_WORKERS = 4


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

    dlib's detector and models are native objects that abort the whole process when two
    threads run one of them at once. HOG detection, most of an analysis, releases the GIL, so
    up to ``parallelism`` analyses detect at once, each with a detector of its own (created
    when first needed, then reused); the landmarks and the descriptor share one model set
    behind a lock (the descriptor gains nothing from threads: measured 0.78 s for 10 in one
    thread, 0.80 s in two).
    """

    name = "dlib"
    same_person_threshold = SAME_PERSON_THRESHOLD
    second_face_min_score = SECOND_FACE_MIN_SCORE

    def __init__(self, model_dir: Path | None = None, *, workers: int | None = None) -> None:
        """``workers``: analyses that detect at once (default :func:`default_workers`)."""
        self._model_dir = model_dir
        #: How many analyses run at once to advantage: callers with many images (ranking, the
        #: check stage) hand them in from a pool this big.
        self.parallelism = max(1, workers if workers is not None else default_workers())
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.parallelism)
        self._detectors: queue.SimpleQueue[Any] = queue.SimpleQueue()
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
                self._detectors.put(self._models[0])
            return self._models

    def analyze(self, image: Image.Image) -> list[Face]:
        models = self._load()
        # Detect on a reduced copy (HOG's cost grows with the area, its windows are 80 px);
        # landmarks and the embedding come from the face's region of the full image.
        view = detection_view(image, DETECTION_LONG_SIDE)
        pixels = np.ascontiguousarray(np.asarray(view.image, dtype=np.uint8))
        boxes = self._detect(pixels)
        with self._run_lock:
            faces = [_describe(models, image, view.box_to_full(box), score) for box, score in boxes]
        faces.sort(key=lambda face: face.area, reverse=True)
        return faces

    def _detect(self, pixels: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        """:func:`detect_faces` with a detector no other thread is running."""
        with self._slots:
            try:
                detector = self._detectors.get_nowait()
            except queue.Empty:
                # Every detector is busy in another slot: at most ``parallelism`` are made.
                import dlib

                detector = dlib.get_frontal_face_detector()
            try:
                return detect_faces(detector, pixels)
            finally:
                self._detectors.put(detector)


def default_workers() -> int:
    """Concurrent dlib analyses: one per CPU core, at most :data:`MAX_WORKERS`."""
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def _describe(
    models: tuple[Any, Any, Any],
    image: Image.Image,
    box: tuple[float, float, float, float],
    score: float,
) -> Face:
    """Landmarks and descriptor of the face at ``box`` (full-image coordinates)."""
    import dlib

    _, predictor, recognizer = models
    crop = face_view(image, box, margin=CROP_MARGIN, max_face_side=MAX_FACE_SIDE)
    pixels = np.ascontiguousarray(np.asarray(crop.image, dtype=np.uint8))
    rect = dlib.rectangle(*(round(v) for v in crop.box_to_view(box)))
    shape = predictor(pixels, rect)
    # The recognizer aligns its own 150x150 chip from the 5 landmarks.
    descriptor = np.asarray(recognizer.compute_face_descriptor(pixels, shape))
    points = crop.to_full(np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32))
    return Face(
        box=box,
        landmarks=points,
        score=float(score),
        embedding=normalise_embedding(descriptor),
        # dlib's 5 points: two corners of one eye, two of the other, the nose.
        eyes=eye_centres(points[0:2].mean(axis=0), points[2:4].mean(axis=0)),
    )


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
