"""Helpers shared by the queue tests (not fixtures)."""

from __future__ import annotations

import asyncio
import io
import time

from PIL import Image
from redis.asyncio import Redis

from headshots.queue.client import QueueClient
from headshots.queue.contracts import ChatTarget, JobRequest, JobState, StyleChoice, UserRef


def jpeg(colour: tuple[int, int, int] = (180, 140, 120)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


async def make_request(
    client: QueueClient,
    user_id: int = 4242,
    *,
    platform: str = "cli",
    count: int = 3,
    photos: int = 4,
) -> JobRequest:
    user = UserRef(platform=platform, user_id=user_id)  # type: ignore[arg-type]
    upload_id = client.new_upload_id()
    for index in range(1, photos + 1):
        await client.add_selfie(user, upload_id, index, jpeg((index * 30, 100, 100)))
    return JobRequest(
        user=user,
        target=ChatTarget(platform=platform, chat_id=user_id, user_id=user_id),  # type: ignore[arg-type]
        upload_id=upload_id,
        style=StyleChoice(preset="corporate", subject_class="woman", count=count),
    )


async def wait_for_state(
    client: QueueClient, job_id: str, states: set[JobState], timeout_s: float = 60.0
) -> JobState:
    deadline = time.monotonic() + timeout_s
    state = None
    while time.monotonic() < deadline:
        info = await client.job(job_id)
        state = info.state if info else None
        if state in states:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} stuck in {state}, wanted {states}")


async def keys_mentioning(redis: Redis, needles: list[str]) -> list[str]:
    """Every key whose name or value mentions one of ``needles`` (SCAN over the whole keyspace)."""
    found = []
    async for raw_key in redis.scan_iter(count=1000):
        key = raw_key.decode()
        kind = (await redis.type(raw_key)).decode()
        if kind == "string":
            values = [await redis.get(raw_key)]
        elif kind == "hash":
            values = [
                *(await redis.hgetall(raw_key)).keys(),
                *(await redis.hgetall(raw_key)).values(),
            ]
        elif kind == "list":
            values = await redis.lrange(raw_key, 0, -1)
        elif kind == "set":
            values = list(await redis.smembers(raw_key))
        elif kind == "zset":
            values = await redis.zrange(raw_key, 0, -1)
        else:
            values = []
        blob = key + "\n" + "\n".join(v.decode(errors="replace") for v in values if v is not None)
        if any(needle in blob for needle in needles):
            found.append(key)
    return found
