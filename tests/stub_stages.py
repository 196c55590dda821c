"""Stand-in stages for the queue tests: real blobs and progress, no models.

Driven by environment variables of the worker process (test-only knobs):
STUB_RUN_LOG (a file each stage start is appended to), STUB_STEPS / STUB_STEP_S (training loop),
STUB_BLIND_S (after the loop, a pause without cancel checks before the LoRA is written),
STUB_HANG_ONCE (a marker file: the first train run that finds it missing creates it and then
hangs, so the test can SIGKILL the worker mid-stage), STUB_KILL_ALWAYS (every train run
SIGKILLs its own worker process, as a stage that crashes the GPU driver would).
"""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path
from typing import Any

from PIL import Image

from headshots.errors import SelfieRejected
from headshots.generation.context import (
    Retention,
    Stage,
    StageContext,
    StageSet,
    lora_path,
    upload_prefix,
)
from headshots.queue.contracts import JobState
from headshots.settings import Settings


def _log(ctx: StageContext, stage: str) -> None:
    log = os.environ.get("STUB_RUN_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"{ctx.job_id} {stage}\n")


def _check(ctx: StageContext) -> dict[str, Any]:
    _log(ctx, "check")
    selfies = ctx.list_blobs(upload_prefix(ctx.request.upload_id))
    if len(selfies) < 1:
        raise SelfieRejected("no selfies were found for this job")
    return {"accepted": selfies}


def _train(ctx: StageContext) -> dict[str, Any]:
    _log(ctx, "train")
    if os.environ.get("STUB_KILL_ALWAYS"):
        os.kill(os.getpid(), signal.SIGKILL)
    marker = os.environ.get("STUB_HANG_ONCE")
    if marker and not Path(marker).exists():
        Path(marker).write_text("hung")
        time.sleep(3600)  # the test kills the worker here
    steps = int(os.environ.get("STUB_STEPS", "3"))
    step_s = float(os.environ.get("STUB_STEP_S", "0.05"))
    for step in range(1, steps + 1):
        ctx.check_cancelled()
        time.sleep(step_s)
        ctx.progress(100 * step / steps, f"training {100 * step // steps}%")
    blind_s = float(os.environ.get("STUB_BLIND_S", "0"))
    if blind_s:
        _log(ctx, "train-blind")
        time.sleep(blind_s)  # a long GPU call: no cancel check until it returns
        _log(ctx, "train-writing")
    ctx.write_blob(lora_path(ctx.job_id), b"not really a lora", Retention.LORA)
    return {"lora": lora_path(ctx.job_id), "steps": steps}


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 80), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _generate(ctx: StageContext) -> dict[str, Any]:
    _log(ctx, "generate")
    ctx.read_blob(lora_path(ctx.train_job_id))
    count = ctx.request.style.count
    paths = []
    for index in range(count):
        ctx.check_cancelled()
        path = f"jobs/{ctx.job_id}/generated/{index:02d}.png"
        ctx.write_blob(path, _png((40 * index % 255, 120, 200)), Retention.RESULT)
        paths.append(path)
        ctx.progress(100 * (index + 1) / count, f"generating {index + 1}/{count}")
    return {"images": paths}


def _rank(ctx: StageContext) -> dict[str, Any]:
    _log(ctx, "rank")
    generated = ctx.output_of("generate") or {"images": []}
    results = [
        {
            "path": path,
            "rank": rank,
            "score": 1.0 / rank,
            "seed": 1000 + rank,
            "caption": f"#{rank} stub",
        }
        for rank, path in enumerate(generated["images"], start=1)
    ]
    sheet = f"jobs/{ctx.job_id}/contact_sheet.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (128, 128), (200, 200, 200)).save(buffer, format="JPEG")
    ctx.write_blob(sheet, buffer.getvalue(), Retention.RESULT)
    return {"results": results, "contact_sheet": sheet}


def build(settings: Settings) -> StageSet:
    return StageSet(
        train=[
            Stage("check", JobState.CHECKING, _check),
            Stage("train", JobState.TRAINING, _train),
        ],
        generate=[
            Stage("generate", JobState.GENERATING, _generate),
            Stage("rank", JobState.GENERATING, _rank),
        ],
    )
