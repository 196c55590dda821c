"""The output check: real loading paths, real classification, and nothing flagged delivered."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from headshots.errors import ModelMissing
from headshots.generation.context import Retention, lora_path, reference_embedding_path
from headshots.generation.local_context import LocalContext, run_stages
from headshots.generation.safety import (
    DEFAULT_CHECKER,
    SafetyChecker,
    checker_setting,
    load_safety_checker,
)
from headshots.generation.stages import GenerationOptions, GenerationStages
from headshots.queue.contracts import ChatTarget, JobRequest, StyleChoice, UserRef
from headshots.queue.deliver import shortfall_message
from headshots.settings import Settings

FAST = GenerationOptions(sample_steps=2, validate_likeness=False, refine_faces=False)


def _photo(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((64, 80), Image.Resampling.BICUBIC)


def test_setting_picks_the_base_models_own_checker_then_the_hub(
    tiny_settings: Settings, tiny_model_path: Path, safety_checker_path: Path, tmp_path: Path
) -> None:
    auto = tiny_settings.model_copy(update={"safety_checker": "auto"})
    assert checker_setting(auto, tiny_model_path) == DEFAULT_CHECKER  # the tiny model has none
    with_own = tmp_path / "model"
    shutil.copytree(tiny_model_path, with_own)
    shutil.copytree(safety_checker_path, with_own / "safety_checker")
    (with_own / "feature_extractor").mkdir()
    shutil.copy(safety_checker_path / "preprocessor_config.json", with_own / "feature_extractor")
    assert checker_setting(auto, with_own) == str(with_own)
    own = SafetyChecker.load(auto, str(with_own))
    assert own.flags([_photo(1)]) == [False]
    off = tiny_settings.model_copy(update={"safety_checker": "none"})
    assert load_safety_checker(off, with_own) is None


def test_a_configured_check_that_cannot_load_fails_closed(
    tiny_settings: Settings, tmp_path: Path
) -> None:
    # Offline and not cached: the job must fail, not deliver unchecked images.
    auto = tiny_settings.model_copy(update={"safety_checker": "auto", "hf_offline": True})
    with pytest.raises(ModelMissing, match="stable-diffusion-safety-checker"):
        load_safety_checker(auto, tmp_path)
    with pytest.raises(ModelMissing, match="does not exist"):
        SafetyChecker.load(tiny_settings, str(tmp_path / "missing"))


def test_the_checker_flags_by_what_the_image_shows(
    tiny_settings: Settings, safety_checker_path: Path, tmp_path: Path
) -> None:
    import torch

    checker = SafetyChecker.load(tiny_settings, str(safety_checker_path))
    model = checker.model
    target, other = _photo(1), _photo(2)
    pixels = checker.processor([target, other], return_tensors="pt").pixel_values
    with torch.no_grad():
        embeds = model.visual_projection(model.vision_model(pixels)[1])
    embeds = torch.nn.functional.normalize(embeds)
    closeness = float(embeds[0] @ embeds[1])
    assert closeness < 0.9999
    # One concept is exactly the target's embedding, with a threshold between the two images.
    with torch.no_grad():
        model.concept_embeds[0] = embeds[0]
        model.concept_embeds_weights[0] = (1.0 + closeness) / 2
    assert checker.flags([other, target, other]) == [False, True, False]


def test_flagged_images_are_never_delivered(
    tiny_settings: Settings, flagging_checker_path: Path, make_tiny_lora: Any, tmp_path: Path
) -> None:
    settings = tiny_settings.model_copy(update={"safety_checker": str(flagging_checker_path)})
    request = JobRequest(
        user=UserRef(platform="cli", user_id=1),
        target=ChatTarget(platform="cli", chat_id=1, user_id=1),
        upload_id="u1",
        style=StyleChoice(preset="corporate", subject_class="woman", count=2, seed=3),
    )
    ctx = LocalContext(tmp_path, request, settings, train_job_id="trained")
    ctx.write_blob(lora_path("trained"), make_tiny_lora(1), Retention.LORA)
    buffer = io.BytesIO()
    np.save(buffer, np.ones(128, np.float32) / np.sqrt(128))  # the person's reference face
    ctx.write_blob(reference_embedding_path("trained"), buffer.getvalue(), Retention.LORA)
    stages = GenerationStages(settings, FAST)
    run_stages(ctx, stages.stage_set().generate)
    record = ctx.output_of("rank")
    assert record is not None
    assert record["results"] == [] and record["contact_sheet"] is None
    assert record["withheld"] == record["generated"] == 3
    assert record["missing"] == 2 and record["reasons"]["withheld"] == 3
    assert "message" not in record  # the shortfall message says it (queue/deliver.py)
    text = shortfall_message(record)
    assert text is not None and text.startswith("None of the 3 headshots I made can be sent.")
    assert "3 were withheld by our safety check" in text and "Make 2 more" in text
    assert not ctx.list_blobs(f"jobs/{ctx.job_id}/results/")
    stages.close()
