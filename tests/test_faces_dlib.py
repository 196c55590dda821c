"""The dlib backend on real photographs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import ImageOps

from headshots.generation.faces import check_selfie, decode_image
from headshots.generation.faces.dlib_backend import SAME_PERSON_THRESHOLD, dlib_model_dir
from tests.plugins.faces import astronaut_image, other_person_image


def test_model_files_are_found_without_importing_the_package() -> None:
    assert (dlib_model_dir() / "shape_predictor_5_face_landmarks.dat").is_file()


def test_astronaut_has_one_face_with_landmarks_and_unit_embedding(dlib_analyzer) -> None:
    faces = dlib_analyzer.analyze(astronaut_image())
    # Only her face: the mission patch on the suit looks face-like to HOG and must be dropped.
    assert len(faces) == 1
    face = faces[0]
    x0, y0, x1, y1 = face.box
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 200
    assert face.landmarks.shape == (5, 2)
    assert all(x0 - 10 <= x <= x1 + 10 and y0 - 10 <= y <= y1 + 10 for x, y in face.landmarks)
    assert face.embedding.dtype == np.float32 and face.embedding.shape == (128,)
    assert abs(float(np.linalg.norm(face.embedding)) - 1) < 1e-5


def test_faces_come_largest_first_in_original_coordinates(dlib_analyzer, group_photo_bytes) -> None:
    image = decode_image(group_photo_bytes)  # 1280 px: detected at 800 px, boxes scaled back
    faces = dlib_analyzer.analyze(image)
    assert len(faces) >= 5
    assert [f.area for f in faces] == sorted((f.area for f in faces), reverse=True)
    assert all(0 <= f.box[0] < f.box[2] <= image.width + 5 for f in faces)
    assert max(f.box[2] for f in faces) > 1000  # the rightmost person, in 1280 px coordinates


def test_group_photo_is_rejected_as_more_than_one_person(dlib_analyzer, group_photo_bytes) -> None:
    verdict = check_selfie(group_photo_bytes, dlib_analyzer, index=2)
    assert not verdict.accepted
    assert verdict.face_count >= 5
    assert verdict.summary() == "photo 2: more than one person in the picture"


def test_threshold_separates_same_and_different_people(dlib_analyzer, group_photo_bytes) -> None:
    astronaut = astronaut_image()
    same = [
        astronaut,
        ImageOps.mirror(astronaut),
        astronaut.crop((40, 10, 480, 450)).resize((600, 600)),
    ]
    same_embeddings = [dlib_analyzer.analyze(image)[0].embedding for image in same]
    others = [f.embedding for f in dlib_analyzer.analyze(decode_image(group_photo_bytes))]
    others.append(dlib_analyzer.analyze(other_person_image())[0].embedding)

    same_sims = [float(a @ b) for a, b in itertools.combinations(same_embeddings, 2)]
    cross_sims = [float(a @ b) for a in same_embeddings for b in others]
    cross_sims += [float(a @ b) for a, b in itertools.combinations(others, 2)]
    assert min(same_sims) > SAME_PERSON_THRESHOLD > max(cross_sims)


@pytest.mark.parametrize("turns", [1, 2])
def test_sideways_photo_without_exif_finds_no_upright_face(dlib_analyzer, turns: int) -> None:
    # Why EXIF orientation matters: HOG only finds upright faces.
    rotated = astronaut_image().rotate(90 * turns, expand=True)
    assert dlib_analyzer.analyze(rotated) == []


def test_concurrent_analyses_from_many_threads(dlib_analyzer) -> None:
    # dlib aborts the process when two threads use its models at once (seen with two group
    # members uploading together): the analyzer must serialise them itself.
    from concurrent.futures import ThreadPoolExecutor

    image = astronaut_image()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: dlib_analyzer.analyze(image), range(8)))
    first = results[0][0].embedding
    assert all(len(faces) == 1 for faces in results)
    assert all(np.allclose(faces[0].embedding, first) for faces in results)


def _same(found: list, expected: list) -> bool:
    return [f.box for f in found] == [f.box for f in expected] and all(
        np.array_equal(a.embedding, b.embedding) for a, b in zip(found, expected, strict=True)
    )


def test_parallel_analyses_equal_sequential_ones_with_bounded_detectors() -> None:
    # HOG runs outside the GIL: analyses detect in parallel, each with a detector of its own.
    from concurrent.futures import ThreadPoolExecutor

    from headshots.generation.faces import DlibAnalyzer
    from headshots.generation.faces.ranking import detect_faces
    from tests.plugins.faces import face_photo_variants

    images = [decode_image(data) for data in face_photo_variants()]
    sequential = DlibAnalyzer(workers=1)
    expected = [sequential.analyze(image) for image in images]
    parallel = DlibAnalyzer(workers=3)
    assert parallel.parallelism == 3
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(pool.map(parallel.analyze, images * 2))
    assert 1 <= parallel._detectors.qsize() <= 3  # made only as concurrency needed them
    assert all(_same(a, b) for a, b in zip(found, expected * 2, strict=True))
    # The ranking's detection hands images to it that many at a time, in order.
    assert all(_same(a, b) for a, b in zip(detect_faces(images, parallel), expected, strict=True))
