"""``/delete`` on Discord: the person's session threads and DMs, as far as Discord allows.

A session thread the bot created is deleted whole (it needs **Manage Threads**). Without that
right, and in a DM, the channel is read and every message of the bot's deleted; the person's
own messages too where the bot has **Manage Messages** (never in a DM: a bot cannot delete what
the other side of a DM wrote). What stays is reported with who can remove it. Each call is
retried as deliveries are (a 429 after its ``retry_after``, a 5xx with a growing back-off); a
place Discord keeps refusing stays in the record for the next ``/delete``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

import discord

from headshots.bot.conversation import texts
from headshots.errors import DeliveryFailed
from headshots.queue.chat_log import ChatCleanup, ChatLog, Posted
from headshots.queue.contracts import ChatTarget, UserRef
from headshots.queue.delivery.base import TRANSIENT, with_retries
from headshots.queue.delivery.discord import classify_discord_error

logger = logging.getLogger(__name__)

Outcome = Literal["done", "gone", "refused", "later"]
REASON = "the person asked for their data to be deleted"


def _classify(exc: BaseException) -> float | None:
    # discord.py waits out a 429 itself a few times; one that still comes back is retried too.
    if isinstance(exc, discord.HTTPException) and exc.status == 429:
        return TRANSIENT
    return classify_discord_error(exc)


async def _attempt(call: Callable[[], Awaitable[Any]], what: str) -> tuple[Outcome, Any]:
    """Run one call with the delivery retries; how it ended, and what it returned."""
    try:
        return "done", await with_retries(call, _classify, what=what)
    except DeliveryFailed as exc:
        cause = exc.__cause__
        if isinstance(cause, discord.NotFound):
            return "gone", None
        if cause is not None and _classify(cause) is None:
            return "refused", None  # 403 Missing Permissions, 400 a system message...
        logger.warning("%s failed for now: %s", what, exc)
        return "later", None


def places_of(posted: list[Posted], delivered: list[ChatTarget]) -> list[Posted]:
    """The recorded places, and the threads and DMs results went to that the record misses."""
    places = {p.chat_id: p for p in posted if p.is_place}
    for target in delivered:
        channel = target.thread_id or target.chat_id
        if target.platform == "discord" and channel not in places:
            kind: Literal["thread", "dm"] = "thread" if target.thread_id else "dm"
            where = texts.DISCORD_THREAD_WHERE if target.thread_id else texts.DISCORD_DM_WHERE
            places[channel] = Posted(chat_id=channel, kind=kind, own=kind == "thread", name=where)
    return list(places.values())


async def clear_chats(
    client: discord.Client,
    user: UserRef,
    posted: list[Posted],
    log: ChatLog,
    *,
    delivered: list[ChatTarget],
) -> ChatCleanup:
    """Delete the person's session threads (or their messages), and the bot's in DMs."""
    cleanup = ChatCleanup()
    bot_id = client.user.id if client.user is not None else client.application_id
    for place in places_of(posted, delivered):
        outcome = await _clear_place(client, user, place, bot_id or 0, cleanup)
        if outcome == "later":
            cleanup.pending += 1
        else:
            await log.drop(user, place)
    await log.drop(user, *(p for p in posted if not p.is_place))  # Discord records no messages
    return cleanup


async def _clear_place(
    client: discord.Client, user: UserRef, place: Posted, bot_id: int, cleanup: ChatCleanup
) -> Outcome:
    channel_id = place.chat_id
    if place.kind == "thread" and place.own:
        delete = functools.partial(client.http.delete_channel, channel_id, reason=REASON)
        outcome, _ = await _attempt(delete, "discord delete thread")
        if outcome == "done":
            cleanup.closed.append(channel_id)
        if outcome != "refused":
            return "done" if outcome == "gone" else outcome
        logger.info("no Manage Threads for thread %s: deleting its messages", channel_id)
    messages: list[dict[str, Any]] = []
    before: int | None = None
    while True:
        page_of = functools.partial(client.http.logs_from, channel_id, 100, before=before)
        outcome, page = await _attempt(page_of, "discord read channel")
        if outcome == "gone":
            return "done"
        if outcome != "done":
            return "later" if outcome == "later" else "done"
        messages += page
        if len(page) < 100:
            break
        before = int(page[-1]["id"])
    return await _clear_messages(client, user, place, bot_id, messages, cleanup)


async def _clear_messages(
    client: discord.Client,
    user: UserRef,
    place: Posted,
    bot_id: int,
    messages: list[dict[str, Any]],
    cleanup: ChatCleanup,
) -> Outcome:
    later = False
    kept_theirs: list[dict[str, Any]] = []
    kept_ours: list[dict[str, Any]] = []
    for message in messages:
        author = int(message.get("author", {}).get("id", 0))
        if author not in (bot_id, user.user_id):
            continue  # a moderator's, or someone they let in: not the person's data
        if author == user.user_id and place.kind == "dm":
            kept_theirs.append(message)
            continue
        delete = functools.partial(
            client.http.delete_message, place.chat_id, int(message["id"]), reason=REASON
        )
        outcome, _ = await _attempt(delete, "discord delete message")
        if outcome == "done":
            cleanup.messages += 1
        elif outcome == "later":
            later = True
        elif outcome == "refused":
            (kept_ours if author == bot_id else kept_theirs).append(message)
    photos = sum(len(m.get("attachments") or []) for m in kept_theirs)
    words = len([m for m in kept_theirs if not m.get("attachments")])
    since = _oldest(kept_theirs)
    cleanup.leave(photos, "photo", "person", place.name, since, texts.HOW_YOURS_DISCORD)
    cleanup.leave(words, "message", "person", place.name, since, texts.HOW_YOURS_DISCORD)
    cleanup.leave(
        len(kept_ours), "message", "bot", place.name, _oldest(kept_ours), texts.HOW_MODERATORS
    )
    return "later" if later else "done"


def _oldest(messages: list[dict[str, Any]]) -> float:
    stamps = [str(m["timestamp"]) for m in messages if m.get("timestamp")]
    return min((datetime.fromisoformat(s).timestamp() for s in stamps), default=0.0)
