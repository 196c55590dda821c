"""Times between optimizer steps, for any training script (ours in-process, a reference's in a
child process). Usage as a runner:

    python bench/step_hook.py SCRIPT ARGS...

It runs SCRIPT as ``__main__`` and, at exit, prints one line ``OPTIMIZER_STEP_INTERVALS [...]``:
per optimizer with enough steps, the median, min and p90 of the gaps between consecutive steps
after the first ``WARMUP`` (compilation, allocator warm-up, the first checkpoint). The gap
between two optimizer steps is what one training step costs, whatever the script does in it
(diffusers' example encodes the VAE latents and the prompt inside every step).
"""

from __future__ import annotations

import atexit
import json
import runpy
import sys
import time
from typing import Any

WARMUP = 5
MARKER = "OPTIMIZER_STEP_INTERVALS"


def record_steps() -> dict[int, list[float]]:
    """Start stamping every optimizer step of this process; the dict fills as they run."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    stamps: dict[int, list[float]] = {}

    def hook(optimizer: Any, _args: Any, _kwargs: Any) -> None:
        stamps.setdefault(id(optimizer), []).append(time.perf_counter())

    register_optimizer_step_post_hook(hook)
    return stamps


def intervals(stamps: dict[int, list[float]], warmup: int = WARMUP) -> list[dict[str, float]]:
    """Per optimizer with at least six gaps after warm-up: its step count and gap statistics."""
    found = []
    for times in stamps.values():
        gaps = sorted(b - a for a, b in zip(times[warmup:], times[warmup + 1 :], strict=False))
        if len(gaps) < 6:
            continue
        found.append(
            {
                "steps": len(times),
                "median_ms": round(1000 * gaps[len(gaps) // 2], 3),
                "min_ms": round(1000 * gaps[0], 3),
                "p90_ms": round(1000 * gaps[int(len(gaps) * 0.9)], 3),
            }
        )
    return found


def parse(output: str) -> list[dict[str, float]]:
    """The intervals a runner printed (the last marker line of ``output``)."""
    lines = [line for line in output.splitlines() if line.startswith(MARKER)]
    if not lines:
        return []
    parsed: list[dict[str, float]] = json.loads(lines[-1][len(MARKER) :])
    return parsed


def _run() -> None:
    stamps = record_steps()
    atexit.register(lambda: print(MARKER, json.dumps(intervals(stamps)), flush=True))
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    _run()
