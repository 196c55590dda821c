"""The queue seen from a chat handler: submit, inspect, cancel and forget jobs.

One :class:`QueueClient` per process, created at start-up and passed to the handlers. Every
limit and every state lives in Redis, so several bot processes (or a restarted one) agree.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from arq.connections import ArqRedis

from headshots.errors import LimitReached, NotFound
from headshots.generation.context import upload_prefix
from headshots.queue import constants, guarded
from headshots.queue.connections import RedisTimeouts, connect
from headshots.queue.contracts import (
    PLATFORM_SHORT,
    ControlHint,
    JobRequest,
    JobState,
    Platform,
    ReferenceChoice,
    UserRef,
)
from headshots.queue.progress import QueuePosition, decode_hash, queue_position, set_state
from headshots.queue.store import BlobStore, build_store
from headshots.queue.teams import TeamStore
from headshots.settings import Settings

logger = logging.getLogger(__name__)

# Delete a key only if it still holds the expected value (the slot belongs to this job).
_RELEASE_SLOT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def arq_job_id(job_id: str, part: str) -> str:
    """arq's id for one part (``train`` or ``generate``) of our job."""
    return f"{job_id}.{part}"


async def drop_arq_job(redis: ArqRedis, arq_id: str) -> int:
    """Remove one arq job from its queue and every arq key of it; returns the keys deleted."""
    part = arq_id.rpartition(".")[2]
    await redis.zrem(constants.QUEUES[part], arq_id)
    await redis.zrem(constants.ARQ_ABORT_KEY, arq_id)
    prefixes = (
        constants.ARQ_JOB_PREFIX,
        constants.ARQ_RESULT_PREFIX,
        constants.ARQ_IN_PROGRESS_PREFIX,
        constants.ARQ_RETRY_PREFIX,
    )
    return int(await redis.delete(*(prefix + arq_id for prefix in prefixes)))


#: ZREM the arq job id from its queue unless a worker is running it (-1 then), atomically with
#: arq's own take (a WATCHed transaction on the in-progress key).
_DEQUEUE_UNLESS_RUNNING = """
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
return redis.call('ZREM', KEYS[1], ARGV[1])
"""


def job_ttl_s(settings: Settings) -> int:
    # A job record must outlive the LoRA it names (a "new style" request reads it).
    return max(settings.lora_ttl_s, settings.results_ttl_s)


@dataclass
class JobInfo:
    job_id: str
    state: JobState
    user_key: str
    request: JobRequest
    error: str | None = None
    timestamps: dict[str, float] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    contact_sheet: str | None = None
    position: QueuePosition | None = None

    @property
    def finished(self) -> bool:
        return self.state.finished


@dataclass(frozen=True)
class Submission:
    job_id: str
    created: bool
    position: QueuePosition


@dataclass(frozen=True)
class ForgetReport:
    jobs: int
    keys: int
    blobs: int


async def release_slot(redis: ArqRedis, user_key: str, job_id: str) -> None:
    await redis.eval(_RELEASE_SLOT, 1, constants.user_active_key(user_key), job_id)  # type: ignore[misc]


class QueueClient:
    def __init__(self, redis: ArqRedis, settings: Settings, store: BlobStore) -> None:
        self.redis = redis
        self.settings = settings
        self.store = store

    @classmethod
    async def connect(cls, settings: Settings, redis_url: str) -> QueueClient:
        redis = await connect(redis_url, RedisTimeouts.from_settings(settings))
        return cls(redis, settings, build_store(redis, settings.store_backend, settings.state_dir))

    async def close(self) -> None:
        await self.redis.aclose()

    # --- selfies ------------------------------------------------------------------------
    @staticmethod
    def new_upload_id() -> str:
        return secrets.token_hex(8)

    async def add_selfie(self, user: UserRef, upload_id: str, index: int, jpeg: bytes) -> str:
        """Store one normalised selfie (index is 1-based); returns its store path."""
        path = f"{upload_prefix(upload_id)}{index:02d}.jpg"
        await self.store.put(user.key, path, jpeg, self.settings.selfie_ttl_s)
        # A file cannot be written by a script: write, then look. A delete that came first is
        # undone here; one that comes later sweeps the file (it marks before it sweeps).
        if await guarded.forgotten_since_seen(self.redis, user.key):
            await self.store.delete(user.key, path)
        return path

    async def add_reference(self, user: UserRef, png: bytes, hint: ControlHint) -> ReferenceChoice:
        """Store a checked reference photo with the selfies' retention; the job's choice of it."""
        choice = ReferenceChoice.of(png, hint)
        await self.store.put(user.key, choice.path, png, self.settings.selfie_ttl_s)
        if await guarded.forgotten_since_seen(self.redis, user.key):  # as add_selfie
            await self.store.delete(user.key, choice.path)
        return choice

    async def list_selfies(self, user: UserRef, upload_id: str) -> list[str]:
        return await self.store.list(user.key, upload_prefix(upload_id))

    async def remove_selfie(self, user: UserRef, upload_id: str, index: int) -> None:
        await self.store.delete(user.key, f"{upload_prefix(upload_id)}{index:02d}.jpg")

    async def read_blob(self, user: UserRef, path: str) -> bytes:
        return await self.store.get(user.key, path)

    # --- jobs ---------------------------------------------------------------------------
    async def submit(self, request: JobRequest) -> Submission:
        """Queue ``request``; the same request twice is one job. Raises :class:`LimitReached`."""
        job_id = request.job_id()
        key = constants.job_key(job_id)
        now = time.time()
        if not await self.redis.hsetnx(key, "created", str(now)):
            info = await self.job(job_id)
            return Submission(
                job_id,
                False,
                info.position if info and info.position else QueuePosition(None, None),
            )
        try:
            await self._take_slot(request.user, job_id)
        except LimitReached:
            await self.redis.delete(key)
            raise
        part = "train" if request.kind == "full" else "generate"
        queue = constants.TRAIN_QUEUE if part == "train" else constants.GENERATE_QUEUE
        ttl = job_ttl_s(self.settings)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "user": request.user.key,
                    "request": request.model_dump_json(),
                    "part": part,
                },
            )
            pipe.expire(key, ttl)
            pipe.sadd(constants.user_jobs_key(request.user.key), job_id)
            pipe.expire(constants.user_jobs_key(request.user.key), ttl)
            await pipe.execute()
        await set_state(self.redis, job_id, JobState.QUEUED, text="queued")
        await self.redis.expire(constants.job_events_key(job_id), ttl)
        function = constants.TRAIN_JOB if part == "train" else constants.GENERATE_JOB
        await self.redis.enqueue_job(
            function,
            request.model_dump(mode="json"),
            _job_id=arq_job_id(job_id, part),
            _queue_name=queue,
        )
        logger.info("queued job %s (%s) for %s", job_id, request.kind, request.user.key)
        position = await queue_position(
            self.redis, queue, arq_job_id(job_id, part), train=part == "train"
        )
        return Submission(job_id, True, position)

    async def _take_slot(self, user: UserRef, job_id: str) -> None:
        active_key = constants.user_active_key(user.key)
        slot_ttl = self.settings.train_job_timeout_s * self.settings.job_max_tries + 3600
        if self.settings.max_active_jobs_per_user > 0:
            if not await self.redis.set(active_key, job_id, nx=True, ex=slot_ttl):
                holder = await self.redis.get(active_key)
                holder_id = holder.decode() if isinstance(holder, bytes) else str(holder)
                info = await self.job(holder_id)
                if info is not None and not info.finished:
                    raise LimitReached(
                        "You already have a job in progress. Wait for its results, "
                        "or cancel it with /cancel."
                    )
                # The holder finished without releasing (e.g. it was forgotten): take over.
                await self.redis.set(active_key, job_id, ex=slot_ttl)
        now = datetime.now(UTC)
        daily_key = constants.abuse_daily_key(await self._user_digest(user.key), f"{now:%Y%m%d}")
        count = await self.redis.incr(daily_key)
        # Until midnight UTC (and a minute of slack for clock skew between hosts).
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        await self.redis.expire(daily_key, int((midnight - now).total_seconds()) + 60)
        if count > self.settings.max_jobs_per_day:
            await self.redis.decr(daily_key)
            await release_slot(self.redis, user.key, job_id)
            raise LimitReached(
                f"You have reached today's limit of {self.settings.max_jobs_per_day} jobs. "
                "It resets at midnight UTC."
            )

    async def _user_digest(self, user_key: str) -> str:
        """A salted hash of the user key: the abuse counter outlives a delete without an id."""
        return await guarded.user_digest(self.redis, user_key)

    async def job(self, job_id: str) -> JobInfo | None:
        raw = decode_hash(await self.redis.hgetall(constants.job_key(job_id)))
        if "request" not in raw:
            return None
        request = JobRequest.model_validate_json(raw["request"])
        info = JobInfo(
            job_id=job_id,
            state=JobState(raw.get("state", "queued")),
            user_key=raw["user"],
            request=request,
            error=raw.get("error") or None,
            timestamps={k[3:]: float(v) for k, v in raw.items() if k.startswith("ts_")},
        )
        rank_record = await self.redis.hget(constants.job_stages_key(job_id), "rank")
        if rank_record:
            record = json.loads(rank_record)
            info.results = list(record.get("results", []))
            info.contact_sheet = record.get("contact_sheet")
        if info.state is JobState.QUEUED:
            part = raw.get("part", "train")
            queue = constants.TRAIN_QUEUE if part == "train" else constants.GENERATE_QUEUE
            info.position = await queue_position(
                self.redis, queue, arq_job_id(job_id, part), train=part == "train"
            )
        return info

    async def active_job(self, user: UserRef) -> JobInfo | None:
        holder = await self.redis.get(constants.user_active_key(user.key))
        if holder is None:
            return None
        info = await self.job(holder.decode() if isinstance(holder, bytes) else str(holder))
        return info if info is not None and not info.finished else None

    async def user_jobs(self, user: UserRef) -> list[JobInfo]:
        ids = await self.redis.smembers(constants.user_jobs_key(user.key))
        infos = [await self.job(i.decode() if isinstance(i, bytes) else str(i)) for i in ids]
        found = [i for i in infos if i is not None]
        return sorted(found, key=lambda i: i.timestamps.get("queued", 0.0))

    async def set_status_message(self, job_id: str, message_id: int) -> None:
        """Tell the workers which chat message shows this job's status."""
        await self.redis.hset(constants.job_status_key(job_id), "message_id", str(message_id))
        await self.redis.expire(constants.job_status_key(job_id), job_ttl_s(self.settings))

    async def status_text(self, job_id: str) -> str | None:
        """The text a worker last showed in the job's status message (``None``: none yet)."""
        raw = await self.redis.hget(constants.job_status_key(job_id), "text")
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    async def cancel(self, user: UserRef, job_id: str | None = None) -> JobInfo:
        """Cancel the user's active job (or ``job_id``); raises :class:`NotFound` when none.

        A queued job leaves the queue at once. A running one gets a cancel flag that the worker
        checks between steps (asyncio cancellation cannot interrupt blocking GPU code); the
        worker then marks it cancelled and frees the user's slot. It stays in arq's queue, so
        that when its worker dies, the re-run sees the flag and ends it.
        """
        info = await (self.job(job_id) if job_id else self.active_job(user))
        if info is None or info.user_key != user.key:
            raise NotFound("You have no job in progress.")
        if info.finished:
            return info
        await self.redis.set(
            constants.job_cancel_key(info.job_id), "1", ex=job_ttl_s(self.settings)
        )
        removed, running = 0, False
        for part, queue in (
            ("train", constants.TRAIN_QUEUE),
            ("generate", constants.GENERATE_QUEUE),
        ):
            arq_id = arq_job_id(info.job_id, part)
            # A running part stays in arq's queue: if its worker dies, arq runs it again and
            # the re-run sees the flag. Taking it out (as we did, found by bench/soak.py) left a
            # job nobody would ever finish.
            taken = int(
                await self.redis.eval(  # type: ignore[misc]
                    _DEQUEUE_UNLESS_RUNNING,
                    2,
                    queue,
                    constants.ARQ_IN_PROGRESS_PREFIX + arq_id,
                    arq_id,
                )
            )
            running = running or taken < 0
            removed += max(0, taken)
        if removed and not running:
            for part in ("train", "generate"):
                await self.redis.delete(constants.ARQ_JOB_PREFIX + arq_job_id(info.job_id, part))
            await set_state(
                self.redis, info.job_id, JobState.CANCELLED, text="cancelled while queued"
            )
            await release_slot(self.redis, user.key, info.job_id)
            info.state = JobState.CANCELLED
        return info

    async def forget(self, user: UserRef | str) -> ForgetReport:
        """Delete every key and blob of the user (``headshots forget`` and ``/delete``)."""
        user_key = user.key if isinstance(user, UserRef) else user
        # First: a chat handler still running for them writes nothing back after the sweep
        # (every conversation and team write checks this marker, see headshots.queue.guarded).
        await guarded.mark_forgotten(self.redis, user_key)
        ids = [
            i.decode() if isinstance(i, bytes) else str(i)
            for i in await self.redis.smembers(constants.user_jobs_key(user_key))
        ]
        keys = 0
        for job_id in ids:
            # The record goes first: a running job sees it gone at its next check, and every
            # job-owned write checks it atomically (headshots.queue.guarded), so nothing the
            # job writes after this line survives the rest of the sweep.
            keys += int(
                await self.redis.delete(
                    constants.job_key(job_id),
                    constants.job_events_key(job_id),
                    constants.job_stages_key(job_id),
                    constants.job_cancel_key(job_id),
                    constants.job_status_key(job_id),
                    constants.job_delivered_key(job_id),
                )
            )
            await self.redis.zrem(constants.LIVE_JOBS_KEY, job_id)
            for part in constants.QUEUES:
                keys += await drop_arq_job(self.redis, arq_job_id(job_id, part))
        blobs = await self.store.delete_user(user_key)
        # They leave every team they joined or run: member record, favourite, admin entry.
        await TeamStore(self.redis, self.store, self.settings).remove_person_everywhere(user_key)
        async for key in self.redis.scan_iter(
            match=f"{constants.user_prefix(user_key)}*", count=500
        ):
            keys += int(await self.redis.delete(key))
        logger.info("forgot user %s: %d jobs, %d keys, %d blobs", user_key, len(ids), keys, blobs)
        return ForgetReport(jobs=len(ids), keys=keys, blobs=blobs)

    # --- conversation state of the chat front ends ------------------------------------
    async def save_chat_state(self, user: UserRef, scope: str, state: dict[str, Any]) -> bool:
        """Save a conversation; False (nothing saved) when the person was deleted since this
        task first loaded any of their conversations (a delete wins, see ``guarded``)."""
        return await guarded.write_for(
            self.redis,
            user.key,
            "SET",
            constants.user_state_key(user.key, scope),
            json.dumps(state),
            "EX",
            self.settings.selfie_ttl_s,
        )

    async def load_chat_state(self, user: UserRef, scope: str) -> dict[str, Any] | None:
        key = constants.user_state_key(user.key, scope)
        raw = await guarded.read_seen(self.redis, user.key, key, "GET")
        return dict(json.loads(raw)) if isinstance(raw, bytes | str) and raw else None

    async def chat_states(
        self, platform: Platform
    ) -> AsyncIterator[tuple[UserRef, str, dict[str, Any]]]:
        """Every saved chat state of ``platform``'s people: (user, scope, state)."""
        match = constants.user_state_pattern(PLATFORM_SHORT[platform])
        async for raw_key in self.redis.scan_iter(match=match, count=500):
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            user_key, scope = constants.parse_user_state_key(key)
            try:
                user = UserRef.from_key(user_key)
            except ValueError:
                continue
            raw = await guarded.read_seen(self.redis, user.key, key, "GET")
            if isinstance(raw, bytes | str) and raw:  # expired between the scan and the read
                yield user, scope, dict(json.loads(raw))

    async def clear_chat_state(self, user: UserRef, scope: str) -> None:
        await self.redis.delete(constants.user_state_key(user.key, scope))


async def require_job(client: QueueClient, job_id: str) -> JobInfo:
    info = await client.job(job_id)
    if info is None:
        raise NotFound("That job no longer exists (its data may have expired or been deleted).")
    return info
