"""Likeness: a robust reference embedding of the person, and ranking generated images by it.

As FaceChain does after generation: keep images with exactly one face of sensible size, sort by
embedding similarity to the person; as EasyPhoto does, compare against a centroid of the
selfies rather than any single one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

import numpy as np
from PIL import Image

from headshots.generation.faces import measures
from headshots.generation.faces.prominence import MIN_FACE_FRACTION, prominent_faces
from headshots.generation.faces.types import Face, FaceAnalyzer, normalise_embedding

logger = logging.getLogger(__name__)

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

#: Share of the faces closest to the medoid that form the centroid when no threshold is given.
TRIM_SHARE = 0.75
#: How much face sharpness and size may move an image up the ranking; similarity dominates.
SHARPNESS_WEIGHT = 0.03
SIZE_WEIGHT = 0.02
#: Sharpness (see measures.face_sharpness) at which the sharpness bonus saturates.
SHARPNESS_SATURATION = 150.0
NEAR_DUPLICATE_BITS = 6


@dataclass(frozen=True)
class RankedImage:
    """One kept image: ``index`` into the input, ``rank`` 1-based, best first."""

    index: int
    score: float
    similarity: float
    rank: int


def reference_embedding(
    embeddings: Sequence[np.ndarray], *, same_person_threshold: float | None = None
) -> np.ndarray:
    """Return a robust, L2-normalised centroid of face embeddings of one person.

    Starts at the medoid (the embedding most similar to all others), so one photo of somebody
    else cannot drag the centre; then averages the embeddings within ``same_person_threshold``
    of it, or the closest :data:`TRIM_SHARE` of them when no threshold is given.
    """
    if not embeddings:
        raise ValueError("reference_embedding needs at least one embedding")
    matrix = np.stack([normalise_embedding(e) for e in embeddings])
    if len(matrix) <= 2:
        return normalise_embedding(matrix.mean(axis=0))
    similarity = matrix @ matrix.T
    medoid = matrix[int(np.argmax(similarity.sum(axis=1)))]
    to_medoid = matrix @ medoid
    if same_person_threshold is not None:
        members = matrix[to_medoid >= same_person_threshold]
    else:
        keep = max(1, int(np.ceil(TRIM_SHARE * len(matrix))))
        members = matrix[np.argsort(-to_medoid)[:keep]]
    if len(members) == 0:
        members = medoid[np.newaxis, :]
    return normalise_embedding(members.mean(axis=0))


def detect_faces(images: Sequence[Image.Image], analyzer: FaceAnalyzer) -> list[list[Face]]:
    """Every face of every image, once: ranking and its shortfall count both read them.

    The backends detect on a reduced copy and embed from the face's full-resolution region, so
    this costs about the same for a 4000 px image as for a 1024 px one. Images are analysed
    ``analyzer.parallelism`` at a time where the backend has it (dlib's detection runs
    outside the GIL); each image's faces are the same as when analysed alone.
    """
    return map_parallel(lambda image: analyzer.analyze(as_rgb(image)), images, analyzer)


def map_parallel(
    function: Callable[[_Item], _Result], items: Sequence[_Item], analyzer: FaceAnalyzer
) -> list[_Result]:
    """``[function(item) for item in items]``, on as many threads as ``analyzer`` runs at once."""
    workers = min(len(items), max(1, int(getattr(analyzer, "parallelism", 1))))
    if workers <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="faces") as pool:
        return list(pool.map(function, items))


class BackgroundDetection:
    """:func:`detect_faces`, one image at a time as each is handed in, on a worker thread.

    The worker finishes its images one by one (refine, upscale) and the rank stage needs the
    faces of all of them: analysing each as soon as it is final overlaps the analysis with the
    making of the next, and the rank stage then only reads the results. One thread, so the
    images are analysed in order and the analyzer is never run twice at once from here.
    """

    def __init__(self, analyzer: FaceAnalyzer) -> None:
        self._analyzer = analyzer
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faces")
        self._pending: list[Future[list[Face]]] = []

    def submit(self, image: Image.Image) -> None:
        """Analyse ``image`` (final: it must not change afterwards) behind the ones before it."""
        self._pending.append(self._pool.submit(self._analyzer.analyze, as_rgb(image)))

    def results(self) -> list[list[Face]]:
        """The faces of every submitted image, in order; waits for the last; raises its error."""
        return [future.result() for future in self._pending]

    def __enter__(self) -> BackgroundDetection:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # On an error (a cancelled job) the images not started yet are dropped.
        self._pool.shutdown(wait=True, cancel_futures=kind is not None)


def as_rgb(image: Image.Image) -> Image.Image:
    """``image`` in RGB; the image itself when it is already (``convert`` always copies)."""
    return image if image.mode == "RGB" else image.convert("RGB")


def rank_by_likeness(
    images: Sequence[Image.Image],
    reference: np.ndarray,
    analyzer: FaceAnalyzer,
    *,
    top_k: int,
    min_similarity: float | None = None,
    detected: Sequence[list[Face]] | None = None,
) -> list[RankedImage]:
    """Return up to ``top_k`` images that look most like ``reference``, best first.

    Dropped: images without exactly one prominent face, a face under 8 % of the short side,
    similarity below ``min_similarity`` (default: the backend's same-person threshold), and
    near-duplicates of a better image. ``detected`` is :func:`detect_faces` of ``images`` when
    the caller has it already (detection is most of the cost).
    """
    threshold = analyzer.same_person_threshold if min_similarity is None else min_similarity
    target = normalise_embedding(reference)
    found = detected if detected is not None else detect_faces(images, analyzer)
    candidates: list[tuple[float, float, int, str]] = []
    for index, image in enumerate(images):
        rgb = as_rgb(image)
        faces = prominent_faces(found[index], analyzer)
        if len(faces) != 1:
            logger.debug("image %d dropped: %d prominent faces", index, len(faces))
            continue
        face = faces[0]
        size = max(face.width, face.height) / min(rgb.size)
        if size < MIN_FACE_FRACTION:
            logger.debug("image %d dropped: face too small (%.2f)", index, size)
            continue
        similarity = face.similarity(target)
        if similarity < threshold:
            logger.debug("image %d dropped: similarity %.3f < %.3f", index, similarity, threshold)
            continue
        score = similarity + _quality_bonus(rgb, face, size)
        candidates.append((score, similarity, index, measures.difference_hash(rgb)))

    candidates.sort(key=lambda item: (-item[0], item[2]))
    ranked: list[RankedImage] = []
    kept_hashes: list[str] = []
    for score, similarity, index, image_hash in candidates:
        if any(measures.hash_distance(image_hash, h) <= NEAR_DUPLICATE_BITS for h in kept_hashes):
            continue
        kept_hashes.append(image_hash)
        ranked.append(
            RankedImage(index=index, score=score, similarity=similarity, rank=len(ranked) + 1)
        )
        if len(ranked) >= top_k:
            break
    return ranked


def _quality_bonus(image: Image.Image, face: Face, size: float) -> float:
    sharpness = min(1.0, measures.face_sharpness(image, face.box) / SHARPNESS_SATURATION)
    # Headshots read best with the face at roughly a quarter to a half of the frame.
    framing = 1.0 - min(1.0, abs(size - 0.35) / 0.35)
    return SHARPNESS_WEIGHT * sharpness + SIZE_WEIGHT * framing
