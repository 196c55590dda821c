"""Benchmark of the upscale to the delivered size (not a test). Usage:

    .venv/bin/python bench/bench_upscale.py [--model PATH] [--images 3] [--steps 20]

Per image: the plain enlargement (Lanczos) alone, and the whole upscale (enlargement + the tiled
img2img detail pass at the settings the worker uses, the job's prompts encoded once by compel),
from the model's native generation size (4:5) to the delivered size (2 x native on the long
side). Without ``--model`` it builds the tiny model (64 px native -> 102x128 delivered), so the
numbers are tiny-model numbers; GENERATION.md works out SD1.5 at 512 -> 1024 on paper.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="diffusers folder (default: a fresh tiny model)")
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="detail-pass steps before strength")
    parser.add_argument("--batch", type=int, default=4, help="tiles per img2img call")
    args = parser.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from headshots.generation.models import load_base_pipeline, resolve_model
    from headshots.generation.pipeline import ResidentPipeline
    from headshots.generation.postprocess import diffusers_img2img
    from headshots.generation.prompts import encode_prompts
    from headshots.generation.upscale import DetailSettings, enlarge, upscale_with_detail
    from headshots.queue.contracts import StyleChoice
    from headshots.settings import Settings
    from headshots.style.presets import build_prompt_spec

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from headshots.generation.tiny import save_tiny_model

            model = str(save_tiny_model(Path(tmp) / "tiny"))
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, base_model=model, device="auto", hf_offline=True
        )
        native = resolve_model(settings).native_resolution
        resident = ResidentPipeline(settings, loader=load_base_pipeline)
        spec = build_prompt_spec(
            StyleChoice(preset="legal", subject_class="woman", aspect_ratio="4:5"),
            job_id="bench",
            native_resolution=native,
        )
        detail = DetailSettings(steps=args.steps, batch=args.batch)
        img2img = resident.img2img
        started = time.perf_counter()
        encoded = encode_prompts(
            img2img, spec.prompt, spec.negative_prompt, family=resident.source.family
        )
        encode_s = time.perf_counter() - started
        rng = np.random.default_rng(0)
        size = (spec.output_width, spec.output_height)
        lanczos, full = [], []
        record: dict[str, Any] = {}
        for index in range(args.images):
            pixels = rng.integers(0, 255, (spec.height // 8, spec.width // 8, 3), dtype=np.uint8)
            source = Image.fromarray(pixels).resize((spec.width, spec.height))
            started = time.perf_counter()
            enlarge(source, size)
            lanczos.append(time.perf_counter() - started)
            run = diffusers_img2img(
                img2img,
                prompts=encoded,
                steps=detail.steps,
                cfg=spec.cfg,
                seed=index,
                strength=detail.strength,
            )
            started = time.perf_counter()
            _, record = upscale_with_detail(
                source, size, detail=run.batch, tile=native, settings=detail
            )
            full.append(time.perf_counter() - started)
        result = {
            "model": resident.source.name,
            "from": [spec.width, spec.height],
            "to": list(size),
            "tiles": record.get("detail_tiles"),
            "denoising_steps_per_tile": max(1, int(detail.steps * detail.strength)),
            "tiles_per_call": detail.batch,
            "encode_prompts_s": round(encode_s, 3),
            "lanczos_s_per_image": round(statistics.median(lanczos), 4),
            "upscale_with_detail_s_per_image": round(statistics.median(full), 3),
        }
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
