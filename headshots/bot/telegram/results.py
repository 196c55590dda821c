"""Buttons under results (posted by the worker) and deleting a user's data."""

from __future__ import annotations

import logging
import posixpath

from telegram import Bot, InputMediaDocument, Message, Update
from telegram.ext import ContextTypes

from headshots.actions import Action, decode_action
from headshots.bot.telegram import keyboards, messaging, texts
from headshots.bot.telegram.conversation import ConversationHandlers
from headshots.bot.telegram.services import BotServices
from headshots.bot.telegram.state import Place, user_ref
from headshots.errors import NotFound
from headshots.queue.client import JobInfo
from headshots.queue.contracts import UserRef

logger = logging.getLogger(__name__)

#: Telegram's album size and a safe total below its 50 MB upload limit.
ALBUM_MAX = 10
ALBUM_MAX_BYTES = 45 * 1024 * 1024


class ResultHandlers:
    def __init__(self, services: BotServices, conversation: ConversationHandlers) -> None:
        self.services = services
        self.conversation = conversation

    async def on_action(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Handle "New style", "More like #N", "Originals as files" and "Delete my data"."""
        query = update.callback_query
        if query is None or query.data is None:
            return
        action = decode_action(query.data)
        if action is None or not isinstance(query.message, Message):
            await query.answer(texts.STALE_MENU)
            return
        user = user_ref(query.from_user)
        place = Place.of_message(query.message)
        info = await self.services.client.job(action.job_id) if action.job_id else None
        if action.name == "delete":
            await query.answer()
            await self.ask_delete(context.bot, user, place)
            return
        if info is None:
            await query.answer(texts.JOB_GONE, show_alert=True)
            return
        if info.user_key != user.key:
            await query.answer(texts.NOT_YOUR_BUTTON, show_alert=True)
            return
        answer = await self._run(context.bot, user, place, action, info)
        await query.answer(answer)

    async def _run(
        self, bot: Bot, user: UserRef, place: Place, action: Action, info: JobInfo
    ) -> str | None:
        anchor = info.request.target.reply_to_message_id
        if action.name == "new_style":
            await self.conversation.start_new_style(
                bot,
                user,
                place,
                job_id=info.job_id,
                upload_id=info.request.upload_id,
                anchor=anchor,
            )
            return "Choose a new style"
        if action.name == "more_like":
            job_id = await self.conversation.submit(
                bot,
                user,
                place,
                upload_id=info.request.upload_id,
                style=info.request.style,
                kind="more_like",
                lora_job_id=info.job_id,
                like_rank=action.rank,
                anchor=anchor,
            )
            return f"Making more like #{action.rank}" if job_id else None
        await self.send_originals(bot, place, user, info)
        return None

    async def send_originals(self, bot: Bot, place: Place, user: UserRef, info: JobInfo) -> None:
        """Send the job's results as uncompressed files (albums of up to 10 documents)."""
        results = sorted(info.results, key=lambda r: int(r.get("rank", 0)))
        files: list[tuple[str, bytes]] = []
        try:
            for result in results:
                path = str(result["path"])
                data = await self.services.client.read_blob(user, path)
                rank = int(result.get("rank", len(files) + 1))
                suffix = posixpath.splitext(path)[1] or ".png"
                files.append((f"headshot-{rank:02d}{suffix}", data))
        except NotFound:
            await messaging.send(bot, place, texts.JOB_GONE)
            return
        if not files:
            await messaging.send(bot, place, texts.JOB_GONE)
            return
        batches: list[list[tuple[str, bytes]]] = [[]]
        size = 0
        for name, data in files:
            if len(batches[-1]) >= ALBUM_MAX or (
                batches[-1] and size + len(data) > ALBUM_MAX_BYTES
            ):
                batches.append([])
                size = 0
            batches[-1].append((name, data))
            size += len(data)
        for batch in batches:
            if len(batch) == 1:
                name, data = batch[0]
                await bot.send_document(
                    place.chat_id, data, filename=name, message_thread_id=place.thread_id
                )
            else:
                await bot.send_media_group(
                    place.chat_id,
                    [InputMediaDocument(data, filename=name) for name, data in batch],
                    message_thread_id=place.thread_id,
                )

    # --- deleting ---------------------------------------------------------------------------
    async def ask_delete(self, bot: Bot, user: UserRef, place: Place) -> None:
        await messaging.send(
            bot, place, texts.DELETE_CONFIRM, markup=keyboards.delete(user.user_id)
        )

    async def on_delete_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Delete everything of the user once they confirm, and report what went."""
        query = update.callback_query
        if query is None or query.data is None or not isinstance(query.message, Message):
            return
        callback = keyboards.decode(query.data)
        if callback is None or callback.user_id != query.from_user.id:
            await query.answer(texts.NOT_YOUR_BUTTON, show_alert=True)
            return
        place = Place.of_message(query.message)
        if callback.args[:1] != ("y",):
            await messaging.edit(context.bot, place, query.message.message_id, texts.DELETE_KEPT)
            await query.answer()
            return
        user = user_ref(query.from_user)
        conversations = self.services.conversations
        async with conversations.lock(user, place):
            # Pending tally refreshes would write conversation state back after the delete.
            self.services.tally.forget(lambda key: isinstance(key, tuple) and key[0] == user.key)
            report = await self.services.client.forget(user)
        await messaging.edit(context.bot, place, query.message.message_id, texts.deleted(report))
        await query.answer("Deleted")
