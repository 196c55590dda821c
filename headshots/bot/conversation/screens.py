"""What the core shows and how a front end shows it.

The core describes a message as a :class:`Screen` (text, questions with options, buttons, an
image) and hands it to a :class:`Surface`, the front end's view of one place (a Telegram chat
or forum topic, a Discord thread, DM or private reply). The front end decides how: inline
keyboards or selects, callback data or custom ids, message limits. What the person did comes
back as plain values (an action name, an option value, text, photos).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from headshots.queue.chat_log import ChatCleanup, ChatLog, Posted
from headshots.queue.contracts import ChatTarget, Platform, UserRef


@dataclass(frozen=True)
class Option:
    value: str
    label: str


@dataclass(frozen=True)
class Question:
    """One question; ``kind`` says whose (``style`` or ``kit``), ``step`` which."""

    kind: Literal["style", "kit"]
    step: str
    text: str
    options: tuple[Option, ...]
    current: str | None = None


@dataclass(frozen=True)
class Button:
    """An action the person can take; ``value`` is what the action needs (ids, a choice)."""

    action: str
    label: str
    value: str = ""
    tone: Literal["primary", "success", "danger", "secondary"] = "secondary"


@dataclass
class Screen:
    text: str
    questions: list[Question] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)
    #: A picture shown with the text as its caption (kit preview, a team pick).
    image: bytes | None = None
    image_name: str = "image.jpg"
    #: The text is a picture's caption (an edit changes the caption, the picture stays).
    is_caption: bool = False
    #: For the person only (Discord: an ephemeral reply; Telegram: buttons bound to them).
    private: bool = False
    #: The answer is typed (Telegram: a forced reply; Discord: the adapter opens a form).
    asks_text: bool = False


class Surface(Protocol):
    """A place the core writes into, as its front end sees it."""

    @property
    def platform(self) -> Platform: ...

    @property
    def form(self) -> bool:
        """Every question at once (selects in one message) rather than one at a time."""

    @property
    def replies_only(self) -> bool:
        """The person must reply to the bot's messages (Telegram groups in privacy mode)."""

    @property
    def photos_by_command(self) -> bool:
        """Photos posted as messages here never reach the bot: they are attached to a command
        (Discord threads without the Message Content intent)."""

    async def show(
        self, screen: Screen, *, message_id: int | None = None, reply_to: int | None = None
    ) -> int:
        """Edit ``message_id`` (or send, when it is ``None`` or gone); the message's id."""

    async def answer(self, text: str, *, alert: bool = False) -> None:
        """A short answer to whatever the person just did (a toast, a private reply)."""

    async def send_files(self, files: list[tuple[str, bytes]], text: str) -> None:
        """Files as documents (originals, exports), split as the platform requires."""

    async def working(self) -> None:
        """Say that the answer takes a moment (Discord must answer within 3 s)."""


class FrontEnd(Protocol):
    """A chat platform as the core needs it outside one conversation."""

    def surface(self, target: ChatTarget, *, owner_id: int = 0, session_id: str = "") -> Surface:
        """A surface posting into ``target`` with the bot's own credentials."""

    async def download(self, url: str) -> bytes:
        """The file behind a link the platform gave (attachments announced earlier)."""

    async def clear_chats(
        self,
        user: UserRef,
        posted: list[Posted],
        log: ChatLog,
        *,
        keep: int | None,
        delivered: list[ChatTarget],
    ) -> ChatCleanup:
        """Delete what the person's sessions left in chats (``posted``), as far as the platform
        allows, dropping each entry from ``log`` once dealt with; ``keep`` is the message that
        shows the report, ``delivered`` the chats the worker posted results into."""


class Turn(NamedTuple):
    """What the person did something in: where it shows, who they are, and the conversation
    (``scope``: the chat state it is saved under; ``""``: none)."""

    surface: Surface
    user: UserRef
    scope: str = ""
