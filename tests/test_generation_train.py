from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from headshots.errors import JobCancelled
from headshots.generation.train import (
    LORA_TARGET_MODULES,
    LORA_WEIGHT_NAME,
    DirectoryCheckpoints,
    TrainConfig,
    TrainProgress,
    activation_bytes,
    adamw_options,
    batched_learning_rate,
    batched_steps,
    decide_gradient_checkpointing,
    default_steps,
    train_lora,
)

FAST = TrainConfig(
    resolution=64,
    steps=12,
    rank=4,
    learning_rate=5e-3,
    checkpoint_every=4,
    progress_every=2,
    eval_samples=4,
)


def _image(pipe: Any, seed: int = 3) -> Any:
    import numpy as np
    import torch

    out = pipe(
        "photo of ohwx person",
        num_inference_steps=3,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    ).images[0]
    return np.asarray(out)


def test_training_lowers_loss_and_saves_loadable_diffusers_lora(
    tiny_pipeline: Any, training_images: list[Any], tmp_path: Path
) -> None:
    import numpy as np

    config = TrainConfig(resolution=64, steps=40, rank=4, learning_rate=5e-3, eval_samples=8)
    progress: list[TrainProgress] = []
    result = train_lora(
        tiny_pipeline, training_images, config, output_dir=tmp_path, on_progress=progress.append
    )
    assert result.eval_loss_before is not None and result.eval_loss_after is not None
    assert result.eval_loss_after < result.eval_loss_before * 0.95
    assert [p.step for p in progress] == [10, 20, 30, 40]
    assert result.optimizer_steps == 40

    weights = load_file(str(tmp_path / LORA_WEIGHT_NAME))
    # diffusers format (as the DreamBooth-LoRA script writes it): unet.-prefixed lora.down/up
    # pairs on the four attention projections.
    assert weights and all(k.startswith("unet.") for k in weights)
    assert {k.rsplit(".", 3)[-3] + "." + k.rsplit(".", 3)[-2] for k in weights} == {
        "lora.down",
        "lora.up",
    }
    assert any(".to_out.0." in k for k in weights) and any(".to_q." in k for k in weights)

    base = _image(tiny_pipeline)
    tiny_pipeline.load_lora_weights(str(tmp_path), adapter_name="person")
    with_lora = _image(tiny_pipeline)
    assert np.abs(with_lora - base).max() > 1e-3, "the LoRA must change the output"
    tiny_pipeline.unload_lora_weights()
    np.testing.assert_array_equal(_image(tiny_pipeline), base)


def _unet_snapshot(unet: Any) -> dict[str, Any]:
    """Everything training may change in a UNet: module tree, flags, hooks, weights."""
    modules = [
        (
            name,
            type(module).__name__,
            module.training,
            len(module._forward_hooks),
            len(module._forward_pre_hooks),
            len(module._backward_hooks),
            len(module._backward_pre_hooks),
            len(module._state_dict_hooks),
            len(module._load_state_dict_pre_hooks),
        )
        for name, module in unet.named_modules()
    ]
    return {
        "modules": modules,
        "params": [(n, p.requires_grad, p.dtype) for n, p in unet.named_parameters()],
        "peft": sorted(getattr(unet, "peft_config", None) or {}),
        "checkpointing": unet.is_gradient_checkpointing,
        "weights": {k: v.clone() for k, v in unet.state_dict().items()},
    }


def _assert_same_unet(before: dict[str, Any], after: dict[str, Any]) -> None:
    import torch

    weights_before, weights_after = before.pop("weights"), after.pop("weights")
    assert after == before
    assert weights_after.keys() == weights_before.keys()
    for key, value in weights_before.items():
        assert torch.equal(weights_after[key], value), key


class _Boom(Exception):
    pass


def _explode_at_6(progress: TrainProgress) -> None:
    if progress.step == 6:
        raise _Boom("the GPU fell over")


@pytest.mark.parametrize(
    ("ending", "gradient_checkpointing"),
    [("success", False), ("exception", True), ("cancel", False), ("validator", False)],
)
def test_training_leaves_the_resident_unet_exactly_as_it_was(
    tiny_pipeline: Any,
    training_images: list[Any],
    tmp_path: Path,
    ending: str,
    gradient_checkpointing: bool,
) -> None:
    import numpy as np

    unet = tiny_pipeline.unet
    base = _image(tiny_pipeline)
    before = _unet_snapshot(unet)
    config = TrainConfig(**{**FAST.__dict__, "gradient_checkpointing": gradient_checkpointing})
    seen_adapter: list[list[str]] = []

    def validate(model: Any, step: int) -> float | None:
        # The validator sees the resident UNet with the training adapter active, in eval mode.
        assert model is unet and not model.training
        seen_adapter.append(list(model.active_adapters()))
        if ending == "validator":
            raise _Boom("validation crashed")
        return None

    calls = 0

    def cancel() -> None:
        nonlocal calls
        calls += 1
        if ending == "cancel" and calls == 5:
            raise JobCancelled("cancelled by user")

    expected = {"exception": _Boom, "validator": _Boom, "cancel": JobCancelled}.get(ending)
    with pytest.raises(expected) if expected else _no_raise():
        train_lora(
            tiny_pipeline,
            training_images,
            config,
            output_dir=tmp_path,
            on_progress=_explode_at_6 if ending == "exception" else None,
            check_cancelled=cancel,
            validate=validate,
        )
    if ending in ("success", "validator"):
        assert seen_adapter and seen_adapter[0] == ["headshots_training"]
    assert tiny_pipeline.unet is unet
    _assert_same_unet(before, _unet_snapshot(unet))
    np.testing.assert_array_equal(_image(tiny_pipeline), base)


class _no_raise:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_training_keeps_a_loaded_adapter_loaded_and_active(
    tiny_pipeline: Any, training_images: list[Any], tmp_path: Path
) -> None:
    import numpy as np

    config = TrainConfig(**{**FAST.__dict__, "steps": 4})
    train_lora(tiny_pipeline, training_images, config, output_dir=tmp_path / "other")
    tiny_pipeline.load_lora_weights(str(tmp_path / "other"), adapter_name="job_x")
    with_other = _image(tiny_pipeline)
    before = _unet_snapshot(tiny_pipeline.unet)
    train_lora(tiny_pipeline, training_images, config, output_dir=tmp_path / "mine")
    _assert_same_unet(before, _unet_snapshot(tiny_pipeline.unet))
    assert tiny_pipeline.unet.active_adapters() == ["job_x"]
    np.testing.assert_array_equal(_image(tiny_pipeline), with_other)


def test_saved_lora_has_the_diffusers_script_layout_and_loads_exactly(
    tiny_pipeline: Any, training_images: list[Any], tmp_path: Path
) -> None:
    """Same keys and shapes as diffusers' DreamBooth-LoRA script writes, and every value loads."""
    import copy

    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.utils.state_dict_utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    config = TrainConfig(**{**FAST.__dict__, "steps": 4})
    train_lora(tiny_pipeline, training_images, config, output_dir=tmp_path / "ours")
    saved = load_file(str(tmp_path / "ours" / LORA_WEIGHT_NAME))

    # The script's way: a default-named adapter on the UNet, peft state -> diffusers names.
    reference_unet = copy.deepcopy(tiny_pipeline.unet)
    reference_unet.add_adapter(
        LoraConfig(r=config.rank, lora_alpha=config.rank, target_modules=list(LORA_TARGET_MODULES))
    )
    StableDiffusionPipeline.save_lora_weights(
        save_directory=tmp_path / "script",
        unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(reference_unet)),
    )
    reference = load_file(str(tmp_path / "script" / LORA_WEIGHT_NAME))
    assert {k: v.shape for k, v in saved.items()} == {k: v.shape for k, v in reference.items()}

    tiny_pipeline.load_lora_weights(str(tmp_path / "ours"), adapter_name="person")
    loaded = convert_state_dict_to_diffusers(
        get_peft_model_state_dict(tiny_pipeline.unet, adapter_name="person")
    )
    assert {f"unet.{k}" for k in loaded} == saved.keys()
    for key, value in loaded.items():
        assert torch.equal(value, saved[f"unet.{key}"]), key
    tiny_pipeline.unload_lora_weights()


def test_resume_after_kill_runs_the_configured_steps_once(
    tiny_pipeline: Any, training_images: list[Any], tmp_path: Path
) -> None:
    import torch

    checkpoints = DirectoryCheckpoints(tmp_path / "ckpt")

    def kill_at_8(progress: TrainProgress) -> None:
        if progress.step == 8:
            raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError, match="killed"):
        train_lora(
            tiny_pipeline,
            training_images,
            FAST,
            output_dir=tmp_path / "a",
            checkpoints=checkpoints,
            on_progress=kill_at_8,
        )
    assert checkpoints.path.is_file()
    assert not (tmp_path / "a" / LORA_WEIGHT_NAME).exists()

    resumed = train_lora(
        tiny_pipeline, training_images, FAST, output_dir=tmp_path / "a", checkpoints=checkpoints
    )
    assert resumed.resumed_from == 8
    assert resumed.steps_run == 4
    assert resumed.optimizer_steps == FAST.steps  # not 8 + 12
    assert len(resumed.losses) == FAST.steps

    # The interrupted run ends exactly where an uninterrupted one does (RNG state restored).
    straight = train_lora(tiny_pipeline, training_images, FAST, output_dir=tmp_path / "b")
    a = load_file(str(tmp_path / "a" / LORA_WEIGHT_NAME))
    b = load_file(str(tmp_path / "b" / LORA_WEIGHT_NAME))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    assert straight.losses == pytest.approx(resumed.losses)


def test_checkpoint_of_another_config_is_ignored(
    tiny_pipeline: Any, training_images: list[Any], tmp_path: Path
) -> None:
    checkpoints = DirectoryCheckpoints(tmp_path / "ckpt")

    def stop(progress: TrainProgress) -> None:
        if progress.step == 4:
            raise JobCancelled("cancelled")

    with pytest.raises(JobCancelled):
        train_lora(
            tiny_pipeline,
            training_images,
            FAST,
            output_dir=tmp_path,
            checkpoints=checkpoints,
            on_progress=stop,
        )
    other = TrainConfig(**{**FAST.__dict__, "rank": 8})
    result = train_lora(
        tiny_pipeline, training_images, other, output_dir=tmp_path, checkpoints=checkpoints
    )
    assert result.resumed_from == 0 and result.optimizer_steps == other.steps


def test_cancel_check_stops_between_steps(
    tiny_pipeline: Any, training_images: list[Any], tmp_path: Path
) -> None:
    calls = 0

    def cancel() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise JobCancelled("cancelled by user")

    with pytest.raises(JobCancelled):
        train_lora(
            tiny_pipeline, training_images, FAST, output_dir=tmp_path, check_cancelled=cancel
        )
    assert calls == 3


def test_validation_with_early_stopping_keeps_the_best_checkpoint(
    tiny_pipeline: Any, training_images: list[Any], tmp_path: Path
) -> None:
    scores = {4: 0.2, 8: 0.9, 12: 0.5}
    seen: list[int] = []

    def validate(unet: Any, step: int) -> float | None:
        seen.append(step)
        return scores[step]

    result = train_lora(
        tiny_pipeline,
        training_images,
        replace(FAST, early_stopping=True),
        output_dir=tmp_path,
        validate=validate,
    )
    assert seen == [4, 8, 12]
    assert result.best_step == 8 and result.best_score == 0.9


def test_without_early_stopping_the_likeness_is_validated_once_at_the_end(
    tiny_pipeline: Any, training_images: list[Any], tmp_path: Path
) -> None:
    """Each validation samples images (~9 s on the H200): only the end's score is needed."""
    seen: list[int] = []

    def validate(unet: Any, step: int) -> float | None:
        seen.append(step)
        return 0.4

    result = train_lora(
        tiny_pipeline, training_images, FAST, output_dir=tmp_path, validate=validate
    )
    assert not FAST.early_stopping and seen == [FAST.steps]
    assert result.best_step == FAST.steps and result.best_score == 0.4
    assert FAST.fingerprint(4, 0) != replace(FAST, early_stopping=True).fingerprint(4, 0)


def test_defaults_per_family() -> None:
    assert default_steps(2) == 400 and default_steps(7) == 700 and default_steps(30) == 1200
    sd15 = TrainConfig.for_family("sd15", photos=6)
    assert (sd15.resolution, sd15.rank, sd15.learning_rate, sd15.steps) == (512, 16, 1e-4, 600)
    assert not sd15.gradient_checkpointing
    sdxl = TrainConfig.for_family("sdxl", photos=20, steps=50)
    assert (sdxl.resolution, sdxl.gradient_checkpointing, sdxl.steps) == (1024, True, 50)
    # On a CPU checkpointing only slows the run: off, unless the setting forces it.
    on_cpu = TrainConfig.for_family("sdxl", photos=20, device_type="cpu")
    assert not on_cpu.gradient_checkpointing and "cpu" in on_cpu.gradient_checkpointing_reason
    forced = TrainConfig.for_family("sdxl", photos=20, device_type="cpu", checkpointing="on")
    assert forced.gradient_checkpointing and "forced" in forced.gradient_checkpointing_reason


def test_a_larger_batch_sees_as_many_images_in_fewer_steps() -> None:
    one = TrainConfig.for_family("sd15", photos=7)
    two = TrainConfig.for_family("sd15", photos=7, batch_size=2)
    four = TrainConfig.for_family("sd15", photos=7, steps=201, batch_size=4)
    assert (one.steps, one.batch_size, one.learning_rate) == (700, 1, 1e-4)
    assert (two.steps, two.batch_size) == (350, 2)
    assert (four.steps, four.batch_size) == (51, 4), "ceil: never fewer images than asked"
    # Adam's square-root rule (see batched_learning_rate).
    assert two.learning_rate == pytest.approx(1e-4 * 2**0.5)
    assert four.learning_rate == pytest.approx(2e-4)
    # An explicit learning rate is taken as given.
    fixed = TrainConfig.for_family("sd15", photos=7, batch_size=4, learning_rate=3e-4)
    assert fixed.learning_rate == 3e-4
    assert batched_steps(1, 4) == 1 and batched_steps(800, 1) == 800
    assert batched_learning_rate(1e-4, 1) == 1e-4


def test_gradient_checkpointing_only_when_memory_is_short() -> None:
    gib = 1 << 30
    # An H200 with the base resident has ~120 GiB free; a 24 GiB card with SDXL loaded ~14.
    roomy = TrainConfig.for_family("sdxl", photos=8, free_memory=120 * gib)
    assert not roomy.gradient_checkpointing
    assert TrainConfig.for_family("sdxl", photos=8, free_memory=14 * gib).gradient_checkpointing
    assert not TrainConfig.for_family("sd15", photos=8, free_memory=14 * gib).gradient_checkpointing
    assert TrainConfig.for_family("sd15", photos=8, free_memory=4 * gib).gradient_checkpointing
    # A larger batch or size needs more: 120 GiB is not enough for SDXL at batch 4.
    assert TrainConfig.for_family(
        "sdxl", photos=8, free_memory=120 * gib, batch_size=4
    ).gradient_checkpointing
    assert not _decide("sdxl", resolution=768, free_bytes=40 * gib).enabled
    # Free memory unknown on a CUDA device, or the device unknown: the cautious defaults.
    assert _decide("sdxl", free_bytes=None).enabled
    assert _decide("sdxl", free_bytes=None, device_type=None).enabled
    assert not _decide("sd15", resolution=512, free_bytes=None).enabled
    # The decision changes memory, not results: a retry on another card resumes the checkpoint.
    assert roomy.fingerprint(8, 0) == replace(roomy, gradient_checkpointing=True).fingerprint(8, 0)
    assert roomy.fingerprint(8, 0) != replace(roomy, rank=8).fingerprint(8, 0)


def _decide(
    family: Any,
    *,
    resolution: int = 1024,
    batch_size: int = 1,
    free_bytes: int | None,
    device_type: str | None = "cuda",
    policy: Any = "auto",
) -> Any:
    return decide_gradient_checkpointing(
        policy,
        family,
        resolution=resolution,
        batch_size=batch_size,
        device_type=device_type,
        free_bytes=free_bytes,
    )


def test_the_checkpointing_decision_from_injected_memory_figures() -> None:
    gib = 1 << 30
    # The estimate: per example at the native size, two examples (instance + prior) per entry,
    # the square of the resolution.
    assert activation_bytes("sd15", resolution=512, batch_size=1) == 8 * gib
    assert activation_bytes("sd15", resolution=1024, batch_size=1) == 32 * gib
    assert activation_bytes("sdxl", resolution=1024, batch_size=2) == 96 * gib
    # Exactly enough is enough; a byte short is not.
    assert not _decide("sd15", resolution=512, free_bytes=8 * gib).enabled
    assert _decide("sd15", resolution=512, free_bytes=8 * gib - 1).enabled
    # The H200 of issue 20: ~120 GiB free with SDXL resident; an H100: ~70; a 24 GiB card: ~14.
    roomy = _decide("sdxl", free_bytes=120 * gib)
    assert not roomy.enabled and "120.0 GiB free" in roomy.reason and "48.0 GiB" in roomy.reason
    assert not _decide("sdxl", free_bytes=70 * gib).enabled
    assert _decide("sdxl", free_bytes=70 * gib, batch_size=2).enabled
    short = _decide("sdxl", free_bytes=14 * gib)
    assert short.enabled and short.reason.startswith("on (auto")
    # Never on a CPU (or another non-CUDA device) unless forced; forced both ways anywhere.
    assert not _decide("sdxl", free_bytes=None, device_type="cpu").enabled
    assert not _decide("flux2-klein", free_bytes=1, device_type="mps").enabled
    assert _decide("sd15", free_bytes=None, device_type="cpu", policy="on").enabled
    assert not _decide("sdxl", free_bytes=1, policy="off").enabled
    assert _decide("sd15", free_bytes=500 * gib, policy="on").enabled


@pytest.mark.parametrize(("resident", "decided"), [(False, True), (True, False), (False, False)])
def test_the_unet_trains_with_the_decided_checkpointing_and_the_report_says_so(
    tiny_pipeline: Any,
    training_images: list[Any],
    tmp_path: Path,
    monkeypatch: Any,
    resident: bool,
    decided: bool,
) -> None:
    from headshots.generation import train

    unet = tiny_pipeline.unet
    if resident:
        unet.enable_gradient_checkpointing()
    real = train._Trainer._forward_loss
    seen: list[bool] = []

    def forward_loss(self: Any, *args: Any) -> Any:
        if self.unet.training:  # a training step, not the eval loss
            seen.append(bool(self.unet.is_gradient_checkpointing))
        return real(self, *args)

    monkeypatch.setattr(train._Trainer, "_forward_loss", forward_loss)
    decision = _decide(
        "sd15", free_bytes=None, device_type="cpu", policy="on" if decided else "off"
    )
    config = replace(
        FAST,
        steps=3,
        gradient_checkpointing=decision.enabled,
        gradient_checkpointing_reason=decision.reason,
    )
    try:
        result = train_lora(tiny_pipeline, training_images, config, output_dir=tmp_path)
        assert seen == [decided] * 3
        assert unet.is_gradient_checkpointing == resident, "the resident UNet is left as it was"
    finally:
        if resident:
            unet.disable_gradient_checkpointing()
    record = result.to_record()
    assert record["gradient_checkpointing"] is decided
    assert record["gradient_checkpointing_reason"] == decision.reason
    assert "forced" in record["gradient_checkpointing_reason"]


def test_adamw_is_fused_on_cuda_and_foreach_elsewhere(
    tiny_pipeline: Any, training_images: list[Any], tmp_path: Path, monkeypatch: Any
) -> None:
    from headshots.generation import train

    assert adamw_options("cuda") == {"fused": True}
    assert adamw_options("cpu") == {"foreach": True}
    assert adamw_options("mps") == {"foreach": True}
    seen: list[dict[str, Any]] = []
    real = train._Trainer.step

    def step(self: Any) -> float:
        seen.append(dict(self.optimizer.defaults))
        return real(self)

    monkeypatch.setattr(train._Trainer, "step", step)
    train_lora(tiny_pipeline, training_images, replace(FAST, steps=1), output_dir=tmp_path)
    assert seen and seen[0]["foreach"] is True and not seen[0]["fused"]


def test_a_step_out_of_device_memory_turns_checkpointing_on_and_goes_on(
    tiny_pipeline: Any, training_images: list[Any], tmp_path: Path, monkeypatch: Any, caplog: Any
) -> None:
    import torch

    from headshots.generation import train

    real = train._Trainer._forward_loss
    seen: list[bool] = []

    def forward_loss(self: Any, *args: Any) -> Any:
        seen.append(bool(self.unet.is_gradient_checkpointing))
        if len(seen) == 2:  # the second step runs out of memory without checkpointing
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, *args)

    monkeypatch.setattr(train._Trainer, "_forward_loss", forward_loss)
    config = replace(FAST, steps=4, eval_samples=0)
    with caplog.at_level("WARNING", logger="headshots.generation.train"):
        result = train_lora(tiny_pipeline, training_images, config, output_dir=tmp_path)
    assert seen == [False, False, True, True, True], "the failed step is tried again"
    assert result.optimizer_steps == 4 and (tmp_path / LORA_WEIGHT_NAME).is_file()
    assert result.gradient_checkpointing
    assert result.gradient_checkpointing_reason.endswith("after a step ran out of memory")
    assert sum("turning it on" in r.message for r in caplog.records) == 1
    assert not tiny_pipeline.unet.is_gradient_checkpointing, "the resident UNet is left as it was"


def test_an_fp16_vae_that_must_upcast_encodes_the_photos_in_fp32(
    training_images: list[Any],
) -> None:
    """SDXL's VAE (``force_upcast``) gives NaN latents in fp16: training must encode in fp32."""
    import torch

    from headshots.generation.tiny import build_tiny_pipeline
    from headshots.generation.train import _encode_once

    pipe = build_tiny_pipeline()
    pipe.vae.register_to_config(force_upcast=True)
    pipe.vae.to(torch.float16)
    seen: list[tuple[torch.dtype, torch.dtype]] = []
    encode = pipe.vae.encode

    def spy(pixels: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        seen.append((pixels.dtype, pipe.vae.dtype))
        return encode(pixels, *args, **kwargs)

    pipe.vae.encode = spy
    cache = _encode_once(pipe, training_images[:2], [], FAST)
    assert seen and set(seen) == {(torch.float32, torch.float32)}
    assert pipe.vae.dtype == torch.float16, "the pipeline keeps its fp16 VAE"
    assert torch.isfinite(cache.latent_params).all()


def _aot_eager_counting(graphs: list[Any]) -> Any:
    """aot_eager (dynamo + AOTAutograd, no code generation) that records each graph it gets."""
    from torch._dynamo.backends.registry import lookup_backend

    aot_eager = lookup_backend("aot_eager")

    def backend(gm: Any, example_inputs: list[Any]) -> Any:
        graphs.append(gm)
        return aot_eager(gm, example_inputs)

    return backend


def _max_relative_difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max() / b[k].abs().max().clamp_min(1e-12)) for k in a)


@pytest.mark.parametrize("batch_size", [1, 2])
def test_compiled_training_matches_eager_and_compiles_once_for_every_job(
    batch_size: int, tiny_pipeline: Any, training_images: list[Any], tmp_path: Path
) -> None:
    """The compiled UNet call trains the same LoRA, and a second job reuses its graphs (at
    batch 2 too: one graph for every job of the same shape).

    Every job adds its peft layers anew; the graphs captured for the first job must still serve
    the second (issue 20: compiled once per process, reused across jobs). aot_eager captures
    the graphs the way inductor gets them (dynamo + AOTAutograd) without minutes of C++ code
    generation on a CPU. The tolerance covers AOTAutograd's reordering of float operations.
    """
    from headshots.generation.train import CompiledUnetCall

    config = FAST if batch_size == 1 else _batched()
    eager = train_lora(tiny_pipeline, training_images, config, output_dir=tmp_path / "eager")
    graphs: list[Any] = []
    compiled = CompiledUnetCall("default", backend=_aot_eager_counting(graphs))
    first = train_lora(
        tiny_pipeline, training_images, config, output_dir=tmp_path / "c1", compiled=compiled
    )
    after_first_job = len(graphs)
    # Training (grad) and the eval loss (no grad, batch 1) each need their graph.
    assert after_first_job >= 2
    second = train_lora(
        tiny_pipeline,
        training_images,
        replace(config, seed=1),
        output_dir=tmp_path / "c2",
        compiled=compiled,
    )
    assert len(graphs) == after_first_job, "the second job compiled again"
    assert first.compile == second.compile == "default" and eager.compile == "eager"

    eager_lora = load_file(str(eager.lora_path))
    first_lora = load_file(str(first.lora_path))
    assert _max_relative_difference(first_lora, eager_lora) < 1e-3
    assert first.losses == pytest.approx(eager.losses, rel=1e-3)
    # The second job trained its own LoRA (another seed), not the first job's weights again.
    assert _max_relative_difference(load_file(str(second.lora_path)), first_lora) > 1e-2


def test_a_compile_that_fails_falls_back_to_eager_with_one_log_line(
    tiny_pipeline: Any,
    training_images: list[Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import torch

    from headshots.generation.train import CompiledUnetCall

    def broken(gm: Any, example_inputs: list[Any]) -> Any:
        raise RuntimeError("this backend cannot lower anything")

    eager = train_lora(tiny_pipeline, training_images, FAST, output_dir=tmp_path / "eager")
    compiled = CompiledUnetCall("reduce-overhead", backend=broken)
    with caplog.at_level("WARNING", logger="headshots.generation.train"):
        results = [
            train_lora(
                tiny_pipeline,
                training_images,
                FAST,
                output_dir=tmp_path / f"fallback{i}",
                compiled=compiled,
            )
            for i in range(2)
        ]
    warnings = [r for r in caplog.records if "training eagerly" in r.getMessage()]
    assert len(warnings) == 1, "one log line for the whole process, not one per job or step"
    assert "cannot lower anything" in warnings[0].getMessage()
    assert not compiled.usable and all(r.compile == "eager" for r in results)
    eager_lora = load_file(str(eager.lora_path))
    for result in results:
        fallback = load_file(str(result.lora_path))
        assert all(torch.equal(fallback[k], eager_lora[k]) for k in eager_lora)


def _batched(**overrides: Any) -> TrainConfig:
    """FAST's run at batch 2, made the way the train stage makes it: half the steps."""
    config = TrainConfig.for_family(
        "sd15",
        photos=4,
        resolution=64,
        steps=FAST.steps,
        batch_size=2,
        device_type="cpu",
        rank=FAST.rank,
        learning_rate=FAST.learning_rate,
        checkpoint_every=FAST.checkpoint_every,
        progress_every=FAST.progress_every,
        eval_samples=FAST.eval_samples,
    )
    return replace(config, **overrides)


def test_batch_2_trains_in_half_the_steps(
    tiny_pipeline: Any, training_images: list[Any], tmp_path: Path
) -> None:
    import math

    config = _batched()
    assert (config.steps, config.batch_size) == (FAST.steps // 2, 2)
    result = train_lora(tiny_pipeline, training_images, config, output_dir=tmp_path)
    assert result.total_steps == result.optimizer_steps == len(result.losses) == 6
    assert result.batch_size == 2 and result.to_record()["batch_size"] == 2
    assert all(math.isfinite(loss) for loss in result.losses)
    weights = load_file(str(result.lora_path))
    # peft's "gaussian" init starts every lora_B (diffusers' lora.up) at zero.
    ups = [v for k, v in weights.items() if ".lora.up." in k]
    assert ups and all(bool(v.abs().max() > 0) for v in ups), "the LoRA moved from its init"


def test_a_batch_pairs_each_example_with_its_own_caption(
    tiny_pipeline: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    import torch

    from headshots.generation import train

    from .plugins.generation import make_training_images

    images = make_training_images(4)
    examples = [
        type(image)(image.image, f"photo of ohwx person, take {number}")
        for number, image in enumerate(images)
    ]
    batches: list[tuple[list[int], Any, Any, Any]] = []
    real_forward, real_predict = train._Trainer._forward_loss, train._Trainer._predict

    def forward_loss(self: Any, indices: list[int], *args: Any) -> Any:
        batches.append((list(indices), None, None, self.cache))
        return real_forward(self, indices, *args)

    def predict(self: Any, noisy: Any, timesteps: Any, embeds: Any, added: Any) -> Any:
        indices, _, _, cache = batches[-1]
        batches[-1] = (indices, noisy.shape, embeds.detach().clone(), cache)
        return real_predict(self, noisy, timesteps, embeds, added)

    monkeypatch.setattr(train._Trainer, "_forward_loss", forward_loss)
    monkeypatch.setattr(train._Trainer, "_predict", predict)
    train_lora(tiny_pipeline, examples, _batched(steps=3, eval_samples=0), output_dir=tmp_path)
    assert len(batches) == 3
    for indices, shape, embeds, cache in batches:
        assert len(indices) == 2 and shape[0] == 2 and embeds.shape[0] == 2
        assert len(cache.conditioning) == 4, "four captions, encoded once each"
        for row, index in enumerate(indices):
            expected = cache.conditioning[cache.captions[index]].prompt_embeds[0]
            assert torch.equal(embeds[row], expected), (row, index)


def test_an_adapter_added_while_another_thread_loads_a_model_gets_real_weights(
    tiny_pipeline: Any,
) -> None:
    """A model load patches ``nn.Module.register_parameter`` for the whole process (accelerate's
    ``init_empty_weights``): a LoRA another thread added meanwhile got meta weights. A cancelled
    job's thread may still be loading while the next job's training adds its adapter."""
    import threading
    import time

    from accelerate import init_empty_weights

    from headshots.generation.models import MODEL_LOADS
    from headshots.generation.train import _training_adapter

    loading = threading.Event()

    def load() -> None:
        with MODEL_LOADS, init_empty_weights():
            loading.set()
            time.sleep(0.5)  # the window a model load keeps the patch in place

    loader = threading.Thread(target=load)
    loader.start()
    try:
        assert loading.wait(10)
        with _training_adapter(tiny_pipeline.unet, FAST):
            lora = [p for name, p in tiny_pipeline.unet.named_parameters() if "lora_" in name]
            assert lora and all(p.device.type != "meta" for p in lora)
    finally:
        loader.join()
