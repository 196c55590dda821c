"""Discord delivery over HTTP only: ``Client(intents=Intents.none())`` logged in with the bot token.

Interaction tokens die after 15 minutes, so long jobs always post with the bot token into the
channel or thread.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence

import aiohttp
import discord

from headshots.actions import Action, label
from headshots.queue.contracts import ChatTarget
from headshots.queue.delivery.base import TRANSIENT, OutgoingImage, with_retries

logger = logging.getLogger(__name__)

DISCORD_DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024


def point_discord_at(api_base: str | None) -> None:
    """Send discord.py's REST calls to ``api_base`` (e.g. a test server) instead of discord.com.

    ``Route.BASE`` is discord.py's own switch for this; it is process-wide by design.
    """
    if api_base:
        discord.http.Route.BASE = api_base.rstrip("/")


def action_view(actions: Sequence[Sequence[Action]] | None) -> discord.ui.View | None:
    if not actions:
        return None
    view = discord.ui.View(timeout=None)
    for row_index, row in enumerate(actions):
        for action in row:
            if action.name == "originals":
                continue  # Discord keeps attachments byte for byte: the album is the originals
            style = (
                discord.ButtonStyle.danger
                if action.name == "delete"
                else discord.ButtonStyle.secondary
            )
            view.add_item(
                discord.ui.Button(
                    label=label(action), custom_id=action.encode(), style=style, row=row_index
                )
            )
    return view


def classify_discord_error(exc: BaseException) -> float | None:
    # discord.py already honours 429 retry_after and retries 5xx itself; what reaches us is
    # what it gave up on, or a transport error.
    if isinstance(exc, discord.DiscordServerError):
        return TRANSIENT
    # Transport trouble, and a gateway that would not open (start-up): worth another try.
    if isinstance(
        exc,
        (
            aiohttp.ClientError,
            TimeoutError,
            OSError,
            discord.GatewayNotFound,
            discord.ConnectionClosed,
        ),
    ):
        return TRANSIENT
    return None


class DiscordSender:
    platform = "discord"
    max_album = 10

    def __init__(self, token: str, *, api_base: str | None = None) -> None:
        point_discord_at(api_base)
        self._token = token
        self.client = discord.Client(intents=discord.Intents.none())
        self._logged_in = False
        self.max_message_bytes = DISCORD_DEFAULT_UPLOAD_LIMIT

    async def _ready(self) -> None:
        if not self._logged_in:
            await with_retries(
                lambda: self.client.login(self._token), classify_discord_error, what="discord login"
            )
            self._logged_in = True

    def _channel(self, target: ChatTarget) -> discord.PartialMessageable:
        # A job's thread is a channel of its own; post there when there is one.
        return self.client.get_partial_messageable(target.thread_id or target.chat_id)

    @staticmethod
    def _files(images: Sequence[OutgoingImage]) -> list[discord.File]:
        return [
            discord.File(
                io.BytesIO(i.data), filename=i.filename, description=i.caption[:1024] or None
            )
            for i in images
        ]

    async def send_text(
        self, target: ChatTarget, text: str, actions: Sequence[Sequence[Action]] | None = None
    ) -> int:
        await self._ready()
        view = action_view(actions)

        async def send() -> discord.Message:
            if view is not None:
                return await self._channel(target).send(content=text[:2000], view=view)
            return await self._channel(target).send(content=text[:2000])

        message = await with_retries(send, classify_discord_error, what="discord send")
        return int(message.id)

    async def edit_text(self, target: ChatTarget, message_id: int, text: str) -> None:
        await self._ready()
        partial = self._channel(target).get_partial_message(message_id)
        await with_retries(
            lambda: partial.edit(content=text[:2000]), classify_discord_error, what="discord edit"
        )

    async def send_album(self, target: ChatTarget, images: Sequence[OutgoingImage]) -> list[int]:
        await self._ready()
        content = "\n".join(i.caption for i in images if i.caption)[:2000] or None
        # Files are rebuilt per attempt: a discord.File's stream is consumed by a send.
        message = await with_retries(
            lambda: self._channel(target).send(content=content, files=self._files(images)),
            classify_discord_error,
            what="discord send files",
        )
        return [int(message.id)]

    async def send_image(
        self,
        target: ChatTarget,
        image: OutgoingImage,
        actions: Sequence[Sequence[Action]] | None = None,
    ) -> int:
        await self._ready()
        view = action_view(actions)

        async def send() -> discord.Message:
            files = self._files([image])
            if view is not None:
                return await self._channel(target).send(
                    content=image.caption[:2000] or None, files=files, view=view
                )
            return await self._channel(target).send(
                content=image.caption[:2000] or None, files=files
            )

        message = await with_retries(send, classify_discord_error, what="discord send image")
        return int(message.id)

    async def close(self) -> None:
        if self._logged_in:
            await self.client.close()
            self._logged_in = False
