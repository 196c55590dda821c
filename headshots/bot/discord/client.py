"""The Discord client: receives its queue client and settings, registers commands and views.

Intents: ``guilds``, ``guild_messages``, ``dm_messages`` and the privileged ``message_content``
(enable it in the Developer Portal). Slash commands, buttons and attachment options work without
it; it is what lets members post selfies as messages in their session thread. Without it the
bot still runs (see :func:`headshots.bot.discord.run`): the session asks for photos attached to
``/headshot start`` or ``/headshot add``, answers a message posted in the thread (it arrives
empty) with that, and takes photos sent in a DM, whose attachments are always delivered.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Any

import discord
from discord import app_commands

from headshots.bot.conversation import texts
from headshots.bot.conversation.flow import Services
from headshots.bot.discord.commands import HeadshotGroup
from headshots.bot.discord.handlers import DiscordBot, report_error
from headshots.bot.discord.surface import ButtonItem, SelectItem, for_discord
from headshots.model_family import reference_hints
from headshots.queue import constants
from headshots.queue.client import QueueClient
from headshots.settings import Settings

logger = logging.getLogger(__name__)


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
        # No message of the bot pings anyone, whatever text a name or caption carries.
        super().__init__(
            intents=intents or bot_intents(), allowed_mentions=discord.AllowedMentions.none()
        )
        self.queue = queue
        self.settings = settings
        self.services = Services(settings, client=queue)
        self.bot = DiscordBot(self, self.services)
        self.tree = HeadshotsTree(self)
        self.tree.add_command(HeadshotGroup(references=bool(reference_hints(settings))))
        self._sync_commands = sync_commands
        self._owed_tallies: asyncio.Task[None] | None = None

    async def setup_hook(self) -> None:
        # Dynamic items answer clicks on any message with a matching custom_id, including
        # messages sent before a restart and the worker's result buttons.
        self.add_dynamic_items(ButtonItem, SelectItem)
        await self.services.prepare_policy()
        if self._sync_commands:
            await self.sync_if_changed()
        self._owed_tallies = asyncio.create_task(self._write_owed_tallies())

    async def _write_owed_tallies(self) -> None:
        # setup_hook runs before the gateway connects; a client refused for its intents never
        # gets ready (its successor without Message Content does), so the sweep runs once.
        await self.wait_until_ready()
        await self.bot.write_owed_tallies()

    async def close(self) -> None:
        if self._owed_tallies is not None:
            self._owed_tallies.cancel()
        await self.services.close()
        await super().close()

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

    async def on_command(self, interaction: discord.Interaction, name: str, **options: Any) -> None:
        await self.bot.on_command(interaction, name, **options)

    async def on_component(
        self, interaction: discord.Interaction, custom_id: str, values: list[str]
    ) -> None:
        await self.bot.on_component(interaction, custom_id, values)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Answer modal submissions from their payload (see :mod:`.surface`)."""
        if interaction.type is discord.InteractionType.modal_submit:
            await self.bot.on_modal(interaction)

    async def on_message(self, message: discord.Message) -> None:
        """Check selfies posted in a session thread or DM."""
        try:
            await self.bot.on_message(message)
        except Exception:
            logger.exception(
                "failed to handle message %s in channel %s", message.id, message.channel.id
            )
            try:
                await message.channel.send(for_discord(texts.CHECK_FAILED))
            except discord.HTTPException:
                logger.warning("could not tell channel %s about the failure", message.channel.id)
