"""The Discord client: receives its queue client and settings, registers commands and views.

Intents: ``guilds``, ``guild_messages``, ``dm_messages`` and the privileged ``message_content``
(enable it in the Developer Portal). Slash commands, buttons and attachment options work without
it; it is what lets members post selfies as messages in their session thread. Without it the
bot still runs (see :func:`headshots.bot.discord.run`) and users attach photos to
``/headshot start`` or send them in a DM, whose attachments are always delivered.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from headshots.bot.discord import modals
from headshots.bot.discord.commands import HeadshotGroup
from headshots.bot.discord.flow import Flow
from headshots.bot.discord.replies import report_error
from headshots.bot.discord.team_views import DYNAMIC_ITEMS as TEAM_ITEMS
from headshots.bot.discord.views import ResultButton, SessionButton, SessionSelect
from headshots.queue import constants
from headshots.queue.client import QueueClient
from headshots.settings import Settings

if TYPE_CHECKING:
    from headshots.generation.faces.types import FaceAnalyzer

logger = logging.getLogger(__name__)

#: Redis key holding the hash of the last command tree synced for an application. It lives here,
#: not with the job keys, because only this front end reads it.


def bot_intents(*, message_content: bool = True) -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = message_content
    return intents


def command_tree_hash(tree: app_commands.CommandTree[discord.Client]) -> str:
    payload = [command.to_dict(tree) for command in tree.get_commands()]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class HeadshotsTree(app_commands.CommandTree[discord.Client]):
    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError, /
    ) -> None:
        """Log a failed command and tell the user something useful."""
        await report_error(interaction, error)


class HeadshotsClient(discord.Client):
    def __init__(
        self,
        *,
        queue: QueueClient,
        settings: Settings,
        intents: discord.Intents | None = None,
        sync_commands: bool = True,
    ) -> None:
        super().__init__(intents=intents or bot_intents())
        self.queue = queue
        self.settings = settings
        self.tree = HeadshotsTree(self)
        self.tree.add_command(HeadshotGroup())
        self.flow = Flow(self)
        self._sync_commands = sync_commands
        self._analyzer: FaceAnalyzer | None = None
        self._analyzer_lock = asyncio.Lock()

    async def setup_hook(self) -> None:
        # Dynamic items answer clicks on any message with a matching custom_id, including
        # messages sent before a restart and the worker's result buttons.
        self.add_dynamic_items(SessionButton, SessionSelect, ResultButton, *TEAM_ITEMS)
        if self._sync_commands:
            await self.sync_if_changed()

    async def sync_if_changed(self) -> bool:
        """Sync the command tree when it differs from the last synced one; True if it synced."""
        digest = command_tree_hash(self.tree)
        key = constants.discord_commands_hash_key(self.application_id)
        stored = await self.queue.redis.get(key)
        if (
            stored is not None
            and (stored.decode() if isinstance(stored, bytes) else str(stored)) == digest
        ):
            logger.info("slash commands unchanged; not syncing")
            return False
        commands = await self.tree.sync()
        await self.queue.redis.set(key, digest)
        logger.info("synced %d slash command(s)", len(commands))
        return True

    async def analyzer(self) -> FaceAnalyzer:
        """The face analyzer, loaded in a thread on first use (the face stack is imported then)."""
        async with self._analyzer_lock:
            if self._analyzer is None:
                from headshots.generation.faces import load_analyzer

                self._analyzer = await asyncio.to_thread(load_analyzer, self.settings)
            return self._analyzer

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Answer modal submissions from their payload (see :mod:`.modals`)."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        handler = modals.route(self.flow, interaction)
        if handler is not None:
            await self.flow.guarded(interaction, handler)

    async def on_message(self, message: discord.Message) -> None:
        """Check selfies posted in a session thread or DM."""
        try:
            await self.flow.on_message(message)
        except Exception:
            logger.exception(
                "failed to handle message %s in channel %s", message.id, message.channel.id
            )
            try:
                await message.channel.send(
                    "Sorry, I couldn't check these photos. Please try again in a few minutes."
                )
            except discord.HTTPException:
                logger.warning("could not tell channel %s about the failure", message.channel.id)
