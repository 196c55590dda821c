"""Conversation state: one person's conversation in one place, JSON in Redis, never in memory.

Everything survives a bot restart: a :class:`Conversation` is saved through
:meth:`QueueClient.save_chat_state` under the person's own keys (so ``/delete`` removes it),
in a *scope* the front end names: Telegram scopes by chat, forum topic and session
(:attr:`Place.scope`), Discord by session id with a pointer from its thread or DM. Updates of one
conversation are serialised by an in-process lock (one process per Telegram token; Discord
events of one session reach one process).

A ``/delete`` wins over a handler already running for that person: every save checks, in Redis
and atomically, that the person was not deleted since this task (the chat update) first loaded
any of their conversations, and writes nothing otherwise (:mod:`headshots.queue.guarded`). A
handler that starts after the delete saves as usual.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import weakref
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, Field

from headshots.queue.client import QueueClient
from headshots.queue.contracts import UserRef

Stage = Literal["consent", "collecting", "style", "custom", "reference", "confirm", "submitted"]
#: Stages in which the person is in the middle of something with the bot.
ACTIVE = ("consent", "collecting", "style", "custom", "reference", "confirm")
#: Session prefix of a team member's conversation; an admin's kit draft is the "kit" session.
TEAM_SESSION = "team:"
KIT_SESSION = "kit"
_CONSENT_SCOPE = "consent"


@dataclass(frozen=True)
class Place:
    """Where a conversation happens: a chat (and forum topic or thread) of a platform.

    ``is_group``: other people talk here too (Telegram groups): replies point at the person's
    message and status lines name them. ``session`` separates conversations of one person in one
    chat (``team:<id>``, ``kit``); ``""`` is their own.
    """

    chat_id: int
    thread_id: int | None = None
    is_group: bool = False
    session: str = ""
    guild_id: int | None = None

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


class Photo(BaseModel):
    """A photo as the platform announced it (kept while consent is pending)."""

    url: str
    name: str = ""
    size: int = 0
    content_type: str | None = None
    #: Where it sat in the chat: (message id, position among its attachments).
    place: tuple[int, int] = (0, 0)
    #: The front end's reason to refuse it unread (too large, not an image).
    refused: str | None = None


class Conversation(BaseModel):
    """One conversation; ``model_dump``/``model_validate`` are what Redis holds."""

    session_id: str = Field(default_factory=lambda: secrets.token_hex(6))
    owner_id: int = 0
    place: Place = Place(0)
    stage: Stage = "consent"
    kind: Literal["full", "new_style"] = "full"
    upload_id: str | None = None
    lora_job_id: str | None = None
    #: The last job submitted from this conversation.
    job_id: str | None = None
    #: A team member's conversation: the look is the team's, only the person is asked.
    team_id: str | None = None
    #: The number the next photo gets (1-based, as people count).
    next_index: int = 1
    #: ``SelfieVerdict.to_json()`` of every photo checked so far.
    verdicts: list[dict[str, Any]] = Field(default_factory=list)
    #: Indices of photos in the blob store (the accepted ones).
    stored: list[int] = Field(default_factory=list)
    #: ``places[i]`` is where the photo with index ``i + 1`` sat in the chat. Photos are
    #: handled concurrently, so the tally numbers them by place, not by index; a place seen
    #: before is a re-delivered update (after a crash) and is not counted twice.
    places: list[tuple[int, int]] = Field(default_factory=list)
    names: dict[str, str] = Field(default_factory=dict)
    pending: list[Photo] = Field(default_factory=list)
    tally_message_id: int | None = None
    #: Photos were taken since the tally was last written. A bot that died in between (the
    #: tally waits for a quiet period) writes it when it starts again (``refresh_due_tallies``).
    tally_due: bool = False
    #: The message whose buttons are current (older menus are stale).
    menu_message_id: int | None = None
    #: The person's message that started it all: replies in groups point at it.
    anchor_message_id: int | None = None
    #: The question being asked (one at a time) and the page shown (a form).
    step: str | None = None
    page: int = 0
    style: dict[str, Any] = Field(default_factory=dict)
    #: The person's features are not asked one by one: known from an earlier job, or answered
    #: at the compact features question.
    remembered: bool = False
    #: The person pressed "Customise": every question is asked, not only the preset.
    customising: bool = False
    #: Set while /start asks "continue with N photos or start over?".
    resume_offered: bool = False


class Store:
    """Load, lock and save conversations (and other chat state) of people."""

    def __init__(self, client: QueueClient) -> None:
        self.client = client
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def lock(self, user: UserRef, scope: str | Place) -> asyncio.Lock:
        """The lock serialising updates of ``user`` in ``scope``."""
        key = (user.key, _scope(scope))
        found = self._locks.get(key)
        if found is None:
            found = asyncio.Lock()
            self._locks[key] = found
        return found

    async def load(self, user: UserRef, scope: str | Place) -> Conversation | None:
        raw = await self.client.load_chat_state(user, _scope(scope))
        return Conversation.model_validate(raw) if raw is not None else None

    async def save(self, user: UserRef, scope: str | Place, conversation: Conversation) -> bool:
        """Save ``conversation``; False (nothing saved) when the person deleted meanwhile."""
        state = conversation.model_dump(mode="json")
        return await self.client.save_chat_state(user, _scope(scope), state)

    async def raw(self, user: UserRef, scope: str) -> dict[str, Any] | None:
        return await self.client.load_chat_state(user, scope)

    async def put(self, user: UserRef, scope: str | Place, value: dict[str, Any] | None) -> None:
        """Save ``value`` under ``scope`` (``None`` deletes it): pointers, kit drafts."""
        if value is None:
            await self.client.clear_chat_state(user, _scope(scope))
        else:
            await self.client.save_chat_state(user, _scope(scope), value)

    async def consented(self, user: UserRef) -> bool:
        return await self.client.load_chat_state(user, _CONSENT_SCOPE) is not None

    async def record_consent(self, user: UserRef) -> None:
        await self.client.save_chat_state(user, _CONSENT_SCOPE, {"at": time.time()})

    # --- Telegram's private chats hold several sessions; a pointer says which is current ----
    async def place_of_chat(self, user: UserRef, chat_id: int) -> Place:
        """The session ``user``'s private chat is switched to."""
        pointer = await self.raw(user, Place(chat_id, session="session").scope)
        team_id = pointer.get("team_id") if pointer else None
        return Place.team_session(chat_id, str(team_id)) if team_id else Place(chat_id)

    async def switch_session(self, user: UserRef, chat_id: int, team_id: str | None) -> None:
        """Send the private chat's next messages to ``team_id``'s session (``None``: their own)."""
        value = {"team_id": team_id} if team_id else None
        await self.put(user, Place(chat_id, session="session").scope, value)


def _scope(scope: str | Place) -> str:
    return scope.scope if isinstance(scope, Place) else scope
