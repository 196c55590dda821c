"""The queue client's limits against a real Redis: what a delete keeps and what it must not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from headshots.errors import LimitReached
from headshots.queue import constants
from headshots.queue.client import QueueClient
from headshots.settings import Settings
from tests.queue_helpers import make_request


@pytest.fixture
async def client(
    settings_factory: Callable[..., Settings], queue_client_factory: Any
) -> QueueClient:
    client: QueueClient = await queue_client_factory(settings_factory(max_jobs_per_day=3))
    return client


async def test_delete_does_not_reset_the_daily_limit(client: QueueClient) -> None:
    # The probe: 8 of 8 jobs accepted with a /delete between each.
    accepted = 0
    for _ in range(8):
        request = await make_request(client, user_id=77)
        try:
            await client.submit(request)
        except LimitReached as exc:
            assert "today's limit of 3 jobs" in str(exc)
            break
        accepted += 1
        await client.forget(request.user)
    assert accepted == 3
    await client.forget(request.user)  # the refused request's photos

    # What survives the deletes: one counter per day under a salted hash, nothing with the id.
    keys = [key.decode() async for key in client.redis.scan_iter(match="*")]
    assert not [key for key in keys if "cli:77" in key]  # the user key is in none of them
    [counter] = [key for key in keys if key.startswith(f"{constants.KEY_PREFIX}abuse:daily:")]
    assert int(await client.redis.get(counter)) == 3
    ttl = await client.redis.ttl(counter)
    assert 0 < ttl <= 86400 + 60  # gone by the end of the day (UTC)
    # Another user has their own count.
    await client.submit(await make_request(client, user_id=78))


async def test_the_salt_is_made_once_and_shared(
    client: QueueClient, settings_factory: Callable[..., Settings]
) -> None:
    other = await QueueClient.connect(client.settings, client.settings.redis_url or "")
    try:  # another bot process
        assert await client._user_digest("tg:1") == await other._user_digest("tg:1")
        assert await client._user_digest("tg:1") != await client._user_digest("tg:2")
    finally:
        await other.close()
