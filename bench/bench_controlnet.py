"""Benchmark of what a reference photo costs per image (not a test). Usage:

    .venv/bin/python bench/bench_controlnet.py                          # tiny SD1.5, 64x80 px
    .venv/bin/python bench/bench_controlnet.py --family sdxl            # tiny SDXL
    .venv/bin/python bench/bench_controlnet.py --model DIR --controlnet DIR --steps 30

One process, one resident base. Cold: the ControlNet's load and the first controlled image,
apart. Steady state: per image, interleaved repeats of the same seed drawn three ways (plain,
steered by a pose ControlNet from scratch, and steered from the fitted reference at the
worker's default strength 0.8), min and median of each; and the control image itself (dlib
landmarks and the OpenPose drawing; Canny) on scikit-image's astronaut.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _stats(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--family", choices=("sd15", "sdxl"), default="sd15")
    parser.add_argument("--model", type=Path, help="base model folder (default: a tiny one)")
    parser.add_argument("--controlnet", type=Path, help="ControlNet folder (default: tiny)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    command = "python bench/bench_controlnet.py " + shlex.join(argv or sys.argv[1:])

    import skimage.data
    import torch
    from PIL import Image

    from headshots.generation.control import DlibLandmarks, make_control_image
    from headshots.generation.pipeline import Control, ResidentPipeline
    from headshots.generation.tiny import save_tiny_controlnet, save_tiny_model
    from headshots.queue.contracts import StyleChoice
    from headshots.settings import Settings
    from headshots.style.presets import build_prompt_spec

    torch.set_num_threads(max(1, torch.get_num_threads()))
    work = Path(tempfile.mkdtemp(prefix="bench-controlnet-"))
    model = args.model or save_tiny_model(work / "base", family=args.family)
    controlnet = args.controlnet or save_tiny_controlnet(model, work / "controlnet")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        base_model=str(model),
        state_dir=work / "state",
        device=args.device,
        **{f"controlnet_{args.family}_pose": str(controlnet)},
    )
    resident = ResidentPipeline(settings)
    family = resident.source.family
    spec = build_prompt_spec(
        StyleChoice(subject_class="woman", count=1, seed=1, aspect_ratio="4:5"),
        job_id="bench",
        native_resolution=resident.native_resolution,
        count=1,
        steps=args.steps,
        family=family,
    )
    size = (spec.width, spec.height)
    reference = Image.fromarray(skimage.data.astronaut())

    landmarks = DlibLandmarks()
    started = time.perf_counter()
    pose = make_control_image(reference, "pose", size, landmarks=landmarks)
    pose_cold = time.perf_counter() - started
    pose_times, canny_times = [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        make_control_image(reference, "pose", size, landmarks=landmarks)
        pose_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        make_control_image(reference, "canny", size)
        canny_times.append(time.perf_counter() - started)

    def one(control: Control | None) -> float:
        started = time.perf_counter()
        resident.generate(spec, lora=None, adapter_name="bench", control=control)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter() - started

    one(None)  # the base's first image: not what this bench is about
    started = time.perf_counter()
    resident.controlnet("pose")
    load = time.perf_counter() - started
    scratch = Control("pose", pose.image, settings.controlnet_scale)
    from_reference = Control(
        "pose", pose.image, settings.controlnet_scale, pose.fitted, settings.reference_strength
    )
    first = one(scratch)
    runs: dict[str, list[float]] = {"plain": [], "pose": [], "pose_from_reference": []}
    for _ in range(args.repeats):  # interleaved: a burst of load hits every variant alike
        runs["plain"].append(one(None))
        runs["pose"].append(one(scratch))
        runs["pose_from_reference"].append(one(from_reference))
    result = {
        "command": command,
        "family": family,
        "size": list(size),
        "steps": args.steps,
        "device": str(resident.pipe.device),
        "cold": {
            "controlnet_load_s": load,
            "first_controlled_image_s": first,
            "landmarks_first_pose_s": pose_cold,
        },
        "per_image_s": {name: _stats(values) for name, values in runs.items()},
        "control_image_s": {"pose": _stats(pose_times), "canny": _stats(canny_times)},
    }
    plain = result["per_image_s"]["plain"]["median"]
    for name in ("pose", "pose_from_reference"):
        result["per_image_s"][name]["x_plain"] = result["per_image_s"][name]["median"] / plain
    print(json.dumps(result, indent=2))
    print(f"# {command}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
