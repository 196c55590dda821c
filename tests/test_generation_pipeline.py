from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from headshots.errors import JobCancelled
from headshots.generation.pipeline import ResidentPipeline
from headshots.queue.contracts import StyleChoice
from headshots.settings import Settings
from headshots.style.presets import build_prompt_spec


def _spec(seed: int = 7, count: int = 2, steps: int = 3, scheduler: Any = None) -> Any:
    style = StyleChoice(
        preset="corporate", subject_class="woman", count=count, seed=seed, aspect_ratio="1:1"
    )
    return build_prompt_spec(
        style, job_id="j", native_resolution=64, steps=steps, scheduler=scheduler
    )


def _arrays(result: Any) -> list[np.ndarray]:
    return [np.asarray(g.image, dtype=np.int16) for g in result.images]


def test_two_jobs_two_loras_one_base_load_and_no_leak(
    tiny_settings: Settings, make_tiny_lora: Callable[[int], bytes]
) -> None:
    lora_a, lora_b = make_tiny_lora(1), make_tiny_lora(2)
    resident = ResidentPipeline(tiny_settings)
    base = _arrays(resident.generate(_spec(), lora=None, adapter_name="none"))
    unet = resident.pipe.unet
    first = _arrays(resident.generate(_spec(), lora=lora_a, adapter_name="job_a"))
    second = resident.generate(_spec(), lora=lora_b, adapter_name="job_b")
    assert resident.base_loads == 1
    assert resident.pipe.unet is unet
    assert not getattr(resident.pipe.unet, "peft_config", None), "adapters leaked past the job"

    fresh = ResidentPipeline(tiny_settings)
    alone = _arrays(fresh.generate(_spec(), lora=lora_b, adapter_name="job_b"))
    for got, expected in zip(_arrays(second), alone, strict=True):
        np.testing.assert_array_equal(got, expected)
    assert any(np.abs(f - s).max() > 0 for f, s in zip(first, _arrays(second), strict=True))
    assert any(np.abs(f - b).max() > 0 for f, b in zip(first, base, strict=True))
    after = _arrays(resident.generate(_spec(), lora=None, adapter_name="none"))
    for got, expected in zip(after, base, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_one_seed_per_image_is_reproducible_alone(
    tiny_settings: Settings, make_tiny_lora: Callable[[int], bytes]
) -> None:
    resident = ResidentPipeline(tiny_settings)
    batch = resident.generate(
        _spec(seed=100, count=3), lora=make_tiny_lora(1), adapter_name="a", batch_size=3
    )
    assert [g.seed for g in batch.images] == [100, 101, 102]
    assert batch.record["seeds"] == [100, 101, 102] and batch.record["scheduler"] == "euler_a"
    single = resident.generate(_spec(seed=101, count=1), lora=make_tiny_lora(1), adapter_name="a")
    difference = np.abs(_arrays(single)[0] - _arrays(batch)[1]).max()
    assert difference <= 2  # batched vs single forward passes differ only in float rounding


def test_progress_and_cancel(tiny_settings: Settings) -> None:
    resident = ResidentPipeline(tiny_settings)
    seen: list[tuple[float, int]] = []
    resident.generate(
        _spec(count=3),
        lora=None,
        adapter_name="x",
        progress=lambda d, t: seen.append((d, t)),
        batch_size=2,
    )
    assert seen[-1] == (3.0, 3) and all(t == 3 for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    calls = 0

    def cancel() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise JobCancelled("stop")

    with pytest.raises(JobCancelled):
        resident.generate(_spec(), lora=None, adapter_name="x", check_cancelled=cancel)
    assert resident.pipe.scheduler is resident._base_scheduler  # restored after the abort


@pytest.mark.parametrize("scheduler", ["dpm++2m_karras", "dpm++sde_karras"])
def test_other_schedulers_run(tiny_settings: Settings, scheduler: str) -> None:
    resident = ResidentPipeline(tiny_settings)
    result = resident.generate(_spec(count=1, scheduler=scheduler), lora=None, adapter_name="x")
    assert result.record["scheduler"] == scheduler and result.images[0].image.size == (64, 64)


def test_lcm_without_lcm_lora_falls_back_and_says_so(tiny_settings: Settings) -> None:
    resident = ResidentPipeline(tiny_settings)
    result = resident.generate(_spec(count=1, scheduler="lcm"), lora=None, adapter_name="x")
    assert result.record["scheduler"] == "euler_a" and "HEADSHOTS_LCM_LORA" in result.record["note"]


def test_lcm_with_lcm_lora_clamps_steps(
    tiny_settings: Settings, make_tiny_lora: Callable[[int], bytes], tmp_path: Any
) -> None:
    # A stand-in LCM-LoRA (any LoRA of the right shape): this checks the wiring, not LCM quality.
    path = tmp_path / "lcm.safetensors"
    path.write_bytes(make_tiny_lora(3))
    settings = tiny_settings.model_copy(update={"lcm_lora": str(path)})
    resident = ResidentPipeline(settings)
    result = resident.generate(
        _spec(count=1, steps=30, scheduler="lcm"), lora=make_tiny_lora(1), adapter_name="job"
    )
    assert (
        result.record["scheduler"] == "lcm"
        and result.record["steps"] == 8
        and result.record["cfg"] <= 2.0
    )
    assert not getattr(resident.pipe.unet, "peft_config", None)


def test_gpu_smoke_says_no_cuda_and_exits_0_on_a_cpu_host(tmp_path: Any) -> None:
    import subprocess
    import sys
    from pathlib import Path

    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA host runs the real smoke (bench/gpu_smoke.sh MODEL)")
    script = Path(__file__).resolve().parents[1] / "bench" / "gpu_smoke.sh"
    done = subprocess.run(
        ["bash", str(script), str(tmp_path)],
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "no CUDA device on this host" in done.stdout


def test_a_base_model_two_threads_ask_for_at_once_is_loaded_once(tiny_settings: Settings) -> None:
    """A cancelled job's thread may still be loading the base model when the next job asks
    for it: the second waits for the first's load instead of loading it again beside it."""
    from headshots.generation.models import load_base_pipeline

    calls: list[int] = []

    def slow_loader(settings: Settings, model: str | None) -> Any:
        calls.append(1)
        time.sleep(0.5)  # the window in which a second thread used to start its own load
        return load_base_pipeline(settings, model)

    resident = ResidentPipeline(tiny_settings, loader=slow_loader)
    with ThreadPoolExecutor(max_workers=2) as pool:
        pipes = list(pool.map(lambda _: resident.pipe, range(2)))
    assert len(calls) == 1 and resident.base_loads == 1
    assert pipes[0] is pipes[1]


def test_a_loaded_base_model_is_handed_out_during_a_generation(tiny_settings: Settings) -> None:
    """Only the load is waited for: a thread asking for the resident model while another
    thread's generation holds the pipeline's lock gets it at once."""
    import threading

    resident = ResidentPipeline(tiny_settings)
    loaded = resident.pipe
    generating, done = threading.Event(), threading.Event()

    def generation() -> None:
        with resident._lock:
            generating.set()
            done.wait(10)

    holder = threading.Thread(target=generation)
    holder.start()
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        assert generating.wait(10)
        assert pool.submit(lambda: resident.pipe).result(timeout=2) is loaded
    finally:
        done.set()  # lets a waiting ask end either way, so a failure is no hang
        holder.join()
        pool.shutdown()


def test_models_loaded_in_two_threads_at_once_have_no_meta_parameters(
    tiny_settings: Settings,
) -> None:
    """diffusers builds a model under accelerate's init_empty_weights, which patches
    nn.Module.register_parameter for the whole process: a model another thread built meanwhile
    had meta parameters, and transformers refused it ("Unsupported device type 'meta'", seen
    once by bench/soak.py). Loads take turns."""
    from headshots.generation.models import load_base_pipeline

    for _ in range(3):
        with ThreadPoolExecutor(max_workers=2) as pool:
            pipes = list(pool.map(lambda _: load_base_pipeline(tiny_settings), range(2)))
        for pipe in pipes:
            for part in (pipe.unet, pipe.text_encoder, pipe.vae):
                assert all(p.device.type != "meta" for p in part.parameters())
