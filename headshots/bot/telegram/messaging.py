"""Sending into a :class:`Place` (chat or forum topic) and editing bot messages safely."""

from __future__ import annotations

import logging

from telegram import Bot, InlineKeyboardMarkup, Message, ReplyParameters
from telegram.error import BadRequest

from headshots.bot.telegram.state import Place

logger = logging.getLogger(__name__)


def mention(place: Place, display_name: str | None) -> str | None:
    """A name to address the user by in groups (``None`` in private chats)."""
    return display_name if place.is_group and display_name else None


def posted_anonymously(message: Message) -> bool:
    """Sent on behalf of a chat (an anonymous admin, a channel): no person we can identify.

    ``from_user`` is then a placeholder bot (GroupAnonymousBot, Channel_Bot) shared by every
    such message, so nothing may be keyed on it, and the bot cannot write to it privately.
    """
    return message.sender_chat is not None


def sees_only_replies(bot: Bot, place: Place) -> bool:
    """True in groups while the bot's privacy mode is on (BotFather's default).

    Then Telegram delivers only commands, button presses and replies to the bot's messages, so
    photos and text must be sent as replies: every prompt in a group says so.
    """
    return place.is_group and not bot.can_read_all_group_messages


async def send(
    bot: Bot,
    place: Place,
    text: str,
    *,
    reply_to: int | None = None,
    markup: InlineKeyboardMarkup | None = None,
) -> Message:
    """Send ``text`` into ``place`` (in groups, as a reply to ``reply_to`` when given)."""
    reply = (
        ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
        if reply_to is not None and place.is_group
        else None
    )
    return await bot.send_message(
        place.chat_id,
        text[:4096],
        message_thread_id=place.thread_id,
        reply_parameters=reply,
        reply_markup=markup,
    )


async def edit(
    bot: Bot,
    place: Place,
    message_id: int,
    text: str,
    *,
    markup: InlineKeyboardMarkup | None = None,
) -> bool:
    """Edit a bot message; ``False`` when it no longer exists. Unchanged text is not an error."""
    try:
        await bot.edit_message_text(
            text[:4096], chat_id=place.chat_id, message_id=message_id, reply_markup=markup
        )
    except BadRequest as exc:
        reason = str(exc).lower()
        if "not modified" in reason:
            return True
        if "not found" in reason or "can't be edited" in reason:
            logger.info("message %s in %s cannot be edited: %s", message_id, place.scope, exc)
            return False
        raise
    return True
