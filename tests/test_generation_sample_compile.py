"""Sampling's compiled UNet forward (issue 20, "Sampling"), CFG batching and the VAE tiling rule.

The compiled tests use aot_eager, as the training compile tests do: dynamo + AOTAutograd
capture the graphs the way inductor gets them, without minutes of C++ code generation on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from headshots.generation.pipeline import (
    CompiledSampleCall,
    Control,
    GenerationResult,
    ResidentPipeline,
    compiled_sample_call,
    needs_vae_tiling,
)
from headshots.queue.contracts import StyleChoice
from headshots.settings import Settings
from headshots.style.presets import build_prompt_spec, size_for_aspect
from tests.test_generation_train import _aot_eager_counting


def _spec(steps: int = 3, count: int = 2, seed: int = 7, native: int = 64) -> Any:
    style = StyleChoice(
        preset="corporate", subject_class="woman", count=count, seed=seed, aspect_ratio="1:1"
    )
    return build_prompt_spec(style, job_id="j", native_resolution=native, steps=steps)


def _arrays(result: GenerationResult) -> list[np.ndarray]:
    return [np.asarray(g.image, dtype=np.int16) for g in result.images]


def _resident(settings: Settings, call: CompiledSampleCall | None) -> ResidentPipeline:
    return ResidentPipeline(settings, sample_compiler=lambda _mode, _device: call)


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> Iterator[None]:
    """Graphs another test compiled must not be reused (or counted) here."""
    import torch

    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


# SDXL trains two tiny LoRAs and compiles a second UNet: ~60 s on two shared cores.
@pytest.mark.parametrize("family", ["sd15", pytest.param("sdxl", marks=pytest.mark.slow)])
def test_compiled_sampling_matches_eager_and_compiles_once_for_every_job(
    family: str,
    tiny_settings: Settings,
    tiny_sdxl_settings: Settings,
    make_tiny_lora: Callable[[int], bytes],
    make_tiny_sdxl_lora: Callable[[int], bytes],
) -> None:
    """Two jobs with different LoRAs (same rank and targets) under their own adapter names:
    the graph compiled in the first serves the second, and the images are eager's (SDXL's
    added conditioning included)."""
    settings, make = (
        (tiny_settings, make_tiny_lora)
        if family == "sd15"
        else (tiny_sdxl_settings, make_tiny_sdxl_lora)
    )
    lora_a, lora_b = make(1), make(2)
    graphs: list[Any] = []
    call = CompiledSampleCall("default", backend=_aot_eager_counting(graphs))
    compiled = _resident(settings, call)
    eager = _resident(settings, None)
    spec = _spec(native=compiled.native_resolution)

    first = compiled.generate(spec, lora=lora_a, adapter_name="job_a")
    after_first_job = len(graphs)
    second = compiled.generate(spec, lora=lora_b, adapter_name="job_b")
    assert after_first_job >= 1 and len(graphs) == after_first_job, "the second job compiled"

    assert first.compile.mode == second.compile.mode == "default"
    assert first.compile.new_graphs == after_first_job and first.compile.warmup_s > 0
    assert second.compile.new_graphs == 0 and second.compile.warmup_s == 0
    assert second.record["sample_compile"] == {"mode": "default", "new_graphs": 0, "warmup_s": 0}
    unet = compiled.pipe.unet
    assert unet._compiled_call_impl is None, "the compiled call outlived its job"
    assert not getattr(unet, "peft_config", None), "adapters leaked past the job"

    for result, lora in ((first, lora_a), (second, lora_b)):
        reference = eager.generate(spec, lora=lora, adapter_name="job_e")
        assert reference.compile.mode == "eager"
        _assert_close(result, reference)


def test_img2img_and_controlnet_sample_through_the_same_compiled_call(
    tiny_settings: Settings, tiny_controlnet_path: Path, make_tiny_lora: Callable[[int], bytes]
) -> None:
    """img2img calls the UNet as txt2img does (no new graph); a ControlNet's residuals make
    one more graph, once, and its second job reuses it."""
    settings = tiny_settings.model_copy(update={"controlnet_sd15_pose": str(tiny_controlnet_path)})
    graphs: list[Any] = []
    compiled = _resident(
        settings, CompiledSampleCall("default", backend=_aot_eager_counting(graphs))
    )
    eager = _resident(settings, None)
    init = {"init_image": Image.new("RGB", (64, 64), (180, 120, 90)), "strength": 0.7}
    control = {"control": Control("pose", _noise_image(64), 0.8)}

    def both(lora: bytes, **kwargs: Any) -> GenerationResult:
        result = compiled.generate(_spec(), lora=lora, adapter_name="job_c", **kwargs)
        _assert_close(result, eager.generate(_spec(), lora=lora, adapter_name="job_e", **kwargs))
        return result

    assert both(make_tiny_lora(1)).compile.new_graphs >= 1
    assert both(make_tiny_lora(2), **init).compile.new_graphs == 0
    assert both(make_tiny_lora(1), **control).compile.new_graphs >= 1
    steady = both(make_tiny_lora(2), **control)
    assert steady.compile.new_graphs == 0 and steady.compile.mode == "default"


def _noise_image(size: int) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray((rng.random((size, size, 3)) * 255).astype("uint8"))


def _assert_close(result: GenerationResult, reference: GenerationResult) -> None:
    for got, expected in zip(_arrays(result), _arrays(reference), strict=True):
        # AOTAutograd reorders float operations: at most one level of 255 apart.
        assert np.abs(got - expected).max() <= 1


def test_a_compile_that_fails_samples_eagerly_with_one_log_line(
    tiny_settings: Settings,
    make_tiny_lora: Callable[[int], bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(gm: Any, example_inputs: list[Any]) -> Any:
        raise RuntimeError("this backend cannot lower anything")

    call = CompiledSampleCall("reduce-overhead", backend=broken)
    resident = _resident(tiny_settings, call)
    eager = _resident(tiny_settings, None)
    with caplog.at_level("WARNING", logger="headshots.generation.pipeline"):
        results = [
            resident.generate(_spec(), lora=make_tiny_lora(1), adapter_name=f"job_{i}")
            for i in range(2)
        ]
    warnings = [r for r in caplog.records if "sampling eagerly" in r.getMessage()]
    assert len(warnings) == 1, "one log line for the whole process, not one per job or step"
    assert "cannot lower anything" in warnings[0].getMessage()
    assert not call.usable and all(r.compile.mode == "eager" for r in results)
    assert results[1].record["sample_compile"]["mode"] == "eager"
    expected = _arrays(eager.generate(_spec(), lora=make_tiny_lora(1), adapter_name="job_e"))
    for result in results:
        for got, want in zip(_arrays(result), expected, strict=True):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("use", ["train", "sample"])
def test_compile_auto_captures_cuda_graphs_on_cuda_only(use: str) -> None:
    """One rule for both compiled calls: ``auto`` is CUDA graphs on CUDA, eager on the CPU."""
    import torch

    from headshots.generation.train import compiled_unet_call

    make = compiled_unet_call if use == "train" else compiled_sample_call
    assert make("auto", torch.device("cpu")) is None
    assert make("off", torch.device("cuda")) is None
    on_cuda = make("auto", torch.device("cuda"))
    assert on_cuda is not None and on_cuda.mode == "reduce-overhead"
    forced = make("max-autotune-no-cudagraphs", torch.device("cpu"))
    assert forced is not None and forced.mode == "max-autotune-no-cudagraphs"
    with pytest.raises(ValueError, match="unknown compile mode"):
        make("fastest", torch.device("cpu"))


def test_the_setting_reaches_the_resident_pipeline_and_klein_stays_eager(
    tiny_settings: Settings, tiny_klein_settings: Settings
) -> None:
    forced = tiny_settings.model_copy(update={"sample_compile": "default"})
    resident = ResidentPipeline(forced)
    call = resident.sample_call
    assert call is not None and call.mode == "default"
    assert resident.sample_call is call, "made once for the life of the worker"
    assert ResidentPipeline(tiny_settings).sample_call is None  # auto on a CPU: eager
    klein = tiny_klein_settings.model_copy(update={"sample_compile": "default"})
    klein_resident = ResidentPipeline(klein)
    assert klein_resident.sample_call is None
    style = StyleChoice(subject_class="woman", count=1, seed=3, aspect_ratio="1:1")
    spec = build_prompt_spec(style, job_id="j", native_resolution=64, steps=2, family="flux2-klein")
    result = klein_resident.generate(spec, lora=None, adapter_name="job_k")
    assert result.record["sample_compile"]["mode"] == "eager" and len(result.images) == 1
    assert result.record["vae_tiling"] is False


# --- CFG batching -------------------------------------------------------------------------------


def _count_unet_calls(resident: ResidentPipeline) -> list[int]:
    """The batch size of every UNet call from now on (an instance ``forward`` wrapper)."""
    unet = resident.pipe.unet
    batches: list[int] = []
    forward = unet.forward

    def counting(sample: Any, *args: Any, **kwargs: Any) -> Any:
        batches.append(int(sample.shape[0]))
        return forward(sample, *args, **kwargs)

    unet.forward = counting
    return batches


@pytest.mark.parametrize("path", ["txt2img", "img2img", "controlnet"])
def test_cfg_runs_cond_and_uncond_in_one_unet_call_per_step(
    path: str, tiny_settings: Settings, tiny_controlnet_path: Path
) -> None:
    settings = tiny_settings.model_copy(update={"controlnet_sd15_pose": str(tiny_controlnet_path)})
    resident = _resident(settings, None)
    spec = _spec(steps=4, count=2)
    assert spec.cfg > 1, "the test needs classifier-free guidance"
    kwargs: dict[str, Any] = {}
    if path == "img2img":
        kwargs = {"init_image": Image.new("RGB", (64, 64), (180, 120, 90)), "strength": 0.5}
    elif path == "controlnet":
        kwargs = {"control": Control("pose", _noise_image(64), 0.8)}
    batches = _count_unet_calls(resident)
    resident.generate(spec, lora=None, adapter_name="job", batch_size=2, **kwargs)
    steps = 2 if path == "img2img" else 4  # img2img runs the last `strength` of the schedule
    assert batches == [2 * 2] * steps, "one UNet call per step, uncond and cond together"


# --- VAE tiling ---------------------------------------------------------------------------------


@pytest.mark.parametrize("native", [512, 1024])
def test_every_generated_size_decodes_in_one_piece(native: int) -> None:
    for aspect in ("1:1", "4:5", "2:3"):
        assert not needs_vae_tiling(*size_for_aspect(aspect, native), native)  # type: ignore[arg-type]
    assert not needs_vae_tiling(2 * native, 2 * native, native)
    assert needs_vae_tiling(2 * native + 8, 2 * native, native)
    assert needs_vae_tiling(3 * native, 2 * native, native)


def test_the_vae_tiles_only_when_the_size_needs_it(tiny_settings: Settings) -> None:
    resident = _resident(tiny_settings, None)
    vae = resident.pipe.vae
    tiled_calls: list[int] = []
    tiled_decode = vae.tiled_decode

    def counting(*args: Any, **kwargs: Any) -> Any:
        tiled_calls.append(1)
        return tiled_decode(*args, **kwargs)

    vae.tiled_decode = counting
    small = resident.generate(_spec(steps=2, count=1), lora=None, adapter_name="job")
    assert small.record["vae_tiling"] is False and not tiled_calls
    large_spec = replace(_spec(steps=2, count=1), width=192, height=192)  # 9x the native area
    large = resident.generate(large_spec, lora=None, adapter_name="job")
    assert large.record["vae_tiling"] is True and tiled_calls
    assert large.images[0].image.size == (192, 192)
    assert not vae.use_tiling, "the shared VAE is left as it was"
