"""Shared pytest fixtures for the Discord front end: the fake REST server and a logged-in bot.

``fake_discord``: a started :class:`tests.fake_discord.FakeDiscord`, with discord.py's
``Route.BASE`` pointed at it for the test (restored afterwards).
``discord_bot``: a :class:`HeadshotsClient` logged in to the fake over HTTP (``setup_hook`` ran),
with its own :class:`QueueClient` on the test Redis (flushed).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import discord
import pytest

from headshots.settings import Settings
from tests.fake_discord import FakeDiscord


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    await fake.start()
    previous = discord.http.Route.BASE
    discord.http.Route.BASE = fake.api_base
    try:
        yield fake
    finally:
        discord.http.Route.BASE = previous
        await fake.stop()


@pytest.fixture
async def discord_bot_factory(
    fake_discord: FakeDiscord,
    redis_client: Any,
    redis_url: str,
    settings_factory: Callable[..., Settings],
    style_policy_built: None,
) -> AsyncIterator[Callable[..., Any]]:
    """``await make(**settings_overrides)`` -> a logged-in HeadshotsClient (closed at teardown)."""
    from headshots.bot.discord.client import HeadshotsClient
    from headshots.queue.client import QueueClient

    made: list[tuple[HeadshotsClient, QueueClient]] = []

    async def make(**overrides: Any) -> HeadshotsClient:
        settings = settings_factory(
            discord_token=fake_discord.token, discord_api_url=fake_discord.api_base, **overrides
        )
        queue = await QueueClient.connect(settings, redis_url)
        client = HeadshotsClient(queue=queue, settings=settings)
        made.append((client, queue))
        await client.login(fake_discord.token)
        return client

    yield make
    for client, queue in made:
        await client.close()
        await queue.close()


@pytest.fixture
async def discord_bot(discord_bot_factory: Callable[..., Any]) -> Any:
    return await discord_bot_factory()
