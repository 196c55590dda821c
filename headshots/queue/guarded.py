"""A delete wins over writes in flight: for a job, and for a person's chats and teams.

``/delete`` (and ``headshots forget``) may run while a worker is in the middle of that user's
job. The worker notices at its next check, but anything it writes in between (a progress event,
a status line, a stage record, "album sent") would bring keys of a deleted user back. Each such
write is therefore one Lua script that first checks the job record: atomic in Redis, so a
forget either happened before (nothing is written) or deletes the write afterwards.

A chat handler has the same race (found by ``bench/soak.py``: a handler that had loaded a
conversation saved it back after the person's delete in another chat). A person's writes
(conversations, team records) check their *delete epoch* instead: ``forget`` first sets a new
random token (:func:`~headshots.queue.constants.forgotten_key`, for ten minutes), and every
write is a Lua script that refuses when the token is not the one the writer saw. What a writer
saw is kept per asyncio task (each chat update runs in a task of its own, and a task does not
inherit what the task that made it saw): the first read of a person's conversation or team
record in a task takes the token with it, atomically. So a handler that started before the
delete writes nothing after it, while one that starts after it (``/start`` right after
``/delete``) sees the new token and works as usual.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import weakref

from redis.asyncio import Redis

from headshots.queue import constants

logger = logging.getLogger(__name__)

# KEYS[1] job record, KEYS[2] target key; ARGV[1] ttl (0 = keep), ARGV[2] command, ARGV[3..] args
_WRITE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call(ARGV[2], KEYS[2], unpack(ARGV, 3))
if tonumber(ARGV[1]) > 0 then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
return 1
"""

# KEYS[1] job record, KEYS[2] events list; ARGV[1] event, ARGV[2] events kept, ARGV[3] channel,
# ARGV[4..] field/value pairs to set on the job record with it (a state change), if any
_EVENT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if #ARGV > 3 then redis.call('HSET', KEYS[1], unpack(ARGV, 4)) end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
"""


async def write(
    redis: Redis, job_id: str, command: str, key: str, *args: str | int | float, ttl_s: int = 0
) -> bool:
    """Run ``command key *args`` (and EXPIRE ``ttl_s``) if the job exists; False if it is gone."""
    done = await redis.eval(  # type: ignore[misc]
        _WRITE, 2, constants.job_key(job_id), key, str(ttl_s), command, *map(str, args)
    )
    return bool(done)


async def event(
    redis: Redis,
    job_id: str,
    payload: str,
    *,
    keep: int,
    fields: dict[str, str | float] | None = None,
) -> bool:
    """Append and publish a progress event (setting ``fields`` on the record) if the job exists."""
    pairs: list[str] = []
    for name, value in (fields or {}).items():
        pairs.extend((name, str(value)))
    done = await redis.eval(  # type: ignore[misc]
        _EVENT,
        2,
        constants.job_key(job_id),
        constants.job_events_key(job_id),
        payload,
        str(keep),
        constants.PROGRESS_CHANNEL,
        *pairs,
    )
    return bool(done)


async def job_exists(redis: Redis, job_id: str) -> bool:
    return bool(await redis.exists(constants.job_key(job_id)))


# --- a person's writes --------------------------------------------------------------------
#: Per task: the delete epoch each person had when the task first read their data ("": none).
#: Not a ContextVar: a task would inherit what the task that started it saw, and a handler
#: started by a test (or a loop) that had read the person before their delete would be refused.
_SEEN: weakref.WeakKeyDictionary[asyncio.Task[object], dict[str, str]] = weakref.WeakKeyDictionary()

#: Lua prelude: KEYS[1] the person's delete marker, ARGV[1] the token the writer saw.
UNLESS_FORGOTTEN = """
local marker = redis.call('GET', KEYS[1])
if marker and marker ~= ARGV[1] then return 0 end
"""

# KEYS[2] target; ARGV[2] ttl (0 = keep), ARGV[3] command, ARGV[4..] its arguments
_PERSON_WRITE = (
    UNLESS_FORGOTTEN
    + """
redis.call(ARGV[3], KEYS[2], unpack(ARGV, 4))
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
return 1
"""
)


#: The deployment's salt, per client: read once, as every conversation save needs it and a
#: save must stay one round trip (a chat's next step reads what the last one saved).
_SALTS: weakref.WeakKeyDictionary[Redis, str] = weakref.WeakKeyDictionary()


async def user_digest(redis: Redis, user_key: str) -> str:
    """A salted hash of the user key, for what outlives a delete without naming the person
    (the daily job counter, the delete marker). The salt is made once per deployment."""
    salt = _SALTS.get(redis)
    if salt is None:
        await redis.set(constants.ABUSE_SALT_KEY, secrets.token_hex(16), nx=True)
        raw = await redis.get(constants.ABUSE_SALT_KEY)
        salt = _SALTS[redis] = raw.decode() if isinstance(raw, bytes) else str(raw)
    return hashlib.sha256(f"{salt}|{user_key}".encode()).hexdigest()[:32]


async def marker_key(redis: Redis, user_key: str) -> str:
    return constants.forgotten_key(await user_digest(redis, user_key))


def _remember(user_key: str, epoch: str) -> None:
    task = asyncio.current_task()
    if task is not None:
        _SEEN.setdefault(task, {})[user_key] = epoch


def seen_epoch(user_key: str) -> str | None:
    """The delete epoch this task saw for ``user_key`` (``None``: it has not read it yet)."""
    task = asyncio.current_task()
    return _SEEN.get(task, {}).get(user_key) if task is not None else None


async def read_seen(redis: Redis, user_key: str, key: str, command: str, *args: str) -> object:
    """``command key *args`` (a read), taking the person's delete epoch with it if this task
    has none yet: both in one transaction, so no delete falls between them."""
    if seen_epoch(user_key) is not None:
        return await redis.execute_command(command, key, *args)  # type: ignore[no-untyped-call]
    marker = await marker_key(redis, user_key)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.get(marker)
        pipe.execute_command(command, key, *args)
        epoch, value = await pipe.execute()
    _remember(user_key, epoch.decode() if isinstance(epoch, bytes) else (epoch or ""))
    return value


async def seen(redis: Redis, user_key: str) -> tuple[str, str]:
    """(marker key, epoch this task saw) of ``user_key``; a task that never read the person's
    data sees the current epoch (it cannot be writing back anything older)."""
    marker = await marker_key(redis, user_key)
    epoch = seen_epoch(user_key)
    if epoch is None:
        raw = await redis.get(marker)
        epoch = raw.decode() if isinstance(raw, bytes) else (raw or "")
        _remember(user_key, epoch)
    return marker, epoch


async def mark_forgotten(redis: Redis, user_key: str) -> None:
    """Start a new delete epoch for ``user_key``: writes begun before this are refused.

    The task that deletes has seen its own delete, so it may go on (tell the person, start
    afresh).
    """
    epoch = secrets.token_hex(8)
    await redis.set(await marker_key(redis, user_key), epoch, ex=constants.FORGOTTEN_TTL_S)
    _remember(user_key, epoch)


async def write_for(
    redis: Redis, user_key: str, command: str, key: str, *args: str | int | float, ttl_s: int = 0
) -> bool:
    """Run ``command key *args`` (and EXPIRE ``ttl_s``) unless ``user_key`` was deleted since
    this task first read their data; False (nothing written) then."""
    marker, epoch = await seen(redis, user_key)
    done = await redis.eval(  # type: ignore[misc]
        _PERSON_WRITE, 2, marker, key, epoch, str(ttl_s), command, *map(str, args)
    )
    if not done:
        logger.info("not writing %s: %s was deleted meanwhile", key, user_key)
    return bool(done)


async def forgotten_since_seen(redis: Redis, user_key: str) -> bool:
    """Whether ``user_key`` was deleted since this task first read their data (for writes that
    cannot be a script, e.g. files: write, then ask, then undo)."""
    marker, epoch = await seen(redis, user_key)
    current = await redis.get(marker)
    return (
        current is not None
        and (current.decode() if isinstance(current, bytes) else current) != epoch
    )
