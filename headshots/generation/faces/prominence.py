"""Which detected faces matter: the person's face, and any face that makes it "more than one".

Detectors also fire on what is not a second person in the room: a name badge, a poster or a
print on a shirt, a mirror. A second face counts only when all of these hold:

- **size**: at least :data:`SECOND_FACE_AREA_RATIO` of the main face's area (FaceChain's rule;
  smaller faces are in the background and do not reach the training crops);
- **detector score**: at least the backend's ``second_face_min_score``. On dlib, measured on
  bundled photos composed into scenes (tests/test_faces_prominence.py builds them): a text
  name badge fired at 0.23, textured patches at 0.04-0.62, out-of-focus posters at 0.08-0.59;
  a real second person at 0.66-1.6 (the weakest partly turned);
- **identity**: not the same person as the main face (a mirror reflection, the person's own ID
  badge photo: similarity 0.97-0.99 on dlib, where different people score 0.78-0.89).

A sharp photo of another person's face as large as a real one (a big poster right behind, a
photo print on a shirt) still counts: a detector cannot tell a photo of a face from a face, and
such a face would end up in the training crops.

Also the face-size floor every check of a face shares (selfie check, ranking, the shortfall
count), kept here so those modules need not import each other.
"""

from __future__ import annotations

from headshots.generation.faces.types import Face, FaceAnalyzer

#: Another face of at least this fraction of the main face's area can be a second person.
SECOND_FACE_AREA_RATIO = 0.25
#: Face box side relative to the image's short side. Detector boxes cover brows to chin, so a
#: head-and-shoulders selfie sits around 0.2-0.45.
MIN_FACE_FRACTION = 0.08


def prominent_faces(faces: list[Face], analyzer: FaceAnalyzer) -> list[Face]:
    """The largest face, then every other face that shows another person (see module doc)."""
    if not faces:
        return []
    largest = max(faces, key=lambda face: face.area)
    others = [
        face for face in faces if face is not largest and _another_person(face, largest, analyzer)
    ]
    return [largest, *others]


def _another_person(face: Face, main: Face, analyzer: FaceAnalyzer) -> bool:
    if face.area < SECOND_FACE_AREA_RATIO * main.area:
        return False
    if face.score < analyzer.second_face_min_score:
        return False
    return face.similarity(main.embedding) < analyzer.same_person_threshold
