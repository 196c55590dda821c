"""bench/gpu_job.py's comparison with diffusers' DreamBooth LoRA script, on the CPU.

The real script is fetched by the user (nothing vendored), so a stand-in written here takes the
same arguments, checks them, and runs optimizer steps at a known pace; the step hook, the
parsing and the printed comparison are the bench's own.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from bench.gpu_job import reference_command, run_reference, step_table
from bench.step_hook import intervals, parse

_STAND_IN = textwrap.dedent(
    """
    import argparse, time
    import torch

    parser = argparse.ArgumentParser()
    for name in ("pretrained_model_name_or_path", "instance_data_dir", "instance_prompt",
                 "output_dir", "lr_scheduler", "mixed_precision"):
        parser.add_argument("--" + name, required=True)
    for name in ("resolution", "train_batch_size", "max_train_steps", "rank", "lr_warmup_steps",
                 "seed"):
        parser.add_argument("--" + name, type=int, required=True)
    parser.add_argument("--learning_rate", type=float, required=True)
    args = parser.parse_args()
    assert args.rank == 16 and args.train_batch_size == 1 and args.resolution == 64
    assert args.instance_prompt == "photo of ohwx person"
    weight = torch.nn.Parameter(torch.zeros(4))
    optimizer = torch.optim.AdamW([weight], lr=args.learning_rate)
    for _ in range(args.max_train_steps):
        time.sleep(0.02)
        weight.sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    """
)


def test_the_reference_runs_under_the_step_hook_and_is_compared(tmp_path: Path) -> None:
    script = tmp_path / "train_dreambooth_lora.py"
    script.write_text(_STAND_IN)
    command = reference_command(
        script,
        model=str(tmp_path / "model"),
        selfies=tmp_path / "selfies",
        out=tmp_path / "out",
        steps=16,
        resolution=64,
        mixed_precision="no",
    )
    assert command[0] == sys.executable
    reference = run_reference(command, timeout_s=120)
    assert reference["ok"], reference
    assert reference["steps"] == 16
    assert 15 <= reference["median_ms"] < 500  # 20 ms of sleep per step
    ours = {"steps": 40, "median_ms": reference["median_ms"] / 2, "min_ms": 1.0}
    lines = step_table(ours, reference)
    assert lines[-1] == "reference / ours = x2.00 (above 1: ours is faster)"

    script.write_text("raise SystemExit('no such model')")
    failed = run_reference(command, timeout_s=120)
    assert not failed["ok"] and "no such model" in failed["why"]
    assert "no step times" in step_table(ours, failed)[-1]


def test_step_intervals_skip_the_warm_up_and_parse_back() -> None:
    times = [0.0, 5.0, 5.1, 5.2, 5.3, 5.4] + [5.4 + 0.1 * i for i in range(1, 11)]
    rows = intervals({1: times, 2: [0.0, 1.0]})
    assert len(rows) == 1 and rows[0]["steps"] == 16
    assert abs(rows[0]["median_ms"] - 100.0) < 1e-6
    assert parse("noise\nOPTIMIZER_STEP_INTERVALS " + '[{"steps": 3}]\n') == [{"steps": 3}]
    assert parse("nothing") == []
