"""Decoding untrusted bytes: every malformed input becomes a verdict with a reason."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from headshots.errors import SelfieRejected
from headshots.generation.faces import ImageRejected, check_selfie, decode_image, normalise_selfie
from tests.plugins.faces import EXIF_ORIENTATION, astronaut_image, to_jpeg, to_png


def _huge_png() -> bytes:
    # A 1-bit 20000x20000 PNG compresses to a few kB but claims 400 megapixels.
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, format="PNG")
    return buffer.getvalue()


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (300, 300), color) for color in ("red", "green", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


MALFORMED = {
    "text named .jpg": (b"these are not the pixels you are looking for\n" * 20, "not a photo"),
    "truncated jpeg": (to_jpeg(astronaut_image())[:4000], "cut off or damaged"),
    "empty": (b"", "empty"),
    "20000x20000 png": (_huge_png(), "too large"),
    "animated gif": (_animated_gif(), "animated"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_input_is_rejected_with_a_reason(name: str, dlib_analyzer) -> None:
    data, expected = MALFORMED[name]
    with pytest.raises(ImageRejected) as caught:
        decode_image(data)
    assert isinstance(caught.value, SelfieRejected)
    assert expected in caught.value.reason

    verdict = check_selfie(data, dlib_analyzer, index=3)
    assert not verdict.accepted
    assert expected in verdict.reasons[0]
    assert verdict.summary().startswith("photo 3: ")


def test_one_pixel_image_is_rejected_as_too_small(dlib_analyzer) -> None:
    verdict = check_selfie(to_png(Image.new("RGB", (1, 1))), dlib_analyzer, index=1)
    assert not verdict.accepted
    assert "too small" in verdict.reasons[0]


def test_file_over_the_byte_limit_is_rejected_before_decoding() -> None:
    with pytest.raises(ImageRejected, match="too large"):
        decode_image(b"\xff\xd8" + b"\0" * 2000, max_bytes=1000)


def test_decompression_bomb_warning_becomes_a_rejection() -> None:
    # Between Pillow's warning limit and our pixel limit: Pillow would only warn.
    data = to_png(Image.new("1", (10000, 10000)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may leak out as a warning either
        with pytest.raises(ImageRejected, match="too large"):
            decode_image(data, max_pixels=50_000_000)
    old_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 60_000_000  # the warning fires above this, the error above 2x
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ImageRejected, match="too large"):
                decode_image(to_png(Image.new("1", (9000, 9000))), max_pixels=200_000_000)
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit


def test_cmyk_jpeg_of_a_face_is_converted_and_accepted(dlib_analyzer) -> None:
    data = to_jpeg(astronaut_image().convert("CMYK"))
    image = decode_image(data)
    assert image.mode == "RGB"
    verdict = check_selfie(data, dlib_analyzer, index=1)
    assert verdict.accepted, verdict.reasons


def test_png_with_alpha_of_a_face_is_flattened_and_accepted(dlib_analyzer) -> None:
    rgba = astronaut_image().convert("RGBA")
    alpha = np.full((rgba.height, rgba.width), 255, dtype=np.uint8)
    alpha[:, :60] = 0  # a transparent strip must become white, not black
    rgba.putalpha(Image.fromarray(alpha))
    data = to_png(rgba)
    image = decode_image(data)
    assert image.mode == "RGB"
    assert image.getpixel((10, 10)) == (255, 255, 255)
    assert check_selfie(data, dlib_analyzer, index=1).accepted


def test_sixteen_bit_grayscale_keeps_its_tones() -> None:
    ramp = np.tile(np.linspace(0, 65535, 256, dtype=np.uint16), (256, 1))
    image = decode_image(to_png(Image.fromarray(ramp)))
    gray = np.asarray(image)[:, :, 0]
    assert gray[0, 0] == 0 and gray[0, -1] == 255
    assert 110 < gray[0, 128] < 145


def test_palette_image_decodes_to_rgb() -> None:
    image = decode_image(to_png(astronaut_image().convert("P")))
    assert image.mode == "RGB" and image.size == (512, 512)


def test_exif_orientation_is_applied() -> None:
    upright = Image.new("RGB", (300, 200), (200, 30, 30))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # stored pixels are rotated; display rotates 90° clockwise
    data = to_jpeg(upright.transpose(Image.Transpose.ROTATE_90), exif=exif)
    assert Image.open(io.BytesIO(data)).size == (200, 300)
    assert decode_image(data).size == (300, 200)


def test_normalise_selfie_strips_metadata_and_bounds_the_size() -> None:
    big = astronaut_image().resize((2048, 1536))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    exif[0x010F] = "PhoneMaker"  # camera make: the kind of thing we must not keep
    exif[0x8825] = {2: (52.0, 31.0, 12.0)}  # GPS latitude
    data = to_jpeg(big, exif=exif)
    stored = normalise_selfie(data)
    image = Image.open(io.BytesIO(stored))
    assert image.format == "JPEG"
    assert image.size == (768, 1024)  # rotated by the tag, long side 1024
    assert not image.getexif()
    assert b"PhoneMaker" not in stored and "icc_profile" not in image.info


def test_normalise_selfie_rejects_non_images() -> None:
    with pytest.raises(ImageRejected):
        normalise_selfie(b"GIF89a broken")


def test_heic_photo_from_an_iphone_is_read_and_checked(dlib_analyzer) -> None:
    # iPhones send HEIC when a photo goes out as a file; pi-heif decodes it (pillow-heif, a
    # dev-only dependency, encodes the test photo).
    import pillow_heif

    buffer = io.BytesIO()
    pillow_heif.from_pillow(astronaut_image()).save(buffer, quality=85)
    heic = buffer.getvalue()
    assert heic[4:12] == b"ftypheic"

    image = decode_image(heic)
    assert image.mode == "RGB" and image.size == (512, 512)
    reference = np.asarray(astronaut_image(), dtype=np.float32)
    assert np.abs(np.asarray(image, dtype=np.float32) - reference).mean() < 8
    assert check_selfie(heic, dlib_analyzer, index=1).accepted
    with Image.open(io.BytesIO(normalise_selfie(heic))) as stored:
        assert stored.format == "JPEG"
