"""Replying to an interaction whatever state it is in, and the bot's one error handler."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

from headshots.bot.discord import texts
from headshots.errors import OperationalError, UserError

logger = logging.getLogger(__name__)


async def reply(interaction: discord.Interaction, text: str, **kwargs: Any) -> None:
    """Answer privately: the initial response if still possible, else a followup."""
    text = texts.clip(text)
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True, **kwargs)
    else:
        await interaction.response.send_message(text, ephemeral=True, **kwargs)


def user_text(error: BaseException) -> str:
    """What to tell the user about ``error`` (logging is the caller's business)."""
    if isinstance(error, UserError):
        return str(error).replace("/cancel", "/headshot cancel")
    if isinstance(error, app_commands.CheckFailure):
        return str(error) or "You can't use this command here."
    return texts.TRY_LATER


async def report_error(interaction: discord.Interaction, error: BaseException) -> None:
    """Log ``error`` and tell the user something useful, privately."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    command = interaction.command.qualified_name if interaction.command else None
    if isinstance(error, (UserError, app_commands.CheckFailure)):
        logger.info(
            "user error in %s for user %s: %s", command or "component", interaction.user.id, error
        )
    elif isinstance(error, OperationalError):
        logger.error("operational error in %s", command or "component", exc_info=error)
    else:
        logger.error("unexpected error in %s", command or "component", exc_info=error)
    try:
        await reply(interaction, user_text(error))
    except discord.HTTPException:
        # The interaction token may have expired (15 min); nothing more we can say.
        logger.warning("could not report an error to user %s", interaction.user.id, exc_info=True)
