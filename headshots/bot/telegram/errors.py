"""The one error handler of the bot: log it, and tell the user something useful."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import ContextTypes

from headshots.bot.telegram import texts
from headshots.errors import OperationalError, UserError

logger = logging.getLogger(__name__)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the exception with its traceback and answer the user in the chat it came from."""
    error = context.error
    if isinstance(error, UserError):
        # Written for the user (a limit, an expired job): no traceback needed.
        logger.info("user error: %s", error)
        reply = str(error)
    else:
        logger.error("error while handling an update", exc_info=error)
        reply = texts.OPERATIONAL if isinstance(error, OperationalError) else texts.ERROR
    if not isinstance(update, Update):
        return
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(reply[:200], show_alert=True)
            return
        message = update.effective_message
        if message is not None:
            await message.reply_text(reply)
    except Exception:  # the chat may be gone or Telegram down: logging is all we can do
        logger.warning("could not tell the user about the error", exc_info=True)
