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
)
from headshots.generation.provenance import TRAINED_ALGORITHMIC_MEDIA, digital_source_type
from headshots.generation.upscale import (
    DetailSettings,
    enlarge,
    load_super_resolution,
    tile_boxes,
    tiled_img2img,
    upscale_with_detail,
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


def test_tiles_cover_the_image_with_overlap() -> None:
    boxes = tile_boxes((824, 1024), 512, 64)
    assert len(boxes) == 6 and all(b[2] - b[0] == 512 and b[3] - b[1] == 512 for b in boxes)
    covered = np.zeros((1024, 824), bool)
    for left, top, right, bottom in boxes:
        covered[top:bottom, left:right] = True
    assert covered.all()
    lefts = sorted({b[0] for b in boxes})
    assert lefts == [0, 312] and 512 - 312 >= 64
    assert tile_boxes((64, 64), 512, 64) == [(0, 0, 64, 64)]


def test_tiles_blend_without_seams() -> None:
    image = _gradient(104, 128)
    calls: list[tuple[int, int]] = []

    def identity(batch: list[Image.Image], first: int) -> list[Image.Image]:
        calls.append((first, len(batch)))
        return batch

    same, tiles = tiled_img2img(image, identity, tile=64, overlap=8, batch=4)
    assert tiles == 6 and calls == [(0, 4), (4, 2)]
    assert np.abs(np.asarray(same, np.int16) - np.asarray(image, np.int16)).max() <= 1

    def flat(batch: list[Image.Image], first: int) -> list[Image.Image]:
        values = [40 * (first + offset) for offset in range(len(batch))]
        return [Image.new("RGB", t.size, (v, v, v)) for t, v in zip(batch, values, strict=True)]

    blended = np.asarray(tiled_img2img(image, flat, tile=64, overlap=8)[0], np.int16)
    # Across the overlap of tiles 0 and 1 (x 40..63) the value ramps from one to the other.
    row = blended[10, 36:68, 0]
    assert row[0] == 0 and row[-1] == 40 and (np.diff(row) >= 0).all() and len(set(row)) > 4


def test_chain_upscales_to_the_delivered_size_then_refines_the_final_face() -> None:
    sizes_seen: list[tuple[str, tuple[int, int]]] = []

    class OneFace:
        name = "fake"
        same_person_threshold = 0.5

        def analyze(self, image: Image.Image) -> list[Face]:
            sizes_seen.append(("analyze", image.size))
            return [_face((40, 40, 70, 70))]

    def detail(batch: list[Image.Image], first: int) -> list[Image.Image]:
        sizes_seen.extend(("tile", tile.size) for tile in batch)
        return batch

    def refine(crop: Image.Image) -> Image.Image:
        sizes_seen.append(("refine", crop.size))
        return crop

    out, applied = postprocess_image(
        _gradient(64, 80),
        PostprocessOptions(
            colour_grade="ektar", film_grain=True, output_size=(102, 128), aspect_ratio="4:5"
        ),
        analyzer=OneFace(),
        img2img=refine,
        detail=detail,
        refine_resolution=64,
        seed=3,
    )
    assert out.size == (102, 128) and applied["size"] == [102, 128]
    assert applied["upscale"]["detail_tiles"] == 6 and applied["upscale"]["enlarge"] == "lanczos"
    # Order: every tile of the detail pass, then the face found on the final-size image.
    kinds = [kind for kind, _ in sizes_seen]
    assert kinds == ["tile"] * 6 + ["analyze", "refine"]
    assert sizes_seen[6] == ("analyze", (102, 128)) and applied["refined"] is True


def test_detail_pass_on_the_tiny_model_redraws_detail(tiny_pipeline: object) -> None:
    from diffusers import StableDiffusionImg2ImgPipeline

    from headshots.generation.postprocess import diffusers_img2img
    from headshots.generation.prompts import encode_prompts

    pipe = tiny_pipeline
    img2img = StableDiffusionImg2ImgPipeline(**pipe.components, requires_safety_checker=False)  # type: ignore[attr-defined]
    img2img.set_progress_bar_config(disable=True)
    encoded = encode_prompts(img2img, "portrait of (ohwx woman)1.1, detailed skin", "blurry")
    settings = DetailSettings(steps=2)
    run = diffusers_img2img(img2img, prompts=encoded, steps=2, cfg=5.0, seed=1, strength=0.3)
    source = _gradient(64, 80)
    detailed, record = upscale_with_detail(
        source, (102, 128), detail=run.batch, tile=64, settings=settings
    )
    plain = enlarge(source, (102, 128))
    assert detailed.size == plain.size == (102, 128)
    assert record["detail_tiles"] == 6 and record["detail_strength"] == 0.3
    assert np.abs(np.asarray(detailed, np.int16) - np.asarray(plain, np.int16)).mean() > 1.0
    again, _ = upscale_with_detail(source, (102, 128), detail=run.batch, tile=64, settings=settings)
    assert np.array_equal(np.asarray(again), np.asarray(detailed)), "seeded per tile"


def test_super_resolution_weights_are_checked(tmp_path: object) -> None:
    from pathlib import Path

    from headshots.errors import ModelMissing

    with pytest.raises(ModelMissing, match="HEADSHOTS_SUPER_RESOLUTION"):
        load_super_resolution(Path(str(tmp_path)) / "missing.pth")


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


def test_provenance_in_png_text_exif_and_xmp() -> None:
    data = encode_with_provenance(_gradient(), {"preset": "corporate", "seed": 42, "model": "m"})
    assert digital_source_type(data) == TRAINED_ALGORITHMIC_MEDIA
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
        PostprocessOptions(
            colour_grade="ektar", film_grain=True, output_size=(128, 160), aspect_ratio="4:5"
        ),
        analyzer=NoFaces(),
        img2img=lambda crop: crop,
        seed=3,
    )
    assert out.size == (128, 160)
    assert applied == {
        "face_found": False,
        "refined": False,
        "aspect_ratio": "4:5",
        "upscale": {"from": [64, 80], "to": [128, 160], "enlarge": "lanczos"},
        "colour_grade": "ektar",
        "film_grain": True,
        "size": [128, 160],
    }
