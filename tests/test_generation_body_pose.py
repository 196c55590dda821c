"""An operator's body-pose model for reference photos: the ONNX contract, heatmap decoding, the
letterbox back to the photo's pixels, COCO to OpenPose, and its points in the control image.

No pose model can be downloaded here: the tests export a small ONNX graph with the real
contract (one image in, 17 COCO heatmaps out) whose peaks sit where the test puts them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from headshots.errors import ConfigurationError, ModelMissing
from headshots.generation.body_pose import (
    COCO_POINTS,
    MIN_SCORE,
    BodyPoseModel,
    decode_heatmaps,
    openpose_from_coco,
)
from tests.plugins.faces import astronaut_image

INPUT = (64, 48)  # (H, W) of the tiny model's input
MAPS = (16, 12)  # (h, w) of its heatmaps: stride 4


def save_tiny_pose_model(
    path: Path,
    peaks: dict[str, tuple[int, int]],
    *,
    channels: int = len(COCO_POINTS),
    dynamic: bool = False,
) -> Path:
    """An ONNX heatmap model: ``input`` (1, 3, H, W) -> ``heatmaps`` (1, C, h, w), each named
    COCO point peaking (0.9) at its (x, y) cell; the image only enters through a zero-weighted
    mean, so the peaks are where the test says whatever the photo."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    maps = np.zeros((1, channels, *MAPS), dtype=np.float32)
    for name, (x, y) in peaks.items():
        maps[0, COCO_POINTS.index(name), y, x] = 0.9
    height, width = ("h", "w") if dynamic else INPUT
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input"], ["mean"], keepdims=0),
            helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
            helper.make_node("Add", ["maps", "nothing"], ["heatmaps"]),
        ],
        "tiny_pose",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, [1, channels, *MAPS])],
        initializer=[
            numpy_helper.from_array(maps, "maps"),
            numpy_helper.from_array(np.zeros((), dtype=np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_heatmap_peaks_are_decoded_at_cell_centres_with_a_quarter_nudge() -> None:
    maps = np.zeros((17, *MAPS), dtype=np.float32)
    maps[0, 5, 3] = 0.9  # nose: a lone peak, no nudge
    maps[5, 2, 4], maps[5, 2, 5] = 0.8, 0.5  # left shoulder: nudged right
    maps[6, 7, 7] = MIN_SCORE / 2  # right shoulder: too weak, not seen
    points = decode_heatmaps(maps, INPUT)
    assert points[0] == pytest.approx(((3 + 0.5) * 4 - 0.5, (5 + 0.5) * 4 - 0.5))
    assert points[5] == pytest.approx(((4 + 0.25 + 0.5) * 4 - 0.5, (2 + 0.5) * 4 - 0.5))
    assert points[6] is None and points[1] is None


def test_coco_to_openpose_takes_the_neck_between_the_shoulders() -> None:
    coco: list[tuple[float, float] | None] = [None] * 17
    coco[5], coco[6], coco[7], coco[0], coco[2] = (60, 40), (20, 40), (70, 80), (40, 10), (30, 5)
    body = openpose_from_coco(coco)
    assert body[1] == (40, 40), "neck"
    assert (body[2], body[5]) == ((20, 40), (60, 40)), "right then left shoulder"
    assert body[6] == (70, 80) and body[3] is None, "left elbow seen, right not"
    assert (body[0], body[14]) == ((40, 10), (30, 5)), "nose, right eye"
    with pytest.raises(ValueError, match="17 COCO points"):
        openpose_from_coco(coco[:5])


def test_the_model_maps_its_points_back_to_the_photo(tmp_path: Path) -> None:
    """On the astronaut (512 x 512) the 48 x 64 input is letterboxed: scale 48/512, 8 px of
    padding above; a peak at cell (x, y) lands at ((4x + 1.5) / s, (4y + 1.5 - 8) / s)."""
    peaks = {"left_shoulder": (9, 10), "right_shoulder": (2, 10), "left_elbow": (10, 13)}
    model = BodyPoseModel.load(save_tiny_pose_model(tmp_path / "pose.onnx", peaks))
    assert (model.input_size, model.name) == (INPUT, "pose.onnx")
    body = model(np.asarray(astronaut_image()))
    scale = 48 / 512

    def at(x: int, y: int) -> tuple[float, float]:
        return ((4 * x + 1.5) / scale, (4 * y + 1.5 - 8) / scale)

    assert body[5] == pytest.approx(at(9, 10)) and body[2] == pytest.approx(at(2, 10))
    assert body[6] == pytest.approx(at(10, 13))
    assert body[1] == pytest.approx(((at(9, 10)[0] + at(2, 10)[0]) / 2, at(9, 10)[1]))
    assert body[3] is None and body[0] is None


def test_a_dynamic_export_takes_the_default_input_size(tmp_path: Path) -> None:
    path = save_tiny_pose_model(tmp_path / "dyn.onnx", {"nose": (1, 1)}, dynamic=True)
    assert BodyPoseModel.load(path).input_size == (256, 192)


def test_a_file_that_is_not_a_heatmap_pose_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelMissing, match="pose model file missing"):
        BodyPoseModel.load(tmp_path / "absent.onnx")
    with pytest.raises(ConfigurationError, match="17, h, w"):
        BodyPoseModel.load(save_tiny_pose_model(tmp_path / "ten.onnx", {}, channels=10))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ConfigurationError, match="could not be loaded"):
        BodyPoseModel.load(garbage)


def test_the_body_model_sets_arms_and_shoulders_in_the_control_image(tmp_path: Path) -> None:
    """dlib's face stays the face; the model's shoulders and arms replace the derived ones
    (the derived pose has no arms at all), and the record names both sources."""
    from headshots.generation.control import DlibLandmarks, make_control_image

    landmarks = DlibLandmarks()
    photo = astronaut_image()
    peaks = {"left_shoulder": (9, 10), "right_shoulder": (2, 10)}
    peaks |= {"left_elbow": (10, 13), "right_elbow": (1, 13), "left_wrist": (8, 12)}
    peaks["right_wrist"] = (0, 15)  # below the photo in the letterbox: not in the image
    model = BodyPoseModel.load(save_tiny_pose_model(tmp_path / "pose.onnx", peaks))
    size = (512, 512)
    face_only = make_control_image(photo, "pose", size, landmarks=landmarks)
    with_body = make_control_image(photo, "pose", size, landmarks=landmarks, body=model)
    assert face_only.keypoints["source"] == "dlib68"
    assert with_body.keypoints["source"] == "dlib68+pose.onnx"
    assert with_body.keypoints["face"] == face_only.keypoints["face"]
    assert with_body.keypoints["body"][0] == face_only.keypoints["body"][0], "dlib's nose"
    assert face_only.keypoints["body"][6] is None, "no arms from a face"
    # The crop is the face's either way; the astronaut fills it, so the model's points are
    # where it put them in the photo (normalised to the 512 px square).
    assert with_body.crop_box == face_only.crop_box == (0, 0, 512, 512)
    scale = 48 / 512
    elbow = ((4 * 10 + 1.5) / scale / 512, (4 * 13 + 1.5 - 8) / scale / 512)
    assert with_body.keypoints["body"][6] == pytest.approx(elbow, abs=2e-3)
    assert with_body.keypoints["body"][3] is not None and with_body.keypoints["body"][7]
    assert with_body.keypoints["body"][4] is None, "a point outside the image is not drawn"
    assert with_body.image.tobytes() != face_only.image.tobytes()
    # Deterministic, like the face-only pose: every member of a team gets the same image.
    again = make_control_image(photo, "pose", size, landmarks=landmarks, body=model)
    assert again.image.tobytes() == with_body.image.tobytes()


def test_the_worker_uses_the_operators_pose_model_for_a_pose_reference(
    tiny_settings: Any, tiny_controlnet_path: Path, make_tiny_lora: Any, tmp_path: Path
) -> None:
    """``HEADSHOTS_POSE_MODEL`` set: the job's control record names both sources and has the
    model's arms; a canny reference does not load it."""
    from headshots.generation.stages import GenerationStages
    from tests.test_generation_controlnet import FAST, _job, _reference

    # The job is 4:5: its crop of the square photo keeps the middle, where this elbow is.
    peaks = {"left_shoulder": (9, 10), "right_shoulder": (2, 10), "left_elbow": (7, 12)}
    model = save_tiny_pose_model(tmp_path / "pose.onnx", peaks)
    settings = tiny_settings.model_copy(
        update={"controlnet_sd15_pose": str(tiny_controlnet_path), "pose_model": model}
    )
    stages = GenerationStages(settings, FAST)
    ctx = _job(tmp_path, settings, make_tiny_lora(1), reference=_reference(astronaut_image()))
    keypoints = stages.generate(ctx)["generation"]["control"]["keypoints"]
    assert keypoints["source"] == "dlib68+pose.onnx"
    assert keypoints["body"][6] is not None, "the model's left elbow"
    stages.close()
