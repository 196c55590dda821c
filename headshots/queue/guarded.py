"""Writes that belong to a job happen only while the job's record exists.

``/delete`` (and ``headshots forget``) may run while a worker is in the middle of that user's
job. The worker notices at its next check, but anything it writes in between (a progress event,
a status line, a stage record, "album sent") would bring keys of a deleted user back. Each such
write is therefore one Lua script that first checks the job record: atomic in Redis, so a
forget either happened before (nothing is written) or deletes the write afterwards.
"""

from __future__ import annotations

from redis.asyncio import Redis

from headshots.queue import constants

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
