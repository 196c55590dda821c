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
#: A worker's estimate stands this long after it started (it is written again at each start).
_ESTIMATE_TTL_S = 7 * 24 * 3600


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


async def average_duration(redis: Redis, name: str) -> float | None:
    """Moving average of the recent durations of ``name``; until one is measured, what the
    workers estimated for it (their model family and device); else ``None``: nobody knows.

    Never a built-in number: a fixed 19 minutes was promised for a job that took 14 s.
    """
    samples = [float(x) for x in await redis.lrange(constants.stage_durations_key(name), 0, -1)]
    if samples:
        return sum(samples) / len(samples)
    estimate = await redis.hget(constants.ESTIMATE_KEY, name)
    return float(estimate) if estimate is not None else None


async def expected_job_s(redis: Redis) -> float | None:
    """What a whole new job takes (training and generating), or ``None`` when unknown."""
    train, generate = (
        await average_duration(redis, "train"),
        await average_duration(redis, "generate"),
    )
    return None if train is None or generate is None else train + generate


async def publish_estimate(redis: Redis, durations: dict[str, float]) -> None:
    """A worker's estimate of each part before any is measured (see :func:`average_duration`)."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(constants.ESTIMATE_KEY, mapping={k: f"{v:.1f}" for k, v in durations.items()})
        pipe.expire(constants.ESTIMATE_KEY, _ESTIMATE_TTL_S)
        await pipe.execute()


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
    each = await average_duration(redis, part)
    # Its own job: generating, and training first when it is a training job (read once).
    generate = await average_duration(redis, "generate") if train else each
    if each is None or generate is None:
        return QueuePosition(int(rank) + 1, None)
    own = each + generate if train else generate
    return QueuePosition(int(rank) + 1, (int(rank) // workers) * each + own)


NO_WORKER = (
    "No worker is online right now: your job is safe in the queue and starts as soon as one is."
)


def position_eta(position: QueuePosition) -> str:
    """The ETA of a queued job: "unknown" while no worker is online, else :func:`format_eta`."""
    return format_eta(position.eta_s) if position.worker_online else "unknown"


def format_eta(seconds: float | None) -> str:
    """``None`` (nothing measured or estimated yet) reads "a few minutes", never a guess."""
    if seconds is None:
        return "a few minutes"
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
