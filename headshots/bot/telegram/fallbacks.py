"""Everything else: text where a button was expected, stickers, videos, unknown commands."""

from __future__ import annotations

import logging

from telegram import Message, Update
from telegram.ext import ContextTypes

from headshots.bot.telegram import texts
from headshots.bot.telegram.conversation import ConversationHandlers
from headshots.bot.telegram.services import BotServices
from headshots.bot.telegram.state import Place, user_ref

logger = logging.getLogger(__name__)


def describe(message: Message) -> str:
    """What the user sent, in words ("stickers", "videos", ...)."""
    kinds = (
        ("sticker", "stickers"),
        ("video", "videos"),
        ("video_note", "video messages"),
        ("animation", "GIFs"),
        ("voice", "voice messages"),
        ("audio", "audio"),
        ("location", "locations"),
        ("contact", "contacts"),
        ("poll", "polls"),
        ("dice", "dice"),
    )
    for attribute, words in kinds:
        if getattr(message, attribute, None):
            return words
    return "this kind of message"


class FallbackHandlers:
    def __init__(self, services: BotServices, conversation: ConversationHandlers) -> None:
        self.services = services
        self.conversation = conversation

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Use text as a custom description when asked for one; otherwise say what to do."""
        message = update.effective_message
        if message is None or message.from_user is None:
            return
        user = user_ref(message.from_user)
        conversations = self.services.conversations
        place = await conversations.place_of(user, message)
        async with conversations.lock(user, place):
            state = await conversations.load(user, place)
            if state is not None and state.stage == "custom" and not state.resume_offered:
                await self.conversation.on_custom_text(context.bot, message, user, place, state)
                return
            if place.is_group:
                return  # members talk to each other in groups: only commands and buttons are ours
            if state is None or state.stage == "submitted":
                await message.reply_text(texts.TEXT_HINT)
            elif state.stage == "collecting" and not state.resume_offered:
                await message.reply_text(texts.SEND_PHOTOS_NOT_TEXT)
            else:
                await message.reply_text(texts.USE_BUTTONS)
                await self.conversation.resend_menu(context.bot, user, place, state)

    async def on_other(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Explain that stickers, videos, voice and the like cannot be used."""
        message = update.effective_message
        if message is None or message.from_user is None:
            return
        place = Place.of_message(message)
        if place.is_group:
            state = await self.services.conversations.load(user_ref(message.from_user), place)
            if state is None or state.stage == "submitted":
                return
        await message.reply_text(texts.unsupported(describe(message)), do_quote=place.is_group)

    async def on_unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Point at /help for commands we do not know (private chats only)."""
        message = update.effective_message
        if message is not None and message.chat.type == "private":
            await message.reply_text("I don't know that command. " + texts.TEXT_HINT)
