"""Selfies: take photos and image files, check each at once, keep one edited tally message."""

from __future__ import annotations

import logging

from telegram import Bot, Message, Update
from telegram.ext import ContextTypes

from headshots.bot.numbering import renumbered
from headshots.bot.telegram import keyboards, messaging, texts
from headshots.bot.telegram.services import BotServices
from headshots.bot.telegram.state import ChatState, Place, user_ref
from headshots.queue.contracts import UserRef

logger = logging.getLogger(__name__)

#: Telegram's limit for files a bot may download (getFile).
DOWNLOAD_LIMIT = 20 * 1024 * 1024
SEEN_LIMIT = 100
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".bmp", ".tif", ".tiff")


def is_image_document(mime_type: str | None, file_name: str | None) -> bool:
    if mime_type and mime_type.lower().startswith("image/"):
        return True
    return bool(file_name and file_name.lower().endswith(IMAGE_SUFFIXES))


class UploadHandlers:
    def __init__(self, services: BotServices) -> None:
        self.services = services

    async def on_photo(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Check a photo (the largest size Telegram offers) and add it to the upload."""
        message = update.effective_message
        if message is None or not message.photo:
            return
        largest = message.photo[-1]
        await self._take(message, context.bot, largest.file_id, largest.file_size)

    async def on_document(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Take an image file at full resolution; explain why anything else is refused."""
        message = update.effective_message
        if message is None or message.document is None or message.from_user is None:
            return
        document = message.document
        if not is_image_document(document.mime_type, document.file_name):
            place = Place.of_message(message)
            if await self._is_listening(user_ref(message.from_user), place):
                await message.reply_text(texts.NOT_AN_IMAGE, do_quote=place.is_group)
            return
        await self._take(message, context.bot, document.file_id, document.file_size)

    async def _is_listening(self, user: UserRef, place: Place) -> bool:
        """In groups the bot only answers members who are in a conversation with it."""
        if not place.is_group:
            return True
        state = await self.services.conversations.load(user, place)
        return state is not None and state.stage != "submitted"

    async def _take(self, message: Message, bot: Bot, file_id: str, file_size: int | None) -> None:
        if message.from_user is None:
            return
        user = user_ref(message.from_user)
        conversations = self.services.conversations
        place = await conversations.place_of(user, message)
        key = (user.key, place.scope)
        self.services.tally.begin(key)
        try:
            async with conversations.lock(user, place):
                state = await conversations.load(user, place)
                if state is None or state.stage != "collecting":
                    await self._not_collecting(message, place, state)
                    return
                if message.message_id in state.seen_messages:
                    return  # re-delivered after a restart: already counted
                if file_size is not None and file_size > DOWNLOAD_LIMIT:
                    # Checked before getFile: Telegram refuses to serve such files to bots.
                    await message.reply_text(texts.file_too_large(file_size), do_quote=True)
                    return
                index = state.next_index
                state.next_index += 1
                state.photo_messages.append(message.message_id)
                state.seen_messages = [
                    *state.seen_messages[-(SEEN_LIMIT - 1) :],
                    message.message_id,
                ]
                if state.accepted_count >= self.services.settings.max_selfies:
                    state.over_limit.append(index)
                else:
                    await self._check_and_store(bot, user, state, index, file_id)
                await conversations.save(user, place, state)
        finally:
            self.services.tally.end(key, lambda: self.refresh_tally(bot, user, place))

    async def _not_collecting(
        self, message: Message, place: Place, state: ChatState | None
    ) -> None:
        if state is None or state.stage == "submitted":
            if not place.is_group:  # in a busy group, photos of others are none of our business
                await message.reply_text(texts.NEED_START)
            return
        if state.stage == "consent":
            await message.reply_text(texts.NEED_CONSENT, do_quote=place.is_group)
        else:
            await message.reply_text(texts.NOT_COLLECTING, do_quote=place.is_group)

    async def _check_and_store(
        self, bot: Bot, user: UserRef, state: ChatState, index: int, file_id: str
    ) -> None:
        from headshots.generation.faces import check_selfie, normalise_selfie

        telegram_file = await bot.get_file(file_id)
        data = bytes(await telegram_file.download_as_bytearray())
        analyzer = await self.services.analyzer()
        verdict = await self.services.in_face_thread(check_selfie, data, analyzer, index=index)
        if verdict.accepted:
            jpeg = await self.services.in_face_thread(normalise_selfie, data)
            assert state.upload_id is not None
            await self.services.client.add_selfie(user, state.upload_id, index, jpeg)
            state.stored.append(index)
        state.verdicts.append(verdict.to_json())
        logger.info("selfie %d of %s: accepted=%s", index, user.key, verdict.accepted)

    async def set_verdict_text(self, state: ChatState) -> tuple[str, bool]:
        """The tally for ``state`` and whether the set is big enough to offer "Done"."""
        from headshots.generation.faces import SelfieVerdict, check_selfie_set

        settings = self.services.settings
        numbers = state.photo_numbers()
        verdicts = renumbered([SelfieVerdict.from_json(v) for v in state.verdicts], numbers)
        analyzer = await self.services.analyzer()
        result = check_selfie_set(
            verdicts,
            same_person_threshold=analyzer.same_person_threshold,
            min_count=settings.min_selfies,
            max_count=settings.max_selfies,
        )
        lines = [result.summary()]
        if state.over_limit:
            over = sorted(numbers.get(index, index) for index in state.over_limit)
            lines.append(texts.over_limit(over, settings))
        enough = len(result.accepted) >= settings.min_selfies
        if enough or not result.reasons:
            lines.append(texts.collecting_hint(len(result.accepted), settings))
        return "\n".join(lines), enough

    async def refresh_tally(self, bot: Bot, user: UserRef, place: Place) -> None:
        """Write the tally of the upload into its one message (sent the first time)."""
        conversations = self.services.conversations
        async with conversations.lock(user, place):
            state = await conversations.load(user, place)
            if state is None or state.stage != "collecting":
                return
            text, enough = await self.set_verdict_text(state)
            markup = keyboards.done(user.user_id) if enough else None
            if state.tally_message_id is not None and await messaging.edit(
                bot, place, state.tally_message_id, text, markup=markup
            ):
                return
            sent = await messaging.send(
                bot, place, text, reply_to=state.anchor_message_id, markup=markup
            )
            state.tally_message_id = sent.message_id
            await conversations.save(user, place, state)
