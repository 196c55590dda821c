"""Which worker processes are alive, per queue: for ETAs, "no worker online" and the status CLI.

arq's own health-check key is one string per queue, overwritten by every worker, so it cannot
say how many there are. Each worker process keeps a member ``host:pid`` in a sorted set per
queue, scored with its last heartbeat; members older than :data:`STALE_AFTER_S` are dead
(a SIGKILLed worker cannot say goodbye) and are pruned by whoever reads or beats next.
"""

from __future__ import annotations

import os
import socket
import time

from redis.asyncio import Redis

from headshots.queue import constants

#: A worker that has not beaten for this long (two missed heartbeats and a margin) is gone.
STALE_AFTER_S = constants.WORKER_HEALTH_INTERVAL_S * 2 + 5


def worker_name() -> str:
    """This process as the registry knows it."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def beat(redis: Redis, name: str, parts: list[str]) -> None:
    """Record that ``name`` serves ``parts`` now (call every ``WORKER_HEALTH_INTERVAL_S``)."""
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        for part in parts:
            key = constants.workers_key(part)
            pipe.zadd(key, {name: now})
            pipe.zremrangebyscore(key, "-inf", now - STALE_AFTER_S)
            pipe.expire(key, int(STALE_AFTER_S) + 1)
        await pipe.execute()


async def leave(redis: Redis, name: str, parts: list[str]) -> None:
    """Take ``name`` off the registry (a clean shutdown)."""
    async with redis.pipeline(transaction=False) as pipe:
        for part in parts:
            pipe.zrem(constants.workers_key(part), name)
        await pipe.execute()


async def live_workers(redis: Redis, part: str) -> list[tuple[str, float]]:
    """``(name, seconds since its last heartbeat)`` of every live worker of ``part``."""
    now = time.time()
    entries = await redis.zrangebyscore(
        constants.workers_key(part), now - STALE_AFTER_S, "+inf", withscores=True
    )
    return [
        (name.decode() if isinstance(name, bytes) else str(name), max(0.0, now - float(score)))
        for name, score in entries
    ]


async def live_count(redis: Redis, part: str) -> int:
    return int(await redis.zcount(constants.workers_key(part), time.time() - STALE_AFTER_S, "+inf"))
