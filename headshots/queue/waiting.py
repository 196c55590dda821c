"""Keep the status message of every waiting job current as the queue moves.

A job's place in line changes only when a job ahead of it leaves arq's queue (arq keeps a
running job in the queue's sorted set until it finishes), so the worker that finished one
refreshes the jobs still waiting behind it. :class:`StatusReporter` drops unchanged texts, so
a job whose line did not move is not edited.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from headshots.queue import constants
from headshots.queue.contracts import JobRequest, JobState
from headshots.queue.progress import (
    NO_WORKER,
    QueuePosition,
    decode_hash,
    position_eta,
    queue_position,
)
from headshots.queue.status import StatusReporter

logger = logging.getLogger(__name__)

#: Waiting jobs refreshed per finished job. Every refresh is one chat edit per job; beyond the
#: first few dozen, positions change by one each time and the edits would only eat into the
#: platforms' rate limits. Jobs further back are refreshed once they move up.
REFRESH_LIMIT = 25


def queued_text(position: QueuePosition) -> str:
    """The status line of a job waiting to start."""
    if position.position is None:
        return "Queued."
    text = f"Queued: position {position.position}, ETA {position_eta(position)}."
    return text if position.worker_online else f"{text} {NO_WORKER}"


def trained_waiting_text(position: QueuePosition) -> str:
    """The status line of a trained job waiting for a generation slot."""
    where = f" (position {position.position})" if position.position is not None else ""
    return f"Your model is trained; waiting for a generation slot{where}…"


async def refresh_waiting(redis: Redis, status: StatusReporter, part: str) -> int:
    """Show every waiting job of ``part``'s queue its current place; returns the edits tried."""
    queue_name = constants.QUEUES[part]
    arq_ids = await redis.zrange(queue_name, 0, REFRESH_LIMIT - 1)
    tried = 0
    for raw_id in arq_ids:
        arq_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        job_id, _, id_part = arq_id.rpartition(".")
        if id_part != part:
            continue  # not one of ours
        position = await queue_position(redis, queue_name, arq_id, train=part == "train")
        # Read last, right before the edit: a job a worker takes meanwhile keeps its stage line
        # (the window left is one round trip, and the next progress edit corrects it).
        record = decode_hash(await redis.hgetall(constants.job_key(job_id)))
        if "request" not in record or await redis.exists(constants.ARQ_IN_PROGRESS_PREFIX + arq_id):
            continue  # forgotten, or just started
        state = JobState(record.get("state", JobState.QUEUED.value))
        if state is JobState.QUEUED:
            text = queued_text(position)
        elif part == "generate" and state is JobState.TRAINING:
            text = trained_waiting_text(position)
        else:
            continue
        request = JobRequest.model_validate_json(record["request"])
        await status.update(job_id, request.target, text, force=True)
        tried += 1
    logger.debug("refreshed %d waiting %s jobs", tried, part)
    return tried
