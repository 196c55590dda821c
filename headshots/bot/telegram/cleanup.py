"""``/delete`` on Telegram: the messages of the person's sessions, as far as Telegram allows.

A bot may delete a message for 48 hours after it was sent: its own anywhere, the other side's in
a private chat, anyone's in a group where it is an admin with "Delete messages". Telegram gives
no way to list a chat, so what goes is what :mod:`~headshots.queue.chat_log`
recorded as it was sent: the bot's messages of the person's conversation (questions, tallies,
status messages, originals), the photos the person sent, and the albums, previews and contact
sheets a worker delivered (``kind="result"``, recorded by :mod:`headshots.queue.deliver`).
Results of a job delivered before they were recorded are reported, with how the person removes
them.

Calls go through the delivery retries (a 429 after its ``retry_after``, a 5xx with a growing
back-off); a chat Telegram keeps refusing stays recorded for the next ``/delete``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from telegram import Bot
from telegram.error import BadRequest

from headshots.bot.conversation import texts
from headshots.errors import DeliveryFailed
from headshots.queue.chat_log import (
    TELEGRAM_DELETE_WINDOW_S,
    ChatCleanup,
    ChatLog,
    Posted,
)
from headshots.queue.contracts import ChatTarget, UserRef
from headshots.queue.delivery.base import with_retries
from headshots.queue.delivery.telegram import classify_telegram_error

logger = logging.getLogger(__name__)

#: Telegram's most message ids per ``deleteMessages``.
BATCH = 100
#: A message this close to the 48-hour limit is tried, not assumed deletable in a batch.
MARGIN_S = 600.0

Outcome = Literal["done", "gone", "refused", "later"]


async def _attempt(call: Callable[[], Awaitable[Any]], what: str) -> Outcome:
    try:
        await with_retries(call, classify_telegram_error, what=what)
    except DeliveryFailed as exc:
        cause = exc.__cause__
        if isinstance(cause, BadRequest):
            return "gone" if "not found" in str(cause).lower() else "refused"
        logger.warning("%s failed for now: %s", what, exc)
        return "later"
    return "done"


async def clear_chats(
    bot: Bot,
    user: UserRef,
    posted: list[Posted],
    log: ChatLog,
    *,
    keep: int | None,
    delivered: list[ChatTarget],
) -> ChatCleanup:
    """Delete the recorded messages of each chat; report what stays and who can remove it."""
    cleanup = ChatCleanup()
    chats: dict[int, list[Posted]] = {}
    for item in posted:
        chats.setdefault(item.chat_id, []).append(item)
    for chat_id, items in chats.items():
        if await _clear_chat(bot, chat_id, [i for i in items if i.message_id != keep], cleanup):
            await log.drop(user, *items)
        else:
            cleanup.pending += len(items)
    for chat_id in sorted({t.chat_id for t in delivered if t.platform == "telegram"}):
        if any(i.kind == "result" for i in chats.get(chat_id, [])):
            continue  # the worker recorded what it posted there: deleted above (or reported)
        jobs = sum(1 for t in delivered if t.chat_id == chat_id)
        where = _where(chat_id, chats.get(chat_id, []))
        how = texts.HOW_RESULTS_PRIVATE if chat_id > 0 else texts.HOW_GROUP_RESULTS
        cleanup.leave(jobs, "headshots", "bot", where, 0.0, how)
    return cleanup


def _where(chat_id: int, items: Sequence[Posted]) -> str:
    if chat_id > 0:  # Telegram's private chats have the person's (positive) id
        return texts.TELEGRAM_PRIVATE_WHERE
    title = next((i.name for i in items if i.name), "")
    return f"in “{title}”" if title else texts.TELEGRAM_GROUP_WHERE


async def _delete(bot: Bot, chat_id: int, ids: list[int], cleanup: ChatCleanup) -> list[int] | None:
    """Delete ``ids``; the ids Telegram refused, or ``None`` when it failed for now."""
    refused: list[int] = []
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        outcome = await _attempt(
            functools.partial(bot.delete_messages, chat_id, batch), "telegram deleteMessages"
        )
        if outcome == "later":
            return None
        if outcome == "done":
            cleanup.messages += len(batch)
            continue
        for message_id in batch:  # one of them can't go: find which, one by one
            one = await _attempt(
                functools.partial(bot.delete_message, chat_id, message_id),
                "telegram deleteMessage",
            )
            if one == "later":
                return None
            if one == "done":
                cleanup.messages += 1
            elif one == "refused":
                refused.append(message_id)
    return refused


async def _clear_chat(bot: Bot, chat_id: int, items: list[Posted], cleanup: ChatCleanup) -> bool:
    """Delete what may go; ``False`` when Telegram failed for now (the record stays)."""
    private = chat_id > 0
    young_after = time.time() - TELEGRAM_DELETE_WINDOW_S + MARGIN_S
    where = _where(chat_id, items)
    young = [i for i in items if i.at >= young_after]
    ours = [i.message_id for i in young if i.by == "bot" or private]
    refused = await _delete(bot, chat_id, ours, cleanup)
    if refused is None:
        return False
    theirs = [i for i in young if i.by == "person" and not private]
    if theirs:
        # One try for them all: without admin rights every one is refused, and one by one
        # they would wait in the group's rate limit for nothing.
        ids = [i.message_id for i in theirs]
        outcome = await _attempt(
            functools.partial(bot.delete_messages, chat_id, ids), "telegram deleteMessages"
        )
        if outcome == "later":
            return False
        if outcome == "done":
            cleanup.messages += len(ids)
        else:
            refused += ids
    kept = [i for i in items if i.at < young_after or i.message_id in refused]
    photos = [i for i in kept if i.by == "person" and i.kind == "photo"]
    words = [i for i in kept if i.by == "person" and i.kind != "photo"]
    mine = [i for i in kept if i.by == "bot"]
    how_theirs = texts.HOW_YOURS_TELEGRAM
    how_mine = texts.HOW_OLD_PRIVATE if private else texts.HOW_GROUP_ADMINS
    for group, what, by, how in (
        (photos, "photo", "person", how_theirs),
        (words, "message", "person", how_theirs),
        (mine, "message", "bot", how_mine),
    ):
        since = min((i.at for i in group), default=0.0)
        cleanup.leave(len(group), what, by, where, since, how)  # type: ignore[arg-type]
    return True
