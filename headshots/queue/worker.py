"""arq workers: one for the ``train`` queue, one for ``generate``, or both in one process.

Two queues because arq re-runs a crashed worker's job only after its in-progress key expires
(the longest function timeout + 10 s): a 1-hour training timeout must not delay the recovery
of 5-minute generation jobs.

Each job runs its part's stages in order. A stage's returned record is stored under the job id
before the next starts, so a re-run (arq runs jobs at least once) skips finished stages. Stages
block (GPU work) and run in a thread, so the event loop keeps arq's heartbeats flowing.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import signal
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from arq import Retry
from arq.connections import ArqRedis
from arq.typing import StartupShutdown
from arq.worker import Worker, func
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from headshots.errors import (
    ConfigurationError,
    HeadshotsError,
    JobCancelled,
    StoreUnavailable,
    UserError,
)
from headshots.generation.context import Retention, Stage, StageSetFactory, upload_prefix
from headshots.queue import constants, guarded, registry
from headshots.queue.client import arq_job_id, drop_arq_job, job_ttl_s
from headshots.queue.connections import RedisTimeouts, connect
from headshots.queue.contracts import JobRequest, JobState, ProgressEvent
from headshots.queue.deliver import deliver_preview, deliver_results
from headshots.queue.delivery import SenderPool
from headshots.queue.finish import finish_job
from headshots.queue.progress import (
    decode_hash,
    publish_estimate,
    queue_position,
    record_duration,
    record_event,
    set_state,
)
from headshots.queue.recovery import on_arq_gave_up, recover_lost_jobs
from headshots.queue.resources import WorkerResources
from headshots.queue.status import StatusReporter
from headshots.queue.store import LocalBlobStore, build_store
from headshots.queue.waiting import refresh_waiting, trained_waiting_text
from headshots.settings import Settings
from headshots.style.policy import keep_builds as keep_policy_builds

logger = logging.getLogger(__name__)

T = TypeVar("T")

STATE_TEXT = {
    JobState.CHECKING: "Checking your selfies…",
    JobState.TRAINING: "Training your personal model…",
    JobState.GENERATING: "Generating your headshots…",
    JobState.DELIVERING: "Sending your headshots…",
    JobState.DONE: "Done! Your headshots are below.",
    JobState.CANCELLED: "Cancelled. Nothing more will be generated.",
}
#: Back-off of a worker's poll loop while Redis is unreachable (first try, then doubling).
RECONNECT_FIRST_DELAY_S = 0.5
RECONNECT_MAX_DELAY_S = 10.0
_TRANSIENT = (
    StoreUnavailable,
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
)


def load_stage_factory(path: str) -> StageSetFactory:
    """Import ``module:function`` (the ``HEADSHOTS_STAGES`` setting)."""
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ConfigurationError(f"HEADSHOTS_STAGES must look like 'module:function', got {path!r}")
    factory: StageSetFactory = getattr(importlib.import_module(module_name), attr)
    return factory


class RunContext:
    """The :class:`StageContext` of one job inside a worker; stages call it from their thread."""

    def __init__(
        self,
        resources: WorkerResources,
        job_id: str,
        request: JobRequest,
        outputs: dict[str, Any],
        train_job_id: str | None = None,
    ) -> None:
        self.resources = resources
        self.settings = resources.settings
        self.job_id = job_id
        self.request = request
        self._train_job_id = train_job_id or request.lora_job_id or job_id
        self._outputs = outputs
        self._state = JobState.QUEUED
        self._stage = ""
        self._last_cancel_check = 0.0

    @property
    def train_job_id(self) -> str:
        return self._train_job_id

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.resources.loop).result()

    def read_blob(self, path: str) -> bytes:
        return self._call(self.resources.store.get(self.request.user.key, path))

    def write_blob(self, path: str, data: bytes, retention: Retention) -> None:
        self.check_cancelled()
        store, ttl = self.resources.store, self.resources.ttl_for(retention)
        self._call(store.put(self.request.user.key, path, data, ttl))
        # Forget deletes the job record before the user's blobs: if the record is gone now,
        # this blob may have landed after the sweep, so it is ours to remove.
        if not self._call(guarded.job_exists(self.resources.redis, self.job_id)):
            self._call(store.delete(self.request.user.key, path))
            raise JobCancelled("the user deleted their data")

    def list_blobs(self, prefix: str) -> list[str]:
        return self._call(self.resources.store.list(self.request.user.key, prefix))

    def output_of(self, stage: str) -> dict[str, Any] | None:
        return self._outputs.get(stage)

    def output_of_job(self, job_id: str, stage: str) -> dict[str, Any] | None:
        return self._call(self._output_of_job(job_id, stage))

    async def _output_of_job(self, job_id: str, stage: str) -> dict[str, Any] | None:
        redis = self.resources.redis
        owner = await redis.hget(constants.job_key(job_id), "user")
        if owner is None or owner.decode() != self.request.user.key:
            return None  # never read another person's job
        raw = await redis.hget(constants.job_stages_key(job_id), stage)
        return dict(json.loads(raw)) if raw else None

    def progress(self, percent: float | None, text: str) -> None:
        self._call(self._progress(percent, text))

    async def _progress(self, percent: float | None, text: str) -> None:
        event = ProgressEvent(
            job_id=self.job_id,
            state=self._state,
            stage=self._stage,
            percent=percent,
            text=text,
            at=time.time(),
        )
        await record_event(self.resources.redis, event)
        await self.resources.status.update(self.job_id, self.request.target, _sentence(text))

    def check_cancelled(self) -> None:
        now = time.monotonic()
        if now - self._last_cancel_check < 0.5:
            return  # polled between steps; twice a second is plenty and spares Redis
        self._last_cancel_check = now
        if self._call(is_cancelled(self.resources.redis, self.job_id)):
            raise JobCancelled("cancelled by the user")

    def publish_preview(self, path: str, caption: str) -> None:
        self._call(deliver_preview(self.resources, self.job_id, self.request, path, caption))

    def enter(self, state: JobState, stage: str) -> None:
        self._state, self._stage = state, stage


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


async def find_train_job(redis: ArqRedis, request: JobRequest) -> str | None:
    """The job that trained the LoRA a "new style" / "more like" request reuses.

    Buttons name the job whose results they sit under, which may itself be a "new style" job:
    follow the chain back to the full job (same user only) whose LoRA is in the store.
    """
    job_id = request.lora_job_id
    seen: set[str] = set()
    while job_id and job_id not in seen:
        seen.add(job_id)
        raw = decode_hash(await redis.hgetall(constants.job_key(job_id)))
        if "request" not in raw or raw.get("user") != request.user.key:
            break
        earlier = JobRequest.model_validate_json(raw["request"])
        if earlier.kind == "full" or not earlier.lora_job_id:
            return job_id
        job_id = earlier.lora_job_id
    return request.lora_job_id


async def is_cancelled(redis: ArqRedis, job_id: str) -> bool:
    """True when the user cancelled, or forgot their data (the job record is gone)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.exists(constants.job_cancel_key(job_id))
        pipe.exists(constants.job_key(job_id))
        flagged, exists = await pipe.execute()
    return bool(flagged) or not exists


async def run_train_job(ctx: dict[str, Any], request_data: dict[str, Any]) -> str:
    """arq job: check, crop, preview and train; then queue the generate part."""
    return await _run_part(ctx, request_data, "train")


async def run_generate_job(ctx: dict[str, Any], request_data: dict[str, Any]) -> str:
    """arq job: generate, post-process, rank, deliver."""
    return await _run_part(ctx, request_data, "generate")


async def _run_part(ctx: dict[str, Any], request_data: dict[str, Any], part: str) -> str:
    resources: WorkerResources = ctx["resources"]
    request = JobRequest.model_validate(request_data)  # validate at the top of every job
    job_id = request.job_id()
    redis = resources.redis
    raw = decode_hash(await redis.hgetall(constants.job_key(job_id)))
    if "request" not in raw:
        logger.info("job %s no longer exists (forgotten); skipping", job_id)
        return "gone"
    state = JobState(raw.get("state", "queued"))
    if state.finished:
        return state.value  # a duplicate run of a finished job does nothing
    outputs = {
        k: json.loads(v)
        for k, v in decode_hash(await redis.hgetall(constants.job_stages_key(job_id))).items()
    }
    run = RunContext(resources, job_id, request, outputs, await find_train_job(redis, request))
    stages = resources.stages.train if part == "train" else resources.stages.generate
    started = time.time()
    try:
        if await is_cancelled(redis, job_id):
            raise JobCancelled("cancelled by the user")
        for stage in stages:
            if stage.name in outputs:
                logger.info("job %s: stage %s already done, skipping", job_id, stage.name)
                continue
            await _run_stage(resources, run, stage, state)
            state = stage.state
        if part == "train":
            await record_duration(redis, "train", time.time() - started)
            await redis.enqueue_job(
                constants.GENERATE_JOB,
                request.model_dump(mode="json"),
                _job_id=arq_job_id(job_id, "generate"),
                _queue_name=constants.GENERATE_QUEUE,
            )
            if not await guarded.job_exists(redis, job_id):
                # Forgotten meanwhile; forget drops the record before arq's keys, so a part
                # queued after that sweep is removed here.
                await drop_arq_job(redis, arq_job_id(job_id, "generate"))
                raise JobCancelled("the user deleted their data")
            position = await queue_position(
                redis, constants.GENERATE_QUEUE, arq_job_id(job_id, "generate"), train=False
            )
            await _progress_text(resources, run, trained_waiting_text(position))
            return "trained"
        await _deliver(resources, run, outputs)
        await record_duration(redis, "generate", time.time() - started)
        return JobState.DONE.value
    except JobCancelled:
        await _finish(resources, run, JobState.CANCELLED, STATE_TEXT[JobState.CANCELLED])
        return JobState.CANCELLED.value
    except UserError as exc:
        await _finish(
            resources,
            run,
            JobState.FAILED,
            f"Sorry, this job could not finish: {exc}",
            error=str(exc),
        )
        return JobState.FAILED.value
    except _TRANSIENT as exc:
        job_try = int(ctx.get("job_try", 1))
        if job_try < resources.settings.job_max_tries:
            logger.warning("job %s: transient error (%s), retry %d", job_id, exc, job_try)
            raise Retry(defer=min(60, 5 * job_try)) from exc
        logger.exception("job %s failed after %d tries", job_id, job_try)
        await _finish(resources, run, JobState.FAILED, _OUR_FAULT, error=str(exc))
        return JobState.FAILED.value
    except Exception as exc:
        logger.exception("job %s failed in part %s", job_id, part)
        await _finish(
            resources, run, JobState.FAILED, _OUR_FAULT, error=f"{type(exc).__name__}: {exc}"
        )
        return JobState.FAILED.value


_OUR_FAULT = "Sorry, something went wrong on our side and this job failed. Please try again later."


async def _run_stage(
    resources: WorkerResources, run: RunContext, stage: Stage, current: JobState
) -> None:
    redis = resources.redis
    run.enter(stage.state, stage.name)
    if stage.state is not current:
        await set_state(
            redis, run.job_id, stage.state, stage=stage.name, text=STATE_TEXT.get(stage.state, "")
        )
        await resources.status.update(
            run.job_id, run.request.target, STATE_TEXT.get(stage.state, ""), force=True
        )
    t0 = time.time()
    async with resources.gpu_lock:
        record = await asyncio.to_thread(stage.run, run)
    if await is_cancelled(redis, run.job_id):
        raise JobCancelled("cancelled by the user")
    run._outputs[stage.name] = record
    stages_key, ttl = constants.job_stages_key(run.job_id), job_ttl_s(resources.settings)
    if not await guarded.write(
        redis, run.job_id, "HSET", stages_key, stage.name, json.dumps(record), ttl_s=ttl
    ):
        raise JobCancelled("the user deleted their data")
    await record_duration(redis, stage.name, time.time() - t0)
    logger.info("job %s: stage %s done in %.1fs", run.job_id, stage.name, time.time() - t0)


async def _progress_text(resources: WorkerResources, run: RunContext, text: str) -> None:
    await resources.status.update(run.job_id, run.request.target, text, force=True)


async def _deliver(resources: WorkerResources, run: RunContext, outputs: dict[str, Any]) -> None:
    redis = resources.redis
    final = outputs[resources.stages.generate[-1].name]
    run.enter(JobState.DELIVERING, "deliver")
    await set_state(redis, run.job_id, JobState.DELIVERING, text=STATE_TEXT[JobState.DELIVERING])
    await resources.status.update(
        run.job_id, run.request.target, STATE_TEXT[JobState.DELIVERING], force=True
    )
    await deliver_results(resources, run.job_id, run.request, final)
    await _finish(resources, run, JobState.DONE, STATE_TEXT[JobState.DONE])
    # Selfies (and what was derived from them) live until selfie_ttl after delivery.
    user_key, ttl = run.request.user.key, resources.settings.selfie_ttl_s
    await resources.store.expire(user_key, upload_prefix(run.request.upload_id), ttl)
    await resources.store.expire(user_key, f"jobs/{run.train_job_id}/crops/", ttl)
    await resources.store.expire(user_key, f"jobs/{run.train_job_id}/checkpoints/", ttl)


async def _finish(
    resources: WorkerResources,
    run: RunContext,
    state: JobState,
    text: str,
    *,
    error: str | None = None,
) -> None:
    await finish_job(
        resources.redis, resources.status, run.job_id, run.request, state, text, error=error
    )


class HeadshotsWorker(Worker):
    """arq's worker, told when arq drops a job without running it (see ``recovery``)."""

    def __init__(self, *args: Any, resources: WorkerResources, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resources = resources

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        # arq calls this only for jobs it ends without calling our function: max tries
        # exceeded (the worker died on every try), job data expired, unknown function.
        tries = await self.pool.get(constants.ARQ_RETRY_PREFIX + job_id)
        await super().finish_failed_job(job_id, result_data)
        try:
            await on_arq_gave_up(
                self.pool, self.resources.status, job_id, tries=max(0, int(tries or 1) - 1)
            )
        except Exception:  # must not stop the worker; the recovery sweep tries again
            logger.exception("ending job %s after arq gave up on it failed", job_id)


def build_worker(resources: WorkerResources, part: str, *, burst: bool = False) -> Worker:
    settings = resources.settings
    if part == "train":
        function = func(
            run_train_job,
            name=constants.TRAIN_JOB,
            timeout=settings.train_job_timeout_s,
            max_tries=settings.job_max_tries,
        )
    else:
        function = func(
            run_generate_job,
            name=constants.GENERATE_JOB,
            timeout=settings.generate_job_timeout_s,
            max_tries=settings.job_max_tries,
        )
    return HeadshotsWorker(
        resources=resources,
        functions=[function],
        queue_name=constants.QUEUES[part],
        redis_pool=resources.redis,
        burst=burst,
        handle_signals=False,
        max_jobs=settings.worker_max_jobs,
        allow_abort_jobs=True,
        health_check_interval=constants.WORKER_HEALTH_INTERVAL_S,
        keep_result=0,  # results live in our own records; arq's copy would outlive a forget
        poll_delay=0.5,
        ctx={"resources": resources},
        after_job_end=_refresher(part),
    )


def _refresher(part: str) -> StartupShutdown:
    """arq's ``after_job_end`` hook: the finished job has left the queue, so the line moved."""

    async def refresh(ctx: dict[str, Any]) -> None:
        resources: WorkerResources = ctx["resources"]
        try:
            await refresh_waiting(resources.redis, resources.status, part)
        except Exception:  # a status line must never stop the worker
            logger.warning("refreshing the %s queue's waiting jobs failed", part, exc_info=True)

    return refresh


async def build_resources(settings: Settings, redis_url: str) -> WorkerResources:
    stages = load_stage_factory(settings.stages)(settings)
    try:
        # Before the first job, not at its end: a worker that cannot finish any job must not
        # take one (it would spend each job's training and fail it at the output check).
        await asyncio.to_thread(stages.ready)
    except HeadshotsError as exc:
        stages.close()
        # One line for the operator (the CLI prints it; ``up`` restarts after a back-off).
        raise ConfigurationError(f"worker not started, it would fail every job: {exc}") from exc
    # A custom description is reviewed again here, with the policy the bot built: read back on
    # the first such job (~2 s; most jobs have none, so it is not loaded before).
    keep_policy_builds(settings.cache_dir)
    redis = await connect(redis_url, RedisTimeouts.from_settings(settings))
    senders = SenderPool(settings)
    return WorkerResources(
        settings=settings,
        redis=redis,
        store=build_store(redis, settings.store_backend, settings.state_dir),
        stages=stages,
        senders=senders,
        status=StatusReporter(
            redis,
            senders,
            min_interval_s=settings.status_edit_interval_s,
            ttl_s=job_ttl_s(settings),
        ),
        loop=asyncio.get_running_loop(),
    )


async def run_workers(
    settings: Settings, redis_url: str, parts: list[str], *, burst: bool = False
) -> None:
    """Run one arq worker per part until SIGINT/SIGTERM (with ``burst``: until queues empty)."""
    resources = await build_resources(settings, redis_url)
    await _publish_estimate(resources)
    workers = [build_worker(resources, part, burst=burst) for part in parts]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(_poll_until_stopped(w)) for w in workers]
    sweeper = (
        asyncio.create_task(_sweep_local_store(resources))
        if isinstance(resources.store, LocalBlobStore)
        else None
    )
    refresher = asyncio.create_task(_keep_waiting_jobs_current(resources, parts))
    recovery = asyncio.create_task(_recover_lost_jobs(resources))
    name = registry.worker_name()
    await registry.beat(resources.redis, name, parts)
    heart = asyncio.create_task(_heartbeat(resources, name, parts))
    logger.info("worker ready: queues %s, stages from %s", ", ".join(parts), settings.stages)
    try:
        stopper = asyncio.create_task(stop.wait())
        # Burst mode ends when every worker has drained its queue; otherwise only a signal ends it.
        running: list[asyncio.Future[Any]] = [asyncio.gather(*tasks)] if burst else list(tasks)
        await asyncio.wait([*running, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
    finally:
        for task in tasks:
            task.cancel()
        if sweeper:
            sweeper.cancel()
        refresher.cancel()
        recovery.cancel()
        heart.cancel()
        with contextlib.suppress(Exception):
            await registry.leave(resources.redis, name, parts)
        for worker in workers:
            with contextlib.suppress(Exception):
                await worker.close()
        await resources.senders.close()
        resources.stages.close()
        with contextlib.suppress(Exception):
            await resources.redis.aclose()
        logger.info("worker stopped")


async def _poll_until_stopped(worker: Worker) -> None:
    """arq's poll loop, started again when Redis goes away, instead of ending the process.

    arq's ``main`` raises on the first failed poll, and the first worker task to end stopped
    the whole process (exit status 0, the running job cancelled): one Redis restart took the
    fleet down. Running jobs keep going meanwhile (they are tasks of their own), and ``main``
    may run again: the pool is ours and there is no startup hook.
    """
    delay_s = RECONNECT_FIRST_DELAY_S
    while True:
        try:
            await worker.main()
            return  # burst mode: the queue is drained
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            logger.warning(
                "%s: Redis unreachable (%s); polling again in %.1fs",
                worker.queue_name, exc, delay_s,
            )  # fmt: skip
            await asyncio.sleep(delay_s)
            delay_s = min(RECONNECT_MAX_DELAY_S, delay_s * 2)


async def _publish_estimate(resources: WorkerResources) -> None:
    """What a job will take here, for the ETAs people see before any job was measured."""
    from headshots.generation.estimate import expected_durations

    try:
        found = await asyncio.to_thread(expected_durations, resources.settings)
        if found is not None:
            await publish_estimate(resources.redis, found)
            logger.info("expected durations before any is measured: %s", found)
    except Exception:  # an ETA is a courtesy: it never keeps a worker from starting
        logger.warning("estimating job durations failed", exc_info=True)


async def _heartbeat(resources: WorkerResources, name: str, parts: list[str]) -> None:
    """Keep this process in the worker registry (ETAs and "no worker online" read it)."""
    while True:
        await asyncio.sleep(constants.WORKER_HEALTH_INTERVAL_S)
        try:
            await registry.beat(resources.redis, name, parts)
        except Exception:  # Redis hiccup: the next beat is well within the stale limit
            logger.warning("worker heartbeat failed", exc_info=True)


async def _keep_waiting_jobs_current(resources: WorkerResources, parts: list[str]) -> None:
    """Refresh waiting jobs' positions every ``queue_refresh_s`` (one worker of the fleet).

    Job ends refresh them at once (``after_job_end``); this catches the rest: a queued job
    cancelled or forgotten ahead of them, and ETAs as durations are measured.
    """
    interval = resources.settings.queue_refresh_s
    while True:
        await asyncio.sleep(interval)
        for part in parts:
            lock = constants.queue_refresh_lock_key(part)
            try:
                # One refresher per round however many workers run: the lock outlives the round.
                if await resources.redis.set(lock, "1", nx=True, px=max(1, int(interval * 900))):
                    await refresh_waiting(resources.redis, resources.status, part)
            except Exception:  # a status line must never stop the worker
                logger.warning("refreshing the %s queue failed", part, exc_info=True)


async def _recover_lost_jobs(resources: WorkerResources) -> None:
    """Every ``recovery_interval_s``, one worker of the fleet re-queues jobs arq lost."""
    interval = resources.settings.recovery_interval_s
    while True:
        await asyncio.sleep(interval)
        try:
            lock = constants.RECOVERY_LOCK_KEY
            if await resources.redis.set(lock, "1", nx=True, px=max(1, int(interval * 900))):
                await recover_lost_jobs(resources.redis, resources.status)
        except Exception:  # the next round tries again
            logger.warning("the lost-job sweep failed", exc_info=True)


async def _sweep_local_store(resources: WorkerResources) -> None:
    store = resources.store
    assert isinstance(store, LocalBlobStore)
    while True:
        with contextlib.suppress(Exception):
            removed = await store.sweep()
            if removed:
                logger.info("removed %d expired files from the local store", removed)
        await asyncio.sleep(600)


__all__ = [
    "RunContext",
    "WorkerResources",
    "build_worker",
    "run_generate_job",
    "run_train_job",
    "run_workers",
]
