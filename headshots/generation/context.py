"""What a worker stage sees: the contract between the queue and the generation code.

Stages are plain blocking functions (they run in a worker thread, off the event loop, so arq's
heartbeats keep flowing). Everything they touch goes through a :class:`StageContext`, so the same
stage code runs inside an arq worker (Redis-backed store, chat progress) and inside
``headshots run`` (a local folder, progress on the terminal).

Store paths are relative to the requesting user's namespace, so that ``forget USER`` can remove
everything of theirs with one prefix:

- ``uploads/<upload_id>/<NN>.jpg``               normalised selfies (written by the chat side)
- ``jobs/<job_id>/...``                          everything a job produces
- ``jobs/<train_job_id>/lora/pytorch_lora_weights.safetensors``   the person's LoRA
- ``jobs/<train_job_id>/faces/reference.npy``    centroid embedding of the accepted selfies
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from headshots.queue.contracts import JobRequest, JobState

if TYPE_CHECKING:
    from headshots.settings import Settings


class Retention(enum.StrEnum):
    """How long a stored blob lives (the TTLs come from settings)."""

    SELFIE = "selfie"  # the user's photos and anything derived that shows their face pre-training
    LORA = "lora"  # the trained model of the person
    RESULT = "result"  # delivered headshots and contact sheets


def lora_path(train_job_id: str) -> str:
    return f"jobs/{train_job_id}/lora/pytorch_lora_weights.safetensors"


def reference_embedding_path(train_job_id: str) -> str:
    return f"jobs/{train_job_id}/faces/reference.npy"


def upload_prefix(upload_id: str) -> str:
    return f"uploads/{upload_id}/"


class StageContext(Protocol):
    job_id: str
    request: JobRequest
    settings: Settings

    @property
    def train_job_id(self) -> str:
        """The job whose LoRA this job uses: itself, or the job a "new style" request reuses."""
        ...

    def read_blob(self, path: str) -> bytes:
        """Bytes at ``path``; raises :class:`headshots.errors.NotFound` when absent or expired."""
        ...

    def write_blob(self, path: str, data: bytes, retention: Retention) -> None: ...

    def list_blobs(self, prefix: str) -> list[str]:
        """Sorted paths under ``prefix``."""
        ...

    def output_of(self, stage: str) -> dict[str, Any] | None:
        """The record an earlier stage of this job returned, or ``None``."""
        ...

    def output_of_job(self, job_id: str, stage: str) -> dict[str, Any] | None:
        """A stage record of another job *of the same user* (e.g. the job a "More like #N"
        request varies), or ``None`` when it is gone or belongs to someone else."""
        ...

    def progress(self, percent: float | None, text: str) -> None:
        """Report progress within the current stage (throttled before it reaches a chat)."""
        ...

    def check_cancelled(self) -> None:
        """Raise :class:`headshots.errors.JobCancelled` if the user cancelled (between steps)."""
        ...

    def publish_preview(self, path: str, caption: str) -> None:
        """Send an already-written image (e.g. an instant preview) to the chat right away."""
        ...


StageFunction = Callable[[StageContext], dict[str, Any]]


@dataclass(frozen=True)
class Stage:
    """One resumable step. Its returned record is stored under the job id; a re-run skips it."""

    name: str
    state: JobState
    run: StageFunction


@dataclass
class StageSet:
    """The stages a worker runs: ``train`` on the train queue, ``generate`` on the generate one.

    The last ``generate`` stage returns ``{"results": [{"path", "rank", "score", "seed",
    "caption"}, ...], "contact_sheet": path | None}``; the queue delivers those.
    """

    train: list[Stage]
    generate: list[Stage]
    close: Callable[[], None] = field(default=lambda: None)
    #: Run once when a worker starts, before it takes a job: raises (a ``HeadshotsError``) when
    #: no job could succeed, e.g. the base model or the output check cannot be found. A worker
    #: that took jobs anyway would spend the GPU time of each and fail it at the end.
    ready: Callable[[], None] = field(default=lambda: None)


StageSetFactory = Callable[["Settings"], StageSet]
