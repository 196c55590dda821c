"""``/headshots delete`` on Slack: the bot's messages in the person's DM, as far as Slack allows.

A bot token deletes only the bot's own messages (``chat.delete``); what the person shared
(their selfies) stays theirs to delete, and the report says so. The DM is read with
``conversations.history``; a place Slack refuses for now stays recorded for the next delete.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from headshots.bot.conversation import texts
from headshots.queue.chat_log import ChatCleanup, ChatLog, Posted
from headshots.queue.contracts import ChatTarget, UserRef
from headshots.queue.delivery.slack import slack_id, ts_number

logger = logging.getLogger(__name__)

DM_WHERE = "in our DM"


def places_of(posted: list[Posted], delivered: list[ChatTarget]) -> list[Posted]:
    """The recorded DMs, and the DMs results went to that the record misses."""
    places = {p.chat_id: p for p in posted if p.is_place}
    for target in delivered:
        if target.platform == "slack" and slack_id(target.chat_id).startswith("D"):
            places.setdefault(target.chat_id, Posted(chat_id=target.chat_id, kind="dm"))
    return list(places.values())


async def clear_chats(
    client: AsyncWebClient,
    user: UserRef,
    posted: list[Posted],
    log: ChatLog,
    *,
    keep: int | None,
    delivered: list[ChatTarget],
) -> ChatCleanup:
    """Delete the bot's messages in the person's DMs (all but ``keep``, the report's)."""
    cleanup = ChatCleanup()
    person = slack_id(user.user_id)
    for place in places_of(posted, delivered):
        channel = slack_id(place.chat_id)
        try:
            history = await client.conversations_history(channel=channel, limit=1000)
        except SlackApiError as exc:
            logger.warning("cannot read %s for a delete: %s", channel, exc.response.get("error"))
            cleanup.pending += 1
            continue
        messages: list[dict[str, Any]] = list(history.get("messages") or [])
        theirs = [m for m in messages if m.get("user") == person and m.get("files")]
        for message in messages:
            ts = str(message.get("ts"))
            if message.get("user") == person or ts_number(ts) == keep:
                continue
            try:  # a DM with the app holds the person's messages and the bot's only
                await client.chat_delete(channel=channel, ts=ts)
                cleanup.messages += 1
            except SlackApiError as exc:  # already gone, or not the bot's after all
                logger.info("kept %s in %s: %s", ts, channel, exc.response.get("error"))
        photos = sum(len(m.get("files") or []) for m in theirs)
        since = min((float(str(m["ts"])) for m in theirs), default=0.0)
        cleanup.leave(
            photos, "photo", "person", place.name or DM_WHERE, since, texts.HOW_YOURS_SLACK
        )
        await log.drop(user, place)
    await log.drop(user, *(p for p in posted if not p.is_place))
    return cleanup
