"""Benchmark of the generation choices (not a test). Usage:

    .venv/bin/python bench/bench_generation.py [--model PATH] [--steps 20] [--jobs 3]

Without ``--model`` it builds the tiny model, so absolute numbers are tiny-model numbers; the
ratios are what the design choices buy. Each scenario runs in its own process so peak memory
(max RSS) is its own.

1. training: VAE latents + text embeddings cached once (what train.py does) vs re-encoded every
   step (what a naive loop does);
2. generation: N jobs on the resident pipeline (base loaded once) vs loading the base per job.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _images(count: int, size: int) -> list[Any]:
    import numpy as np
    from PIL import Image

    from headshots.generation.faces import TrainingExample

    rng = np.random.default_rng(0)
    return [
        TrainingExample(
            Image.fromarray(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)).resize((size, size)),
            "photo of ohwx person",
        )
        for _ in range(count)
    ]


def _settings(model: str) -> Any:
    from headshots.settings import Settings

    return Settings(  # type: ignore[call-arg]
        _env_file=None, base_model=model, device="cpu", dtype="float32", hf_offline=True
    )


def scenario_train(model: str, steps: int, cached: bool) -> dict[str, float]:
    import torch

    from headshots.generation.models import load_base_pipeline, resolve_model
    from headshots.generation.train import TrainConfig, _encode_once, train_lora

    settings = _settings(model)
    pipe = load_base_pipeline(settings)
    size = resolve_model(settings).native_resolution
    examples = _images(6, size)
    config = TrainConfig(resolution=size, steps=steps, rank=16, eval_samples=0)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        train_lora(pipe, examples, config, output_dir=Path(tmp))
    seconds = time.monotonic() - started
    if not cached:
        # A naive loop encodes its batch (1 image, 1 caption) every step: time that work per
        # step on the same modules and add it to the measured cached run.
        one = TrainConfig(resolution=size, steps=1)
        encode_started = time.monotonic()
        with torch.no_grad():
            for _ in range(steps):
                _encode_once(pipe, examples[:1], (), one)
        seconds += time.monotonic() - encode_started
    return {"steps_per_s": steps / seconds, "seconds": seconds}


def scenario_generate(model: str, jobs: int, resident: bool, sample_steps: int) -> dict[str, float]:
    from headshots.generation.models import load_base_pipeline
    from headshots.generation.pipeline import ResidentPipeline
    from headshots.generation.presets import build_prompt_spec
    from headshots.queue.contracts import StyleChoice

    settings = _settings(model)
    pipeline = ResidentPipeline(settings)
    size = pipeline.native_resolution
    spec = build_prompt_spec(
        StyleChoice(count=2, seed=1, aspect_ratio="1:1"),
        job_id="bench",
        native_resolution=size,
        steps=sample_steps,
    )
    started = time.monotonic()
    for job in range(jobs):
        if not resident:
            pipeline = ResidentPipeline(settings, loader=load_base_pipeline)
        pipeline.generate(spec, lora=None, adapter_name=f"job{job}")
        if not resident:
            pipeline.close()
    seconds = time.monotonic() - started
    loads = pipeline.base_loads if resident else jobs
    return {"seconds_per_job": seconds / jobs, "base_loads": float(loads)}


def _run(args: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--scenario", *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--sample-steps", type=int, default=10)
    parser.add_argument("--scenario", nargs="+")
    args = parser.parse_args()

    if args.scenario:
        import torch

        torch.set_num_threads(2)
        kind, model, *rest = args.scenario
        if kind == "train":
            result = scenario_train(model, int(rest[0]), rest[1] == "cached")
        else:
            result = scenario_generate(model, int(rest[0]), rest[1] == "resident", int(rest[2]))
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return 0

    model = args.model
    if model is None:
        from headshots.generation.tiny import save_tiny_model

        model = str(save_tiny_model(Path(tempfile.mkdtemp(prefix="bench-tiny-"))))
    cached = _run(["train", model, str(args.steps), "cached"])
    naive = _run(["train", model, str(args.steps), "naive"])
    resident = _run(["generate", model, str(args.jobs), "resident", str(args.sample_steps)])
    per_job = _run(["generate", model, str(args.jobs), "per-job", str(args.sample_steps)])
    print(f"model: {model}")
    rows = [
        ("training  cached ", f"{cached['steps_per_s']:.2f} steps/s", cached),
        ("training  naive  ", f"{naive['steps_per_s']:.2f} steps/s", naive),
        ("generate resident", f"{resident['seconds_per_job']:.2f} s/job", resident),
        ("generate per-job ", f"{per_job['seconds_per_job']:.2f} s/job", per_job),
    ]
    for label, value, result in rows:
        print(f"{label}: {value}, peak {result['peak_rss_mb']:.0f} MB")
    print(f"  -> caching speed-up x{cached['steps_per_s'] / naive['steps_per_s']:.2f}")
    print(f"  -> resident speed-up x{per_job['seconds_per_job'] / resident['seconds_per_job']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
