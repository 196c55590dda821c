"""The Slack front end: ``/headshots``, a session in the DM with the app, team mode in a channel.

The conversation is the core's (:mod:`headshots.bot.conversation`); :mod:`.handlers` and
:mod:`.surface` translate it to Block Kit. Built on slack-bolt (async), in Socket Mode.

Entry points for the CLI: :func:`run` (``headshots bot slack``) and :func:`check_auth`
(``headshots doctor``). Everything else is internal.
"""

from __future__ import annotations

import asyncio
import logging

from headshots.errors import ConfigurationError
from headshots.queue.delivery.base import STARTUP_ATTEMPTS
from headshots.settings import Settings

logger = logging.getLogger(__name__)

__all__ = ["check_auth", "run"]


def _tokens(settings: Settings) -> tuple[str, str]:
    if settings.slack_bot_token is None or settings.slack_app_token is None:
        raise ConfigurationError(
            "set HEADSHOTS_SLACK_BOT_TOKEN (xoxb-) and HEADSHOTS_SLACK_APP_TOKEN (xapp-)"
        )
    return settings.slack_bot_token.get_secret_value(), settings.slack_app_token.get_secret_value()


def run(settings: Settings, redis_url: str) -> None:
    """Run the Slack bot until interrupted."""
    asyncio.run(_serve(settings, redis_url, *_tokens(settings)))


async def _serve(settings: Settings, redis_url: str, bot_token: str, app_token: str) -> None:
    from headshots.bot.slack.app import SlackApp
    from headshots.queue.client import QueueClient
    from headshots.queue.delivery.base import with_retries
    from headshots.queue.delivery.slack import SlackApi, classify_slack_error

    queue = await QueueClient.connect(settings, redis_url)
    app = SlackApp(settings, queue, bot_token, app_token)
    try:
        api = SlackApi(bot_token, api_url=settings.slack_api_url)
        try:  # a wrong token fails here, at once, rather than on the first person's command
            await with_retries(
                lambda: api.call("auth.test"), classify_slack_error,
                attempts=STARTUP_ATTEMPTS, what="Slack start-up",
            )  # fmt: skip
        finally:
            await api.close()
        await app.services.prepare_policy()
        await app.connect()
        await asyncio.Event().wait()  # Socket Mode reconnects by itself; Ctrl-C stops
    finally:
        await app.close()
        await queue.close()


async def check_auth(settings: Settings) -> str:
    """``auth.test`` with the bot token: the workspace and bot user; raises when refused."""
    from headshots.queue.delivery.slack import SlackApi

    bot_token, _ = _tokens(settings)
    api = SlackApi(bot_token, api_url=settings.slack_api_url)
    try:
        answer = await api.call_once("auth.test", {})
    finally:
        await api.close()
    return f"{answer.get('team', '?')} as {answer.get('user', '?')}"
