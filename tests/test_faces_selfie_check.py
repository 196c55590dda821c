"""Per-photo checks and the set verdict on real photographs with the dlib backend."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from headshots.generation.faces import (
    SelfieVerdict,
    check_selfie,
    check_selfie_set,
)
from headshots.generation.faces.images import CHECK_MAX_PIXELS
from tests.plugins.faces import astronaut_image, to_jpeg, to_png


def _check_all(photos: list[bytes], analyzer) -> list[SelfieVerdict]:
    return [check_selfie(data, analyzer, index=i) for i, data in enumerate(photos, start=1)]


def test_augmented_photos_of_one_person_pass_as_a_set(dlib_analyzer, face_photo_bytes) -> None:
    verdicts = _check_all(face_photo_bytes, dlib_analyzer)
    assert [v.reasons for v in verdicts] == [[]] * len(face_photo_bytes)
    result = check_selfie_set(verdicts, same_person_threshold=dlib_analyzer.same_person_threshold)
    assert result.usable, result.summary()
    assert result.accepted == list(range(1, len(face_photo_bytes) + 1))
    assert result.rejected == {} and result.reasons == []
    assert result.reference is not None
    assert result.summary() == f"{len(face_photo_bytes)} accepted, 0 rejected"


def test_exif_rotated_photo_is_found_upright(dlib_analyzer, face_photo_bytes) -> None:
    rotated = face_photo_bytes[4]  # stored sideways with Orientation=6
    verdict = check_selfie(rotated, dlib_analyzer, index=5)
    assert verdict.accepted and verdict.face is not None
    assert verdict.height > verdict.width  # displayed upright: 452x472
    assert verdict.face.box[1] < verdict.height / 2  # face in the upper half, not at the side


def test_another_person_in_the_set_is_flagged(
    dlib_analyzer, face_photo_bytes, other_person_photo_bytes, group_photo_bytes
) -> None:
    photos = [
        *face_photo_bytes[:4],
        other_person_photo_bytes,
        *face_photo_bytes[4:],
        group_photo_bytes,
    ]
    verdicts = _check_all(photos, dlib_analyzer)
    assert verdicts[4].accepted  # on its own, Tom Hanks' photo is a fine selfie
    result = check_selfie_set(verdicts, same_person_threshold=dlib_analyzer.same_person_threshold)
    assert result.usable
    assert result.rejected == {
        5: ["looks like a different person than the others"],
        9: ["more than one person in the picture"],
    }
    assert 5 not in result.accepted and len(result.accepted) == 7
    assert result.similarities[5] < dlib_analyzer.same_person_threshold
    assert result.summary().startswith("7 accepted, 2 rejected: photo 5, looks like a different")


def test_two_people_half_and_half_is_not_usable(
    dlib_analyzer, face_photo_bytes, other_person_photo_bytes
) -> None:
    tom = other_person_photo_bytes
    tom_variants = [
        tom,
        to_jpeg(Image.open(__import__("io").BytesIO(tom)).crop((30, 30, 560, 560))),
    ]
    verdicts = _check_all([face_photo_bytes[0], face_photo_bytes[2], *tom_variants], dlib_analyzer)
    result = check_selfie_set(
        verdicts, same_person_threshold=dlib_analyzer.same_person_threshold, min_count=2
    )
    assert not result.usable
    assert result.accepted == []
    assert "different people" in result.reasons[0]


def test_near_duplicates_are_rejected(dlib_analyzer, face_photo_bytes) -> None:
    recompressed = to_jpeg(astronaut_image().resize((640, 640)), quality=60)
    photos = [*face_photo_bytes[:4], recompressed]
    result = check_selfie_set(
        _check_all(photos, dlib_analyzer),
        same_person_threshold=dlib_analyzer.same_person_threshold,
    )
    assert result.rejected == {5: ["almost the same as photo 1"]}
    assert result.usable


def test_too_few_photos_is_a_set_level_reason(dlib_analyzer, face_photo_bytes) -> None:
    verdicts = _check_all(face_photo_bytes[:3], dlib_analyzer)
    result = check_selfie_set(verdicts, same_person_threshold=dlib_analyzer.same_person_threshold)
    assert not result.usable
    assert result.reasons == ["only 3 usable photos, need at least 4"]
    assert "Only 3 usable photos" in result.summary()


def test_photos_over_the_limit_are_rejected(dlib_analyzer, face_photo_bytes) -> None:
    verdicts = _check_all(face_photo_bytes, dlib_analyzer)
    result = check_selfie_set(
        verdicts, same_person_threshold=dlib_analyzer.same_person_threshold, max_count=5
    )
    assert result.accepted == [1, 2, 3, 4, 5]
    assert result.rejected == {6: ["over the limit of 5 photos"], 7: ["over the limit of 5 photos"]}
    assert result.usable


def test_blurry_photo_is_rejected_and_sharp_one_is_not(dlib_analyzer) -> None:
    sharp = check_selfie(to_jpeg(astronaut_image()), dlib_analyzer, index=1)
    blurred = astronaut_image().filter(ImageFilter.GaussianBlur(2.5))
    blurry = check_selfie(to_jpeg(blurred), dlib_analyzer, index=2)
    assert sharp.accepted
    assert blurry.face is not None, "the face must still be found for the blur check to matter"
    assert not blurry.accepted and "blurry" in blurry.reasons[0]
    assert blurry.sharpness < sharp.sharpness / 10


def test_dark_and_overexposed_faces_are_rejected(dlib_analyzer) -> None:
    dark = ImageEnhance.Brightness(astronaut_image()).enhance(0.22)
    bright = ImageEnhance.Brightness(astronaut_image()).enhance(1.9)
    dark_verdict = check_selfie(to_jpeg(dark), dlib_analyzer, index=1)
    bright_verdict = check_selfie(to_jpeg(bright), dlib_analyzer, index=2)
    assert dark_verdict.face is not None and bright_verdict.face is not None
    assert "too dark" in " ".join(dark_verdict.reasons)
    assert "overexposed" in " ".join(bright_verdict.reasons)


def test_small_face_in_a_large_frame_is_rejected(dlib_analyzer) -> None:
    canvas = Image.new("RGB", (1600, 1600), (90, 110, 130))
    canvas.paste(astronaut_image(), (600, 600))  # face ~90 px across a 1600 px frame
    verdict = check_selfie(to_jpeg(canvas), dlib_analyzer, index=1)
    assert verdict.face is not None
    assert verdict.reasons == ["your face is too small in the picture: come closer"]


def test_too_close_face_is_rejected(dlib_analyzer) -> None:
    close = astronaut_image().crop((180, 80, 262, 162)).resize((300, 300))
    verdict = check_selfie(to_jpeg(close), dlib_analyzer, index=4)
    assert not verdict.accepted
    assert verdict.face is None or any("too close" in r for r in verdict.reasons)


def test_low_resolution_photo_is_warned_not_rejected(dlib_analyzer) -> None:
    verdict = check_selfie(to_jpeg(astronaut_image().resize((400, 400))), dlib_analyzer, index=1)
    assert verdict.accepted
    assert any("low resolution" in w for w in verdict.warnings)
    assert verdict.summary().startswith("photo 1: ok, but low resolution")


def test_verdict_round_trips_through_json(dlib_analyzer, face_photo_bytes) -> None:
    verdict = check_selfie(face_photo_bytes[0], dlib_analyzer, index=1)
    restored = SelfieVerdict.from_json(json.loads(json.dumps(verdict.to_json())))
    assert restored.face is not None and verdict.face is not None
    assert np.array_equal(restored.face.embedding, verdict.face.embedding)
    assert restored.face.embedding.dtype == np.float32
    assert restored.face.box == verdict.face.box
    assert restored.to_json() == verdict.to_json()
    rejected = check_selfie(b"nope", dlib_analyzer, index=2)
    assert SelfieVerdict.from_json(rejected.to_json()) == rejected


def test_a_turned_photo_says_turn_it(dlib_analyzer) -> None:
    upright = astronaut_image()
    for turn, word in (
        (Image.Transpose.ROTATE_180, "upside down"),
        (Image.Transpose.ROTATE_90, "on its side"),
    ):
        verdict = check_selfie(to_jpeg(upright.transpose(turn)), dlib_analyzer, index=1)
        assert verdict.reasons == [f"this photo is {word}: turn it upright and send it again"]


def test_a_face_too_small_to_detect_says_come_closer(dlib_analyzer) -> None:
    # The astronaut's face in a corner of a big, plain frame: detection at the usual scale
    # misses it; the zoomed-in look finds it and the reason says what to do.
    canvas = Image.new("RGB", (2400, 2400), (120, 120, 120))
    canvas.paste(astronaut_image().resize((360, 360)), (60, 60))
    verdict = check_selfie(to_jpeg(canvas), dlib_analyzer, index=1)
    assert verdict.reasons == ["your face is too small in the picture: come closer"]


def test_heavy_compression_and_screenshots_are_mentioned(dlib_analyzer) -> None:
    photo = astronaut_image()
    crushed = check_selfie(to_jpeg(photo, quality=5), dlib_analyzer, index=1)
    assert any("heavily compressed (JPEG quality about 5)" in w for w in crushed.warnings)
    fine = check_selfie(to_jpeg(photo, quality=85), dlib_analyzer, index=2)
    assert not any("compressed" in w or "screenshot" in w for w in fine.warnings)
    screenshot = check_selfie(to_png(photo), dlib_analyzer, index=3)
    assert any("looks like a screenshot" in w for w in screenshot.warnings)


@pytest.mark.parametrize(
    ("mode", "side"),
    [("I;16", 5400), ("RGBA", 5400), ("L", 5400), ("I;16", 6300), ("RGBA", 6300)],
)
def test_huge_pixel_counts_in_tiny_files_decode_in_bounded_memory(mode: str, side: int) -> None:
    # The probe: an 88 KB 6300x6300 16-bit PNG peaked at 1,041 MB in the check (float64
    # conversion), an RGBA one at 814 MB. Measured in a fresh process, as its peak RSS.
    script = (
        "import io, resource\n"
        "import numpy as np\n"
        "from PIL import Image\n"
        "from headshots.generation.faces import DlibAnalyzer, check_selfie\n"
        "analyzer = DlibAnalyzer(); analyzer.analyze(Image.new('RGB', (64, 64)))\n"
        f"mode, side = {mode!r}, {side}\n"
        "pixels = np.zeros((side, side), np.uint16 if mode == 'I;16' else np.uint8)\n"
        "pixels[1000:2000, 1000:2000] = 40000 if mode == 'I;16' else 150\n"
        "image = Image.fromarray(pixels)\n"
        "image = image.convert('RGBA') if mode == 'RGBA' else image\n"
        "buffer = io.BytesIO(); image.save(buffer, 'PNG'); data = buffer.getvalue()\n"
        "del image, pixels, buffer\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "verdict = check_selfie(data, analyzer, index=1)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(len(data), (after - before) // 1024, verdict.width, '|'.join(verdict.reasons))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    size, extra_mb, width, reasons = result.stdout.strip().split(" ", 3)
    assert int(size) < 400_000  # a small file...
    if side * side > CHECK_MAX_PIXELS:
        assert reasons == "this image is too large (over 30 megapixels)"
        assert int(extra_mb) < 50, f"{mode}: {extra_mb} MB to refuse it"
    else:
        assert int(width) == side  # ...judged at its own size...
        assert reasons.startswith("no face found")
        assert int(extra_mb) < 250, f"{mode}: {extra_mb} MB above the baseline"  # ...bounded


def test_a_reference_photo_shows_exactly_one_person(dlib_analyzer, group_photo_bytes) -> None:
    from headshots.generation.faces import ImageRejected, check_reference

    png = check_reference(to_jpeg(astronaut_image()), dlib_analyzer)
    assert Image.open(io.BytesIO(png)).format == "PNG"
    assert png == check_reference(to_jpeg(astronaut_image()), dlib_analyzer)  # one photo, one file
    with pytest.raises(ImageRejected, match="exactly one person"):
        check_reference(group_photo_bytes, dlib_analyzer)
    gradient = np.tile(np.linspace(0, 255, 400, dtype=np.uint8), (400, 1))
    with pytest.raises(ImageRejected):
        check_reference(to_png(Image.fromarray(gradient).convert("RGB")), dlib_analyzer)
    with pytest.raises(ImageRejected):
        check_reference(b"not a photo", dlib_analyzer)


def test_check_selfies_in_parallel_gives_the_sequential_verdicts(face_photo_bytes) -> None:
    from headshots.errors import JobCancelled
    from headshots.generation.faces import DlibAnalyzer, check_selfies

    analyzer = DlibAnalyzer(workers=2)
    photos = [*face_photo_bytes, b"not a photo"]
    expected = [check_selfie(data, analyzer, index=n) for n, data in enumerate(photos, start=1)]
    verdicts = check_selfies(photos, analyzer)
    assert [v.to_json() for v in verdicts] == [v.to_json() for v in expected]

    def cancelled() -> None:
        raise JobCancelled("stop")

    with pytest.raises(JobCancelled):
        check_selfies(photos, analyzer, check_cancelled=cancelled)
