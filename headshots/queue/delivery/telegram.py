"""Telegram delivery with python-telegram-bot's ``ExtBot`` alone (no Application, no polling)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    ReplyParameters,
)
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import AIORateLimiter, ExtBot
from telegram.request import HTTPXRequest

from headshots.actions import Action, label
from headshots.queue.contracts import ChatTarget
from headshots.queue.delivery.base import TRANSIENT, OutgoingImage, with_retries

logger = logging.getLogger(__name__)

TELEGRAM_PHOTO_LIMIT = 10 * 1024 * 1024


def keyboard(actions: Sequence[Sequence[Action]] | None) -> InlineKeyboardMarkup | None:
    if not actions:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label(a), callback_data=a.encode()) for a in row] for row in actions]
    )


def classify_telegram_error(exc: BaseException) -> float | None:
    if isinstance(exc, RetryAfter):
        retry_after = exc.retry_after
        seconds = (
            retry_after.total_seconds()
            if isinstance(retry_after, timedelta)
            else float(retry_after)
        )
        return max(0.05, seconds)
    if isinstance(exc, (BadRequest, Forbidden)):
        return None  # our request is wrong or the bot was removed: retrying cannot help
    if isinstance(exc, (TimedOut, NetworkError)):
        return TRANSIENT
    return None


def build_telegram_bot(token: str, api_url: str | None) -> ExtBot[None]:
    """An ``ExtBot`` with its own rate limiter (AIORateLimiter works in-process only)."""
    base = api_url.rstrip("/") if api_url else "https://api.telegram.org"
    return ExtBot(
        token,
        base_url=f"{base}/bot",
        base_file_url=f"{base}/file/bot",
        # Albums of full-size photos take longer than the 20 s default to upload.
        request=HTTPXRequest(media_write_timeout=120.0, read_timeout=30.0, connection_pool_size=8),
        # Our own with_retries handles 429 so that delivery and edits share one policy.
        rate_limiter=AIORateLimiter(max_retries=0),  # type: ignore[arg-type]
    )


class TelegramSender:
    platform = "telegram"
    max_album = 10
    max_message_bytes = 45 * 1024 * 1024

    def __init__(self, bot: ExtBot[None]) -> None:
        self.bot = bot
        self._initialized = False

    async def _ready(self) -> None:
        if not self._initialized:
            # getMe goes through the same retries as every send: a 502 here used to escape as a
            # raw NetworkError from a status update and fail the job (found by the soak).
            await with_retries(self.bot.initialize, classify_telegram_error, what="telegram getMe")
            self._initialized = True

    @staticmethod
    def _thread(target: ChatTarget) -> int | None:
        # Only forum-topic requests carry a thread id (the bot sets it for topic messages only).
        return target.thread_id

    @staticmethod
    def _reply(target: ChatTarget) -> ReplyParameters | None:
        if target.reply_to_message_id is None:
            return None
        return ReplyParameters(
            message_id=target.reply_to_message_id, allow_sending_without_reply=True
        )

    async def send_text(
        self, target: ChatTarget, text: str, actions: Sequence[Sequence[Action]] | None = None
    ) -> int:
        await self._ready()
        message = await with_retries(
            lambda: self.bot.send_message(
                target.chat_id,
                text[:4096],
                message_thread_id=self._thread(target),
                reply_parameters=self._reply(target),
                reply_markup=keyboard(actions),
            ),
            classify_telegram_error,
            what="telegram sendMessage",
        )
        return int(message.message_id)

    async def edit_text(self, target: ChatTarget, message_id: int, text: str) -> None:
        await self._ready()

        async def edit() -> None:
            try:
                await self.bot.edit_message_text(
                    text[:4096], chat_id=target.chat_id, message_id=message_id
                )
            except BadRequest as exc:
                if "not modified" in str(exc).lower():
                    return  # same text: nothing to do, and not an error
                raise

        await with_retries(edit, classify_telegram_error, what="telegram editMessageText")

    async def send_album(self, target: ChatTarget, images: Sequence[OutgoingImage]) -> list[int]:
        await self._ready()
        if len(images) == 1:
            return [await self.send_image(target, images[0])]
        media = [
            InputMediaPhoto(
                image.data, caption=image.caption[:1024] or None, filename=image.filename
            )
            for image in images
        ]
        messages = await with_retries(
            lambda: self.bot.send_media_group(
                target.chat_id,
                media,
                message_thread_id=self._thread(target),
                reply_parameters=self._reply(target),
            ),
            classify_telegram_error,
            what="telegram sendMediaGroup",
        )
        return [int(m.message_id) for m in messages]

    async def send_image(
        self,
        target: ChatTarget,
        image: OutgoingImage,
        actions: Sequence[Sequence[Action]] | None = None,
    ) -> int:
        await self._ready()
        if len(image.data) > TELEGRAM_PHOTO_LIMIT:
            message = await with_retries(
                lambda: self.bot.send_document(
                    target.chat_id,
                    image.data,
                    filename=image.filename,
                    caption=image.caption[:1024] or None,
                    message_thread_id=self._thread(target),
                    reply_markup=keyboard(actions),
                ),
                classify_telegram_error,
                what="telegram sendDocument",
            )
        else:
            message = await with_retries(
                lambda: self.bot.send_photo(
                    target.chat_id,
                    image.data,
                    filename=image.filename,
                    caption=image.caption[:1024] or None,
                    message_thread_id=self._thread(target),
                    reply_parameters=self._reply(target),
                    reply_markup=keyboard(actions),
                ),
                classify_telegram_error,
                what="telegram sendPhoto",
            )
        return int(message.message_id)

    async def close(self) -> None:
        if self._initialized:
            await self.bot.shutdown()
            self._initialized = False
