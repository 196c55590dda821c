"""Is this selfie usable for training, and is the whole set one person?

Per photo (:func:`check_selfie`): size, exactly one prominent face (a second person rejects;
badges, posters, reflections and small background faces do not: see :mod:`.prominence`),
face size in the frame, sharpness and exposure of the face. Per set (:func:`check_selfie_set`):
identity against a robust centroid, near-duplicates, count limits.

Messages are written for the chat: short, plain, and they say what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from headshots.generation.faces import measures
from headshots.generation.faces.images import (
    CHECK_LONG_SIDE,
    CHECK_MAX_PIXELS,
    DecodedPhoto,
    decode_photo,
    normalise_reference,
)
from headshots.generation.faces.prominence import MIN_FACE_FRACTION, prominent_faces
from headshots.generation.faces.ranking import map_parallel, reference_embedding
from headshots.generation.faces.types import Face, FaceAnalyzer, ImageRejected

logger = logging.getLogger(__name__)

MIN_SHORT_SIDE = 256
WARN_SHORT_SIDE = 512
WARN_FACE_FRACTION = 0.12
MAX_FACE_FRACTION = 0.8
WARN_MAX_FACE_FRACTION = 0.6
#: Below this many pixels across, a face carries too little detail to learn a likeness from.
MIN_FACE_PIXELS = 64
WARN_FACE_PIXELS = 80
#: Variance of the Laplacian of the face (see measures.face_sharpness). Measured on the
#: astronaut portrait (dlib box, 90 px face): ~890 sharp JPEG, ~80 after a radius-1 Gaussian
#: blur, ~15 at radius 2, ~7 at radius 3; the enlarged Tom Hanks crop ~165.
MIN_SHARPNESS = 20.0
WARN_SHARPNESS = 60.0
#: Mean luma of the face box.
MIN_BRIGHTNESS = 40.0
WARN_MIN_BRIGHTNESS = 70.0
MAX_BRIGHTNESS = 225.0
WARN_MAX_BRIGHTNESS = 205.0
#: Differing bits (of 64) between difference hashes below which two photos are the same shot.
NEAR_DUPLICATE_BITS = 6
#: Estimated JPEG quality below which a photo is called heavily compressed (chat apps
#: recompress at ~75-90; quality 5-20 shows as blocks around the eyes and mouth).
HEAVY_COMPRESSION_QUALITY = 35
#: Formats a camera does not write: such a file without camera EXIF is a screenshot or an edit.
SCREENSHOT_FORMATS = ("PNG", "WEBP", "GIF", "BMP")
#: When nothing is found, quarters of this share of each side are searched again (zoomed in).
ZOOM_TILE = 0.6


@dataclass
class SelfieVerdict:
    """The outcome of :func:`check_selfie` for one photo; ``index`` is 1-based as users count."""

    index: int
    accepted: bool
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    width: int = 0
    height: int = 0
    face: Face | None = None
    face_count: int = 0
    sharpness: float = 0.0
    brightness: float = 0.0
    image_hash: str = ""
    #: Glasses on the face: True/False when the check could tell, None when it could not.
    glasses: bool | None = None

    def summary(self) -> str:
        """One line for the chat, e.g. ``photo 3: more than one person in the picture``."""
        if not self.accepted:
            return f"photo {self.index}: {'; '.join(self.reasons)}"
        if self.warnings:
            return f"photo {self.index}: ok, but {'; '.join(self.warnings)}"
        return f"photo {self.index}: ok"

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "accepted": self.accepted,
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
            "width": self.width,
            "height": self.height,
            "face": self.face.to_json() if self.face is not None else None,
            "face_count": self.face_count,
            "sharpness": self.sharpness,
            "brightness": self.brightness,
            "image_hash": self.image_hash,
            "glasses": self.glasses,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SelfieVerdict:
        face = data.get("face")
        return cls(
            index=int(data["index"]),
            accepted=bool(data["accepted"]),
            reasons=[str(r) for r in data.get("reasons", [])],
            warnings=[str(w) for w in data.get("warnings", [])],
            width=int(data.get("width", 0)),
            height=int(data.get("height", 0)),
            face=Face.from_json(face) if face is not None else None,
            face_count=int(data.get("face_count", 0)),
            sharpness=float(data.get("sharpness", 0.0)),
            brightness=float(data.get("brightness", 0.0)),
            image_hash=str(data.get("image_hash", "")),
            glasses=data.get("glasses"),
        )


@dataclass
class SetVerdict:
    """The outcome of :func:`check_selfie_set`: which photos train, and whether that is enough."""

    usable: bool
    accepted: list[int]
    rejected: dict[int, list[str]]
    reasons: list[str]
    warnings: dict[int, list[str]] = field(default_factory=dict)
    #: Robust centroid of the accepted faces (None when nothing was accepted).
    reference: np.ndarray | None = None
    #: Cosine similarity of each face to ``reference``, by photo index.
    similarities: dict[int, float] = field(default_factory=dict)
    #: Set-level remarks for the tally that reject nothing, e.g. glasses in some photos only.
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A short tally for the chat: ``7 accepted, 1 rejected: photo 4, two people ...``."""
        text = f"{len(self.accepted)} accepted, {len(self.rejected)} rejected"
        if self.rejected:
            details = "; ".join(
                f"photo {index}, {', '.join(reasons)}"
                for index, reasons in sorted(self.rejected.items())
            )
            text += f": {details}"
        if self.reasons:
            text += ". " + ". ".join(reason[0].upper() + reason[1:] for reason in self.reasons)
        return text


def check_selfie(data: bytes, analyzer: FaceAnalyzer, *, index: int) -> SelfieVerdict:
    """Check one uploaded photo; bad input gives a rejected verdict, never an exception.

    Errors of the analyzer itself (a missing model) do propagate: they are ours, not the user's.
    """
    try:
        # Bounded decode: the check never holds a full-size copy of a huge file in memory.
        photo = decode_photo(data, max_pixels=CHECK_MAX_PIXELS, max_side=CHECK_LONG_SIDE)
    except ImageRejected as exc:
        return SelfieVerdict(index=index, accepted=False, reasons=[exc.reason])
    verdict = check_selfie_image(photo.image, analyzer, index=index, original_size=photo.size)
    verdict.warnings.extend(_file_warnings(photo))
    return verdict


def check_selfies(
    photos: Sequence[bytes],
    analyzer: FaceAnalyzer,
    *,
    check_cancelled: Callable[[], None] | None = None,
) -> list[SelfieVerdict]:
    """:func:`check_selfie` of each photo (indexed from 1), several at once where the backend
    runs analyses in parallel (see ``map_parallel``); the verdicts are the same either way.

    ``check_cancelled`` is called before each photo and may raise to stop the rest.
    """

    def check(numbered: tuple[int, bytes]) -> SelfieVerdict:
        if check_cancelled is not None:
            check_cancelled()
        return check_selfie(numbered[1], analyzer, index=numbered[0])

    return map_parallel(check, list(enumerate(photos, start=1)), analyzer)


def check_reference(data: bytes, analyzer: FaceAnalyzer) -> bytes:
    """A reference photo ("frame me like this"): the PNG we keep, or :class:`ImageRejected`.

    The selfie's bounded decode, and exactly one person, who need not be the user (a team
    frames everybody like one portrait). Sharpness, size and light are not judged: only the
    pose and composition are taken from it, and the worker's output check looks at it too.
    """
    photo = decode_photo(data, max_pixels=CHECK_MAX_PIXELS, max_side=CHECK_LONG_SIDE)
    prominent = prominent_faces(analyzer.analyze(photo.image), analyzer)
    if not prominent:
        raise ImageRejected(_why_no_face(photo.image, analyzer))
    if len(prominent) > 1:
        raise ImageRejected(
            f"I see {len(prominent)} people in this photo: a reference shows exactly one person"
        )
    return normalise_reference(data)


def _file_warnings(photo: DecodedPhoto) -> list[str]:
    """What the file itself says about the photo: heavy compression, a screenshot."""
    if photo.jpeg_quality is not None and photo.jpeg_quality < HEAVY_COMPRESSION_QUALITY:
        return [
            f"heavily compressed (JPEG quality about {photo.jpeg_quality}): "
            "send the original photo if you have it"
        ]
    if photo.format in SCREENSHOT_FORMATS and not photo.camera_exif:
        return ["this looks like a screenshot or an edited copy: the original photo works better"]
    return []


def check_selfie_image(
    image: Image.Image,
    analyzer: FaceAnalyzer,
    *,
    index: int,
    original_size: tuple[int, int] | None = None,
) -> SelfieVerdict:
    """:func:`check_selfie` on an already decoded RGB image.

    ``original_size`` is the photo's own size when ``image`` was decoded smaller: sizes are
    judged on the photo as sent, faces in the pixels we have.
    """
    width, height = original_size or image.size
    verdict = SelfieVerdict(
        index=index,
        accepted=False,
        width=width,
        height=height,
        image_hash=measures.difference_hash(image),
    )
    short_side = min(width, height)
    if short_side < MIN_SHORT_SIDE:
        verdict.reasons.append(
            f"the photo is too small ({width}x{height}): send one at least "
            f"{WARN_SHORT_SIDE} px on each side"
        )
        return verdict
    if short_side < WARN_SHORT_SIDE:
        verdict.warnings.append("low resolution: a larger photo gives better results")

    faces = analyzer.analyze(image)
    prominent = prominent_faces(faces, analyzer)
    verdict.face_count = len(prominent)
    if not prominent:
        verdict.reasons.append(_why_no_face(image, analyzer))
        return verdict
    if len(prominent) > 1:
        verdict.reasons.append("more than one person in the picture")
        return verdict
    face = prominent[0]
    verdict.face = face
    scale = max(width, height) / max(image.size)
    verdict.reasons.extend(_face_problems(image, face, verdict.warnings, scale))
    verdict.sharpness = measures.face_sharpness(image, face.box)
    verdict.brightness = measures.face_brightness(image, face.box)
    verdict.reasons.extend(_quality_problems(verdict.sharpness, verdict.brightness, verdict))
    verdict.glasses = measures.wears_glasses(image, face)
    verdict.accepted = not verdict.reasons
    logger.debug(
        "selfie %d: accepted=%s sharpness=%.1f brightness=%.1f glasses=%s",
        index,
        verdict.accepted,
        verdict.sharpness,
        verdict.brightness,
        verdict.glasses,
    )
    return verdict


_TURNS = (
    (Image.Transpose.ROTATE_90, "this photo is on its side: turn it upright and send it again"),
    (Image.Transpose.ROTATE_180, "this photo is upside down: turn it upright and send it again"),
    (Image.Transpose.ROTATE_270, "this photo is on its side: turn it upright and send it again"),
)


def _why_no_face(image: Image.Image, analyzer: FaceAnalyzer) -> str:
    """Look harder before saying "no face": a turned photo, or a face too small to detect.

    Detectors are trained on upright faces at a few scales. A face found only after turning
    the photo means it was sent on its side; one found only in a zoomed-in quarter of the
    photo is too small to learn a likeness from.
    """
    for turn, reason in _TURNS:
        if prominent_faces(analyzer.analyze(image.transpose(turn)), analyzer):
            return reason
    width, height = image.size
    tile_w, tile_h = round(width * ZOOM_TILE), round(height * ZOOM_TILE)
    for left in (0, width - tile_w):
        for top in (0, height - tile_h):
            if analyzer.analyze(image.crop((left, top, left + tile_w, top + tile_h))):
                return "your face is too small in the picture: come closer"
    return "no face found: look at the camera with your face fully visible"


def _face_problems(
    image: Image.Image, face: Face, warnings: list[str], scale: float = 1.0
) -> list[str]:
    """Size and framing of the face; ``scale`` maps ``image`` pixels to the photo as sent."""
    problems: list[str] = []
    side = max(face.width, face.height)
    fraction = side / min(image.size)
    side *= scale  # the face's pixels in the photo as sent (the check may decode it smaller)
    if side < MIN_FACE_PIXELS or fraction < MIN_FACE_FRACTION:
        problems.append("your face is too small in the picture: come closer")
    elif side < WARN_FACE_PIXELS or fraction < WARN_FACE_FRACTION:
        warnings.append("your face is rather small: a closer photo works better")
    if fraction > MAX_FACE_FRACTION:
        problems.append("too close: your whole head should fit in the picture")
    elif fraction > WARN_MAX_FACE_FRACTION:
        warnings.append("quite close: include a little of your shoulders")
    # A face cut by the frame edge by more than a fifth of its size is missing chin or forehead.
    margin = 0.2 * side / scale
    x0, y0, x1, y1 = face.box
    if x0 < -margin or y0 < -margin or x1 > image.width + margin or y1 > image.height + margin:
        problems.append("your face is cut off at the edge of the photo")
    return problems


def _quality_problems(sharpness: float, brightness: float, verdict: SelfieVerdict) -> list[str]:
    problems: list[str] = []
    if sharpness < MIN_SHARPNESS:
        problems.append("the photo is blurry: hold still and make sure your face is in focus")
    elif sharpness < WARN_SHARPNESS:
        verdict.warnings.append("slightly blurry")
    if brightness < MIN_BRIGHTNESS:
        problems.append("your face is too dark: find more light")
    elif brightness < WARN_MIN_BRIGHTNESS:
        verdict.warnings.append("rather dark")
    if brightness > MAX_BRIGHTNESS:
        problems.append("your face is overexposed: avoid direct flash or harsh sun")
    elif brightness > WARN_MAX_BRIGHTNESS:
        verdict.warnings.append("rather bright")
    return problems


def check_selfie_set(
    verdicts: list[SelfieVerdict],
    *,
    same_person_threshold: float,
    min_count: int = 4,
    max_count: int = 30,
) -> SetVerdict:
    """Decide which photos of an upload train the model, and whether there are enough.

    A photo that passed on its own is still rejected when it is a near-duplicate of an earlier
    one, or when its face is further than ``same_person_threshold`` (cosine) from the robust
    centroid of the set: probably someone else.
    """
    ordered = sorted(verdicts, key=lambda v: v.index)
    rejected: dict[int, list[str]] = {v.index: list(v.reasons) for v in ordered if not v.accepted}
    warnings = {v.index: list(v.warnings) for v in ordered if v.warnings}
    reasons: list[str] = []

    candidates: list[SelfieVerdict] = []
    for verdict in ordered:
        if not verdict.accepted or verdict.face is None:
            if verdict.accepted:  # accepted without a face: a hand-built verdict; be strict
                rejected[verdict.index] = ["no face found"]
            continue
        twin = next(
            (
                kept.index
                for kept in candidates
                if verdict.image_hash
                and kept.image_hash
                and measures.hash_distance(verdict.image_hash, kept.image_hash)
                <= NEAR_DUPLICATE_BITS
            ),
            None,
        )
        if twin is not None:
            rejected[verdict.index] = [f"almost the same as photo {twin}"]
            continue
        candidates.append(verdict)

    reference: np.ndarray | None = None
    similarities: dict[int, float] = {}
    if candidates:
        embeddings = [v.face.embedding for v in candidates if v.face is not None]
        reference = reference_embedding(embeddings, same_person_threshold=same_person_threshold)
        similarities = {
            v.index: float(np.dot(v.face.embedding, reference))
            for v in candidates
            if v.face is not None
        }
        inliers = [v for v in candidates if similarities[v.index] >= same_person_threshold]
        if len(candidates) >= 2 and 2 * len(inliers) <= len(candidates):
            # No clear majority: we cannot tell who the set is of, so reject nobody by name.
            reasons.append("these photos seem to show different people: send photos of one person")
            candidates = []
        else:
            for verdict in candidates:
                if verdict not in inliers:
                    rejected[verdict.index] = ["looks like a different person than the others"]
            candidates = inliers

    if len(candidates) > max_count:
        for verdict in candidates[max_count:]:
            rejected[verdict.index] = [f"over the limit of {max_count} photos"]
        candidates = candidates[:max_count]
    if len(candidates) < min_count and not reasons:
        reasons.append(f"only {len(candidates)} usable photos, need at least {min_count}")

    accepted = [v.index for v in candidates]
    notes = _glasses_note(candidates)
    if accepted and candidates:
        reference = reference_embedding(
            [v.face.embedding for v in candidates if v.face is not None],
            same_person_threshold=same_person_threshold,
        )
    return SetVerdict(
        usable=not reasons and len(accepted) >= min_count,
        accepted=accepted,
        rejected=dict(sorted(rejected.items())),
        reasons=reasons,
        warnings={i: w for i, w in warnings.items() if i in accepted},
        reference=reference if accepted else None,
        similarities=similarities,
        notes=notes,
    )


def _glasses_note(verdicts: list[SelfieVerdict]) -> list[str]:
    """A remark when glasses show in some accepted photos and not in others."""
    wearing = [v.index for v in verdicts if v.glasses is True]
    bare = [v.index for v in verdicts if v.glasses is False]
    if not wearing or not bare:
        return []
    photos = _numbers(wearing if len(wearing) <= len(bare) else bare)
    which = "glasses" if len(wearing) <= len(bare) else "no glasses"
    return [
        f"you wear {which} in {photos} only: tell me with the glasses question whether "
        "your headshots should show them"
    ]


def _numbers(indices: list[int]) -> str:
    words = [str(index) for index in indices]
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return f"photo{'s' if len(words) > 1 else ''} {listed}"
