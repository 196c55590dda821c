"""Conversation state of one user in one place (a chat, or one forum topic of it), in Redis.

Everything a conversation needs survives a bot restart: it is JSON saved through
:meth:`QueueClient.save_chat_state` under the user's key, scoped by chat (and topic), so the same
person has separate conversations in their DM and in each group topic. Updates of one user in one
place are serialised by an in-process lock (the bot handles updates concurrently; only one
process may poll a token, so a process-local lock is enough).

A place may also name a *session* inside the chat, with its own state: a team member's session
(``team:<team id>``) lives next to their own single-user session in the same private chat, and
an admin's brand-kit draft (``kit``) next to their conversation in the group. Which session a
private chat's messages belong to is a small pointer (:meth:`Conversations.place_of`), set by
the team's join link and cleared by a plain /start.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from telegram import Message, User
from telegram.constants import ChatType

from headshots.bot.numbering import numbers_in_sent_order
from headshots.queue.client import QueueClient
from headshots.queue.contracts import UserRef

#: Session prefix of a team member's conversation; the admin's kit draft is the "kit" session.
TEAM_SESSION = "team:"
KIT_SESSION = "kit"
#: The per-chat pointer naming the session a private chat's messages belong to.
_POINTER_SESSION = "session"

Stage = Literal["consent", "collecting", "style", "custom", "confirm", "submitted"]
#: Stages in which the user is in the middle of something with the bot.
ACTIVE_STAGES = ("consent", "collecting", "style", "custom", "confirm")


@dataclass(frozen=True)
class Place:
    """Where a conversation happens; ``thread_id`` is set for forum-topic messages only."""

    chat_id: int
    thread_id: int | None = None
    is_group: bool = False
    #: A separate conversation in the same chat ("team:<id>", "kit"); "" is the user's own.
    session: str = ""

    @property
    def scope(self) -> str:
        base = str(self.chat_id) if self.thread_id is None else f"{self.chat_id}:{self.thread_id}"
        return f"{base}/{self.session}" if self.session else base

    @property
    def team_id(self) -> str | None:
        """The team of a member's team session, else ``None``."""
        return self.session.removeprefix(TEAM_SESSION) if self.is_team_session else None

    @property
    def is_team_session(self) -> bool:
        return self.session.startswith(TEAM_SESSION)

    def in_session(self, session: str) -> Place:
        return replace(self, session=session)

    @classmethod
    def team_session(cls, chat_id: int, team_id: str) -> Place:
        """A member's team session in their private chat."""
        return cls(chat_id, None, False, TEAM_SESSION + team_id)

    @classmethod
    def of_message(cls, message: Message) -> Place:
        # message_thread_id is also set on reply chains in ordinary groups; only a forum topic
        # message may send it back (Telegram rejects it otherwise).
        thread = message.message_thread_id if message.is_topic_message else None
        return cls(message.chat_id, thread, message.chat.type != ChatType.PRIVATE)


def user_ref(user: User) -> UserRef:
    return UserRef(platform="telegram", user_id=user.id, display_name=user.full_name)


@dataclass
class ChatState:
    """One conversation; ``to_json``/``from_json`` are what Redis holds."""

    stage: Stage = "consent"
    consent: bool = False
    upload_id: str | None = None
    #: The number the next photo gets (1-based, as users count).
    next_index: int = 1
    #: ``SelfieVerdict.to_json()`` of every photo checked so far.
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    #: Indices of photos stored in the blob store (the accepted ones).
    stored: list[int] = field(default_factory=list)
    #: Indices of photos that arrived after the maximum was reached.
    over_limit: list[int] = field(default_factory=list)
    #: ``photo_messages[i]`` is the message id of the photo with index ``i + 1``. Updates are
    #: handled concurrently, so indices follow arrival at the lock, not the order the user
    #: sent them in; the tally numbers photos by message id (see :meth:`photo_numbers`).
    photo_messages: list[int] = field(default_factory=list)
    tally_message_id: int | None = None
    #: The user's message that started it all: replies in groups point at it.
    anchor_message_id: int | None = None
    #: The bot message whose buttons are current (older menus are stale).
    menu_message_id: int | None = None
    style_step: str | None = None
    style: dict[str, Any] = field(default_factory=dict)
    kind: Literal["full", "new_style"] = "full"
    lora_job_id: str | None = None
    last_job_id: str | None = None
    #: Set while /start asks "continue with N photos or start over?".
    resume_offered: bool = False
    #: Ids of photo messages already taken: after a crash Telegram re-delivers unconfirmed
    #: updates, and a photo must not count twice.
    seen_messages: list[int] = field(default_factory=list)
    #: Set in a team member's session: the look is the team's, only the class is asked.
    team_id: str | None = None

    @property
    def accepted_count(self) -> int:
        return len(self.stored)

    def photo_numbers(self) -> dict[int, int]:
        """Index -> the number the user sees: the photo's place in the order it was sent."""
        return numbers_in_sent_order(self.photo_messages, photos=self.next_index - 1)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChatState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class Conversations:
    """Load, lock and save :class:`ChatState` objects."""

    def __init__(self, client: QueueClient) -> None:
        self.client = client
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def lock(self, user: UserRef, place: Place) -> asyncio.Lock:
        """The lock serialising updates of ``user`` in ``place``."""
        key = (user.key, place.scope)
        found = self._locks.get(key)
        if found is None:
            found = asyncio.Lock()
            self._locks[key] = found
        return found

    async def load(self, user: UserRef, place: Place) -> ChatState | None:
        raw = await self.client.load_chat_state(user, place.scope)
        return ChatState.from_json(raw) if raw is not None else None

    async def save(self, user: UserRef, place: Place, state: ChatState) -> None:
        await self.client.save_chat_state(user, place.scope, state.to_json())

    async def clear(self, user: UserRef, place: Place) -> None:
        await self.client.clear_chat_state(user, place.scope)

    async def place_of(self, user: UserRef, message: Message) -> Place:
        """The place of ``message``, in the team session its private chat is switched to."""
        place = Place.of_message(message)
        if place.is_group:
            return place  # team sessions are private; in groups everyone has their own state
        return await self.place_of_chat(user, place.chat_id)

    async def place_of_chat(self, user: UserRef, chat_id: int) -> Place:
        """The session ``user``'s private chat is switched to."""
        pointer = await self.client.load_chat_state(
            user, Place(chat_id, session=_POINTER_SESSION).scope
        )
        team_id = pointer.get("team_id") if pointer else None
        return Place.team_session(chat_id, str(team_id)) if team_id else Place(chat_id)

    async def switch_session(self, user: UserRef, chat_id: int, team_id: str | None) -> None:
        """Send the private chat's next messages to ``team_id``'s session (``None``: the user's)."""
        pointer = Place(chat_id, session=_POINTER_SESSION)
        if team_id is None:
            await self.client.clear_chat_state(user, pointer.scope)
        else:
            await self.client.save_chat_state(user, pointer.scope, {"team_id": team_id})
