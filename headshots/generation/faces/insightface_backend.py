"""Face analysis with an insightface model pack (SCRFD detector + ArcFace embeddings).

More accurate than dlib, but insightface's pretrained packs are licensed for **non-commercial
research only**, and we cannot ship or download them: an operator puts a pack (e.g.
``buffalo_l``: ``det_10g.onnx``, ``w600k_r50.onnx``, ...) into
``<models_path>/insightface/models/<pack>/`` (see :func:`insightface_pack_dir`).

insightface, onnxruntime and OpenCV are imported on first use only.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from headshots.errors import ModelMissing
from headshots.generation.faces.scaling import detection_view, face_view
from headshots.generation.faces.types import Face, eye_centres, normalise_embedding

logger = logging.getLogger(__name__)

#: ArcFace (w600k_r50 in buffalo_l) cosine similarities of the same person are typically
#: 0.5-0.8 and of different people below 0.2; insightface's own verification demos and
#: FaceChain/EasyPhoto filters sit between 0.3 and 0.4. Not measured here: no pack is available
#: offline. 0.35 leans towards accepting a genuine but unflattering selfie.
SAME_PERSON_THRESHOLD = 0.35
#: SCRFD's input; photos are detected on a copy reduced to its long side (see ``analyze``).
DETECTION_SIZE = (640, 640)
DETECTION_THRESHOLD = 0.5
#: SCRFD's score is a probability; real frontal faces score 0.8-0.9, spurious boxes just above
#: the 0.5 threshold. Not calibrated on the real pack here (it cannot be downloaded in CI).
SECOND_FACE_MIN_SCORE = 0.7
#: The embedding warps the region around the landmarks, plus this many times their span on each
#: side. ArcFace's 112 px template spans 41 px (eyes to mouth corners); its chip reaches at
#: most 1.27 spans beyond them at any rotation (computed over 0-360 degrees): 1.75 holds it.
CHIP_MARGIN = 1.75
#: A face whose landmarks span more than this share of the model's input side (twice the
#: template's 41/112) is averaged down to it before the warp.
MAX_LANDMARK_SPAN = 2 * 41 / 112
_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"


def onnx_providers() -> list[str]:
    """onnxruntime's providers for the face models: CUDA first where onnxruntime-gpu is
    installed and sees a GPU (a GPU worker detects and embeds there, issue 20), else the CPU.

    The CPU provider always stays in the list: onnxruntime runs an op CUDA lacks on it.
    """
    import onnxruntime

    available = onnxruntime.get_available_providers()
    return [_CUDA, _CPU] if _CUDA in available else [_CPU]


def _context_id(providers: list[str]) -> int:
    """insightface's ``ctx_id``: 0 (the first GPU) with CUDA, -1 for the CPU."""
    return 0 if providers[0] == _CUDA else -1


def insightface_pack_dir(models_path: Path, pack: str) -> Path:
    """Where the pack must live: ``<models_path>/insightface/models/<pack>``.

    This mirrors insightface's own ``<root>/models/<name>`` layout with ``root`` =
    ``<models_path>/insightface``, so a pack unzipped there also works with insightface's tools.
    """
    return models_path / "insightface" / "models" / pack


def pack_is_present(pack_dir: Path) -> bool:
    return pack_dir.is_dir() and any(pack_dir.glob("*.onnx"))


def missing_pack_error(pack_dir: Path) -> ModelMissing:
    return ModelMissing(
        f"insightface model pack not found: put its .onnx files in {pack_dir} "
        "(insightface packs are licensed for non-commercial research only; "
        "set HEADSHOTS_FACE_BACKEND=dlib to use the public-domain dlib models instead)"
    )


class ArcFaceEmbedder:
    """Embeds a face from its five landmarks with an ArcFace-contract ONNX model.

    The contract: input ``1x3xNxN`` float (N >= 112, a multiple of 16), one output vector. The
    face is aligned with insightface's ``norm_crop`` (a similarity transform of the landmarks onto
    the ArcFace template), exactly as insightface does it.
    """

    def __init__(self, model: Any) -> None:
        if getattr(model, "taskname", None) != "recognition":
            raise ModelMissing(f"not a face recognition model: {model!r}")
        self._model = model

    @classmethod
    def from_file(cls, path: Path, providers: list[str] | None = None) -> ArcFaceEmbedder:
        """Load a recognition model file through insightface's model zoo router."""
        if not path.is_file():
            raise ModelMissing(f"face recognition model missing: {path}")
        from insightface.model_zoo import get_model

        providers = providers or onnx_providers()
        model = get_model(str(path), providers=providers)
        if model is None:
            raise ModelMissing(f"insightface does not recognise {path} as a model")
        model.prepare(ctx_id=_context_id(providers))
        return cls(model)

    @property
    def input_size(self) -> int:
        return int(self._model.input_size[0])

    def embed(self, image: Image.Image, landmarks: np.ndarray) -> np.ndarray:
        """Return the L2-normalised embedding of the face at ``landmarks`` in an RGB image.

        Only the face's region is converted and warped (see :func:`face_view`), so the cost does
        not grow with the photo; a face far larger than the model's input is first averaged down
        to twice its size, as the bilinear warp alone would skip most of its pixels.
        """
        from insightface.utils import face_align

        points = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
        crop = face_view(
            image,
            (float(x0), float(y0), float(x1), float(y1)),
            margin=CHIP_MARGIN,
            max_face_side=MAX_LANDMARK_SPAN * self.input_size,
        )
        bgr = np.ascontiguousarray(np.asarray(crop.image)[:, :, ::-1])
        aligned = face_align.norm_crop(
            bgr, landmark=crop.to_view(points), image_size=self.input_size
        )
        return normalise_embedding(self._model.get_feat(aligned))


class InsightFaceAnalyzer:
    """:class:`FaceAnalyzer` on an insightface pack. Thread-safe; the pack loads lazily."""

    name = "insightface"
    same_person_threshold = SAME_PERSON_THRESHOLD
    second_face_min_score = SECOND_FACE_MIN_SCORE

    def __init__(
        self,
        pack_dir: Path,
        providers: list[str] | None = None,
        *,
        models: tuple[Any, ArcFaceEmbedder] | None = None,
    ) -> None:
        """``models``: a detector (SCRFD's ``detect`` contract) and an embedder already loaded,
        used instead of the pack's (tests; a caller sharing them across analyzers)."""
        if not pack_is_present(pack_dir):
            raise missing_pack_error(pack_dir)
        self.pack_dir = pack_dir
        #: None: :func:`onnx_providers`, read when the pack loads.
        self.providers = providers
        self._lock = threading.Lock()
        self._loaded: tuple[Any, ArcFaceEmbedder] | None = models

    def _load(self) -> tuple[Any, ArcFaceEmbedder]:
        with self._lock:
            if self._loaded is None:
                from insightface.app import FaceAnalysis

                providers = self.providers or onnx_providers()
                logger.info("loading insightface pack from %s on %s", self.pack_dir, providers[0])
                # A directory as ``name`` makes insightface load it as is, never download.
                app = FaceAnalysis(
                    name=str(self.pack_dir),
                    allowed_modules=["detection", "recognition"],
                    providers=providers,
                )
                app.prepare(
                    ctx_id=_context_id(providers),
                    det_thresh=DETECTION_THRESHOLD,
                    det_size=DETECTION_SIZE,
                )
                if "recognition" not in app.models:
                    raise ModelMissing(f"no recognition model in {self.pack_dir}")
                self._loaded = (app.det_model, ArcFaceEmbedder(app.models["recognition"]))
            return self._loaded

    def analyze(self, image: Image.Image) -> list[Face]:
        detector, embedder = self._load()
        # SCRFD scales every photo to fit DETECTION_SIZE itself: handing it a copy of that size
        # spares converting and resizing the full photo (and Pillow averages where OpenCV's
        # bilinear resize skips pixels). A smaller photo passes as it is; SCRFD enlarges it.
        view = detection_view(image, max(DETECTION_SIZE))
        bgr = np.ascontiguousarray(np.asarray(view.image)[:, :, ::-1])
        boxes, landmarks = detector.detect(bgr, max_num=0, metric="default")
        faces: list[Face] = []
        for row, found in zip(boxes, landmarks, strict=True):
            x0, y0, x1, y1, score = (float(v) for v in row[:5])
            points = view.to_full(np.asarray(found, dtype=np.float32).reshape(5, 2))
            faces.append(
                Face(
                    box=view.box_to_full((x0, y0, x1, y1)),
                    landmarks=points,
                    score=score,
                    # From the full-resolution photo: the reduced copy lost the face's detail.
                    embedding=embedder.embed(image, points),
                    eyes=eye_centres(points[0], points[1]),  # insightface: eyes, nose, mouth
                )
            )
        faces.sort(key=lambda face: face.area, reverse=True)
        return faces
