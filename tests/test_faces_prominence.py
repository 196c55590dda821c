"""A second face rejects a selfie only when it is a second person: badges, posters, prints and
reflections do not. Scenes are composed from bundled real photos and checked with dlib."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from headshots.generation.faces import check_selfie_image
from headshots.generation.faces.prominence import SECOND_FACE_AREA_RATIO, prominent_faces
from headshots.generation.faces.types import Face
from tests.plugins.faces import astronaut_image, insightface_image_path, other_person_image

TWO = "more than one person in the picture"


def _scene(extra: Image.Image, x: int, y: int, width: int, seed: int) -> Image.Image:
    """The user's portrait (the astronaut) on a wall, with ``extra`` pasted at (x, y)."""
    rng = np.random.default_rng(seed)
    canvas = Image.new("RGB", (700, 640), tuple(int(v) for v in rng.integers(40, 200, 3)))
    canvas.paste(astronaut_image(), (40, 64))
    height = round(width * extra.height / extra.width)
    canvas.paste(extra.resize((width, height), Image.Resampling.LANCZOS), (x, y))
    return canvas


def _reasons(image: Image.Image, analyzer) -> list[str]:
    return check_selfie_image(image, analyzer, index=1).reasons


def _name_badge(name: str, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    card = Image.new("RGB", (300, 200), (245, 245, 240))
    draw = ImageDraw.Draw(card)
    draw.rectangle((0, 0, 299, 50), fill=tuple(int(v) for v in rng.integers(0, 160, 3)))
    font = ImageFont.load_default(size=40)
    draw.text((20, 70), "HELLO", fill=(0, 0, 0), font=font)
    draw.text((20, 130), name, fill=(0, 0, 0), font=font)
    return card


@pytest.mark.parametrize("seed", range(3))
def test_a_name_badge_on_the_chest_is_not_a_second_person(dlib_analyzer, seed: int) -> None:
    badge = _name_badge(["Eileen C.", "Alex Morgan", "Dr. Q"][seed], seed)
    for width in (110, 150):
        assert _reasons(_scene(badge, 200 + 30 * seed, 470, width, seed), dlib_analyzer) == []


def test_the_persons_own_id_badge_photo_and_a_mirror_are_not_a_second_person(
    dlib_analyzer,
) -> None:
    portrait = astronaut_image()
    card = Image.new("RGB", (220, 300), (245, 245, 240))
    card.paste(portrait.crop((150, 20, 330, 240)).resize((160, 195)), (30, 20))
    for width in (110, 150):  # the badge photo's face is 23-47 % of the face's area
        assert _reasons(_scene(card, 330, 440, width, width), dlib_analyzer) == []
    for seed, width in enumerate((200, 280)):
        mirror = ImageEnhance.Brightness(ImageOps.mirror(portrait)).enhance(0.6 + 0.1 * seed)
        reflection = mirror.filter(ImageFilter.GaussianBlur(1))
        faces = dlib_analyzer.analyze(_scene(reflection, 700 - width, 0, width, seed))
        assert len(faces) == 2, "both faces are found; the reflection is the same person"
        assert _reasons(_scene(reflection, 700 - width, 0, width, seed), dlib_analyzer) == []


@pytest.mark.parametrize("width", [190, 230])
def test_an_out_of_focus_poster_behind_is_not_a_second_person(dlib_analyzer, width: int) -> None:
    # Out of focus at the scene's scale: 1.5 px of blur at the poster's printed size.
    poster = ImageEnhance.Contrast(other_person_image()).enhance(0.6)
    small = poster.resize((width, width), Image.Resampling.LANCZOS)
    framed = ImageOps.expand(small.filter(ImageFilter.GaussianBlur(1.5)), 6, (30, 30, 30))
    scene = _scene(framed, 700 - width - 20, 10, framed.width, width)
    faces = dlib_analyzer.analyze(scene)
    assert len(faces) == 2, "the detector does see the poster's face"
    assert _reasons(scene, dlib_analyzer) == []


@pytest.mark.parametrize("width", [230, 300, 380])
def test_a_second_person_beside_still_rejects(dlib_analyzer, width: int) -> None:
    beside = _scene(other_person_image(), 700 - width, 120, width, width)
    assert _reasons(beside, dlib_analyzer) == [TWO]


def test_a_group_photo_still_rejects(dlib_analyzer) -> None:
    group = Image.open(insightface_image_path("t1.jpg")).convert("RGB")
    assert _reasons(group, dlib_analyzer) == [TWO]


class _Thresholds:
    name = "rule"
    same_person_threshold = 0.9
    second_face_min_score = 0.6

    def analyze(self, image: Image.Image) -> list[Face]:
        raise AssertionError("not used")


def _face(side: float, score: float, embedding: list[float]) -> Face:
    vector = np.asarray(embedding, dtype=np.float32)
    return Face(
        box=(0.0, 0.0, side, side),
        landmarks=np.zeros((5, 2), dtype=np.float32),
        score=score,
        embedding=vector / np.linalg.norm(vector),
    )


def test_the_rule_needs_size_score_and_another_identity_together() -> None:
    rule = _Thresholds()
    main = _face(100, 1.2, [1, 0, 0])
    big = 100 * SECOND_FACE_AREA_RATIO**0.5 + 1
    other = [0, 1, 0]
    # The case: a name badge at score 0.23 whose box is 49 % of the face's area.
    assert prominent_faces([main, _face(70, 0.23, other)], rule) == [main]
    assert prominent_faces([main, _face(big - 2, 1.5, other)], rule) == [main], "too small"
    assert prominent_faces([main, _face(90, 1.5, [1, 0.1, 0])], rule) == [main], "same person"
    second = _face(big, 0.6, other)
    assert prominent_faces([second, main], rule) == [main, second]
    assert prominent_faces([], rule) == []
