from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from headshots.generation.faces import Face
from headshots.generation.postprocess import (
    AI_NOTICE,
    PostprocessOptions,
    add_film_grain,
    apply_colour_grade,
    crop_to_aspect,
    encode_with_provenance,
    postprocess_image,
    read_provenance,
    refine_face,
    upscale_2x,
)


def _gradient(width: int = 96, height: int = 120) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.stack(
        [
            np.broadcast_to(x, (height, width)),
            np.broadcast_to(y, (height, width)),
            (x + y) / 2 * np.ones((height, 1)),
        ],
        axis=2,
    )
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def _face(box: tuple[float, float, float, float]) -> Face:
    return Face(
        box=box,
        landmarks=np.zeros((5, 2), np.float32),
        score=1.0,
        embedding=np.zeros(4, np.float32),
    )


@pytest.mark.parametrize("grade", ["film_portra", "film_velvia", "ektar"])
def test_colour_grades_change_the_image_distinctly(grade: str) -> None:
    image = _gradient()
    graded = np.asarray(apply_colour_grade(image, grade), dtype=np.int16)
    assert np.abs(graded - np.asarray(image, dtype=np.int16)).mean() > 2
    assert apply_colour_grade(image, "none") is image


def test_velvia_is_more_saturated_than_portra() -> None:
    image = _gradient()

    def saturation(img: Image.Image) -> float:
        hsv = np.asarray(img.convert("HSV"), dtype=np.float32)
        return float(hsv[..., 1].mean())

    assert saturation(apply_colour_grade(image, "film_velvia")) > saturation(
        apply_colour_grade(image, "film_portra")
    )


def test_film_grain_is_seeded_and_subtle() -> None:
    image = Image.new("RGB", (64, 64), (128, 128, 128))
    a, b, c = (
        add_film_grain(image, seed=1),
        add_film_grain(image, seed=1),
        add_film_grain(image, seed=2),
    )
    assert np.array_equal(np.asarray(a), np.asarray(b)) and not np.array_equal(
        np.asarray(a), np.asarray(c)
    )
    delta = np.abs(np.asarray(a, dtype=np.int16) - 128)
    assert 1 < delta.mean() < 15


@pytest.mark.parametrize(
    ("ratio", "expected"), [("1:1", (96, 96)), ("4:5", (96, 120)), ("2:3", (80, 120))]
)
def test_crops_to_aspect(ratio: str, expected: tuple[int, int]) -> None:
    assert crop_to_aspect(_gradient(), ratio).size == expected  # type: ignore[arg-type]


def test_crop_follows_the_face() -> None:
    image = _gradient(200, 100)
    left = crop_to_aspect(image, "1:1", _face((10, 20, 40, 60)))
    right = crop_to_aspect(image, "1:1", _face((160, 20, 190, 60)))
    assert np.asarray(left)[0, 0, 0] < np.asarray(right)[0, 0, 0]  # red grows left to right


def test_upscale_doubles() -> None:
    assert upscale_2x(_gradient()).size == (192, 240)


def test_refine_face_only_touches_the_face_region() -> None:
    image = Image.new("RGB", (128, 128), (50, 50, 50))
    seen: list[tuple[int, int]] = []

    def fake_img2img(crop: Image.Image) -> Image.Image:
        seen.append(crop.size)
        return Image.new("RGB", crop.size, (250, 250, 250))

    refined = np.asarray(refine_face(image, _face((54, 54, 74, 74)), fake_img2img, resolution=64))
    assert seen == [(64, 64)]
    assert refined[64, 64, 0] > 200  # face centre replaced
    assert refined[2, 2, 0] == 50 and refined[125, 125, 0] == 50  # far corners untouched
    # Feathered: values between the two at the crop edge, no hard seam.
    edge_values = set(refined[64, 40:54, 0].tolist())
    assert len(edge_values) > 2


def test_provenance_in_png_text_and_exif() -> None:
    data = encode_with_provenance(_gradient(), {"preset": "corporate", "seed": 42, "model": "m"})
    meta = read_provenance(data)
    assert meta == {"ai_generated": True, "preset": "corporate", "seed": 42, "model": "m"}
    with Image.open(io.BytesIO(data)) as image:
        assert image.text["AI-Generated"] == "true"
        assert image.getexif()[0x010E] == AI_NOTICE


def test_chain_records_what_it_did_without_a_face() -> None:
    class NoFaces:
        name = "fake"
        same_person_threshold = 0.5

        def analyze(self, image: Image.Image) -> list[Face]:
            return []

    out, applied = postprocess_image(
        _gradient(64, 80),
        PostprocessOptions(colour_grade="ektar", film_grain=True, upscale=True, aspect_ratio="4:5"),
        analyzer=NoFaces(),
        img2img=lambda crop: crop,
        seed=3,
    )
    assert out.size == (128, 160)
    assert applied == {
        "face_found": False,
        "refined": False,
        "aspect_ratio": "4:5",
        "upscaled": True,
        "colour_grade": "ektar",
        "film_grain": True,
    }
