"""One whole job on a CUDA GPU, timed (bench/gpu_smoke.sh runs it; not a test). Usage:

    python bench/gpu_job.py --model /models/sd15 [--selfies DIR] [--steps 200] [--n 8]

The model may be SD1.5, SDXL or FLUX.2 [klein] (bench/klein_shape.py writes a klein 4B-shaped
random-weight folder); for klein the floors are its transformer's (flow-matching step, and a
forward at the CFG batch), measured through the product's own trainer.

Runs ``headshots run`` in this process (check -> crops -> preview -> train -> generate ->
postprocess with face refine -> rank) on a local model folder, offline, in bf16 (fp16 where the
GPU has no bf16), then prints per-stage times, peak GPU memory, and the overhead figure:
job wall time / (training steps x step floor + images x sampler steps x forward floor), the
floors measured on the same GPU right after the job. Without CUDA it says so and exits 0.
Without ``--selfies`` it writes seven photos of scikit-image's astronaut (public domain).

With ``--reference PATH`` (diffusers' ``examples/dreambooth/train_dreambooth_lora.py`` or
``train_dreambooth_lora_sdxl.py``, fetched by the user; nothing of it is vendored here) it also
trains that script on the same model and photos (rank 16, the model's resolution, batch 1, the
same steps and dtype) in a child process, and prints both step medians and their ratio: each the
median gap between optimizer steps after warm-up (bench/step_hook.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.step_hook import intervals, parse, record_steps

_STEP_HOOK = Path(__file__).resolve().parent / "step_hook.py"
#: The reference trains what our trainer trains by default: rank 16, batch 1, lr 1e-4.
REFERENCE_RANK = 16
INSTANCE_PROMPT = "photo of ohwx person"


def reference_command(
    script: Path,
    *,
    model: str,
    selfies: Path,
    out: Path,
    steps: int,
    resolution: int,
    mixed_precision: str,
) -> list[str]:
    """diffusers' DreamBooth LoRA example on our model and photos, under the step hook."""
    return [
        sys.executable,
        str(_STEP_HOOK),
        str(script),
        f"--pretrained_model_name_or_path={model}",
        f"--instance_data_dir={selfies}",
        f"--instance_prompt={INSTANCE_PROMPT}",
        f"--output_dir={out}",
        f"--resolution={resolution}",
        "--train_batch_size=1",
        f"--max_train_steps={steps}",
        f"--rank={REFERENCE_RANK}",
        "--learning_rate=1e-4",
        "--lr_scheduler=constant",
        "--lr_warmup_steps=0",
        f"--mixed_precision={mixed_precision}",
        "--seed=0",
    ]


def run_reference(command: list[str], timeout_s: float = 3600) -> dict[str, Any]:
    """Run the reference; its step statistics, or why there are none."""
    import subprocess

    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    wall = time.monotonic() - started
    found = parse(done.stdout)
    if done.returncode != 0 or not found:
        tail = (done.stdout + done.stderr)[-2000:]
        return {"ok": False, "wall_s": wall, "why": f"exit {done.returncode}: {tail}"}
    # The trainer's optimizer is the one with the most steps (a script may make others).
    steps = max(found, key=lambda row: row["steps"])
    return {"ok": True, "wall_s": wall, **steps}


def step_table(ours: dict[str, Any] | None, reference: dict[str, Any] | None) -> list[str]:
    """The step comparison, one line each: ours, the reference's, and the ratio."""
    lines = []
    if ours is not None:
        lines.append(
            f"our training step (the job's own steps): median {ours['median_ms']:.1f} ms, "
            f"min {ours['min_ms']:.1f} ms over {ours['steps']} steps"
        )
    if reference is None:
        return lines
    if not reference["ok"]:
        lines.append(f"reference: no step times ({reference['why']})")
        return lines
    lines.append(
        f"reference (diffusers' DreamBooth LoRA): median {reference['median_ms']:.1f} ms, "
        f"min {reference['min_ms']:.1f} ms over {reference['steps']} steps, "
        f"wall {reference['wall_s']:.1f} s"
    )
    if ours is not None:
        ratio = reference["median_ms"] / ours["median_ms"]
        lines.append(f"reference / ours = x{ratio:.2f} (above 1: ours is faster)")
    return lines


def _astronaut_selfies(folder: Path) -> Path:
    """Seven different photos of one person (flips, crops, light, tilt)."""
    try:
        import skimage.data
    except ImportError:
        raise SystemExit(
            "no --selfies and scikit-image is not installed: pass --selfies DIR"
        ) from None
    from PIL import Image, ImageEnhance, ImageOps

    base = Image.fromarray(skimage.data.astronaut()).convert("RGB")
    w, h = base.size
    variants = [
        base,
        ImageOps.mirror(base),
        ImageEnhance.Brightness(base.crop((40, 10, 480, 450))).enhance(1.15).resize((600, 600)),
        ImageEnhance.Brightness(base.crop((0, 0, 430, 512))).enhance(0.8),
        base.crop((60, 0, w, h - 40)),
        base.rotate(8, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128)),
        ImageEnhance.Contrast(ImageOps.mirror(base.crop((20, 30, 500, 500)))).enhance(1.2),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    for number, image in enumerate(variants):
        image.save(folder / f"selfie_{number:02d}.jpg", quality=92)
    return folder


def _synced(fn: Any) -> float:
    """Seconds for one call of ``fn``, CUDA work included."""
    import torch

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
    started = time.monotonic()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.monotonic() - started


def _klein_floors(pipe: Any, resolution: int, images_per_call: int, rank: int) -> dict[str, Any]:
    """klein's step floor (the product's flow-matching step on a synthetic cache) and forward
    floor (the transformer at the CFG batch over a 512-token prompt)."""
    import statistics

    import torch

    from headshots.generation.train import (
        TrainConfig,
        _Cache,
        _Conditioning,
        _Trainer,
        _training_adapter,
        decide_gradient_checkpointing,
        free_device_memory,
    )

    device = pipe.device
    checkpointing = decide_gradient_checkpointing(
        "auto",
        "flux2-klein",
        resolution=resolution,
        batch_size=1,
        device_type=device.type,
        free_bytes=free_device_memory(device),
    ).enabled
    config = TrainConfig(
        family="flux2-klein",
        resolution=resolution,
        rank=rank,
        gradient_checkpointing=checkpointing,
        eval_samples=0,
    )
    latent = resolution // pipe.vae_scale_factor
    channels = int(pipe.vae.config.latent_channels)
    joint = int(pipe.transformer.config.joint_attention_dim)
    cache = _Cache(
        latent_params=torch.zeros(1, 2 * channels, latent, latent),
        captions=[0],
        conditioning=[_Conditioning(torch.randn(1, 512, joint))],
        is_prior=[False],
    )
    with _training_adapter(pipe.transformer, config):
        trainer = _Trainer(pipe, cache, config)
        trainer.step()  # warm-up
        times = [_synced(trainer.step) for _ in range(7)]
        trainer.unet.eval()
        batch = 2 * images_per_call
        generator = torch.Generator().manual_seed(0)
        latents = trainer._latents([0] * batch, generator)
        noise = torch.randn(latents.shape, generator=generator)
        steps = torch.full((batch,), 500)
        embeds = torch.randn(batch, 512, joint)

        def forward() -> None:
            with torch.no_grad():
                trainer._flow_loss(embeds, noise, steps, latents)

        forward()
        forward_floor = statistics.median(_synced(forward) for _ in range(5))
    return {
        "step_floor_s": statistics.median(times),
        "step_eager_s": (min(times), statistics.median(times)),
        "step_compiled_s": None,
        "compile_mode": "off (klein trains eagerly)",
        "compile_cold_s": None,
        "compile_failure": None,
        "forward_floor_s": forward_floor,
        "gradient_checkpointing": checkpointing,
    }


def _floors(model: str, resolution: int, images_per_call: int, rank: int) -> dict[str, Any]:
    """Median step floor (UNet fwd+bwd+AdamW, LoRA) and forward floor (CFG batch, LoRA)."""
    import statistics

    import torch
    import torch.nn.functional as F

    from headshots.generation.models import load_base_pipeline
    from headshots.generation.train import (
        TrainConfig,
        _Trainer,
        _training_adapter,
        compiled_unet_call,
        decide_gradient_checkpointing,
        free_device_memory,
    )
    from headshots.settings import Settings

    settings = Settings(base_model=model)
    pipe = load_base_pipeline(settings)
    if getattr(pipe, "unet", None) is None:
        return _klein_floors(pipe, resolution, images_per_call, rank)
    device = pipe.device
    latent = resolution // 8
    hidden = pipe.unet.config.cross_attention_dim
    sdxl = pipe.unet.config.get("addition_embed_type") == "text_time"

    def added(batch: int) -> dict[str, Any]:
        if not sdxl:
            return {}
        pooled = pipe.text_encoder_2.config.projection_dim
        return {
            "added_cond_kwargs": {
                "text_embeds": torch.randn(batch, pooled, device=device, dtype=pipe.unet.dtype),
                "time_ids": torch.tensor(
                    [[resolution, resolution, 0, 0, resolution, resolution]] * batch,
                    device=device,
                    dtype=pipe.unet.dtype,
                ),
            }
        }

    def timed(fn: Any, repeats: int = 5) -> float:
        fn()  # warm-up
        torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            started = time.monotonic()
            fn()
            torch.cuda.synchronize()
            times.append(time.monotonic() - started)
        return statistics.median(times)

    dtype = pipe.unet.dtype
    # The floor is measured as the product trains: checkpointing only when memory is short.
    checkpointing = decide_gradient_checkpointing(
        "auto",
        "sdxl" if sdxl else "sd15",
        resolution=resolution,
        batch_size=1,
        device_type=device.type,
        free_bytes=free_device_memory(device),
    ).enabled
    config = TrainConfig(resolution=resolution, rank=rank, gradient_checkpointing=checkpointing)
    empty: Any = type("Cache", (), {})()
    with _training_adapter(pipe.unet, config):
        trainer = _Trainer(pipe, empty, config)
        noisy = torch.randn(1, 4, latent, latent, device=device, dtype=dtype)
        embeds = torch.randn(1, 77, hidden, device=device, dtype=dtype)
        target = torch.randn(1, 4, latent, latent, device=device)
        t = torch.tensor([500], device=device)

        def step() -> None:
            with torch.autocast("cuda", dtype=dtype):
                pred = pipe.unet(noisy, t, embeds, **added(1)).sample
            F.mse_loss(pred.float(), target).backward()
            trainer.optimizer.step()
            trainer.optimizer.zero_grad(set_to_none=True)

        # The product's compiled step (HEADSHOTS_TRAIN_COMPILE=auto on CUDA): the first call
        # compiles (cold, reported apart), then eager and compiled steps alternate.
        compiled = compiled_unet_call("auto", device)
        conditioning = added(1).get("added_cond_kwargs")

        def compiled_step() -> None:
            assert compiled is not None
            with torch.autocast("cuda", dtype=dtype):
                pred = compiled(pipe.unet, noisy, t, embeds, conditioning)
            F.mse_loss(pred.float(), target).backward()
            trainer.optimizer.step()
            trainer.optimizer.zero_grad(set_to_none=True)

        compile_cold: float | None = None
        if compiled is not None:
            started = time.monotonic()
            try:
                compiled_step()
                torch.cuda.synchronize()
                compile_cold = time.monotonic() - started
            except Exception as exc:  # reported, as the product would log it and train eagerly
                compiled.give_up(exc)
                trainer.optimizer.zero_grad(set_to_none=True)
        step()  # eager warm-up
        eager_times: list[float] = []
        compiled_times: list[float] = []
        for _ in range(7):
            eager_times.append(_synced(step))
            if compiled is not None and compiled.usable:
                compiled_times.append(_synced(compiled_step))
        step_floor = statistics.median(eager_times)
        trainer.unet.eval()
        batch = 2 * images_per_call
        noisy_b = torch.randn(batch, 4, latent, latent, device=device, dtype=dtype)
        embeds_b = torch.randn(batch, 77, hidden, device=device, dtype=dtype)

        def forward() -> None:
            with torch.no_grad(), torch.autocast("cuda", dtype=dtype):
                pipe.unet(noisy_b, t, embeds_b, **added(batch))

        forward_floor = timed(forward)
    return {
        "step_floor_s": step_floor,
        "step_eager_s": (min(eager_times), step_floor),
        "step_compiled_s": (
            (min(compiled_times), statistics.median(compiled_times)) if compiled_times else None
        ),
        "compile_mode": compiled.mode if compiled is not None else "off",
        "compile_cold_s": compile_cold,
        "compile_failure": compiled.failure if compiled is not None else None,
        "forward_floor_s": forward_floor,
        "gradient_checkpointing": checkpointing,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="a local diffusers folder (no downloads)")
    parser.add_argument("--selfies", type=Path)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--reference",
        type=Path,
        help="diffusers' train_dreambooth_lora.py (or _sdxl.py): also train it on the same "
        "model and photos and compare step times",
    )
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("gpu_smoke: no CUDA device on this host; nothing to run (exit 0)")
        return 0
    if not Path(args.model).is_dir():
        raise SystemExit(f"{args.model} is not a local model folder (the smoke downloads nothing)")
    dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    os.environ.update(
        HEADSHOTS_HF_OFFLINE="1",
        HEADSHOTS_DEVICE="cuda",
        HEADSHOTS_DTYPE=dtype,
        HEADSHOTS_BASE_MODEL=args.model,
    )
    work = Path(tempfile.mkdtemp(prefix="gpu-smoke-"))
    selfies = args.selfies or _astronaut_selfies(work / "selfies")
    out = args.out or work / "out"
    os.environ.setdefault("HEADSHOTS_STATE_DIR", str(work / "state"))

    from headshots.cli import main as cli_main

    torch.cuda.reset_peak_memory_stats()
    stamps = record_steps()
    started = time.monotonic()
    code = cli_main(
        [
            "run",
            "--selfies",
            str(selfies),
            "--model",
            args.model,
            "--steps",
            str(args.steps),
            "--n",
            str(args.n),
            "--out",
            str(out),
        ]
    )
    wall = time.monotonic() - started
    peak_gb = torch.cuda.max_memory_allocated() / 2**30
    if code:
        print(f"gpu_smoke: headshots run failed with exit code {code}")
        return code
    report = json.loads((out / "report.json").read_text())
    generation = report.get("generation") or {}
    train = report.get("train") or {}
    images = len(generation.get("seeds") or []) or args.n
    sample_steps = int(generation.get("steps") or 0)
    resolution = int((train.get("config") or {}).get("resolution") or 512)
    print(f"family {generation.get('family')}")
    rank = int((train.get("config") or {}).get("rank") or 16)

    print(f"model {args.model}, {dtype}, {torch.cuda.get_device_name()}")
    print("stage times:")
    for name, stage in report["stages"].items():
        print(f"  {name:12} {stage['seconds']:8.2f} s{' (skipped)' if stage['skipped'] else ''}")
    print(f"job wall time {wall:.1f} s (includes the base load), peak GPU memory {peak_gb:.2f} GB")
    floors = _floors(args.model, resolution, min(4, images), rank)
    arithmetic = args.steps * floors["step_floor_s"] + images * sample_steps * (
        floors["forward_floor_s"] / min(4, images)
    )
    print(
        f"step floor {floors['step_floor_s'] * 1000:.1f} ms, forward floor "
        f"{floors['forward_floor_s'] * 1000:.1f} ms (CFG batch {2 * min(4, images)}), gradient "
        f"checkpointing {'on' if floors['gradient_checkpointing'] else 'off'}"
    )
    eager_min, eager_median = floors["step_eager_s"]
    command = " ".join([sys.executable, *sys.argv])
    print(
        f"training step, eager: min {eager_min * 1000:.1f} ms, median {eager_median * 1000:.1f} ms"
    )
    if floors["step_compiled_s"] is not None:
        low, median = floors["step_compiled_s"]
        print(
            f"training step, torch.compile({floors['compile_mode']}): min {low * 1000:.1f} ms, "
            f"median {median * 1000:.1f} ms; cold compile {floors['compile_cold_s']:.1f} s "
            "(7 interleaved runs each)"
        )
    elif floors["compile_failure"]:
        print(f"training step, torch.compile failed: {floors['compile_failure']}")
    print(f"the job trained with compile={train.get('compile', 'eager')}; command: {command}")
    ours = max(intervals(stamps), key=lambda row: row["steps"], default=None)
    reference = None
    if args.reference is not None:
        reference = run_reference(
            reference_command(
                args.reference,
                model=args.model,
                selfies=selfies,
                out=work / "reference",
                steps=args.steps,
                resolution=resolution,
                mixed_precision="bf16" if dtype == "bfloat16" else "fp16",
            )
        )
    for line in step_table(ours, reference):
        print(line)
    print(
        f"overhead = {wall:.1f} s / ({args.steps} x step floor + {images} images x "
        f"{sample_steps} steps x forward floor per image = {arithmetic:.1f} s) "
        f"= x{wall / arithmetic:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
