"""Shared pytest fixtures for the faces tests (registered in tests/conftest.py).

Real photographs that ship inside installed packages, so every test runs offline:

- scikit-image's ``astronaut`` (Eileen Collins, NASA portrait, public domain): "the user";
- insightface's ``Tom_Hanks_54745.png`` (a 112 px aligned face): "another person";
- insightface's ``t1.jpg``: a group photo of six people.

Fixtures that return bytes hand out fresh ``list``/``bytes`` objects; tests may mutate them.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

EXIF_ORIENTATION = 0x0112


def _package_dir(name: str) -> Path:
    # find_spec does not execute the package (face_recognition_models' __init__ would fail).
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


def insightface_image_path(filename: str) -> Path:
    path = _package_dir("insightface") / "data" / "images" / filename
    if not path.is_file():
        pytest.skip(f"{filename} is not shipped with this insightface version")
    return path


def astronaut_image() -> Image.Image:
    import skimage.data

    return Image.fromarray(skimage.data.astronaut()).convert("RGB")


def other_person_image() -> Image.Image:
    """Tom Hanks' 112 px aligned crop, given a background and enlarged to a selfie-like 560 px.

    The border is stretched edge pixels, blurred, so the detector sees a face with room around it
    (a tight aligned crop is too close for the selfie check) and nothing face-like in the border.
    """
    face = Image.open(insightface_image_path("Tom_Hanks_54745.png")).convert("RGB")
    padded = Image.fromarray(np.pad(np.asarray(face), ((56, 56), (56, 56), (0, 0)), mode="edge"))
    background = padded.filter(ImageFilter.GaussianBlur(6))
    background.paste(face, (56, 56))
    return background.resize((560, 560), Image.Resampling.LANCZOS)


def to_jpeg(image: Image.Image, *, quality: int = 92, exif: Image.Exif | None = None) -> bytes:
    buffer = io.BytesIO()
    if exif is None:
        image.save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format="JPEG", quality=quality, exif=exif)
    return buffer.getvalue()


def to_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def with_exif_rotation(image: Image.Image) -> bytes:
    """JPEG whose pixels are stored rotated, with the EXIF tag that says how to undo it.

    Orientation 6 means "rotate 90° clockwise to display", so the stored pixels are the upright
    picture rotated 90° counter-clockwise. A decoder that ignores EXIF sees a sideways face.
    """
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    return to_jpeg(image.transpose(Image.Transpose.ROTATE_90), exif=exif)


def face_photo_variants() -> list[bytes]:
    """Seven different photos of one person, as a user's upload set would be."""
    base = astronaut_image()
    w, h = base.size
    return [
        to_jpeg(base),
        to_jpeg(ImageOps.mirror(base)),
        to_jpeg(
            ImageEnhance.Brightness(base.crop((40, 10, 480, 450))).enhance(1.15).resize((600, 600))
        ),
        to_jpeg(ImageEnhance.Brightness(base.crop((0, 0, 430, 512))).enhance(0.8)),
        with_exif_rotation(base.crop((60, 0, w, h - 40))),
        to_jpeg(base.rotate(8, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128))),
        to_jpeg(ImageEnhance.Contrast(ImageOps.mirror(base.crop((20, 30, 500, 500)))).enhance(1.2)),
    ]


def save_tiny_arcface(path: Path) -> Path:
    """A conv + linear ONNX graph with fixed random weights: 1x3x112x112 -> 1x512.

    It has the real ArcFace contract, so insightface's model zoo loads it as a recognition
    model (no insightface pack can be downloaded here).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    conv = rng.normal(scale=0.05, size=(16, 3, 8, 8)).astype(np.float32)
    dense = rng.normal(scale=0.02, size=(16 * 14 * 14, 512)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["data", "conv_w"], ["c"], name="conv0", strides=[8, 8]),
            helper.make_node("Relu", ["c"], ["r"], name="relu0"),
            helper.make_node("Flatten", ["r"], ["f"], name="flatten0"),
            helper.make_node("MatMul", ["f", "fc_w"], ["fc1"], name="fc1"),
        ],
        "tiny_arcface",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 512])],
        initializer=[
            numpy_helper.from_array(conv, "conv_w"),
            numpy_helper.from_array(dense, "fc_w"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def face_photo_bytes() -> list[bytes]:
    """Seven JPEGs of one real person: original, flip, crops, brightness, EXIF rotation, tilt."""
    return face_photo_variants()


@pytest.fixture
def group_photo_bytes() -> bytes:
    """insightface's t1.jpg: six people."""
    return insightface_image_path("t1.jpg").read_bytes()


@pytest.fixture
def other_person_photo_bytes() -> bytes:
    """A JPEG of a different real person than ``face_photo_bytes`` (Tom Hanks)."""
    return to_jpeg(other_person_image())


@pytest.fixture(scope="session")
def dlib_analyzer() -> object:
    """One dlib analyzer per test session, models loaded (they take ~1 s to read)."""
    from headshots.generation.faces import DlibAnalyzer

    analyzer = DlibAnalyzer()
    analyzer.analyze(Image.new("RGB", (64, 64)))
    return analyzer


@pytest.fixture
def image_bytes_factory() -> Callable[[Image.Image, str], bytes]:
    """Encode a Pillow image in a given format (``JPEG``, ``PNG``, ``GIF``...)."""

    def encode(image: Image.Image, fmt: str) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        return buffer.getvalue()

    return encode
