"""Glasses on a face, from its eye landmarks: real photos, with and without frames drawn on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from headshots.generation.faces import check_selfie, check_selfie_set
from headshots.generation.faces.measures import GLASSES_BRIDGE_RATIO, wears_glasses
from tests.plugins.faces import astronaut_image, other_person_image, to_jpeg


def draw_glasses(
    image: Image.Image,
    eyes: tuple[tuple[float, float], tuple[float, float]],
    *,
    colour: tuple[int, int, int] = (30, 30, 30),
    thickness: float = 0.05,
) -> Image.Image:
    """Two rims around the eyes and a bridge over the nose, softened like a photographed frame."""
    framed = image.copy()
    draw = ImageDraw.Draw(framed)
    (lx, ly), (rx, ry) = eyes
    gap = float(np.hypot(rx - lx, ry - ly))
    width, radius = max(1, round(thickness * gap)), 0.32 * gap
    for x, y in eyes:
        draw.ellipse(
            (x - 1.1 * radius, y - 0.85 * radius, x + 1.1 * radius, y + 0.85 * radius),
            outline=colour,
            width=width,
        )
    draw.line(
        (lx + 1.1 * radius, ly - 0.1 * gap, rx - 1.1 * radius, ry - 0.1 * gap),
        fill=colour,
        width=width,
    )
    return framed.filter(ImageFilter.GaussianBlur(0.7))


def _faces() -> list[Image.Image]:
    astronaut = astronaut_image()
    other = other_person_image()
    return [astronaut, astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT), other]


@pytest.mark.parametrize("number", range(3))
def test_frames_are_seen_and_bare_faces_are_not(dlib_analyzer, number: int) -> None:
    image = _faces()[number]
    [face] = dlib_analyzer.analyze(image)
    assert face.eyes is not None
    assert wears_glasses(image, face) is False
    assert wears_glasses(draw_glasses(image, face.eyes), face) is True
    brown = draw_glasses(image, face.eyes, colour=(90, 80, 70), thickness=0.03)
    assert wears_glasses(brown, face) is True
    assert GLASSES_BRIDGE_RATIO > 0


def test_too_small_a_face_or_unknown_eyes_get_no_verdict(dlib_analyzer) -> None:
    image = astronaut_image()
    [face] = dlib_analyzer.analyze(image)
    close_together = dataclasses.replace(face, eyes=((200.0, 100.0), (220.0, 100.0)))
    assert wears_glasses(image, close_together) is None  # 20 px apart: frames not visible
    assert wears_glasses(image, dataclasses.replace(face, eyes=None)) is None


def test_glasses_in_some_photos_only_are_mentioned_in_the_tally(dlib_analyzer) -> None:
    base = astronaut_image()
    [face] = dlib_analyzer.analyze(base)
    assert face.eyes is not None
    framed = draw_glasses(base, face.eyes)
    crops = [(0, 0, 512, 512), (20, 10, 500, 480), (0, 30, 470, 512), (30, 0, 512, 490)]
    photos = [to_jpeg(framed.crop(crops[0]))] + [to_jpeg(base.crop(box)) for box in crops[1:]]
    verdicts = [check_selfie(data, dlib_analyzer, index=n) for n, data in enumerate(photos, 1)]
    assert [v.glasses for v in verdicts] == [True, False, False, False]
    result = check_selfie_set(verdicts, same_person_threshold=dlib_analyzer.same_person_threshold)
    assert result.usable
    assert result.notes == [
        "you wear glasses in photo 1 only: tell me with the glasses question whether your "
        "headshots should show them"
    ]
    same = check_selfie_set(
        verdicts[1:], same_person_threshold=dlib_analyzer.same_person_threshold, min_count=3
    )
    assert same.notes == []
