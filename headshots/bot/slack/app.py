"""The Bolt app: receives its queue client and settings, registers every listener once.

Socket Mode: the app opens a websocket with its app-level token (``apps.connections.open``),
so no public URL is needed. The Web API client gets ``HEADSHOTS_SLACK_API_URL`` when set (a
test server); Socket Mode follows it, as ``apps.connections.open`` says where to connect.
"""

from __future__ import annotations

import logging
import re

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from headshots.bot.conversation.flow import Services
from headshots.bot.slack.handlers import SlackBot
from headshots.queue.client import QueueClient
from headshots.queue.delivery.slack import SLACK_API_URL
from headshots.settings import Settings

logger = logging.getLogger(__name__)


class SlackApp:
    """The Bolt app, its Socket Mode connection and the bot's handlers."""

    def __init__(self, settings: Settings, queue: QueueClient, bot_token: str, app_token: str):
        self.settings = settings
        self.services = Services(settings, client=queue)
        self.client = AsyncWebClient(
            token=bot_token, base_url=settings.slack_api_url or SLACK_API_URL
        )
        # No signing secret: Socket Mode envelopes arrive over the app's own websocket.
        self.app = AsyncApp(client=self.client, signing_secret="", process_before_response=False)
        self.bot = SlackBot(self.client, self.services, bot_token)
        self.app.command("/headshots")(self.bot.on_command)
        self.app.action(re.compile(r"^hs"))(self.bot.on_action)
        self.app.view(re.compile(r"^hss"))(self.bot.on_view)
        self.app.event("message")(self.bot.on_message)
        self.app.event("app_home_opened")(self.bot.on_home)
        # Files arrive with their message event; this one only needs its ack.
        self.app.event("file_shared")(self._ignore)
        self.handler = AsyncSocketModeHandler(self.app, app_token)

    @staticmethod
    async def _ignore() -> None:
        """Acknowledge an event the message event already covers."""

    async def connect(self) -> None:
        """Open the Socket Mode connection (returns once connected; events run meanwhile)."""
        await self.handler.connect_async()  # type: ignore[no-untyped-call]
        logger.info("connected to Slack in Socket Mode")

    async def close(self) -> None:
        await self.handler.close_async()  # type: ignore[no-untyped-call]
        await self.bot.close()
        await self.services.close()
