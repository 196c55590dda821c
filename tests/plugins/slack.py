"""Shared pytest fixtures for the Slack front end: the fake Slack and a connected Bolt app.

``fake_slack``: a started :class:`tests.fake_slack.FakeSlack` (Web API over HTTP, Socket Mode
over a websocket). ``slack_bot_factory``: ``await make(**settings)`` -> a :class:`SlackApp`
connected to the fake in Socket Mode, with its own queue client on the (flushed) test Redis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from headshots.settings import Settings
from tests.fake_slack import APP_TOKEN, BOT_TOKEN, FakeSlack


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def slack_bot_factory(
    fake_slack: FakeSlack,
    redis_client: Any,
    redis_url: str,
    settings_factory: Callable[..., Settings],
    style_policy_built: None,
) -> AsyncIterator[Callable[..., Any]]:
    from headshots.bot.slack.app import SlackApp
    from headshots.queue.client import QueueClient

    made: list[tuple[SlackApp, QueueClient]] = []

    async def make(**overrides: Any) -> SlackApp:
        settings = settings_factory(
            slack_bot_token=BOT_TOKEN, slack_app_token=APP_TOKEN,
            slack_api_url=fake_slack.api_url, **overrides,
        )  # fmt: skip
        queue = await QueueClient.connect(settings, redis_url)
        app = SlackApp(settings, queue, BOT_TOKEN, APP_TOKEN)
        made.append((app, queue))
        await app.connect()
        await fake_slack.connected()
        return app

    yield make
    for app, queue in made:
        await app.close()
        await queue.close()
