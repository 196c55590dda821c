"""The value types of face analysis: a detected :class:`Face` and the :class:`FaceAnalyzer` seam."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from headshots.errors import SelfieRejected

if TYPE_CHECKING:
    from PIL import Image


class ImageRejected(SelfieRejected):
    """The bytes are not an image we are willing to decode; ``reasons`` holds one chat message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, [reason])
        self.reason = reason


@dataclass(frozen=True)
class Face:
    """One detected face, in the pixel coordinates of the image it was found in.

    ``landmarks`` are five (x, y) points whose order is the backend's own (insightface: eyes,
    nose tip, mouth corners; dlib: outer and inner corners of both eyes, then the nose base);
    only alignment code of the same backend should interpret them.
    ``embedding`` is float32 and L2-normalised, so a dot product is the cosine similarity.
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float
    embedding: np.ndarray
    #: Centres of the two eyes (image left first), from the backend's landmarks; None if unknown.
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = None

    @property
    def width(self) -> float:
        return max(0.0, self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return max(0.0, self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

    def similarity(self, other: np.ndarray) -> float:
        """Cosine similarity of this face's embedding with another L2-normalised embedding."""
        return float(np.dot(self.embedding, other))

    def to_json(self) -> dict[str, Any]:
        return {
            "box": [float(v) for v in self.box],
            "landmarks": np.asarray(self.landmarks, dtype=np.float64).round(2).tolist(),
            "score": float(self.score),
            # float32 survives a JSON round-trip exactly through Python's shortest repr.
            "embedding": [float(v) for v in np.asarray(self.embedding, dtype=np.float32)],
            "eyes": [list(map(float, eye)) for eye in self.eyes] if self.eyes else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Face:
        box = tuple(float(v) for v in data["box"])
        if len(box) != 4:
            raise ValueError("a face box has four numbers")
        return cls(
            box=(box[0], box[1], box[2], box[3]),
            landmarks=np.asarray(data["landmarks"], dtype=np.float32).reshape(5, 2),
            score=float(data["score"]),
            embedding=np.asarray(data["embedding"], dtype=np.float32),
            eyes=_eyes(data.get("eyes")),
        )


def _eyes(value: Any) -> tuple[tuple[float, float], tuple[float, float]] | None:
    if not value:
        return None
    (x0, y0), (x1, y1) = value
    return (float(x0), float(y0)), (float(x1), float(y1))


def eye_centres(
    first: np.ndarray | tuple[float, float], second: np.ndarray | tuple[float, float]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Two eye points ordered left to right in the image."""
    a = (float(first[0]), float(first[1]))
    b = (float(second[0]), float(second[1]))
    return (a, b) if a[0] <= b[0] else (b, a)


class FaceAnalyzer(Protocol):
    """Finds faces and embeds them; one object per process, created by ``load_analyzer``.

    A backend whose analyses gain from running side by side says how many with an int
    ``parallelism`` attribute (optional: test doubles and insightface have none, meaning 1);
    callers with many images then hand them in that many at a time (``ranking.map_parallel``).
    """

    #: Short backend name for logs and the bench ("dlib", "insightface").
    name: str
    #: Cosine similarity of two embeddings above which this backend calls them the same person.
    same_person_threshold: float
    #: Detector score below which a second face is not taken for a second person (badges,
    #: prints and textures fire weakly); see :mod:`headshots.generation.faces.prominence`.
    second_face_min_score: float

    def analyze(self, image: Image.Image) -> list[Face]:
        """Return the faces in an RGB image, largest first (empty when there is none)."""
        ...


def normalise_embedding(vector: np.ndarray) -> np.ndarray:
    """Return ``vector`` as a float32 unit vector (a zero vector stays zero)."""
    flat = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(flat))
    return flat / norm if norm > 0 else flat
