"""A user's headshot session in one Discord thread (or DM), kept in Redis, never in memory.

Scopes of the chat state (all under the user's own keys, so ``forget`` removes them):

- ``dc-session:<session_id>``  the whole :class:`Session`
- ``dc-where:<channel_id>``    which session a thread / DM channel belongs to (uploads)
- ``dc-consent``               the user agreed to the privacy terms once
"""

from __future__ import annotations

import time
from typing import Any, Literal

import discord
from pydantic import BaseModel, Field

from headshots.bot.numbering import numbers_in_sent_order
from headshots.queue.client import QueueClient
from headshots.queue.contracts import StyleChoice, UserRef

Phase = Literal["consent", "open", "submitted", "cancelled"]
Page = Literal["main", "more", "summary"]

_CONSENT_SCOPE = "dc-consent"


class Photo(BaseModel):
    """One attachment as Discord announced it (the URL is fetched as soon as consent allows)."""

    url: str
    filename: str
    size: int
    content_type: str | None = None
    #: Where it sat: (message id, position among the attachments); 0 for command options.
    place: tuple[int, int] = (0, 0)

    @classmethod
    def of(cls, attachment: discord.Attachment, *, message_id: int, position: int) -> Photo:
        return cls(
            url=attachment.url,
            filename=attachment.filename,
            size=attachment.size,
            content_type=attachment.content_type,
            place=(message_id, position),
        )


class Session(BaseModel):
    session_id: str
    owner_id: int
    upload_id: str
    mode: Literal["full", "new_style"] = "full"
    lora_job_id: str | None = None
    guild_id: int | None = None
    #: Parent text channel (guilds) or DM channel id: ``ChatTarget.chat_id``.
    channel_id: int
    #: Where the session talks: the thread, or ``None`` in a DM.
    thread_id: int | None = None
    phase: Phase = "consent"
    page: Page = "main"
    pending: list[Photo] = Field(default_factory=list)
    #: ``SelfieVerdict.to_json()`` of every photo received, in order.
    verdicts: list[dict[str, Any]] = Field(default_factory=list)
    filenames: dict[str, str] = Field(default_factory=dict)
    next_index: int = 1
    #: ``photo_places[i]`` is :attr:`Photo.place` of the photo with index ``i + 1``: messages
    #: are handled concurrently, so the tally numbers photos by place, not by index.
    photo_places: list[tuple[int, int]] = Field(default_factory=list)
    tally_message_id: int | None = None
    style_message_id: int | None = None
    style: StyleChoice = Field(default_factory=StyleChoice)
    job_id: str | None = None
    #: Team mode: the team this member's session belongs to; the kit fixes everything in
    #: ``style`` except the subject class (see :mod:`headshots.bot.discord.team`).
    team_id: str | None = None
    #: The team's look in words, for the member's form and summary.
    team_look: str | None = None

    def photo_numbers(self) -> dict[int, int]:
        """Index -> the number the user sees: the photo's place in the order it was sent."""
        return numbers_in_sent_order(self.photo_places, photos=self.next_index - 1)

    @property
    def workspace_id(self) -> int:
        """The channel id messages of this session go to (thread, or DM channel)."""
        return self.thread_id or self.channel_id


def user_ref(user_id: int, display_name: str | None) -> UserRef:
    return UserRef(platform="discord", user_id=user_id, display_name=display_name)


class SessionStore:
    """Load and save sessions through :class:`QueueClient`'s chat state (TTL = selfie TTL)."""

    def __init__(self, queue: QueueClient) -> None:
        self.queue = queue

    async def load(self, user: UserRef, session_id: str) -> Session | None:
        raw = await self.queue.load_chat_state(user, f"dc-session:{session_id}")
        return Session.model_validate(raw) if raw else None

    async def save(self, user: UserRef, session: Session) -> None:
        await self.queue.save_chat_state(
            user, f"dc-session:{session.session_id}", session.model_dump(mode="json")
        )
        if session.phase != "consent":
            await self.queue.save_chat_state(
                user, f"dc-where:{session.workspace_id}", {"session_id": session.session_id}
            )

    async def at(self, user: UserRef, channel_id: int) -> Session | None:
        """The user's session in this thread or DM channel, if any."""
        where = await self.queue.load_chat_state(user, f"dc-where:{channel_id}")
        if not where:
            return None
        return await self.load(user, str(where["session_id"]))

    async def has_consented(self, user: UserRef) -> bool:
        return await self.queue.load_chat_state(user, _CONSENT_SCOPE) is not None

    async def record_consent(self, user: UserRef) -> None:
        await self.queue.save_chat_state(user, _CONSENT_SCOPE, {"at": time.time()})
