"""The worker registry in real Redis: who is alive, and what that does to positions and ETAs."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from headshots.queue import constants, registry
from headshots.queue.progress import (
    QueuePosition,
    average_duration,
    expected_job_s,
    format_eta,
    position_eta,
    publish_estimate,
    queue_position,
    record_duration,
)
from headshots.settings import Settings
from tests.plugins.queue import settings_env


async def _position(redis: Redis, arq_id: str) -> QueuePosition:
    return await queue_position(redis, constants.TRAIN_QUEUE, arq_id, train=True)


async def _queue(redis: Redis, count: int) -> list[str]:
    ids = [f"job{i}.train" for i in range(count)]
    await redis.zadd(constants.TRAIN_QUEUE, {aid: i for i, aid in enumerate(ids)})
    return ids


async def test_eta_divides_the_line_among_live_workers(redis_client: Redis) -> None:
    ids = await _queue(redis_client, 4)
    await registry.beat(redis_client, "gpu-a:1", ["train"])
    await registry.beat(redis_client, "gpu-b:2", ["train", "generate"])
    # A worker that stopped beating long ago does not count.
    stale = time.time() - registry.STALE_AFTER_S - 10
    await redis_client.zadd(constants.workers_key("train"), {"gpu-c:3": stale})
    assert [name for name, _ in await registry.live_workers(redis_client, "train")] == [
        "gpu-a:1",
        "gpu-b:2",
    ]

    # Nothing measured and no estimate: no number (the text says "a few minutes").
    assert (await _position(redis_client, ids[0])).eta_s is None
    assert format_eta(None) == "a few minutes"
    assert position_eta(await _position(redis_client, ids[0])) == "a few minutes"
    # With no worker online nothing is promised, not even "a few minutes".
    assert position_eta(QueuePosition(1, None, worker_online=False)) == "unknown"
    # A worker's estimate stands in until the first job is measured; then the measures count.
    await publish_estimate(redis_client, {"train": 30.0, "generate": 12.0})
    assert await expected_job_s(redis_client) == 42.0
    await record_duration(redis_client, "train", 20.0)
    assert await expected_job_s(redis_client) == 32.0

    train = await average_duration(redis_client, "train")
    generate = await average_duration(redis_client, "generate")
    assert train is not None and generate is not None
    own = train + generate
    positions = [
        await queue_position(redis_client, constants.TRAIN_QUEUE, a, train=True) for a in ids
    ]
    assert [p.position for p in positions] == [1, 2, 3, 4]
    # Two workers: the first two start at once, the next two after one round.
    assert [p.eta_s for p in positions] == [own, own, own + train, own + train]
    assert all(p.worker_online for p in positions)

    await registry.leave(redis_client, "gpu-a:1", ["train"])
    assert (
        await queue_position(redis_client, constants.TRAIN_QUEUE, ids[1], train=True)
    ).eta_s == (own + train)
    await registry.leave(redis_client, "gpu-b:2", ["train", "generate"])
    alone = await _position(redis_client, ids[0])
    assert (alone.position, alone.eta_s, alone.worker_online) == (1, None, False)


async def test_worker_process_joins_and_leaves_the_registry(
    settings_factory: Callable[..., Settings],
    redis_client: Redis,
    start_worker: Any,
    tmp_path: Path,
) -> None:
    settings = settings_factory(stages="tests.stub_stages:build")
    process = start_worker(settings_env(settings), "train")
    deadline = time.monotonic() + 60
    while not await registry.live_workers(redis_client, "train"):
        assert time.monotonic() < deadline, "the worker never registered"
        assert process.poll() is None, "the worker exited"
        time.sleep(0.2)
    ((name, _),) = await registry.live_workers(redis_client, "train")
    assert name.endswith(f":{process.pid}")
    assert await registry.live_workers(redis_client, "generate") == []

    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    assert await registry.live_workers(redis_client, "train") == []
