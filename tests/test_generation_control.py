"""Control images from a reference photo: OpenPose drawings from dlib landmarks, Canny edges."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from headshots.errors import SelfieRejected, UserError
from headshots.generation.control import (
    LIMBS,
    OPENPOSE_COLOURS,
    ControlImage,
    DlibLandmarks,
    NoPoseFound,
    canny_edges,
    draw_pose,
    fit_box,
    fit_reference,
    make_control_image,
    pose_keypoints,
)
from tests.plugins.faces import astronaut_image, insightface_image_path, other_person_image

PORTRAIT = (512, 640)  # 4:5
SQUARE = (512, 512)
NECK, RIGHT_SHOULDER, LEFT_SHOULDER, NOSE = 1, 2, 5, 0


@pytest.fixture(scope="module")
def finder() -> DlibLandmarks:
    """One landmark finder for the module: the 68-point model takes about a second to read."""
    return DlibLandmarks()


@pytest.fixture(scope="module")
def astronaut_landmarks(finder) -> np.ndarray:
    faces = finder(np.asarray(astronaut_image()))
    assert len(faces) == 1
    return faces[0]


def hanks_with_room() -> Image.Image:
    """Tom Hanks' face small in a 4:5 frame, so his shoulders fit below it."""
    frame = Image.new("RGB", (560, 700), (90, 90, 90))
    frame.paste(other_person_image().resize((280, 280), Image.Resampling.LANCZOS), (140, 80))
    return frame


def pixel(keypoint: list[float], size: tuple[int, int]) -> np.ndarray:
    return np.array([keypoint[0] * size[0], keypoint[1] * size[1]])


def face_box(keypoints: dict, size: tuple[int, int]) -> tuple[float, float, float, float]:
    points = np.array([pixel(p, size) for p in keypoints["face"][:68]])
    return (*points.min(axis=0), *points.max(axis=0))


def limb_colour(colour: tuple[int, int, int]) -> np.ndarray:
    """A limb blended once over black, as the annotator leaves it."""
    return np.array([round(0.6 * c) for c in colour])


@pytest.mark.parametrize("size", [PORTRAIT, SQUARE], ids=["4:5", "1:1"])
@pytest.mark.parametrize("photo", [astronaut_image, hanks_with_room], ids=["astronaut", "hanks"])
def test_pose_is_openpose_drawing_of_face_and_shoulders(finder, photo, size) -> None:
    control = make_control_image(photo(), "pose", size, landmarks=finder)

    assert isinstance(control, ControlImage) and control.hint == "pose"
    assert control.image.mode == "RGB" and control.image.size == size
    assert control.fitted.mode == "RGB" and control.fitted.size == size
    drawing = np.asarray(control.image)
    assert (drawing.max(axis=2) == 0).mean() > 0.85  # a black canvas
    for corner in (drawing[0, 0], drawing[0, -1], drawing[-1, 0], drawing[-1, -1]):
        assert corner.tolist() == [0, 0, 0]

    body = control.keypoints["body"]
    neck, nose = pixel(body[NECK], size), pixel(body[NOSE], size)
    # Each limb, halfway from the neck to a shoulder or 3/4 of the way up to the nose, has its
    # OpenPose colour at 0.6: red to the person's right shoulder, orange to the left, blue up.
    for end, limb, share in ((RIGHT_SHOULDER, 0, 0.5), (LEFT_SHOULDER, 1, 0.5), (NOSE, 12, 0.25)):
        point = neck + share * (pixel(body[end], size) - neck)
        x, y = int(point[0]), int(point[1])
        assert np.abs(drawing[y, x].astype(int) - limb_colour(OPENPOSE_COLOURS[limb])).max() <= 1

    # Face points are white dots (nothing else is white), all on the face.
    white = np.argwhere((drawing == 255).all(axis=2))
    assert len(white) > 70
    left, top, right, bottom = face_box(control.keypoints, size)
    radius = 3 * min(size) / 512 + 1
    assert white[:, 1].min() >= left - radius and white[:, 1].max() <= right + radius
    assert white[:, 0].min() >= top - radius and white[:, 0].max() <= bottom + radius
    assert left <= nose[0] <= right and top <= nose[1] <= bottom


def test_keypoints_are_normalised_openpose_points(finder) -> None:
    control = make_control_image(astronaut_image(), "pose", PORTRAIT, landmarks=finder)
    keypoints = control.keypoints

    assert keypoints["source"] == "dlib68"
    body, face = keypoints["body"], keypoints["face"]
    assert len(body) == 18 and len(face) == 70
    drawn = [i for i, point in enumerate(body) if point is not None]
    # Face and shoulders only: no arms, hips or legs in a headshot.
    assert drawn == [0, 1, 2, 5, 14, 15, 16, 17]
    assert all(0 <= v < 1 for i in drawn for v in body[i])
    assert all(0 <= v <= 1 for point in face for v in point)
    # OpenPose's right is the person's right: image left for a face turned to the camera.
    right_eye, left_eye, right_ear, left_ear = body[14], body[15], body[16], body[17]
    assert right_ear[0] < right_eye[0] < body[NOSE][0] < left_eye[0] < left_ear[0]
    assert body[RIGHT_SHOULDER][0] < body[NECK][0] < body[LEFT_SHOULDER][0]
    assert body[NOSE][1] < body[NECK][1] < body[RIGHT_SHOULDER][1]
    # The pupils (points 68, 69) are the eye centres, in OpenPose's right-then-left order.
    assert face[68] == right_eye and face[69] == left_eye

    record = control.to_record()
    assert record == {"hint": "pose", "keypoints": keypoints}
    assert json.loads(json.dumps(record)) == record


def test_drawing_follows_the_face_when_it_moves(finder) -> None:
    size = (768, 512)  # the canvas's own aspect: no crop, so a shift stays a shift
    photos = []
    for x in (0, 256):
        canvas = Image.new("RGB", size, (128, 128, 128))
        canvas.paste(astronaut_image(), (x, 0))
        photos.append(make_control_image(canvas, "pose", size, landmarks=finder))
    before, after = (photo.keypoints["body"] for photo in photos)

    for index in (NOSE, NECK, RIGHT_SHOULDER, LEFT_SHOULDER):
        assert after[index][0] - before[index][0] == pytest.approx(256 / 768, abs=0.005)
        assert after[index][1] == pytest.approx(before[index][1], abs=0.005)
    columns = [np.argwhere(np.asarray(p.image).max(axis=2) > 0)[:, 1] for p in photos]
    assert columns[1].mean() - columns[0].mean() == pytest.approx(256, abs=3)


def test_neck_and_shoulders_follow_a_tilted_head(finder) -> None:
    def body(angle: float) -> list:
        tilted = astronaut_image().rotate(angle, Image.Resampling.BICUBIC, fillcolor=(128,) * 3)
        return make_control_image(tilted, "pose", SQUARE, landmarks=finder).keypoints["body"]

    # Turning the photo anticlockwise swings the chin, and the neck below it, to the right.
    for angle, side in ((15, 1), (-15, -1)):
        points = body(angle)
        assert np.sign(points[NECK][0] - points[NOSE][0]) == side
        assert np.sign(points[RIGHT_SHOULDER][1] - points[LEFT_SHOULDER][1]) == side


def test_largest_face_sets_the_pose(astronaut_landmarks) -> None:
    small = astronaut_landmarks * 0.3 + 10

    def finder(pixels: np.ndarray) -> list[np.ndarray]:
        return [small, astronaut_landmarks]  # not sorted: the choice is make_control_image's

    reference = astronaut_image()
    control = make_control_image(reference, "pose", SQUARE, landmarks=finder)
    expected = pose_keypoints(astronaut_landmarks, reference.size)
    assert control.crop_box == (0, 0, 512, 512)
    assert control.keypoints == expected


def test_group_photo_poses_one_face(finder) -> None:
    reference = Image.open(insightface_image_path("t1.jpg")).convert("RGB")
    control = make_control_image(reference, "pose", SQUARE, landmarks=finder)
    largest = finder(np.asarray(reference))[0]
    left, top = largest.min(axis=0)
    right, bottom = largest.max(axis=0)
    crop_left, crop_top, crop_right, crop_bottom = control.crop_box
    assert crop_left <= left and right <= crop_right and crop_top <= top and bottom <= crop_bottom
    assert control.image.size == SQUARE


def test_no_face_is_a_user_error(finder) -> None:
    ramp = np.linspace(0, 255, 400, dtype=np.uint8)
    gradient = Image.fromarray(np.stack([np.tile(ramp, (300, 1))] * 3, axis=-1))

    with pytest.raises(NoPoseFound) as caught:
        make_control_image(gradient, "pose", SQUARE, landmarks=finder)
    assert isinstance(caught.value, UserError) and isinstance(caught.value, SelfieRejected)
    assert str(caught.value).startswith("No face was found in the reference photo: ")
    assert caught.value.reasons == [str(caught.value)]


def test_pose_is_deterministic_across_finders(finder) -> None:
    reference = astronaut_image()
    first = make_control_image(reference, "pose", PORTRAIT, landmarks=finder)
    second = make_control_image(reference, "pose", PORTRAIT, landmarks=DlibLandmarks())

    assert first.image.tobytes() == second.image.tobytes()
    assert first.fitted.tobytes() == second.fitted.tobytes()
    assert first.keypoints == second.keypoints and first.crop_box == second.crop_box
    # The init image can be cropped like the control image from the same face box.
    points = finder(np.asarray(reference))[0]
    box = (*points.min(axis=0), *points.max(axis=0))
    assert fit_box(reference.size, PORTRAIT, box) == first.crop_box
    assert fit_reference(reference, PORTRAIT, box).tobytes() == first.fitted.tobytes()
    # And a stored record redraws the same picture.
    assert draw_pose(first.to_record()["keypoints"], PORTRAIT).tobytes() == first.image.tobytes()


@pytest.mark.parametrize("size", [PORTRAIT, SQUARE], ids=["4:5", "1:1"])
def test_canny_edges_of_the_fitted_reference(size) -> None:
    reference = astronaut_image()
    control = make_control_image(reference, "canny", size)
    again = make_control_image(reference.copy(), "canny", size)

    assert control.hint == "canny" and control.keypoints == {"low": 100, "high": 200}
    assert control.to_record() == {"hint": "canny", "keypoints": {"low": 100, "high": 200}}
    assert control.image.mode == "RGB" and control.image.size == size
    assert control.fitted.size == size
    assert control.fitted.tobytes() == fit_reference(reference, size).tobytes()
    edges = np.asarray(control.image)
    assert set(np.unique(edges).tolist()) == {0, 255}
    assert (edges[..., 0] == edges[..., 1]).all() and (edges[..., 0] == edges[..., 2]).all()
    assert 0.02 < (edges[..., 0] == 255).mean() < 0.3
    assert control.image.tobytes() == again.image.tobytes()
    assert control.image.tobytes() == canny_edges(control.fitted).tobytes()


@pytest.mark.parametrize(
    ("image_size", "size", "face", "expected"),
    [
        ((1000, 1000), (512, 640), None, (100, 0, 900, 1000)),
        ((1000, 1000), (512, 512), None, (0, 0, 1000, 1000)),
        ((800, 1200), (512, 512), None, (0, 200, 800, 1000)),
        # Around the face, aiming half a face below its centre; clamped to the image.
        ((1000, 1000), (512, 640), (50, 100, 250, 300), (0, 0, 800, 1000)),
        ((1200, 800), (512, 512), (800, 100, 1000, 300), (400, 0, 1200, 800)),
        ((800, 1600), (512, 512), (300, 200, 500, 400), (0, 0, 800, 800)),
        ((800, 1600), (512, 512), (300, 900, 500, 1100), (0, 700, 800, 1500)),
    ],
)
def test_fit_box_is_largest_box_of_the_aspect(image_size, size, face, expected) -> None:
    box = fit_box(image_size, size, face)
    assert box == expected
    width, height = box[2] - box[0], box[3] - box[1]
    assert width / height == pytest.approx(size[0] / size[1], abs=0.01)
    assert fit_reference(Image.new("RGB", image_size), size, face).size == size


def test_body_points_outside_the_frame_are_left_out(astronaut_landmarks) -> None:
    # The face low in a landscape frame: neck and shoulders fall below the bottom edge.
    size = (1024, 400)
    landmarks = astronaut_landmarks + np.array([0.0, 190.0])
    keypoints = pose_keypoints(landmarks, size)

    body = keypoints["body"]
    assert body[NOSE] is not None
    assert body[NECK] is None and body[RIGHT_SHOULDER] is None and body[LEFT_SHOULDER] is None
    drawing = np.asarray(draw_pose(keypoints, size))
    # Only the face's own limbs are drawn: nothing below the chin.
    chin_y = int(max(p[1] for p in keypoints["face"][:68]) * size[1])
    assert drawing[chin_y + 8 :].max() == 0
    assert len(LIMBS) == 17


def test_lines_scale_with_resolution(astronaut_landmarks) -> None:
    keypoints = pose_keypoints(astronaut_landmarks, (512, 512))
    small = (np.asarray(draw_pose(keypoints, (512, 512))).max(axis=2) > 0).sum()
    large = (np.asarray(draw_pose(keypoints, (1024, 1024))).max(axis=2) > 0).sum()
    assert large / small == pytest.approx(4, rel=0.2)


def test_bad_arguments_are_rejected(astronaut_landmarks) -> None:
    with pytest.raises(ValueError, match="unknown control hint"):
        make_control_image(astronaut_image(), "depth", SQUARE, landmarks=lambda _: [])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive size"):
        make_control_image(astronaut_image(), "canny", (0, 512))
