"""Where a session talks: a thread per job in servers, the DM channel itself in DMs."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, cast

import discord

from headshots.bot.conversation import texts
from headshots.bot.discord.surface import for_discord
from headshots.settings import Settings

if TYPE_CHECKING:
    from discord.types.threads import ThreadArchiveDuration

logger = logging.getLogger(__name__)


class WorkspaceRefused(Exception):
    """Discord refused the thread (permissions changed since the check); ``str()`` is for users."""


def missing_permissions(interaction: discord.Interaction, settings: Settings) -> list[str]:
    """Names of the permissions the bot lacks here (none are needed in a DM)."""
    if interaction.guild_id is None:
        return []
    granted = interaction.app_permissions
    needed = [
        "create_private_threads" if settings.discord_private_threads else "create_public_threads",
        "send_messages_in_threads",
        "attach_files",
    ]
    return [name for name in needed if not getattr(granted, name)]


def thread_name(display_name: str) -> str:
    return for_discord(f"Headshots · {display_name}", 100)


async def open_thread(
    channel: discord.TextChannel,
    *,
    user: discord.abc.User,
    settings: Settings,
    private: bool | None = None,
) -> discord.Thread:
    """Create the session's thread and add the user to it.

    Public unless configured private; ``private=True`` forces a private thread (team members).
    """
    private = settings.discord_private_threads if private is None else private
    try:
        thread = await channel.create_thread(
            name=thread_name(user.display_name),
            type=discord.ChannelType.private_thread
            if private
            else discord.ChannelType.public_thread,
            auto_archive_duration=cast(
                "ThreadArchiveDuration", settings.discord_thread_archive_minutes
            ),
            invitable=False if private else True,
            reason=f"headshot session of {user.id}",
        )
    except discord.Forbidden as exc:
        logger.info("thread creation refused in channel %s: %s", channel.id, exc.text)
        raise WorkspaceRefused(for_discord(texts.thread_refused(private=private))) from exc
    try:
        await thread.add_user(user)
    except discord.HTTPException:
        # A public thread stays reachable without membership; a private one would not, but
        # then the bot created it and may add members, so this only fails transiently.
        logger.warning("could not add user %s to thread %s", user.id, thread.id, exc_info=True)
    return thread


def is_thread(channel: object) -> bool:
    return isinstance(channel, discord.Thread)
