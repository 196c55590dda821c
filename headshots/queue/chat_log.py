"""What a person's sessions left in chats, so that ``/delete`` removes that too.

A selfie or a headshot lives in two places: our store, which ``QueueClient.forget`` empties, and
the chat it was posted in. This module records the chat side, per person, in one Redis hash
(:func:`~headshots.queue.constants.user_chat_log_key`, among the person's keys):

- *places*: a session thread the bot created (deleting it removes everything in it) or a DM.
  Discord lists a channel's messages, so a place is all its front end needs;
- *messages*: Telegram cannot list a chat, so each message the bot posted for the person's
  conversation and each photo they sent is recorded, with its time (a bot may delete messages
  for 48 hours only).

``/delete`` reads the record, deletes the stored data, writes the record back, and hands it to
the front end (:meth:`~headshots.bot.conversation.screens.FrontEnd.clear_chats`), which deletes
what the platform allows and drops each entry it has dealt with. What a platform refuses for
now (a 429 or 5xx past the retries, as deliveries retry) stays recorded, so nothing is left
half done: the next ``/delete`` goes on from there. What it never allows is reported
(:class:`Leftover`), with who can remove it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from headshots.queue import constants, guarded
from headshots.queue.contracts import UserRef

#: Telegram lets a bot delete a message for this long after it was sent.
TELEGRAM_DELETE_WINDOW_S = 48 * 3600


class Posted(BaseModel):
    """A place, or one message, that a person's session left in a chat."""

    chat_id: int
    #: ``0``: the whole place (``chat_id`` is a thread or DM).
    message_id: int = 0
    thread_id: int | None = None
    by: Literal["bot", "person"] = "bot"
    #: ``result``: an album, image or contact sheet a worker delivered.
    kind: Literal["message", "photo", "thread", "dm", "result"] = "message"
    at: float = Field(default_factory=time.time)
    #: How the person knows the place ("#general", "Office"): the report names it.
    name: str = ""
    #: A thread the bot created for the session (the bot may delete it whole).
    own: bool = False

    @property
    def field(self) -> str:
        return f"{self.chat_id}:{self.thread_id or 0}:{self.message_id}:{self.by}"

    @property
    def is_place(self) -> bool:
        return self.message_id == 0


class ChatLog:
    """Record, read and drop what people's sessions left in chats."""

    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s

    @staticmethod
    def fields(*items: Posted) -> list[str]:
        """``field, value, …`` of ``items`` for one HSET (a worker writes them guarded by its
        job record)."""
        return [part for item in items for part in (item.field, item.model_dump_json())]

    async def add(self, user: UserRef, *items: Posted) -> None:
        """Record ``items``, unless the person deleted everything since this task read their
        data (a message posted by a handler still in flight must not bring the key back)."""
        if not items:
            return
        key = constants.user_chat_log_key(user.key)
        await guarded.write_for(
            self.redis, user.key, "HSET", key, *self.fields(*items), ttl_s=self.ttl_s
        )

    async def items(self, user: UserRef) -> list[Posted]:
        raw = await self.redis.hgetall(constants.user_chat_log_key(user.key))
        return sorted(
            (Posted.model_validate_json(value) for value in raw.values()),
            key=lambda p: (p.chat_id, p.message_id),
        )

    async def drop(self, user: UserRef, *items: Posted) -> None:
        if items:
            await self.redis.hdel(constants.user_chat_log_key(user.key), *(i.field for i in items))


@dataclass
class Leftover:
    """What stays in a chat after a delete, and how it goes."""

    count: int
    what: Literal["photo", "message", "headshots"]
    by: Literal["person", "bot"]
    #: Where, as the person reads it: "in #general", "in our DM", "in “Office”".
    where: str
    #: When the oldest of them was posted (Unix time; ``0``: unknown).
    since: float
    #: Who can delete it and how (a sentence of :mod:`.texts`).
    how: str


@dataclass
class ChatCleanup:
    """What a front end removed from chats, and what it could not."""

    #: Messages deleted one by one.
    messages: int = 0
    #: Session threads deleted whole, by id.
    closed: list[int] = field(default_factory=list)
    left: list[Leftover] = field(default_factory=list)
    #: Entries still recorded: the platform refused them for now (the next /delete goes on).
    pending: int = 0

    def leave(
        self,
        count: int,
        what: Literal["photo", "message", "headshots"],
        by: Literal["person", "bot"],
        where: str,
        since: float,
        how: str,
    ) -> None:
        if count > 0:
            self.left.append(Leftover(count, what, by, where, since, how))
