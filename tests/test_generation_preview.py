"""The instant FaceID preview on the tiny model: published weight layout, insightface embedding.

The adapter files are written here in the layout the IP-Adapter authors publish (random
values sized for the tiny UNet); the face embedding comes from the insightface backend the
stages use, through a test-exported ArcFace-contract ONNX recogniser.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from headshots.generation.context import Retention, lora_path, reference_embedding_path
from headshots.generation.local_context import LocalContext, run_stages
from headshots.generation.preview import (
    DLIB_UNAVAILABLE,
    FACEID_WEIGHT_SD15,
    save_random_faceid_adapter,
)
from headshots.generation.stages import GenerationOptions, GenerationStages
from headshots.queue.contracts import ChatTarget, JobRequest, StyleChoice, UserRef
from headshots.settings import Settings
from tests.plugins.faces import astronaut_image, other_person_image, save_tiny_arcface

FAST = GenerationOptions(
    sample_steps=3, validate_likeness=False, checkpoint_every=100, progress_every=1
)


def _request(**style: Any) -> JobRequest:
    return JobRequest(
        user=UserRef(platform="cli", user_id=1),
        target=ChatTarget(platform="cli", chat_id=1, user_id=1),
        upload_id="u1",
        style=StyleChoice(preset="corporate", subject_class="man", count=1, seed=3, **style),
    )


@pytest.fixture(scope="module")
def tiny_unet(tiny_model_path: Path) -> Any:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(tiny_model_path, subfolder="unet")


@pytest.fixture(scope="module")
def faceid_dir(tmp_path_factory: pytest.TempPathFactory, tiny_unet: Any) -> Path:
    """The published pair: the .bin (LoRA inside) and its kohya-layout companion LoRA."""
    folder = tmp_path_factory.mktemp("faceid")
    save_random_faceid_adapter(folder, tiny_unet)
    return folder


@pytest.fixture(scope="module")
def insightface_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model dir whose insightface pack holds the test-exported recogniser."""
    from headshots.generation.faces import insightface_pack_dir

    models = tmp_path_factory.mktemp("models")
    pack = insightface_pack_dir(models, "buffalo_l")
    pack.mkdir(parents=True)
    save_tiny_arcface(pack / "w600k_r50.onnx")
    return models


def _arcface_reference(models: Path, image: Image.Image | None = None) -> np.ndarray:
    """What the insightface check stage stores: the ArcFace embedding of the person's face."""
    from insightface.utils import face_align

    from headshots.generation.faces import ArcFaceEmbedder, insightface_pack_dir

    embedder = ArcFaceEmbedder.from_file(
        insightface_pack_dir(models, "buffalo_l") / "w600k_r50.onnx"
    )
    template = np.asarray(face_align.arcface_dst, dtype=np.float32)
    if image is None:
        # Tom Hanks' aligned 112 px crop, padded by 56 px and enlarged 2.5x to 560 px.
        return embedder.embed(other_person_image(), (template + 56) * 2.5)
    return embedder.embed(image, template * 2 + np.array([150, 60], dtype=np.float32))


def _settings(tiny_settings: Settings, models: Path, adapter: Path | str | None) -> Settings:
    return tiny_settings.model_copy(
        update={
            "face_backend": "insightface",
            "model_dir": models,
            "ip_adapter_faceid": str(adapter) if adapter is not None else None,
        }
    )


def _context(root: Path, settings: Settings, reference: np.ndarray | None) -> LocalContext:
    ctx = LocalContext(root, _request(), settings)
    if reference is not None:
        buffer = io.BytesIO()
        np.save(buffer, reference.astype(np.float32))
        ctx.write_blob(reference_embedding_path(ctx.job_id), buffer.getvalue(), Retention.LORA)
    return ctx


def _base(stages: GenerationStages) -> list[np.ndarray]:
    from headshots.style.presets import build_prompt_spec

    spec = build_prompt_spec(
        StyleChoice(preset="corporate", subject_class="man", count=2, seed=7, aspect_ratio="1:1"),
        job_id="base",
        native_resolution=64,
        steps=3,
    )
    result = stages.resident.generate(spec, lora=None, adapter_name="none")
    return [np.asarray(g.image, dtype=np.int16) for g in result.images]


def test_faceid_preview_is_published_and_leaves_the_base_bit_exact(
    tiny_settings: Settings, insightface_models: Path, faceid_dir: Path, tmp_path: Path
) -> None:
    settings = _settings(tiny_settings, insightface_models, faceid_dir / FACEID_WEIGHT_SD15)
    reference = _arcface_reference(insightface_models)
    assert reference.shape == (512,)
    stages = GenerationStages(settings, FAST)
    before = _base(stages)
    ctx = _context(tmp_path / "a", settings, reference)
    record = stages.preview(ctx)
    assert "skipped" not in record, record
    assert record["backend"] == "insightface" and record["lora"] == "inside the adapter file"
    assert record["embedding_shape"] == [2, 1, 1, 512] and record["output_check"]
    assert ctx.previews and ctx.previews[0][0] == record["path"]
    preview = np.asarray(Image.open(io.BytesIO(ctx.read_blob(record["path"]))), dtype=np.int16)
    pipe = stages.resident.pipe
    # Nothing of the preview stays: no LoRA layers, no IP processors, no image projection.
    assert not getattr(pipe.unet, "peft_config", None)
    assert pipe.unet.encoder_hid_proj is None and pipe.feature_extractor is None
    assert {type(p).__name__ for p in pipe.unet.attn_processors.values()} == {"AttnProcessor2_0"}
    after = _base(stages)
    for got, expected in zip(after, before, strict=True):
        np.testing.assert_array_equal(got, expected)

    # The face embedding drives the image: another face gives another preview.
    other = _context(
        tmp_path / "b", settings, _arcface_reference(insightface_models, astronaut_image())
    )
    other_record = stages.preview(other)
    assert "skipped" not in other_record
    other_preview = np.asarray(
        Image.open(io.BytesIO(other.read_blob(other_record["path"]))), dtype=np.int16
    )
    assert np.abs(preview - other_preview).max() > 0
    assert stages.resident.base_loads == 1
    stages.close()


def test_weights_without_their_own_lora_use_the_companion_file(
    tiny_settings: Settings, insightface_models: Path, tiny_unet: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "faceid"
    adapter = save_random_faceid_adapter(folder, tiny_unet, seed=1, lora_inside=False)
    saved = torch.load(adapter, weights_only=True)
    assert set(saved) == {"image_proj", "ip_adapter"}
    assert not any("lora" in key for key in saved["ip_adapter"])
    settings = _settings(tiny_settings, insightface_models, folder)  # a folder works too
    stages = GenerationStages(settings, FAST)
    record = stages.preview(_context(tmp_path, settings, _arcface_reference(insightface_models)))
    assert record["lora"] == "ip-adapter-faceid_sd15_lora.safetensors", record
    assert not getattr(stages.resident.pipe.unet, "peft_config", None)
    stages.close()


def test_published_key_layout(faceid_dir: Path, tiny_unet: Any) -> None:
    from safetensors.torch import load_file

    saved = torch.load(faceid_dir / FACEID_WEIGHT_SD15, weights_only=True)
    proj = saved["image_proj"]
    assert sorted(proj) == [
        "norm.bias",
        "norm.weight",
        "proj.0.bias",
        "proj.0.weight",
        "proj.2.bias",
        "proj.2.weight",
    ]
    cross = tiny_unet.config.cross_attention_dim
    assert proj["proj.0.weight"].shape == (1024, 512)
    assert proj["proj.2.weight"].shape == (4 * cross, 1024)
    processors = list(tiny_unet.attn_processors)
    ip_keys = {k for k in saved["ip_adapter"] if k.endswith("_ip.weight")}
    # Cross-attention processors are the odd ones, 1, 3, 5, ... as in the published file.
    assert ip_keys == {
        f"{n}.to_{kv}_ip.weight"
        for n, name in enumerate(processors)
        if name.endswith("attn2.processor")
        for kv in "kv"
    }
    assert {int(k.split(".")[0]) for k in ip_keys} == set(range(1, len(processors), 2))
    companion = load_file(str(faceid_dir / "ip-adapter-faceid_sd15_lora.safetensors"))
    assert (
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight"
        in companion
    )
    assert all(k.startswith("lora_unet_") for k in companion)
    assert not any(k.endswith(".alpha") for k in companion)


def test_a_corrupt_adapter_is_recorded_and_training_goes_on(
    tiny_settings: Settings,
    insightface_models: Path,
    face_photo_bytes: list[bytes],
    tmp_path: Path,
) -> None:
    adapter = tmp_path / FACEID_WEIGHT_SD15
    adapter.write_bytes(b"PK\x03\x04 not a checkpoint" * 10)
    settings = _settings(tiny_settings, insightface_models, adapter)
    # The photos are checked and cropped first (dlib finds the faces here: no insightface
    # detector can be built offline), then the insightface stages take over with the
    # reference embedding an insightface check stores.
    ctx = LocalContext(tmp_path / "job", _request(), settings)
    for number, data in enumerate(face_photo_bytes[:5], start=1):
        ctx.write_blob(f"uploads/u1/{number:02d}.jpg", data, Retention.SELFIE)
    dlib_stages = GenerationStages(tiny_settings, FAST)
    run_stages(ctx, dlib_stages.stage_set().train[:2])
    dlib_stages.close()
    buffer = io.BytesIO()
    np.save(buffer, _arcface_reference(insightface_models))
    ctx.write_blob(reference_embedding_path(ctx.job_id), buffer.getvalue(), Retention.LORA)

    stages = GenerationStages(settings.model_copy(update={"train_steps": 2}), FAST)
    before = _base(stages)
    timings = run_stages(ctx, stages.stage_set().train)
    assert [t.skipped for t in timings] == [True, True, False, False]
    record = ctx.output_of("preview")
    assert record is not None and record["failed"] is True and not ctx.previews
    assert FACEID_WEIGHT_SD15 in record["skipped"] and "cannot load" in record["skipped"]
    assert ctx.read_blob(lora_path(ctx.job_id))  # training went on
    after = _base(stages)
    for got, want in zip(after, before, strict=True):
        np.testing.assert_array_equal(got, want)
    # The generate part is not run here: ranking with insightface needs its detector, which
    # cannot be built offline; a finished train stage is what queues it.
    assert (ctx.output_of("train") or {})["lora"] == lora_path(ctx.job_id)
    stages.close()


def test_an_embedding_of_the_wrong_size_is_recorded_not_raised(
    tiny_settings: Settings, insightface_models: Path, faceid_dir: Path, tmp_path: Path
) -> None:
    settings = _settings(tiny_settings, insightface_models, faceid_dir)
    stages = GenerationStages(settings, FAST)
    # What a reference stored by the dlib backend would be.
    ctx = _context(tmp_path, settings, _arcface_reference(insightface_models)[:128])
    record = stages.preview(ctx)
    assert record["failed"] is True and "512-d embedding" in record["skipped"]
    assert not ctx.previews
    stages.close()


def test_dlib_backend_says_the_preview_is_not_available(
    tiny_settings: Settings, faceid_dir: Path, tmp_path: Path
) -> None:
    settings = tiny_settings.model_copy(update={"ip_adapter_faceid": str(faceid_dir)})
    stages = GenerationStages(settings, FAST)
    record = stages.preview(_context(tmp_path, settings, None))
    assert record == {"skipped": DLIB_UNAVAILABLE}
    assert "not available with the dlib backend" in record["skipped"]
    stages.close()


def test_a_flagged_preview_is_never_sent(
    tiny_settings: Settings,
    insightface_models: Path,
    faceid_dir: Path,
    flagging_checker_path: Path,
    tmp_path: Path,
) -> None:
    settings = _settings(tiny_settings, insightface_models, faceid_dir).model_copy(
        update={"safety_checker": str(flagging_checker_path)}
    )
    stages = GenerationStages(settings, FAST)
    ctx = _context(tmp_path, settings, _arcface_reference(insightface_models))
    record = stages.preview(ctx)
    assert record["withheld"] is True and "withheld by our safety check" in record["skipped"]
    assert not ctx.previews
    assert not [p for p in ctx.list_blobs(f"jobs/{ctx.job_id}/") if "preview" in p]
    stages.close()
