"""Benchmark of what a job costs and where the time goes (not a test). Usage:

    .venv/bin/python bench/bench_generation.py                      # the tiny model, 64 px
    .venv/bin/python bench/sd15_shape.py /tmp/sd15-shape            # SD1.5-shaped, random
    .venv/bin/python bench/bench_generation.py --model /tmp/sd15-shape --size 128

Every scenario runs in its own process (so first-job costs and peak RSS are its own) and prints
one JSON line; the parent prints a summary. Times are min and median over repeats that are
interleaved with their counterpart, so a burst of load from other processes hits both sides.

- ``cold``: a fresh process: imports, base load, first job, then steady-state jobs, each job
  with a LoRA in the published layout (random values, the shape train.py saves); resident
  jobs interleaved with jobs that reload the base (page-cached) each time.
- ``swap``: the per-job LoRA load + activate + unload of ``ResidentPipeline.adapters`` against
  diffusers' hot-swap into a resident adapter slot (``enable_lora_hotswap`` + ``hotswap=True``).
- ``train``: training setup (adapter on the resident UNet, or the old ``deepcopy`` of the UNet)
  and peak RSS; then train.py's step interleaved with the floor (UNet forward + backward +
  AdamW on the same LoRA, inputs prepared once: nothing else).
- ``job``: one whole job on a resident base (train, then generate with the new LoRA) and the
  overhead figure: wall time / (steps x step floor + calls x sampler steps x forward floor).
- ``sample`` (only with ``--only sample``: inductor's compile takes minutes on a CPU): jobs on
  a resident base with ``HEADSHOTS_SAMPLE_COMPILE`` off, then ``--sample-compile`` twice (an
  empty inductor cache, then the one that filled), each in a fresh process: the first job
  (cold, with the compile warm-up that ``GenerationResult.compile`` reports) apart from the
  steady-state jobs (alternating LoRAs, which must compile no new graph), each with the
  seconds spent in its UNet calls alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_T0 = time.monotonic()  # the cold figure starts at interpreter start, before heavy imports


def _stats(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "n": float(len(values))}


def _images(count: int, size: int) -> list[Any]:
    import numpy as np
    from PIL import Image

    from headshots.generation.faces import TrainingExample

    rng = np.random.default_rng(0)
    return [
        TrainingExample(
            Image.fromarray(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)).resize(
                (size, size), Image.Resampling.BICUBIC
            ),
            "photo of ohwx person",
        )
        for _ in range(count)
    ]


def _settings(model: str, sample_compile: str = "auto") -> Any:
    from headshots.settings import Settings

    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        base_model=model,
        device="cpu",
        dtype="float32",
        hf_offline=True,
        sample_compile=sample_compile,
    )


def _spec(size: int, count: int, steps: int, job: str) -> Any:
    from headshots.queue.contracts import StyleChoice
    from headshots.style.presets import build_prompt_spec

    return build_prompt_spec(
        StyleChoice(count=count, seed=1, aspect_ratio="1:1"),
        job_id=job,
        native_resolution=size,
        steps=steps,
    )


def random_lora(pipe: Any, rank: int, seed: int) -> bytes:
    """A LoRA in the layout train.py saves, with random (non-zero) values; ``pipe`` unchanged."""
    import torch

    from headshots.generation.train import TrainConfig, _training_adapter, save_lora

    config = TrainConfig(rank=rank, seed=seed)
    with _training_adapter(pipe.unet, config), tempfile.TemporaryDirectory() as tmp:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, parameter in pipe.unet.named_parameters():
                if "lora_" in name:
                    parameter.copy_(0.02 * torch.randn(parameter.shape, generator=generator))
        path = save_lora(pipe.unet, Path(tmp), "sd15", adapter_name="headshots_training")
        return path.read_bytes()


# --- scenarios (each in its own process) ------------------------------------------------------


def scenario_cold(model: str, size: int, jobs: int, steps: int, rank: int) -> dict[str, Any]:
    from headshots.generation.models import load_base_pipeline
    from headshots.generation.pipeline import ResidentPipeline

    imports_s = time.monotonic() - _T0
    settings = _settings(model)
    started = time.monotonic()
    resident = ResidentPipeline(settings)
    resident.pipe  # noqa: B018 - the base load
    load_s = time.monotonic() - started
    lora = random_lora(resident.pipe, rank, seed=1)
    spec = _spec(size, 1, steps, "bench")
    started = time.monotonic()
    resident.generate(spec, lora=lora, adapter_name="job_0")
    first_job_s = time.monotonic() - started
    steady: list[float] = []
    reload: list[float] = []
    for job in range(1, jobs + 1):
        started = time.monotonic()
        resident.generate(spec, lora=lora, adapter_name=f"job_{job}")
        steady.append(time.monotonic() - started)
        started = time.monotonic()
        fresh = ResidentPipeline(settings, loader=load_base_pipeline)
        fresh.generate(spec, lora=lora, adapter_name=f"job_{job}")
        fresh.close()
        del fresh
        reload.append(time.monotonic() - started)
    return {
        "imports_s": imports_s,
        "load_s": load_s,
        "first_job_s": first_job_s,
        "cold_total_s": imports_s + load_s + first_job_s,
        "steady_job_s": _stats(steady),
        "reload_job_s": _stats(reload),
    }


def scenario_swap(model: str, rounds: int, per_round: int, rank: int) -> dict[str, Any]:
    import numpy as np
    import torch

    from headshots.generation.pipeline import ResidentPipeline, lora_state_dict

    resident = ResidentPipeline(_settings(model))
    pipe = resident.pipe
    loras = [random_lora(pipe, rank, seed=s) for s in (1, 2)]
    current: list[float] = []
    hotswap: list[float] = []

    def image() -> Any:
        out = pipe(
            "photo of ohwx person",
            num_inference_steps=2,
            height=64,
            width=64,
            generator=torch.Generator().manual_seed(0),
            output_type="np",
        )
        return np.asarray(out.images[0])

    hotswap_error = None
    for _ in range(rounds):
        for job in range(per_round):  # what ResidentPipeline.adapters does per job
            started = time.monotonic()
            with resident.adapters(loras[job % 2], f"job_{job}"):
                pass
            current.append(time.monotonic() - started)
        try:
            # A resident slot: created once (not timed), then each job swaps its weights in.
            pipe.unet.enable_lora_hotswap(target_rank=rank, check_compiled="ignore")
            pipe.load_lora_weights(lora_state_dict(loras[0]), adapter_name="slot")
            for job in range(per_round):
                started = time.monotonic()
                pipe.load_lora_weights(
                    lora_state_dict(loras[job % 2]), adapter_name="slot", hotswap=True
                )
                pipe.set_adapters(["slot"], adapter_weights=[1.0])
                pipe.unet.enable_adapters()
                pipe.unet.disable_adapters()  # between jobs the base must be the plain base
                hotswap.append(time.monotonic() - started)
        except Exception as exc:  # report, keep the current path's figures
            hotswap_error = f"{type(exc).__name__}: {exc}"
        pipe.unload_lora_weights()
    # Does a swapped-in LoRA give exactly the output of loading it fresh?
    with resident.adapters(loras[1], "fresh"):
        fresh = image()
    pipe.load_lora_weights(lora_state_dict(loras[0]), adapter_name="slot")
    pipe.load_lora_weights(lora_state_dict(loras[1]), adapter_name="slot", hotswap=True)
    pipe.set_adapters(["slot"], adapter_weights=[1.0])
    swapped = image()
    pipe.unload_lora_weights()
    return {
        "current_s": _stats(current),
        "hotswap_s": _stats(hotswap) if hotswap else None,
        "hotswap_error": hotswap_error,
        "hotswap_bit_exact": bool(np.array_equal(fresh, swapped)),
        "max_abs_diff": float(np.abs(fresh.astype(float) - swapped.astype(float)).max()),
    }


def _floor_step(trainer: Any, inputs: tuple[Any, ...]) -> None:
    """UNet forward + backward + AdamW on fixed inputs: the least a LoRA step can cost."""
    import torch.nn.functional as F

    noisy, timesteps, embeds, target = inputs
    pred = trainer.unet(noisy, timesteps, embeds).sample
    F.mse_loss(pred, target).backward()
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)


def _floor_inputs(trainer: Any) -> tuple[Any, ...]:
    import torch

    latents = trainer.cache.latent_params[:1, :4].clone()
    embeds = trainer.cache.conditioning[0].prompt_embeds
    return latents, torch.tensor([500]), embeds, torch.randn_like(latents)


def scenario_train(model: str, size: int, setup: str, rounds: int, rank: int) -> dict[str, Any]:
    import copy

    from headshots.generation.models import load_base_pipeline
    from headshots.generation.train import TrainConfig, _encode_once, _Trainer, _training_adapter

    pipe = load_base_pipeline(_settings(model))
    config = TrainConfig(resolution=size, steps=1000, rank=rank, eval_samples=0)
    started = time.monotonic()
    cache = _encode_once(pipe, _images(6, size), (), config)
    encode_s = time.monotonic() - started
    started = time.monotonic()
    target = pipe
    if setup == "copy":  # what train.py did before: a trainable copy of the UNet
        target = type(pipe)(**{**pipe.components, "unet": copy.deepcopy(pipe.unet)})
    steps: list[float] = []
    floors: list[float] = []
    with _training_adapter(target.unet, config):
        trainer = _Trainer(target, cache, config)
        setup_s = time.monotonic() - started
        inputs = _floor_inputs(trainer)
        trainer.step()  # warm-up (allocator, first-call costs), not counted
        _floor_step(trainer, inputs)
        for _ in range(rounds):
            started = time.monotonic()
            trainer.step()
            steps.append(time.monotonic() - started)
            started = time.monotonic()
            _floor_step(trainer, inputs)
            floors.append(time.monotonic() - started)
    return {
        "setup": setup,
        "encode_s": encode_s,
        "setup_s": setup_s,
        "step_s": _stats(steps),
        "floor_s": _stats(floors),
        "step_over_floor": statistics.median(steps) / statistics.median(floors),
    }


def scenario_job(
    model: str, size: int, train_steps: int, images: int, sample_steps: int, rank: int
) -> dict[str, Any]:
    import torch

    from headshots.generation.models import load_base_pipeline
    from headshots.generation.pipeline import ResidentPipeline
    from headshots.generation.train import (
        TrainConfig,
        _encode_once,
        _Trainer,
        _training_adapter,
        train_lora,
    )

    settings = _settings(model)
    pipe = load_base_pipeline(settings)
    resident = ResidentPipeline(settings, loader=lambda _s, _m: pipe)
    examples = _images(6, size)
    config = TrainConfig(resolution=size, steps=train_steps, rank=rank, eval_samples=0)
    spec = _spec(size, images, sample_steps, "bench-job")
    stages: dict[str, float] = {}
    floors: list[float] = []
    forwards: list[float] = []
    floor_cache = _encode_once(pipe, examples[:1], (), config)
    latent = size // 8
    noisy = torch.randn(2 * images, 4, latent, latent)
    embeds = torch.randn(2 * images, 77, pipe.text_encoder.config.hidden_size)

    def measure_floors(lora: Any) -> None:
        # Step floor on a fresh training adapter; forward floor with the job's LoRA active.
        with _training_adapter(pipe.unet, config):
            trainer = _Trainer(pipe, floor_cache, config)
            inputs = _floor_inputs(trainer)
            for _ in range(2):
                started = time.monotonic()
                _floor_step(trainer, inputs)
                floors.append(time.monotonic() - started)
        with resident.adapters(lora, "job_floor"), torch.no_grad():
            for _ in range(2):
                started = time.monotonic()
                pipe.unet(noisy, torch.tensor([500]), embeds)
                forwards.append(time.monotonic() - started)

    # Floors before and after the job (min of both): load from other processes hits both.
    measure_floors(random_lora(pipe, rank, seed=3))
    with tempfile.TemporaryDirectory() as tmp:
        job_started = time.monotonic()
        train_lora(pipe, examples, config, output_dir=Path(tmp))
        stages["train_s"] = time.monotonic() - job_started
        started = time.monotonic()
        lora = Path(tmp) / "pytorch_lora_weights.safetensors"
        resident.generate(spec, lora=lora, adapter_name="job_bench", batch_size=images)
        stages["generate_s"] = time.monotonic() - started
        wall_s = time.monotonic() - job_started
        measure_floors(lora)
    step_floor, forward_floor = min(floors), min(forwards)
    arithmetic = train_steps * step_floor + sample_steps * forward_floor
    return {
        "wall_s": wall_s,
        **stages,
        "step_floor_s": step_floor,
        "forward_floor_s": forward_floor,
        "arithmetic_s": arithmetic,
        "overhead": wall_s / arithmetic,
    }


def _time_unet_calls(resident: Any, times: list[float]) -> None:
    """Append the seconds of every sampling UNet call to ``times`` (compiled or eager)."""
    call = resident.sample_call
    if call is None:  # eager: nn.Module's compiled-call slot, left empty then, times the call
        unet = resident.pipe.unet

        def eager(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            output = unet._call_impl(*args, **kwargs)
            times.append(time.monotonic() - started)
            return output

        unet._compiled_call_impl = eager
        return
    inner = call._call

    def compiled(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        output = inner(*args, **kwargs)
        times.append(time.monotonic() - started)
        return output

    call._call = compiled  # installed() binds it per job


def scenario_sample(
    model: str, size: int, jobs: int, steps: int, rank: int, mode: str
) -> dict[str, Any]:
    from headshots.generation.pipeline import ResidentPipeline

    resident = ResidentPipeline(_settings(model, sample_compile=mode))
    resident.pipe  # noqa: B018 - the base load, not timed
    loras = [random_lora(resident.pipe, rank, seed=s) for s in (1, 2)]
    spec = _spec(size, 2, steps, "bench-sample")
    unet_calls: list[float] = []
    _time_unet_calls(resident, unet_calls)
    started = time.monotonic()
    first = resident.generate(spec, lora=loras[0], adapter_name="job_0")
    first_job_s = time.monotonic() - started
    first_unet_s = sum(unet_calls)
    steady: list[float] = []
    steady_unet: list[float] = []
    new_graphs = 0
    for job in range(1, jobs + 1):
        unet_calls.clear()
        started = time.monotonic()
        result = resident.generate(spec, lora=loras[job % 2], adapter_name=f"job_{job}")
        steady.append(time.monotonic() - started)
        steady_unet.append(sum(unet_calls))
        new_graphs += result.compile.new_graphs
    return {
        "mode": first.compile.mode,
        "first_job_s": first_job_s,
        "first_unet_s": first_unet_s,
        "warmup_s": first.compile.warmup_s,
        "first_new_graphs": first.compile.new_graphs,
        "steady_job_s": _stats(steady),
        "steady_unet_s": _stats(steady_unet),
        "steady_new_graphs": new_graphs,
    }


# --- driver -------------------------------------------------------------------------------------


def _run(args: list[str], extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    # The checkout this file is in comes first: the venv may hold another (editable) copy.
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        **(extra_env or {}),
    }
    done = subprocess.run(
        [sys.executable, __file__, "--scenario", *args], capture_output=True, text=True, env=env
    )
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"scenario {args[0]} failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _fmt(stats: dict[str, float] | None) -> str:
    if not stats:
        return "n/a"
    return f"min {stats['min']:.3f} s, median {stats['median']:.3f} s (n={int(stats['n'])})"


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="a diffusers folder (default: build the tiny model)")
    parser.add_argument("--size", type=int, help="px for training and generation (default native)")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=3, help="steady-state jobs per cold process")
    parser.add_argument("--repeats", type=int, default=2, help="cold processes")
    parser.add_argument("--sample-steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved step/floor pairs")
    parser.add_argument("--train-steps", type=int, default=10, help="steps of the whole job")
    parser.add_argument("--images", type=int, default=2, help="images of the whole job")
    parser.add_argument("--only", nargs="+", choices=["cold", "swap", "train", "job", "sample"])
    parser.add_argument(
        "--sample-compile", default="default", help="the compiled mode the sample scenario runs"
    )
    parser.add_argument("--scenario", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.scenario:
        import torch

        torch.set_num_threads(2)
        kind, model, *rest = args.scenario
        numbers = [int(value) for value in rest if value.lstrip("-").isdigit()]
        result: dict[str, Any]
        if kind == "cold":
            result = scenario_cold(model, *numbers)
        elif kind == "swap":
            result = scenario_swap(model, *numbers)
        elif kind == "train":
            result = scenario_train(model, numbers[0], rest[1], numbers[1], numbers[2])
        elif kind == "sample":
            result = scenario_sample(model, *numbers, mode=rest[-1])
        else:
            result = scenario_job(model, *numbers)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return 0

    model = args.model
    if model is None:
        from headshots.generation.tiny import save_tiny_model

        model = str(save_tiny_model(Path(tempfile.mkdtemp(prefix="bench-tiny-"))))
    if args.size is None:
        from headshots.generation.models import resolve_model

        args.size = resolve_model(_settings(model), None).native_resolution
    only = set(args.only or ["cold", "swap", "train", "job"])
    size, rank = str(args.size), str(args.rank)
    print(f"model: {model}  size: {size} px  rank: {rank}", flush=True)
    if "cold" in only:
        colds = [
            _run(["cold", model, size, str(args.jobs), str(args.sample_steps), rank])
            for _ in range(args.repeats)
        ]
        first = [c["cold_total_s"] for c in colds]
        print(f"first job, cold process: {_fmt(_stats(first))}")
        for c in colds:
            print(
                f"  imports {c['imports_s']:.2f} s + base load {c['load_s']:.2f} s + "
                f"job {c['first_job_s']:.2f} s; peak {c['peak_rss_mb']:.0f} MB"
            )
        for c in colds:
            print(f"steady-state job, resident base: {_fmt(c['steady_job_s'])}")
            print(f"steady-state job, base reloaded: {_fmt(c['reload_job_s'])}")
    if "swap" in only:
        swap = _run(["swap", model, "3", "4", rank])
        print(f"LoRA load+unload (current):     {_fmt(swap['current_s'])}")
        print(f"LoRA hot-swap into a slot:      {_fmt(swap['hotswap_s'])}")
        print(
            f"  hot-swap bit-exact vs fresh load: {swap['hotswap_bit_exact']} "
            f"(max diff {swap['max_abs_diff']:.3g}); error: {swap['hotswap_error']}"
        )
    if "train" in only:
        rounds = str(args.rounds)
        for setup in ("copy", "inplace"):
            t = _run(["train", model, size, setup, rounds, rank])
            print(
                f"training setup {setup:7}: {t['setup_s']:.2f} s, "
                f"peak RSS {t['peak_rss_mb']:.0f} MB (encode once {t['encode_s']:.2f} s)"
            )
            print(f"  step  {_fmt(t['step_s'])}")
            print(f"  floor {_fmt(t['floor_s'])}  -> step/floor x{t['step_over_floor']:.2f}")
    if "job" in only:
        j = _run(
            [
                "job",
                model,
                size,
                str(args.train_steps),
                str(args.images),
                str(args.sample_steps),
                rank,
            ]
        )
        print(
            f"whole job: {j['wall_s']:.2f} s (train {j['train_s']:.2f} s, "
            f"generate {j['generate_s']:.2f} s); step floor {j['step_floor_s']:.3f} s, "
            f"forward floor {j['forward_floor_s']:.3f} s (batch {2 * args.images})"
        )
        print(
            f"  overhead = {j['wall_s']:.2f} / ({args.train_steps} x {j['step_floor_s']:.3f} + "
            f"{args.sample_steps} x {j['forward_floor_s']:.3f}) = x{j['overhead']:.2f}"
        )
    if "sample" in only:
        # inductor keeps what it compiled on disk: the first compiled process starts from an
        # empty cache (a new host), the second from the one the first filled (a restart).
        cache = {"TORCHINDUCTOR_CACHE_DIR": tempfile.mkdtemp(prefix="bench-inductor-")}
        runs = [
            ("off", "eager"),
            (args.sample_compile, "empty cache"),
            (args.sample_compile, "warm cache"),
        ]
        for mode, label in runs:
            sample = ["sample", model, size, str(args.jobs), str(args.sample_steps), rank, mode]
            r = _run(sample, cache)
            print(
                f"sampling {r['mode']} ({label}): first job {r['first_job_s']:.2f} s (UNet calls "
                f"{r['first_unet_s']:.2f} s, compile warm-up {r['warmup_s']:.2f} s, "
                f"{r['first_new_graphs']} graphs)"
            )
            print(f"  steady job        {_fmt(r['steady_job_s'])}")
            print(f"  steady UNet calls {_fmt(r['steady_unet_s'])} per job")
            print(f"  new graphs in the steady jobs: {r['steady_new_graphs']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
