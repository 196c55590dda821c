"""Jobs that arq gave up on or lost are ended (or re-queued) and the chat is told.

Two ways a job can fall out of arq while our record still says "training":

- **arq gives up.** A job whose worker dies on every try (a stage that crashes the process, a
  GPU that resets) is re-run until ``max_tries``; then arq drops it without calling our job
  function, so nothing of ours ran to say so. :class:`headshots.queue.worker.HeadshotsWorker`
  hooks arq's ``finish_failed_job`` and calls :func:`on_arq_gave_up`: the job fails, the user's
  slot is freed, the chat is told, and the event stays in the job record.
- **arq loses it.** A Redis that restarted between two fsyncs, or a key evicted by a full
  server, leaves our record without any arq key. :func:`recover_lost_jobs` (one worker of the
  fleet, every minute) finds such jobs through the live-jobs index and queues them again: every
  stage's output is stored under the job id, so a re-run resumes where the job was. A job lost
  more than :data:`MAX_REQUEUES` times fails instead, with the same message and slot release.
"""

from __future__ import annotations

import logging
import time

from arq.connections import ArqRedis

from headshots.queue import constants, guarded
from headshots.queue.client import arq_job_id
from headshots.queue.contracts import JobRequest, JobState, ProgressEvent
from headshots.queue.finish import finish_job
from headshots.queue.progress import decode_hash, record_event
from headshots.queue.status import StatusReporter

logger = logging.getLogger(__name__)

#: A job is only called lost once its last state change is older than this: a fresh one may be
#: between our record and arq's enqueue, or between its train and generate parts.
LOST_AFTER_S = 120.0
MAX_REQUEUES = 2

GAVE_UP_TEXT = (
    "Sorry, this job kept failing on our side and was stopped after {tries} tries. "
    "Nothing more will be generated. You can start a new one now."
)
LOST_TEXT = (
    "Sorry, this job was lost on our side and could not be resumed. You can start a new one now."
)


def _part_to_run(state: JobState, stages: set[str]) -> str:
    """The part a re-queued job continues with (its finished stages are skipped)."""
    if state in (JobState.GENERATING, JobState.DELIVERING) or "train" in stages:
        return "generate"
    return "train"


async def arq_still_has(redis: ArqRedis, job_id: str) -> bool:
    """True while arq holds either part of the job: queued, running or about to run."""
    async with redis.pipeline(transaction=False) as pipe:
        for part, queue in constants.QUEUES.items():
            arq_id = arq_job_id(job_id, part)
            pipe.exists(
                constants.ARQ_JOB_PREFIX + arq_id, constants.ARQ_IN_PROGRESS_PREFIX + arq_id
            )
            pipe.zscore(queue, arq_id)
        found = await pipe.execute()
    return any(value not in (0, None) for value in found)


async def _note(redis: ArqRedis, job_id: str, state: JobState, text: str) -> None:
    event = ProgressEvent(job_id=job_id, state=state, stage="recovery", text=text, at=time.time())
    await record_event(redis, event)


async def _requeue(redis: ArqRedis, job_id: str, request: JobRequest, part: str) -> bool:
    """Queue ``part`` of the job again; False when it was re-queued too often already."""
    tries = await redis.hincrby(constants.job_key(job_id), "requeued", 1)
    if tries > MAX_REQUEUES:
        return False
    function = constants.TRAIN_JOB if part == "train" else constants.GENERATE_JOB
    await redis.enqueue_job(
        function,
        request.model_dump(mode="json"),
        _job_id=arq_job_id(job_id, part),
        _queue_name=constants.QUEUES[part],
    )
    logger.warning("job %s: arq had lost it; re-queued its %s part (%d)", job_id, part, tries)
    return True


async def _load(redis: ArqRedis, job_id: str) -> tuple[JobState, JobRequest] | None:
    raw = decode_hash(await redis.hgetall(constants.job_key(job_id)))
    if "request" not in raw:
        return None
    return JobState(raw.get("state", "queued")), JobRequest.model_validate_json(raw["request"])


async def on_arq_gave_up(
    redis: ArqRedis, status: StatusReporter, arq_id: str, *, tries: int
) -> None:
    """arq dropped ``arq_id`` without running our function: end the job and tell the chat."""
    job_id = arq_id.rpartition(".")[0]
    loaded = await _load(redis, job_id)
    if loaded is None or loaded[0].finished:
        return
    state, request = loaded
    if state is JobState.QUEUED and not await redis.exists(constants.job_stages_key(job_id)):
        # Never started (its arq record was gone when a worker took it: a half job):
        # nothing of ours crashed, so it gets another chance.
        if await _requeue(redis, job_id, request, arq_id.rpartition(".")[2]):
            await _note(redis, job_id, state, "re-queued: the queue had lost this job's data")
            return
    logger.error("job %s: arq gave up on %s after %d tries", job_id, arq_id, tries)
    await _stop(
        redis,
        status,
        (job_id, state, request),
        note=f"arq gave up on {arq_id} after {tries} tries",
        text=GAVE_UP_TEXT.format(tries=tries),
        error=f"arq gave up after {tries} tries (the worker died on every try)",
    )


async def _stop(
    redis: ArqRedis,
    status: StatusReporter,
    job: tuple[str, JobState, JobRequest],
    *,
    note: str,
    text: str,
    error: str,
) -> None:
    """Fail the job: the event in its record, the chat told, the user's slot freed."""
    job_id, state, request = job
    await _note(redis, job_id, state, note)
    await finish_job(
        redis, status, job_id, request, JobState.FAILED, text, error=error, stage="recovery"
    )


async def recover_lost_jobs(
    redis: ArqRedis, status: StatusReporter, *, lost_after_s: float = LOST_AFTER_S
) -> list[str]:
    """Re-queue (or fail) every unfinished job arq no longer holds; returns their ids."""
    recovered: list[str] = []
    cutoff = time.time() - lost_after_s
    for raw_id in await redis.zrangebyscore(constants.LIVE_JOBS_KEY, "-inf", cutoff):
        job_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        loaded = await _load(redis, job_id)
        if loaded is None or loaded[0].finished:
            await redis.zrem(constants.LIVE_JOBS_KEY, job_id)  # forgotten, or ended meanwhile
            continue
        if await arq_still_has(redis, job_id):
            continue
        state, request = loaded
        stages = {
            key.decode() if isinstance(key, bytes) else str(key)
            for key in await redis.hkeys(constants.job_stages_key(job_id))
        }
        recovered.append(job_id)
        if await _requeue(redis, job_id, request, _part_to_run(state, stages)):
            await _note(redis, job_id, state, "re-queued: the queue had lost this job")
            # Fresh grace period: the re-queued part is picked up before the next sweep.
            await guarded.write(redis, job_id, "ZADD", constants.LIVE_JOBS_KEY, time.time(), job_id)
            continue
        await _stop(
            redis,
            status,
            (job_id, state, request),
            note="lost by the queue too often; stopped",
            text=LOST_TEXT,
            error="the queue lost this job more than once",
        )
    return recovered
