"""The insightface path: backend choice, the missing-pack error, and ArcFace embedding.

No insightface pack can be downloaded here, so the embedding path runs on a small recognition
model this test builds with the real ArcFace contract (input 1x3x112x112 float, 512-d output),
loaded through insightface's own model zoo and aligned with its ``norm_crop``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from headshots.errors import ModelMissing
from headshots.generation.faces import (
    ArcFaceEmbedder,
    DlibAnalyzer,
    InsightFaceAnalyzer,
    check_selfie,
    insightface_pack_dir,
    load_analyzer,
)
from headshots.generation.faces.insightface_backend import onnx_providers
from headshots.settings import Settings
from tests.plugins.faces import insightface_image_path, save_tiny_arcface


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> ArcFaceEmbedder:
    model = save_tiny_arcface(tmp_path_factory.mktemp("arcface") / "tiny_r1.onnx")
    return ArcFaceEmbedder.from_file(model)


def _template() -> np.ndarray:
    from insightface.utils import face_align

    return np.asarray(face_align.arcface_dst, dtype=np.float32)


def test_tiny_model_loads_through_the_insightface_model_zoo(embedder: ArcFaceEmbedder) -> None:
    assert embedder.input_size == 112


def test_embedding_is_unit_512_and_follows_the_landmarks(embedder: ArcFaceEmbedder) -> None:
    # Tom Hanks' crop is already ArcFace-aligned, so its landmarks are the ArcFace template.
    face = Image.open(insightface_image_path("Tom_Hanks_54745.png")).convert("RGB")
    landmarks = _template()
    direct = embedder.embed(face, landmarks)
    assert direct.shape == (512,) and direct.dtype == np.float32
    assert abs(float(np.linalg.norm(direct)) - 1) < 1e-5

    # The same face elsewhere in a larger, twice-as-big photo: alignment must undo both.
    canvas = Image.new("RGB", (500, 400), (40, 90, 60))
    canvas.paste(face.resize((224, 224), Image.Resampling.LANCZOS), (150, 100))
    moved = embedder.embed(canvas, landmarks * 2 + np.array([150, 100], dtype=np.float32))
    assert float(direct @ moved) > 0.98

    # Landmarks pointing at the background give a different vector.
    elsewhere = embedder.embed(canvas, landmarks + np.array([5, 5], dtype=np.float32))
    assert float(direct @ elsewhere) < float(direct @ moved) - 0.05


def test_from_file_refuses_missing_or_non_recognition_models(tmp_path: Path) -> None:
    with pytest.raises(ModelMissing):
        ArcFaceEmbedder.from_file(tmp_path / "absent.onnx")
    with pytest.raises(ModelMissing, match="not a face recognition model"):
        ArcFaceEmbedder(object())


def test_forced_insightface_without_pack_names_the_folder(tmp_path: Path) -> None:
    settings = Settings(model_dir=tmp_path, face_backend="insightface", insightface_pack="antelope")
    with pytest.raises(ModelMissing) as caught:
        load_analyzer(settings)
    expected = tmp_path / "insightface" / "models" / "antelope"
    assert str(expected) in str(caught.value)
    assert "non-commercial" in str(caught.value)


def test_auto_falls_back_to_dlib_without_pack(tmp_path: Path) -> None:
    settings = Settings(model_dir=tmp_path, face_backend="auto")
    assert isinstance(load_analyzer(settings), DlibAnalyzer)
    assert isinstance(
        load_analyzer(Settings(model_dir=tmp_path, face_backend="dlib")), DlibAnalyzer
    )


def test_auto_picks_insightface_when_the_pack_folder_has_models(tmp_path: Path) -> None:
    pack = insightface_pack_dir(tmp_path, "buffalo_l")
    pack.mkdir(parents=True)
    save_tiny_arcface(pack / "w600k_r50.onnx")
    analyzer = load_analyzer(Settings(model_dir=tmp_path, face_backend="auto"))
    assert isinstance(analyzer, InsightFaceAnalyzer)
    assert analyzer.pack_dir == pack
    assert analyzer.name == "insightface" and 0.2 < analyzer.same_person_threshold < 0.5


def _real_pack() -> Path:
    settings = Settings()
    pack = insightface_pack_dir(settings.models_path, settings.insightface_pack)
    if not (pack.is_dir() and any(pack.glob("det_*.onnx"))):
        pytest.skip(f"no insightface pack with a detector in {pack} (cannot be downloaded here)")
    return pack


def test_real_pack_detects_and_checks(group_photo_bytes, face_photo_bytes) -> None:
    analyzer = InsightFaceAnalyzer(_real_pack())
    group = check_selfie(group_photo_bytes, analyzer, index=1)
    assert not group.accepted and group.face_count >= 5
    first = check_selfie(face_photo_bytes[0], analyzer, index=1)
    flipped = check_selfie(face_photo_bytes[1], analyzer, index=2)
    assert first.face is not None and flipped.face is not None
    assert float(first.face.embedding @ flipped.face.embedding) > analyzer.same_person_threshold
    assert first.face.embedding.shape == (512,)


def test_face_models_ask_for_cuda_where_onnxruntime_has_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import onnxruntime

    assert onnx_providers() == ["CPUExecutionProvider"]  # this host's onnxruntime has no CUDA
    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["CUDAExecutionProvider", "AzureExecutionProvider", "CPUExecutionProvider"],
    )
    assert onnx_providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    # onnxruntime said CUDA but cannot start it here: the model still loads, on the CPU.
    embedder = ArcFaceEmbedder.from_file(save_tiny_arcface(tmp_path / "tiny.onnx"))
    face = Image.open(insightface_image_path("Tom_Hanks_54745.png")).convert("RGB")
    assert embedder.embed(face, _template()).shape == (512,)
