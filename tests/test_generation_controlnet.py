"""The reference photo's ControlNets: configuration, residency, and the stages that use them.

Tiny random ControlNets are built from the tiny UNets (``ControlNetModel.from_unet``, output
convolutions randomised so they change the picture); the reference is a real photo.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from headshots.errors import ConfigurationError, ModelMissing, NotFound, UserError
from headshots.generation.context import Retention, lora_path
from headshots.generation.controlnet import load_controlnet, resolve_controlnet
from headshots.generation.faces import normalise_reference
from headshots.generation.local_context import LocalContext
from headshots.generation.pipeline import Control, ResidentPipeline
from headshots.generation.stages import REFERENCE_UNAVAILABLE, GenerationOptions, GenerationStages
from headshots.model_family import KLEIN_NO_CONTROLNET, reference_hints
from headshots.queue.contracts import (
    ChatTarget,
    JobRequest,
    ReferenceChoice,
    StyleChoice,
    UserRef,
)
from headshots.settings import Settings
from headshots.style.presets import build_prompt_spec
from tests.plugins.faces import astronaut_image, to_png

FAST = GenerationOptions(sample_steps=3, validate_likeness=False)


def _reference(image: Image.Image, hint: str = "pose") -> tuple[ReferenceChoice, bytes]:
    data = normalise_reference(to_png(image))
    return ReferenceChoice.of(data, hint), data  # type: ignore[arg-type]


def _job(
    root: Path,
    settings: Settings,
    lora: bytes,
    *,
    user_id: int = 1,
    reference: tuple[ReferenceChoice, bytes] | None = None,
    store_reference: bool = True,
    seed: int = 5,
) -> LocalContext:
    request = JobRequest(
        user=UserRef(platform="cli", user_id=user_id),
        target=ChatTarget(platform="cli", chat_id=user_id, user_id=user_id),
        upload_id=f"u{user_id}",
        kind="new_style",
        lora_job_id="trained",
        style=StyleChoice(
            subject_class="woman",
            count=1,
            seed=seed,
            aspect_ratio="4:5",
            reference=reference[0] if reference else None,
        ),
    )
    ctx = LocalContext(root / f"user{user_id}", request, settings, train_job_id="trained")
    ctx.write_blob(lora_path("trained"), lora, Retention.LORA)
    if reference is not None and store_reference:
        ctx.write_blob(reference[0].path, reference[1], Retention.SELFIE)
    return ctx


def _pixels(ctx: LocalContext, path: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(ctx.read_blob(path))).convert("RGB")).astype(float)


# --- configuration ------------------------------------------------------------------------------


def test_an_unset_controlnet_names_the_setting_and_klein_says_why(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, state_dir=tmp_path)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="HEADSHOTS_CONTROLNET_SD15_POSE"):
        resolve_controlnet(settings, "sd15", "pose")
    with pytest.raises(ConfigurationError, match="HEADSHOTS_CONTROLNET_SDXL_CANNY"):
        resolve_controlnet(settings, "sdxl", "canny")
    everything = settings.model_copy(update={"controlnet_sd15_pose": str(tmp_path)})
    with pytest.raises(ConfigurationError, match=r"no ControlNet for FLUX\.2"):
        resolve_controlnet(everything, "flux2-klein", "pose")
    # A folder that is not a ControlNet, and a hub id that is not cached offline.
    with pytest.raises(ModelMissing, match="not a diffusers ControlNet folder"):
        resolve_controlnet(everything, "sd15", "pose")
    offline = settings.model_copy(
        update={"controlnet_sd15_canny": "lllyasviel/control_v11p_sd15_canny", "hf_offline": True}
    )
    with pytest.raises(ModelMissing, match="HEADSHOTS_CONTROLNET_SD15_CANNY"):
        resolve_controlnet(offline, "sd15", "canny")


def test_the_chats_offer_only_the_hints_of_the_base_models_family(
    tiny_settings: Settings,
    tiny_sdxl_settings: Settings,
    tiny_klein_settings: Settings,
    tiny_controlnet_path: Path,
) -> None:
    assert reference_hints(tiny_settings) == ()
    sd15_pose = {"controlnet_sd15_pose": str(tiny_controlnet_path)}
    assert reference_hints(tiny_settings.model_copy(update=sd15_pose)) == ("pose",)
    both = {**sd15_pose, "controlnet_sd15_canny": "lllyasviel/control_v11p_sd15_canny"}
    assert reference_hints(tiny_settings.model_copy(update=both)) == ("pose", "canny")
    # An SD1.5 ControlNet is no use to an SDXL base; klein has none at all.
    assert reference_hints(tiny_sdxl_settings.model_copy(update=sd15_pose)) == ()
    every = {f"controlnet_{f}_{h}": "x/y" for f in ("sd15", "sdxl") for h in ("pose", "canny")}
    assert reference_hints(tiny_klein_settings.model_copy(update=every)) == ()
    assert "FLUX.2 [klein]" in KLEIN_NO_CONTROLNET
    # A hub id base is judged by every family's ControlNets (the worker says the rest).
    hub = tiny_settings.model_copy(update={"base_model": "org/some-model", **sd15_pose})
    assert reference_hints(hub) == ("pose",)


# --- the resident pipeline ----------------------------------------------------------------------


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_a_resident_controlnet_steers_every_image_and_loads_once(
    family: str,
    tiny_settings: Settings,
    tiny_sdxl_settings: Settings,
    tiny_controlnet_path: Path,
    tiny_sdxl_controlnet_path: Path,
) -> None:
    base, controlnet = (
        (tiny_settings, tiny_controlnet_path)
        if family == "sd15"
        else (tiny_sdxl_settings, tiny_sdxl_controlnet_path)
    )
    settings = base.model_copy(update={f"controlnet_{family}_pose": str(controlnet)})
    loads: list[str] = []

    def loader(s: Settings, fam: Any, hint: Any) -> Any:
        loads.append(f"{fam}/{hint}")
        return load_controlnet(s, fam, hint)

    resident = ResidentPipeline(settings, controlnet_loader=loader)
    spec = build_prompt_spec(
        StyleChoice(subject_class="woman", count=1, seed=3, aspect_ratio="4:5"),
        job_id="j",
        native_resolution=resident.native_resolution,
        count=1,
        steps=3,
        family=family,
    )
    size = (spec.width, spec.height)
    rng = np.random.default_rng(0)
    control_image = Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype("uint8"))
    start = Image.new("RGB", size, (180, 120, 90))

    def make(control: Control | None) -> tuple[np.ndarray, dict[str, Any]]:
        result = resident.generate(spec, lora=None, adapter_name="job_j", control=control)
        return np.asarray(result.images[0].image).astype(float), result.record

    plain, plain_record = make(None)
    steered, record = make(Control("pose", control_image, 0.8))
    from_reference, ref_record = make(Control("pose", control_image, 0.8, init=start, strength=0.8))
    again, _ = make(Control("pose", control_image, 0.8))
    assert "control" not in plain_record
    assert record["control"] == {"hint": "pose", "conditioning_scale": 0.8}
    assert ref_record["control"]["reference_strength"] == 0.8
    assert steered.shape == plain.shape == from_reference.shape
    assert np.abs(steered - plain).mean() > 0.1
    assert np.abs(from_reference - steered).mean() > 0.1
    assert np.array_equal(steered, again)  # the same seed and control: the same image
    assert loads == [f"{family}/pose"]  # loaded once, kept resident
    resident.close()


# --- the stages ---------------------------------------------------------------------------------


@pytest.fixture
def reference_settings(tiny_settings: Settings, tiny_controlnet_path: Path) -> Settings:
    return tiny_settings.model_copy(update={"controlnet_sd15_pose": str(tiny_controlnet_path)})


def test_a_real_reference_photo_frames_the_job_and_is_kept_in_its_record(
    reference_settings: Settings, make_tiny_lora: Any, tmp_path: Path
) -> None:
    lora = make_tiny_lora(1)
    reference = _reference(astronaut_image())
    stages = GenerationStages(reference_settings, FAST)
    ctx = _job(tmp_path, reference_settings, lora, reference=reference)
    record = stages.generate(ctx)
    control = record["generation"]["control"]
    assert control["hint"] == "pose" and control["conditioning_scale"] == 0.8
    assert control["reference_strength"] == 0.8
    assert control["reference"] == reference[0].path
    assert control["reference_sha256"] == reference[0].sha256
    assert control["size"] == [64, 80]
    # Keypoints were found on the astronaut's face: the nose lies inside the picture.
    nose = control["keypoints"]["body"][0]
    assert nose is not None and 0 < nose[0] < 1 and 0 < nose[1] < 1
    control_png = ctx.read_blob(control["image"])
    assert Image.open(io.BytesIO(control_png)).size == (64, 80)

    # The same seed without the reference draws another picture.
    plain_ctx = _job(tmp_path, reference_settings, lora, user_id=2)
    plain = stages.generate(plain_ctx)
    assert "control" not in plain["generation"]
    assert plain["generation"]["seeds"] == record["generation"]["seeds"]
    with_ref = _pixels(ctx, record["images"][0]["path"])
    without = _pixels(plain_ctx, plain["images"][0]["path"])
    assert np.abs(with_ref - without).mean() > 1.0

    # A team: another member's job with the kit's same photo gets the same control image.
    member = _job(tmp_path, reference_settings, lora, user_id=3, reference=reference, seed=9)
    member_control = stages.generate(member)["generation"]["control"]
    assert member.read_blob(member_control["image"]) == control_png
    assert member_control["keypoints"] == control["keypoints"]
    stages.close()


def test_canny_hint_uses_the_canny_controlnet(
    tiny_settings: Settings, tiny_controlnet_path: Path, make_tiny_lora: Any, tmp_path: Path
) -> None:
    settings = tiny_settings.model_copy(update={"controlnet_sd15_canny": str(tiny_controlnet_path)})
    stages = GenerationStages(settings, FAST)
    reference = _reference(astronaut_image(), hint="canny")
    record = stages.generate(_job(tmp_path, settings, make_tiny_lora(1), reference=reference))
    assert record["generation"]["control"]["hint"] == "canny"
    stages.close()


def test_a_reference_the_job_cannot_use_fails_with_a_reason(
    reference_settings: Settings,
    tiny_settings: Settings,
    make_tiny_lora: Any,
    flagging_checker_path: Path,
    tmp_path: Path,
) -> None:
    lora = make_tiny_lora(1)
    reference = _reference(astronaut_image())
    stages = GenerationStages(reference_settings, FAST)
    gone = _job(tmp_path, reference_settings, lora, reference=reference, store_reference=False)
    with pytest.raises(NotFound, match="reference photo is no longer stored"):
        stages.generate(gone)
    # The check stage says it before any selfie is checked or any step trained.
    with pytest.raises(NotFound, match="reference photo is no longer stored"):
        gone.write_blob("uploads/u1/01.jpg", b"not looked at", Retention.SELFIE)
        stages.check(gone)
    stages.close()

    # A worker without the ControlNet: the user reads a plain sentence, the log says what to set.
    unconfigured = GenerationStages(tiny_settings, FAST)
    job = _job(tmp_path / "b", tiny_settings, lora, reference=reference)
    with pytest.raises(UserError) as refused:
        unconfigured.generate(job)
    assert str(refused.value) == REFERENCE_UNAVAILABLE
    unconfigured.close()

    # The reference passes the output check first.
    strict = reference_settings.model_copy(update={"safety_checker": str(flagging_checker_path)})
    checked = GenerationStages(strict, FAST)
    with pytest.raises(UserError, match="did not pass the content check"):
        checked.generate(_job(tmp_path / "c", strict, lora, reference=reference))
    checked.close()


def test_no_face_in_a_pose_reference_is_a_clear_refusal(
    reference_settings: Settings, make_tiny_lora: Any, tmp_path: Path
) -> None:
    gradient = np.tile(np.linspace(0, 255, 256, dtype=np.uint8), (256, 1))
    reference = _reference(Image.fromarray(gradient).convert("RGB"))
    stages = GenerationStages(reference_settings, FAST)
    with pytest.raises(UserError, match=r"[Nn]o face"):
        stages.generate(_job(tmp_path, reference_settings, make_tiny_lora(1), reference=reference))
    stages.close()
