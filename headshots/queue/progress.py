"""Job states, progress events, stage timings, queue position and ETA — all in Redis."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from headshots.queue import constants, guarded, registry
from headshots.queue.contracts import JobState, ProgressEvent

logger = logging.getLogger(__name__)

_MAX_EVENTS = 500
_DURATION_SAMPLES = 20
#: Used for ETAs until real durations have been measured (seconds on one GPU).
_DEFAULT_DURATIONS = {"train": 900.0, "generate": 240.0}


async def set_state(
    redis: Redis, job_id: str, state: JobState, *, text: str = "", stage: str | None = None
) -> ProgressEvent:
    """Move a job to ``state`` (timestamped) and record/publish the matching event.

    A job whose record is gone (its user asked to forget everything) is left gone.
    """
    now = time.time()
    event = ProgressEvent(job_id=job_id, state=state, stage=stage or state.value, text=text, at=now)
    fields: dict[str, str | float] = {
        "state": state.value,
        "updated": now,
        f"ts_{state.value}": now,
    }
    if await guarded.event(redis, job_id, event.model_dump_json(), keep=_MAX_EVENTS, fields=fields):
        if state.finished:
            await redis.zrem(constants.LIVE_JOBS_KEY, job_id)
        else:
            # Guarded: a forget between the event and this write must not leave the id behind.
            await guarded.write(redis, job_id, "ZADD", constants.LIVE_JOBS_KEY, now, job_id)
    return event


async def record_event(redis: Redis, event: ProgressEvent) -> ProgressEvent:
    """Append ``event`` to the job's event list and publish it (while the job exists)."""
    await guarded.event(redis, event.job_id, event.model_dump_json(), keep=_MAX_EVENTS)
    return event


async def events(redis: Redis, job_id: str) -> list[ProgressEvent]:
    raw = await redis.lrange(constants.job_events_key(job_id), 0, -1)
    return [ProgressEvent.model_validate_json(item) for item in raw]


async def record_duration(redis: Redis, name: str, seconds: float) -> None:
    """Remember how long a stage (or a whole queue's part of a job) took, for ETAs."""
    key = constants.stage_durations_key(name)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.lpush(key, f"{seconds:.3f}")
        pipe.ltrim(key, 0, _DURATION_SAMPLES - 1)
        await pipe.execute()


async def average_duration(redis: Redis, name: str) -> float:
    """Moving average of the recent durations of ``name`` (a default until measured)."""
    samples = [float(x) for x in await redis.lrange(constants.stage_durations_key(name), 0, -1)]
    if not samples:
        return _DEFAULT_DURATIONS.get(name, 60.0)
    return sum(samples) / len(samples)


@dataclass(frozen=True)
class QueuePosition:
    """Where a queued job stands: 1 = next. ``eta_s`` is until its results arrive.

    ``worker_online`` is False when no worker of the job's queue has reported in lately: the
    job is safe in Redis but will not move until one starts, so no ETA is promised.
    """

    position: int | None
    eta_s: float | None
    worker_online: bool = True


async def queue_position(
    redis: Redis, queue_name: str, arq_job_id: str, *, train: bool
) -> QueuePosition:
    """Position from ZRANK on arq's queue key; ETA from recent durations and live workers.

    The rank counts jobs still running (arq keeps them in the queue until they end). With
    ``n`` live workers a job starts after ``rank // n`` rounds of its part.
    """
    rank = await redis.zrank(queue_name, arq_job_id)
    if rank is None:
        return QueuePosition(None, None)
    part = "train" if train else "generate"
    workers = await registry.live_count(redis, part)
    if workers == 0:
        return QueuePosition(int(rank) + 1, None, worker_online=False)
    ahead = (int(rank) // workers) * await average_duration(redis, part)
    own = await average_duration(redis, "generate")
    if train:
        own += await average_duration(redis, "train")
    return QueuePosition(int(rank) + 1, ahead + own)


NO_WORKER = (
    "No worker is online right now: your job is safe in the queue and starts as soon as one is."
)


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 90:
        return "about a minute"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} min"
    return f"about {seconds / 3600:.1f} h"


def decode_hash(raw: dict[bytes, bytes] | dict[str, str]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
