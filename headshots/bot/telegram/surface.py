"""The core's screens as Telegram messages: inline keyboards, ``callback_data``, limits.

Buttons carry ``<kind>:<user id>:<args...>`` (at most 64 bytes): the user id says whose
conversation a button belongs to, so in a group one member cannot press another's buttons.

- ``c`` consent, ``u`` resume, ``d`` done, ``s:<uid>:<step>:<value>`` a style answer, ``f`` the
  summary's buttons,
  ``x`` /delete's confirmation: the person's own conversation;
- ``tk`` a step of an admin's team-look draft, ``td`` /team delete's confirmation: that admin's;
- ``tm:change`` and ``tv:<a|r>:<member id>:<job id>`` (review): for whoever is a group admin
  when pressing; the worker's result buttons use :mod:`headshots.actions` (``hs:...``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from telegram import (
    Bot,
    CallbackQuery,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaDocument,
    Message,
    ReplyParameters,
    User,
)
from telegram.constants import ChatType
from telegram.error import BadRequest

from headshots.bot.conversation import texts
from headshots.bot.conversation.screens import Screen
from headshots.bot.conversation.state import Place
from headshots.errors import UserError
from headshots.queue.chat_log import ChatCleanup, ChatLog, Posted
from headshots.queue.contracts import ChatTarget, Platform, UserRef

logger = logging.getLogger(__name__)

#: Telegram's limit for files a bot may download (getFile).
DOWNLOAD_LIMIT = 20 * 1024 * 1024

MAX_CALLBACK_BYTES = 64
#: Telegram's album size and a safe total below its 50 MB upload limit.
ALBUM_MAX = 10
ALBUM_MAX_BYTES = 45 * 1024 * 1024
#: (core action, value) <-> (kind, argument) of the person's own buttons.
ACTIONS = {
    (action, value): (kind, arg)
    for action, value, kind, arg in (
        row.split(",")
        for row in "consent,y,c,y consent,n,c,n resume,go,u,go resume,new,u,new done,,d, "
        "confirm,,f,ok quick,,f,q change,,f,change cancel,,f,no forget,y,x,y forget,n,x,n "
        "reference,,f,r refoff,,f,roff refhint,,f,rh refback,,f,rb".split()
    )
}
FROM_KIND = {kind_arg: action for action, kind_arg in ACTIONS.items()}
QUESTION_KINDS = {"style": "s", "kit": "tk"}
OWN_KINDS = ("c", "u", "d", "s", "f", "x", "tk", "td")
#: ``pattern`` of the CallbackQueryHandler of every button of ours but the result actions.
PATTERN = r"^(c|u|d|s|f|x|tk|td|tm|tv):"


@dataclass(frozen=True)
class Callback:
    kind: str
    #: The owner (own buttons), else 0.
    user_id: int
    args: tuple[str, ...]


def encode(kind: str, *args: str) -> str:
    data = ":".join([kind, *(a for a in args if a)])
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback_data over {MAX_CALLBACK_BYTES} bytes: {data!r}")
    return data


def decode(data: str) -> Callback | None:
    kind, _, rest = data.partition(":")
    if kind in ("s", "tk"):  # <code>:<value>; a value may hold ":" (a shape, "1:1")
        parts = rest.split(":", 2)
    else:
        parts = rest.split(":")
    if kind in OWN_KINDS:
        if not parts or not parts[0].isdigit():
            return None
        return Callback(kind, int(parts[0]), tuple(parts[1:]))
    return Callback(kind, 0, tuple(parts)) if kind in ("tm", "tv") else None


def deep_link(bot_username: str, payload: str) -> str:
    """The link that opens the private chat with ``/start <payload>`` (``team_<id>``: join)."""
    return f"https://t.me/{bot_username}?start={payload}"


def plain(text: str) -> str:
    """Telegram shows the core's light markup as is: drop it (messages are plain text)."""
    return text.replace("**", "").replace("`", "")


def _rows(buttons: list[InlineKeyboardButton]) -> list[list[InlineKeyboardButton]]:
    longest = max((len(b.text) for b in buttons), default=0)
    width = 1 if longest > 24 else 2 if longest > 11 else 3
    return [buttons[i : i + width] for i in range(0, len(buttons), width)]


def keyboard(screen: Screen, owner_id: int, bot_username: str) -> InlineKeyboardMarkup | None:
    """The screen's questions and buttons as inline keyboard rows."""
    rows: list[list[InlineKeyboardButton]] = []
    for question in screen.questions:
        kind, owner = QUESTION_KINDS[question.kind], str(owner_id)
        rows += _rows(
            [
                InlineKeyboardButton(
                    o.label, callback_data=encode(kind, owner, question.step, o.value)
                )
                for o in question.options
            ]
        )
    buttons = []
    for button in screen.buttons:
        if button.action == "join":
            url = deep_link(bot_username, "team_" + button.value)
            rows.append([InlineKeyboardButton(button.label, url=url)])
            continue
        if button.action == "kit_change":
            data = encode("tm", "change")
        elif button.action == "review":
            verdict, member, job, _rank = button.value.split(":")
            data = encode("tv", "a" if verdict == "ok" else "r", member, job)
        elif button.action == "team_delete":
            data = encode("td", str(owner_id), button.value)
        else:
            kind, arg = ACTIONS[(button.action, button.value)]
            data = encode(kind, str(owner_id), arg)
        buttons.append(InlineKeyboardButton(button.label, callback_data=data))
    if buttons:
        first, rest = buttons[:1], buttons[1:]
        rows += [first, *_rows(rest)] if len(buttons) > 2 else [buttons]
    return InlineKeyboardMarkup(rows) if rows else None


def place_of_message(message: Message) -> Place:
    # message_thread_id is also set on reply chains in ordinary groups; only a forum topic
    # message may send it back (Telegram rejects it otherwise).
    thread = message.message_thread_id if message.is_topic_message else None
    return Place(message.chat_id, thread, message.chat.type != ChatType.PRIVATE)


def user_ref(user: User) -> UserRef:
    return UserRef(platform="telegram", user_id=user.id, display_name=user.full_name)


def posted_anonymously(message: Message) -> bool:
    """Sent on behalf of a chat (an anonymous admin, a channel): no person we can identify."""
    return message.sender_chat is not None


class TelegramSurface:
    """A chat or forum topic; answers go to the press or message that caused them, if any."""

    platform: Platform = "telegram"
    form = False
    photos_by_command = False

    def __init__(
        self,
        bot: Bot,
        place: Place,
        *,
        owner_id: int = 0,
        query: CallbackQuery | None = None,
        message: Message | None = None,
        log: ChatLog | None = None,
    ) -> None:
        self.bot = bot
        self.place = place
        self.owner_id = owner_id
        self.query = query
        self.message = message
        #: Where the messages posted for the owner's conversation are recorded (``/delete``).
        self.log = log
        self.answered = False

    async def _record(self, *sent: Message) -> None:
        """Note what was posted for the owner, so that their ``/delete`` can remove it."""
        if self.log is None or not self.owner_id or not sent:
            return
        owner = UserRef(platform="telegram", user_id=self.owner_id)
        title = sent[0].chat.title or ""
        await self.log.add(
            owner,
            *(
                Posted(
                    chat_id=m.chat_id, message_id=m.message_id, thread_id=self.place.thread_id,
                    name=title,
                )
                for m in sent
            ),
        )  # fmt: skip

    @property
    def replies_only(self) -> bool:
        """In groups, while privacy mode is on, the bot sees only replies to its messages."""
        return self.place.is_group and not self.bot.can_read_all_group_messages

    async def show(
        self, screen: Screen, *, message_id: int | None = None, reply_to: int | None = None
    ) -> int:
        # The press is answered before anything is written: a write may wait in the rate
        # limiter (a group gets 20 messages a minute) while the button keeps spinning.
        await self.finish()
        text, chat = plain(screen.text), self.place.chat_id
        markup = keyboard(screen, self.owner_id, self.bot.username)
        if message_id is not None:
            try:
                if screen.image is not None or screen.is_caption:
                    await self.bot.edit_message_caption(
                        chat_id=chat,
                        message_id=message_id,
                        caption=text[:1024],
                        reply_markup=markup,
                    )
                else:
                    await self.bot.edit_message_text(
                        text[:4096], chat_id=chat, message_id=message_id, reply_markup=markup
                    )
                return message_id
            except BadRequest as exc:
                reason = str(exc).lower()
                if "not modified" in reason:
                    return message_id
                if "not found" not in reason and "can't be edited" not in reason:
                    raise
                logger.info("message %s in %s cannot be edited: %s", message_id, chat, exc)
        reply = (
            ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
            if reply_to is not None and self.place.is_group
            else None
        )
        thread = self.place.thread_id
        if screen.image is not None:
            sent = await self.bot.send_photo(
                chat, screen.image, caption=text[:1024], message_thread_id=thread,
                reply_parameters=reply, reply_markup=markup,
            )  # fmt: skip
        else:
            force = ForceReply(selective=reply is not None, input_field_placeholder="Reply here")
            sent = await self.bot.send_message(
                chat, text[:4096], message_thread_id=thread, reply_parameters=reply,
                reply_markup=force if screen.asks_text else markup,
            )  # fmt: skip
        await self._record(sent)
        return sent.message_id

    async def answer(self, text: str, *, alert: bool = False) -> None:
        text = plain(text)
        if self.query is not None and not self.answered and len(text) <= 200:
            self.answered = True
            await self.query.answer(text, show_alert=alert)
        elif self.message is not None:
            await self._record(
                await self.message.reply_text(text[:4096], do_quote=self.place.is_group)
            )
        else:
            await self._record(
                await self.bot.send_message(
                    self.place.chat_id, text[:4096], message_thread_id=self.place.thread_id
                )
            )

    async def send_files(self, files: list[tuple[str, bytes]], text: str) -> None:
        """Documents in albums of up to 10 under Telegram's upload limit."""
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
        thread = self.place.thread_id
        for batch in batches:
            if len(batch) == 1:
                name, data = batch[0]
                sent = await self.bot.send_document(
                    self.place.chat_id, data, filename=name, caption=plain(text)[:1024],
                    message_thread_id=thread,
                )  # fmt: skip
                await self._record(sent)
            else:
                media = [InputMediaDocument(data, filename=name) for name, data in batch]
                album = await self.bot.send_media_group(
                    self.place.chat_id, media, message_thread_id=thread
                )
                await self._record(*album)

    async def working(self) -> None:
        """Answer the press now: what follows waits (a busy conversation, a long upload)."""
        await self.finish()

    async def finish(self) -> None:
        """Answer the press if nothing did (Telegram shows a spinner until then)."""
        if self.query is not None and not self.answered:
            self.answered = True
            await self.query.answer()


class TelegramFront:
    """Telegram for the core: a surface for any chat, files by id."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    def surface(
        self, target: ChatTarget, *, owner_id: int = 0, session_id: str = ""
    ) -> TelegramSurface:
        place = Place(target.chat_id, target.thread_id, target.chat_id < 0)
        return TelegramSurface(self.bot, place, owner_id=owner_id or target.user_id)

    async def clear_chats(
        self,
        user: UserRef,
        posted: list[Posted],
        log: ChatLog,
        *,
        keep: int | None,
        delivered: list[ChatTarget],
    ) -> ChatCleanup:
        """The recorded messages, within Telegram's 48 hours (see :mod:`.cleanup`)."""
        from headshots.bot.telegram.cleanup import clear_chats

        return await clear_chats(self.bot, user, posted, log, keep=keep, delivered=delivered)

    async def download(self, url: str) -> bytes:
        """``url`` is a Telegram file id; a file over the download limit is a UserError.

        Updates do not always carry a file's size: getFile does, and Telegram refuses files
        over 20 MB there ("file is too big"); a self-hosted Bot API server may serve more.
        """
        try:
            file = await self.bot.get_file(url)
        except BadRequest as exc:
            if "too big" in str(exc).lower():
                raise UserError(texts.file_too_large(None)) from exc
            raise
        if file.file_size is not None and file.file_size > DOWNLOAD_LIMIT:
            raise UserError(texts.file_too_large(file.file_size))
        data = bytes(await file.download_as_bytearray())
        if len(data) > DOWNLOAD_LIMIT:
            raise UserError(texts.file_too_large(len(data)))
        return data
