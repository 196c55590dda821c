"""The Discord front end: ``/headshot`` slash commands, a thread per session, results by the worker.

Team mode (``/headshot team ...``): one brand kit per server, members' private sessions and
their picked favourites in the team channel; the conversation is the core's
(:mod:`headshots.bot.conversation`), :mod:`.handlers` and :mod:`.surface` translate it.

Entry points for the CLI: :func:`run` (``headshots bot discord``) and :func:`sync_commands`
(``headshots bot discord --sync``). Everything else is internal.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord

from headshots.errors import ConfigurationError
from headshots.queue.delivery.base import STARTUP_ATTEMPTS, with_retries
from headshots.queue.delivery.discord import classify_discord_error
from headshots.settings import Settings

if TYPE_CHECKING:
    from headshots.queue.client import QueueClient

logger = logging.getLogger(__name__)

__all__ = ["run", "sync_commands"]


def _token(settings: Settings) -> str:
    if settings.discord_token is None:
        raise ConfigurationError("HEADSHOTS_DISCORD_TOKEN is not set")
    return settings.discord_token.get_secret_value()


def _point_at_api(settings: Settings) -> None:
    from headshots.queue.delivery.discord import point_discord_at

    point_discord_at(settings.discord_api_url)


def run(settings: Settings, redis_url: str) -> None:
    """Run the Discord bot until interrupted."""
    token = _token(settings)
    _point_at_api(settings)
    asyncio.run(_serve(settings, redis_url, token))


async def _serve(settings: Settings, redis_url: str, token: str) -> None:
    from headshots.queue.client import QueueClient

    queue = await QueueClient.connect(settings, redis_url)
    try:
        await with_retries(
            lambda: _run_client(settings, queue, token),
            classify_discord_error,
            attempts=STARTUP_ATTEMPTS,
            what="Discord start-up",
        )
    finally:
        await queue.close()


async def _run_client(settings: Settings, queue: QueueClient, token: str) -> None:
    """Log in and run until closed; without the Message Content intent if it is not granted."""
    from headshots.bot.discord.client import HeadshotsClient, bot_intents

    for message_content in (True, False):
        client = HeadshotsClient(
            queue=queue, settings=settings, intents=bot_intents(message_content=message_content)
        )
        try:
            async with client:
                await client.login(token)
                if settings.discord_api_url:
                    await _use_advertised_gateway(client)
                await client.connect()
            return
        except discord.PrivilegedIntentsRequired:
            if not message_content:
                raise
            logger.warning(
                "the Message Content intent is not enabled for this bot: selfies posted as "
                "messages in threads will not arrive; attachments to /headshot start or "
                "/headshot add and DMs still work. Enable it in the Developer Portal "
                "(Bot > Privileged Gateway Intents)."
            )


async def _use_advertised_gateway(client: discord.Client) -> None:
    """Connect to the gateway the configured API advertises, not to discord.gg.

    discord.py's plain ``Client`` always dials ``DiscordWebSocket.DEFAULT_GATEWAY``; with
    ``HEADSHOTS_DISCORD_API_URL`` pointing REST elsewhere (a proxy, a test server) the bot would
    otherwise send its token to the real gateway and receive nothing of the configured server.
    Class-wide on purpose: an invalidated session falls back to ``DEFAULT_GATEWAY``.
    """
    import yarl

    _, url, _ = await client.http.get_bot_gateway()
    logger.info("using the gateway the API advertises: %s", url)
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)


async def sync_commands(settings: Settings, guild_id: int | None) -> int:
    """Register the slash commands (globally, or in one guild at once); returns how many."""
    from discord import app_commands

    from headshots.bot.discord.client import command_tree_hash
    from headshots.bot.discord.commands import HeadshotGroup
    from headshots.model_family import reference_hints
    from headshots.queue import constants

    token = _token(settings)
    _point_at_api(settings)
    client = discord.Client(intents=discord.Intents.none())
    tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(client)
    tree.add_command(HeadshotGroup(references=bool(reference_hints(settings))))
    async with client:
        await client.login(token)
        if guild_id is not None:
            guild = discord.Object(id=guild_id)
            tree.copy_global_to(guild=guild)
            synced = await tree.sync(guild=guild)
        else:
            synced = await tree.sync()
            if settings.redis_url:
                # Record what was synced so the bot's own start does not sync again.
                from headshots.queue.connections import connect

                redis = await connect(settings.redis_url)
                try:
                    key = constants.discord_commands_hash_key(client.application_id)
                    await redis.set(key, command_tree_hash(tree))
                finally:
                    await redis.aclose()
    return len(synced)
