"""A folder-backed :class:`StageContext`: the same stages as the worker, for ``headshots run``.

The store is a directory (blob paths become file paths under it), stage records are JSON files
under ``records/<job_id>/``, progress goes to a callback or the log, and nothing cancels.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from headshots.errors import NotFound
from headshots.generation.context import Retention, Stage
from headshots.queue.contracts import JobRequest

if TYPE_CHECKING:
    from headshots.settings import Settings

logger = logging.getLogger(__name__)

ProgressSink = Callable[[str, float | None, str], None]
"""``sink(stage, percent, text)``."""


class LocalContext:
    """Implements :class:`headshots.generation.context.StageContext` on a local folder."""

    def __init__(
        self,
        root: Path,
        request: JobRequest,
        settings: Settings,
        *,
        job_id: str | None = None,
        train_job_id: str | None = None,
        on_progress: ProgressSink | None = None,
    ) -> None:
        self.root = root
        self.request = request
        self.settings = settings
        self.job_id = job_id or request.job_id()
        self._train_job_id = train_job_id or request.lora_job_id or self.job_id
        self._on_progress = on_progress
        self.stage = ""
        self.previews: list[tuple[str, str]] = []

    @property
    def train_job_id(self) -> str:
        return self._train_job_id

    def file(self, path: str) -> Path:
        """The file behind a blob path (refusing anything that would leave the root)."""
        relative = PurePosixPath(path)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"blob path {path!r} leaves the store")
        return self.root.joinpath(*relative.parts)

    def read_blob(self, path: str) -> bytes:
        try:
            return self.file(path).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{path} is not in the store (expired or never written)") from None

    def write_blob(self, path: str, data: bytes, retention: Retention) -> None:
        target = self.file(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
        logger.debug("wrote %s (%d bytes, retention %s)", path, len(data), retention.value)

    def list_blobs(self, prefix: str) -> list[str]:
        base = self.root
        found = [
            file.relative_to(base).as_posix()
            for file in base.rglob("*")
            if file.is_file() and not file.name.endswith(".tmp")
        ]
        return sorted(path for path in found if path.startswith(prefix))

    def _record_file(self, stage: str, job_id: str | None = None) -> Path:
        return self.root / "records" / (job_id or self.job_id) / f"{stage}.json"

    def output_of(self, stage: str) -> dict[str, Any] | None:
        return self.output_of_job(self.job_id, stage)

    def output_of_job(self, job_id: str, stage: str) -> dict[str, Any] | None:
        # One folder holds one person's jobs, so every job here is the same user's.
        path = self._record_file(stage, job_id)
        if not path.is_file():
            return None
        record: dict[str, Any] = json.loads(path.read_text())
        return record

    def save_record(self, stage: str, record: dict[str, Any]) -> None:
        path = self._record_file(stage)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2, default=str))

    def progress(self, percent: float | None, text: str) -> None:
        if self._on_progress is not None:
            self._on_progress(self.stage, percent, text)
        else:
            logger.info("%s: %s", self.stage, text)

    def check_cancelled(self) -> None:
        return None

    def publish_preview(self, path: str, caption: str) -> None:
        self.previews.append((path, caption))
        logger.info("preview: %s (%s)", self.file(path), caption)


@dataclass
class StageTiming:
    name: str
    seconds: float
    skipped: bool


def run_stages(ctx: LocalContext, stages: Sequence[Stage]) -> list[StageTiming]:
    """Run stages in order like the worker does: a stage with a stored record is skipped."""
    timings: list[StageTiming] = []
    for stage in stages:
        ctx.stage = stage.name
        if ctx.output_of(stage.name) is not None:
            timings.append(StageTiming(stage.name, 0.0, skipped=True))
            continue
        started = time.monotonic()
        logger.info("stage %s (%s)", stage.name, stage.state.value)
        record = stage.run(ctx)
        ctx.save_record(stage.name, record)
        timings.append(StageTiming(stage.name, time.monotonic() - started, skipped=False))
    return timings
