"""Ending a job: tell the chat, free the user's slot, then publish the final state."""

from __future__ import annotations

from arq.connections import ArqRedis

from headshots.queue import constants, guarded
from headshots.queue.client import release_slot
from headshots.queue.contracts import JobRequest, JobState
from headshots.queue.progress import set_state
from headshots.queue.status import StatusReporter


async def finish_job(
    redis: ArqRedis,
    status: StatusReporter,
    job_id: str,
    request: JobRequest,
    state: JobState,
    text: str,
    *,
    error: str | None = None,
    stage: str | None = None,
) -> bool:
    """Move the job to its final ``state``; False when it was forgotten (nothing is written)."""
    if not await redis.exists(constants.job_key(job_id)):
        return False
    if error is not None:
        await guarded.write(redis, job_id, "HSET", constants.job_key(job_id), "error", error)
    # The chat and the user's slot first: whoever sees the final state (a bot, `headshots
    # status`) can rely on the user having been told and being free to start the next job.
    await status.update(job_id, request.target, text, force=True)
    await release_slot(redis, request.user.key, job_id)
    await set_state(redis, job_id, state, text=text, stage=stage)
    return True
