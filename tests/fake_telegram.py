"""A local fake of the Telegram Bot API, served over real HTTP for python-telegram-bot.

``FakeTelegram`` runs an aiohttp server on 127.0.0.1 (a free port) in a background thread with
its own event loop, so both synchronous tests and async tests (whose loop runs the bot) can use
it. It implements the methods the bot and the worker's sender call, records every call with its
decoded parameters and uploaded files, keeps the bot's messages (and their edits) per chat, and
plays the users: ``send_text``/``send_photo``/``press`` build real-looking updates and queue them
for ``getUpdates`` (long-polled).

Behaviour copied from Telegram where tests depend on it:

- ``editMessageText`` with unchanged text and markup answers 400 "message is not modified";
- ``getFile`` on a file over 20 MB answers 400 "file is too big";
- ``sendMediaGroup`` takes 2-10 items, ``callback_data`` over 64 bytes is a 400;
- ``fail_next(method, 429)`` answers the next call of ``method`` with "Too Many Requests";
- ``fail_for(seconds, status, every=n)`` answers every n-th call of any method but
  ``getUpdates`` and file downloads with ``status`` (429 with ``retry_after``, or a 5xx) for a
  while, as Telegram does under load or in an outage (the soak run uses it);
- ``getChatMember`` answers "member" unless ``set_admin(chat, user)`` made them an admin (or
  the creator);
- sending into the private chat of a user in ``never_started`` answers 403 "bot can't initiate
  conversation with a user" until that user writes to the bot;
- ``deleteMessage`` and ``deleteMessages`` (1-100 ids, the ones not found skipped) delete a
  message only within 48 hours of its ``date`` ("message can't be deleted" after that, see
  ``age``): the bot's own anywhere, the other side's in a private chat, anyone's in a group only
  where the bot is an admin (``set_bot_admin``). ``deleteMessages`` deletes nothing when one of
  its messages can't be deleted; an unknown id is "message to delete not found".
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.outage import OutageWindow

DEFAULT_TOKEN = "123456789:TEST-token_for-the-fake-api"
#: A bot may delete a message this long after it was sent.
DELETE_WINDOW_S = 48 * 3600
DOWNLOAD_LIMIT = 20 * 1024 * 1024

#: Parameters that are plain strings even when they look like JSON numbers.
_TEXT_PARAMS = {
    "text",
    "caption",
    "callback_query_id",
    "file_id",
    "url",
    "secret_token",
    "parse_mode",
    "description",
    "title",
    "name",
    "emoji",
    "action",
}

TOO_MANY_REQUESTS = {
    "ok": False,
    "error_code": 429,
    "description": "Too Many Requests: retry after 1",
    "parameters": {"retry_after": 1},
}


@dataclass
class Call:
    """One request the fake received."""

    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    #: Upload file names by part name (what a user sees as the document's name).
    filenames: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)
    #: What the fake answered (the ``result`` on success, else the error body).
    response: Any = None
    status: int = 200


@dataclass(frozen=True)
class FakeUser:
    id: int
    first_name: str
    username: str | None = None
    last_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.username:
            data["username"] = self.username
        if self.last_name:
            data["last_name"] = self.last_name
        return data


@dataclass(frozen=True)
class FakeChat:
    id: int
    type: str = "private"
    title: str | None = None
    is_forum: bool = False
    first_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.title:
            data["title"] = self.title
        if self.first_name:
            data["first_name"] = self.first_name
        if self.is_forum:
            data["is_forum"] = True
        return data

    @classmethod
    def private(cls, user: FakeUser) -> FakeChat:
        return cls(id=user.id, type="private", first_name=user.first_name)

    @classmethod
    def supergroup(cls, chat_id: int, title: str = "Team", *, forum: bool = False) -> FakeChat:
        return cls(id=chat_id, type="supergroup", title=title, is_forum=forum)


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    size: int
    path: str


class FakeTelegram:
    """The fake Bot API server; ``start()``, point the bot at ``url``, ``stop()``."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_username: str = "headshots_test_bot",
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_user = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Headshots",
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": True,
            "supports_inline_queries": False,
        }
        self.port = 0
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._failures: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self._holds: list[tuple[str, float, Callable[[dict[str, Any]], bool]]] = []
        #: See ``fail_for``.
        self._outage = OutageWindow()
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._media_group_ids = itertools.count(1000)
        self.files: dict[str, StoredFile] = {}
        self.chats: dict[int, FakeChat] = {}
        #: Every message in every chat (users' and the bot's), by (chat id, message id).
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.commands: list[dict[str, Any]] = []
        self.webhook: dict[str, Any] = {}
        #: Chat member statuses other than "member", by chat id and user id.
        self.member_status: dict[int, dict[int, str]] = {}
        #: Users who never opened a private chat with the bot (the bot cannot write to them).
        self.never_started: set[int] = set()
        #: User messages privacy mode kept from the bot.
        self.withheld: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping = False
        self._started = threading.Event()

    # --- lifecycle ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL for ``HEADSHOTS_TELEGRAM_API_URL`` (the bot appends ``/bot``)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeTelegram:
        self._thread = threading.Thread(target=self._run, name="fake-telegram", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("fake Telegram server did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        future.result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._serve())
        self._started.set()
        loop.run_forever()
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    async def _serve(self) -> None:
        app = web.Application(client_max_size=200 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_download)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        self._stopping = True
        if self._runner is not None:
            await self._runner.cleanup()

    # --- what tests look at -------------------------------------------------------------
    def calls(self, method: str | None = None) -> list[Call]:
        """Calls received so far (of ``method`` only, if given), oldest first."""
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def mark(self) -> int:
        """A position in the call log: pass it as ``since`` to look only at later calls."""
        with self._lock:
            return len(self._calls)

    def calls_since(self, mark: int, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls[mark:] if method is None or c.method == method]

    def fail_next(self, method: str, status: int = 429, body: dict[str, Any] | None = None) -> None:
        """Answer the next call of ``method`` with ``status`` and ``body`` (default: a 429)."""
        if body is None:
            body = (
                TOO_MANY_REQUESTS
                if status == 429
                else {
                    "ok": False,
                    "error_code": status,
                    "description": "Internal Server Error",
                }
            )
        with self._lock:
            self._failures.setdefault(method, []).append((status, body))

    def fail_for(self, seconds: float, status: int = 429, *, every: int = 2) -> None:
        """For ``seconds``, answer every ``every``-th call (not ``getUpdates``) with ``status``."""
        with self._lock:
            self._outage.open(seconds, status, every)

    @property
    def outage_failures(self) -> int:
        """Calls answered with an error by ``fail_for`` so far."""
        return self._outage.failures

    def hold_next(
        self, method: str, seconds: float, matching: Callable[[dict[str, Any]], bool]
    ) -> None:
        """Carry out the next call of ``method`` whose params match only after ``seconds``.

        A request that waited in the bot's rate limiter: everything sent meanwhile lands first.
        """
        with self._lock:
            self._holds.append((method, seconds, matching))

    def _hold_for(self, method: str, params: dict[str, Any]) -> float:
        """Seconds this call is held (0: none); caller holds the lock."""
        for index, (held, seconds, matching) in enumerate(self._holds):
            if held == method and matching(params):
                del self._holds[index]
                return seconds
        return 0.0

    def _outage_answer(self, method: str) -> tuple[int, dict[str, Any]] | None:
        """The error this call gets from an outage window, if any (caller holds the lock)."""
        status = None if method == "getUpdates" else self._outage.failing_status()
        if status is None:
            return None
        if status == 429:
            return status, TOO_MANY_REQUESTS
        return status, {"ok": False, "error_code": status, "description": "Bad Gateway"}

    def bot_messages(self, chat_id: int, thread_id: int | None = None) -> list[dict[str, Any]]:
        """The bot's messages in a chat (one topic only when ``thread_id``), current content."""
        with self._lock:
            found = [
                m
                for (cid, _), m in sorted(self.messages.items())
                if cid == chat_id and m.get("from", {}).get("id") == self.bot_id
            ]
        if thread_id is not None:
            found = [m for m in found if m.get("message_thread_id") == thread_id]
        return found

    def set_bot_admin(self, chat: FakeChat) -> None:
        """Make the bot an administrator of ``chat`` (it may then delete anyone's messages)."""
        with self._lock:
            self.member_status.setdefault(chat.id, {})[self.bot_id] = "administrator"

    def age(self, chat_id: int, message_id: int, hours: float) -> None:
        """Pretend a message was sent ``hours`` earlier than it was."""
        with self._lock:
            self.messages[(chat_id, message_id)]["date"] -= int(hours * 3600)

    def visible(self, chat_id: int, *, sender: int | None = None) -> list[dict[str, Any]]:
        """The messages still in a chat (of one sender, if given), oldest first."""
        with self._lock:
            return [
                m
                for (cid, _), m in sorted(self.messages.items())
                if cid == chat_id and (sender is None or m.get("from", {}).get("id") == sender)
            ]

    def set_admin(self, chat: FakeChat, user: FakeUser, status: str = "administrator") -> None:
        """Make ``user`` an administrator (or ``"creator"``, or back to ``"member"``)."""
        with self._lock:
            self.member_status.setdefault(chat.id, {})[user.id] = status

    def uploads(self, chat_id: int) -> list[bytes]:
        """Every file the bot (or a worker) uploaded into ``chat_id``, in order."""
        return [
            data
            for call in self.calls()
            if call.status == 200 and int(call.params.get("chat_id") or 0) == chat_id
            for data in call.files.values()
        ]

    def message(self, chat_id: int, message_id: int) -> dict[str, Any]:
        with self._lock:
            return self.messages[(chat_id, message_id)]

    async def wait_for(
        self,
        method: str | None,
        predicate: Callable[[Call], bool] | None = None,
        *,
        since: int = 0,
        timeout: float = 15.0,  # noqa: ASYNC109 - polls a log owned by another thread
    ) -> Call:
        """The first call of ``method`` (any, if None) after ``since`` matching ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            for call in self.calls_since(since, method):
                if predicate is None or predicate(call):
                    return call
            if time.monotonic() > deadline:
                seen = [
                    (c.method, c.params.get("text") or c.params.get("caption"))
                    for c in self.calls_since(since)
                ]
                raise TimeoutError(f"no matching {method} call within {timeout}s; saw {seen}")
            await asyncio.sleep(0.02)

    def wait_for_sync(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        *,
        since: int = 0,
        timeout: float = 15.0,
    ) -> Call:
        deadline = time.monotonic() + timeout
        while True:
            for call in self.calls_since(since, method):
                if predicate is None or predicate(call):
                    return call
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching {method} call within {timeout}s")
            time.sleep(0.02)

    # --- playing the users --------------------------------------------------------------
    def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for getUpdates (an ``update_id`` is assigned when missing)."""
        with self._lock:
            update = dict(update)
            update.setdefault("update_id", next(self._update_ids))
            self._updates.append(update)
        return update

    def register_file(
        self, data: bytes, *, size: int | None = None, suffix: str = "jpg"
    ) -> StoredFile:
        """Make ``data`` downloadable through getFile; ``size`` may claim a different size."""
        number = next(self._file_ids)
        stored = StoredFile(
            file_id=f"FILE{number:06d}",
            file_unique_id=f"U{number:06d}",
            data=data,
            size=len(data) if size is None else size,
            path=f"files/file_{number}.{suffix}",
        )
        with self._lock:
            self.files[stored.file_id] = stored
        return stored

    def _next_message_id(self, chat_id: int) -> int:
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        return next(counter)

    def user_message(
        self,
        chat: FakeChat,
        user: FakeUser,
        *,
        thread_id: int | None = None,
        reply_to: int | None = None,
        **content: Any,
    ) -> dict[str, Any]:
        """A message from ``user`` in ``chat`` with ``content`` (text, photo, ...); not sent yet."""
        with self._lock:
            self.chats[chat.id] = chat
            if chat.type == "private":
                self.never_started.discard(user.id)  # writing to the bot opens the chat
            message: dict[str, Any] = {
                "message_id": self._next_message_id(chat.id),
                "date": int(time.time()),
                "chat": chat.to_json(),
                "from": user.to_json(),
                **content,
            }
            if thread_id is not None:
                message["message_thread_id"] = thread_id
                if chat.is_forum:
                    message["is_topic_message"] = True
            if reply_to is not None:
                message["reply_to_message"] = self.messages.get((chat.id, reply_to))
            self.messages[(chat.id, message["message_id"])] = message
        return message

    def set_privacy_mode(self, on: bool) -> None:
        """BotFather's group privacy mode (set before the bot starts: it reads getMe once)."""
        self.bot_user["can_read_all_group_messages"] = not on

    def _withheld_by_privacy(self, message: dict[str, Any]) -> bool:
        """What Telegram keeps from a bot in privacy mode: group messages not meant for it."""
        if self.bot_user["can_read_all_group_messages"]:
            return False
        if message["chat"]["type"] not in ("group", "supergroup"):
            return False
        text = str(message.get("text") or message.get("caption") or "")
        replied = message.get("reply_to_message") or {}
        return not text.startswith("/") and replied.get("from", {}).get("id") != self.bot_id

    def send_message(self, message: dict[str, Any]) -> dict[str, Any]:
        """Deliver a user's message to the bot (unless privacy mode withholds it)."""
        if self._withheld_by_privacy(message):
            with self._lock:
                self.withheld.append(message)
            return message
        self.push_update({"message": message})
        return message

    def send_text(
        self, chat: FakeChat, user: FakeUser, text: str, *, thread_id: int | None = None
    ) -> dict[str, Any]:
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split()[0]
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self.send_message(self.user_message(chat, user, thread_id=thread_id, **content))

    def photo_sizes(self, data: bytes, *, size: int | None = None) -> list[dict[str, Any]]:
        """PhotoSize list as Telegram sends it: a thumbnail first, the largest last."""
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
        thumb = Image.new("RGB", (90, max(1, round(90 * height / width))))
        buffer = io.BytesIO()
        thumb.save(buffer, format="JPEG")
        small = self.register_file(buffer.getvalue())
        large = self.register_file(data, size=size)
        return [
            {"file_id": small.file_id, "file_unique_id": small.file_unique_id, "width": 90,
             "height": thumb.height, "file_size": small.size},
            {"file_id": large.file_id, "file_unique_id": large.file_unique_id, "width": width,
             "height": height, "file_size": large.size},
        ]  # fmt: skip

    def send_photo(
        self,
        chat: FakeChat,
        user: FakeUser,
        data: bytes,
        *,
        thread_id: int | None = None,
        media_group_id: str | None = None,
        caption: str | None = None,
        reply_to: int | None = None,
    ) -> dict[str, Any]:
        content: dict[str, Any] = {"photo": self.photo_sizes(data)}
        if media_group_id is not None:
            content["media_group_id"] = media_group_id
        if caption is not None:
            content["caption"] = caption
        return self.send_message(
            self.user_message(chat, user, thread_id=thread_id, reply_to=reply_to, **content)
        )

    def send_album(
        self,
        chat: FakeChat,
        user: FakeUser,
        photos: list[bytes],
        *,
        thread_id: int | None = None,
        reply_to: int | None = None,
    ) -> list[dict[str, Any]]:
        """Several photos sharing a ``media_group_id``: separate updates, as Telegram sends them.

        An album sent as a reply arrives with ``reply_to_message`` on every photo.
        """
        group = str(next(self._media_group_ids))
        return [
            self.send_photo(
                chat, user, data, thread_id=thread_id, media_group_id=group, reply_to=reply_to
            )
            for data in photos
        ]

    def send_document(
        self,
        chat: FakeChat,
        user: FakeUser,
        data: bytes,
        *,
        file_name: str,
        mime_type: str,
        size: int | None = None,
        thread_id: int | None = None,
        size_in_update: bool = True,
    ) -> dict[str, Any]:
        """A file sent as a document; ``size_in_update=False``: the update does not say its
        size (Telegram's ``file_size`` is optional), only getFile does."""
        stored = self.register_file(data, size=size, suffix=file_name.rsplit(".", 1)[-1])
        document = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": file_name,
            "mime_type": mime_type,
            **({"file_size": stored.size} if size_in_update else {}),
        }
        return self.send_message(
            self.user_message(chat, user, thread_id=thread_id, document=document)
        )

    def send_sticker(
        self, chat: FakeChat, user: FakeUser, *, thread_id: int | None = None
    ) -> dict[str, Any]:
        stored = self.register_file(b"RIFF....WEBP", suffix="webp")
        sticker = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": "😀",
        }
        return self.send_message(
            self.user_message(chat, user, thread_id=thread_id, sticker=sticker)
        )

    def send_video(
        self, chat: FakeChat, user: FakeUser, *, thread_id: int | None = None
    ) -> dict[str, Any]:
        stored = self.register_file(b"\x00\x00\x00\x18ftypmp42", suffix="mp4")
        video = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "width": 640,
            "height": 480,
            "duration": 3,
            "mime_type": "video/mp4",
            "file_size": stored.size,
        }
        return self.send_message(self.user_message(chat, user, thread_id=thread_id, video=video))

    def send_voice(
        self, chat: FakeChat, user: FakeUser, *, thread_id: int | None = None
    ) -> dict[str, Any]:
        stored = self.register_file(b"OggS", suffix="ogg")
        voice = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "duration": 2,
            "mime_type": "audio/ogg",
        }
        return self.send_message(self.user_message(chat, user, thread_id=thread_id, voice=voice))

    def press(self, user: FakeUser, message: dict[str, Any], data: str) -> dict[str, Any]:
        """``user`` presses the inline button with ``data`` under the bot's ``message``."""
        chat_id = int(message["chat"]["id"])
        current = self.message(chat_id, int(message["message_id"]))
        buttons = [
            button["callback_data"]
            for row in current.get("reply_markup", {}).get("inline_keyboard", [])
            for button in row
            if "callback_data" in button
        ]
        if data not in buttons:
            raise AssertionError(
                f"no button {data!r} under message {current.get('text')!r}: {buttons}"
            )
        query = {
            "id": f"CQ{next(self._callback_ids)}",
            "from": user.to_json(),
            "chat_instance": f"ci{chat_id}",
            "data": data,
            "message": current,
        }
        self.push_update({"callback_query": query})
        return query

    # --- the HTTP side ------------------------------------------------------------------
    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        for stored in list(self.files.values()):
            if stored.path == path:
                return web.Response(body=stored.data, content_type="application/octet-stream")
        return web.Response(status=404)

    async def _read_params(
        self, request: web.Request
    ) -> tuple[dict[str, Any], dict[str, bytes], dict[str, str]]:
        params: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        filenames: dict[str, str] = {}
        if request.content_type == "application/json":
            body = await request.json() if request.can_read_body else {}
            return dict(body), files, filenames
        if request.method == "GET":
            raw_items = list(request.query.items())
        else:
            form = await request.post()
            raw_items = list(form.items())
        for name, value in raw_items:
            if isinstance(value, web.FileField):
                files[name] = value.file.read()
                filenames[name] = value.filename
                params[name] = f"attach://{name}"
                continue
            text = str(value)
            if name in _TEXT_PARAMS:
                params[name] = text
                continue
            try:
                params[name] = json.loads(text)
            except ValueError:
                params[name] = text
        return params, files, filenames

    async def _handle_method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, files, filenames = await self._read_params(request)
        call = Call(method=method, params=params, files=files, filenames=filenames)
        if request.match_info["token"] != self.token:
            return self._answer(
                call, 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
            )
        with self._lock:
            self._calls.append(call)
            failures = self._failures.get(method)
            failure = failures.pop(0) if failures else self._outage_answer(method)
            hold = self._hold_for(method, params)
        if failure is not None:
            return self._answer(call, failure[0], failure[1])
        if hold:
            await asyncio.sleep(hold)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return self._answer(
                call,
                404,
                {"ok": False, "error_code": 404, "description": "Not Found: method not found"},
            )
        if method == "getUpdates":
            result = await handler(params)
        else:
            try:
                result = handler(params, files, filenames)
            except _ApiError as exc:
                body = {"ok": False, "error_code": exc.status, "description": exc.description}
                return self._answer(call, exc.status, body)
        return self._answer(call, 200, {"ok": True, "result": result})

    @staticmethod
    def _answer(call: Call, status: int, body: dict[str, Any]) -> web.Response:
        call.status = status
        call.response = body.get("result") if status == 200 else body
        return web.json_response(body, status=status)

    # --- methods ------------------------------------------------------------------------
    def _chat(self, chat_id: Any) -> dict[str, Any]:
        chat_id = int(chat_id)
        chat = self.chats.get(chat_id)
        if chat is not None:
            return chat.to_json()
        return {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}

    def _bot_message(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        if chat_id in self.never_started:
            raise _ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        markup = params.get("reply_markup")
        if markup:
            for row in markup.get("inline_keyboard", []):
                for button in row:
                    data = button.get("callback_data")
                    if data is not None and len(data.encode()) > 64:
                        raise _ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        with self._lock:
            message: dict[str, Any] = {
                "message_id": self._next_message_id(chat_id),
                "date": int(time.time()),
                "chat": self._chat(chat_id),
                "from": dict(self.bot_user),
                **content,
            }
            thread_id = params.get("message_thread_id")
            if thread_id is not None:
                message["message_thread_id"] = int(thread_id)
                chat = self.chats.get(chat_id)
                if chat is not None and chat.is_forum:
                    message["is_topic_message"] = True
            if markup and "inline_keyboard" in markup:
                # ForceReply and reply keyboards are not part of the message Telegram returns.
                message["reply_markup"] = markup
            reply = params.get("reply_parameters") or (
                {"message_id": params["reply_to_message_id"]}
                if params.get("reply_to_message_id")
                else None
            )
            if reply:
                message["reply_to_message"] = self.messages.get((chat_id, int(reply["message_id"])))
            self.messages[(chat_id, message["message_id"])] = message
        return message

    async def _api_getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
                ready = self._updates[:limit]
            remaining = deadline - time.monotonic()
            if ready or remaining <= 0:
                return ready
            if self._stopping:
                return []
            # Short sleeps instead of a condition: simple, and shutdown never waits on it.
            await asyncio.sleep(min(remaining, 0.02))

    def _api_getMe(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> dict[str, Any]:
        return dict(self.bot_user)

    def _api_deleteWebhook(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> bool:
        self.webhook = {}
        return True

    def _api_setWebhook(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> bool:
        self.webhook = dict(params)
        return True

    def _api_getWebhookInfo(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> dict[str, Any]:
        return {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": 0,
        }

    def _api_close(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> bool:
        return True

    def _api_logOut(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> bool:
        return True

    def _api_setMyCommands(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> bool:
        self.commands = list(params.get("commands") or [])
        return True

    def _api_deleteMyCommands(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> bool:
        self.commands = []
        return True

    def _api_getMyCommands(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> list[Any]:
        return list(self.commands)

    def _api_sendChatAction(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> bool:
        return True

    def _api_answerCallbackQuery(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> bool:
        return True

    def _check_deletable(self, chat_id: int, message: dict[str, Any]) -> None:
        """Telegram's rules for a bot deleting ``message`` (caller holds the lock)."""
        if time.time() - int(message["date"]) > DELETE_WINDOW_S:
            raise _ApiError(400, "Bad Request: message can't be deleted")
        ours = message.get("from", {}).get("id") == self.bot_id
        group = message.get("chat", {}).get("type") in ("group", "supergroup")
        admin = self.member_status.get(chat_id, {}).get(self.bot_id) == "administrator"
        if group and not ours and not admin:
            raise _ApiError(400, "Bad Request: message can't be deleted")

    def _api_deleteMessage(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> bool:
        chat_id, message_id = int(params["chat_id"]), int(params["message_id"])
        with self._lock:
            message = self.messages.get((chat_id, message_id))
            if message is None:
                raise _ApiError(400, "Bad Request: message to delete not found")
            self._check_deletable(chat_id, message)
            del self.messages[(chat_id, message_id)]
        return True

    def _api_deleteMessages(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> bool:
        chat_id, ids = int(params["chat_id"]), [int(i) for i in params.get("message_ids") or []]
        if not 1 <= len(ids) <= 100:
            raise _ApiError(400, "Bad Request: too many messages to delete")
        with self._lock:
            found = [(chat_id, i) for i in ids if (chat_id, i) in self.messages]
            for key in found:
                self._check_deletable(chat_id, self.messages[key])
            for key in found:
                del self.messages[key]
        return True

    def _api_getChat(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> dict[str, Any]:
        chat = self._chat(params["chat_id"])
        chat.setdefault("accent_color_id", 0)
        chat.setdefault("max_reaction_count", 11)
        return chat

    def _api_getChatMember(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> dict[str, Any]:
        user_id = int(params["user_id"])
        if user_id == self.bot_id:
            return {"status": "member", "user": dict(self.bot_user)}
        user = {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}
        with self._lock:
            status = self.member_status.get(int(params["chat_id"]), {}).get(user_id, "member")
        if status == "creator":
            return {"status": status, "user": user, "is_anonymous": False}
        if status == "administrator":
            rights = (
                "can_be_edited can_manage_chat can_delete_messages can_manage_video_chats "
                "can_restrict_members can_promote_members can_change_info can_invite_users "
                "can_post_stories can_edit_stories can_delete_stories"
            )
            return {
                "status": status,
                "user": user,
                "is_anonymous": False,
                **{right: right != "can_be_edited" for right in rights.split()},
            }
        return {"status": status, "user": user}

    def _api_getFile(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> dict[str, Any]:
        stored = self.files.get(str(params.get("file_id")))
        if stored is None:
            raise _ApiError(400, "Bad Request: invalid file_id")
        if stored.size > DOWNLOAD_LIMIT:
            raise _ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.path,
        }

    def _api_sendMessage(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> dict[str, Any]:
        text = str(params.get("text", ""))
        if not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        return self._bot_message(params, text=text)

    def _find_for_edit(self, params: dict[str, Any]) -> dict[str, Any]:
        key = (int(params["chat_id"]), int(params["message_id"]))
        message = self.messages.get(key)
        if message is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        return message

    def _api_editMessageText(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> dict[str, Any]:
        with self._lock:
            message = self._find_for_edit(params)
            text = str(params.get("text", ""))
            markup = params.get("reply_markup")
            if text == message.get("text") and markup == message.get("reply_markup"):
                raise _ApiError(
                    400,
                    "Bad Request: message is not modified: specified new message content and "
                    "reply markup are exactly the same as a current content and reply markup "
                    "of the message",
                )
            message["text"] = text
            message["edit_date"] = int(time.time())
            if markup:
                message["reply_markup"] = markup
            else:
                message.pop("reply_markup", None)
            return dict(message)

    def _api_editMessageCaption(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> dict[str, Any]:
        with self._lock:
            message = self._find_for_edit(params)
            caption = params.get("caption")
            markup = params.get("reply_markup")
            if caption == message.get("caption") and markup == message.get("reply_markup"):
                raise _ApiError(400, "Bad Request: message is not modified")
            if caption is None:
                message.pop("caption", None)
            else:
                if len(str(caption)) > 1024:
                    raise _ApiError(400, "Bad Request: message caption is too long")
                message["caption"] = str(caption)
            message["edit_date"] = int(time.time())
            if markup:
                message["reply_markup"] = markup
            else:
                message.pop("reply_markup", None)
            return dict(message)

    def _api_editMessageReplyMarkup(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> dict[str, Any]:
        with self._lock:
            message = self._find_for_edit(params)
            markup = params.get("reply_markup")
            if markup == message.get("reply_markup"):
                raise _ApiError(400, "Bad Request: message is not modified")
            if markup:
                message["reply_markup"] = markup
            else:
                message.pop("reply_markup", None)
            return dict(message)

    def _upload(self, value: Any, files: dict[str, bytes]) -> bytes:
        if isinstance(value, str) and value.startswith("attach://"):
            name = value[len("attach://") :]
            if name not in files:
                raise _ApiError(400, f"Bad Request: file {name} not attached")
            return files[name]
        if isinstance(value, str) and value in self.files:
            return self.files[value].data
        raise _ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")

    def _photo_content(self, data: bytes) -> list[dict[str, Any]]:
        stored = self.register_file(data)
        return [
            {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
             "width": 512, "height": 512, "file_size": stored.size},
        ]  # fmt: skip

    def _document_content(self, data: bytes, name: str | None) -> dict[str, Any]:
        stored = self.register_file(data)
        document: dict[str, Any] = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
        }
        if name:
            document["file_name"] = name
        return document

    def _caption(self, params: dict[str, Any]) -> dict[str, Any]:
        caption = params.get("caption")
        if caption is None:
            return {}
        if len(str(caption)) > 1024:
            raise _ApiError(400, "Bad Request: message caption is too long")
        return {"caption": str(caption)}

    def _api_sendPhoto(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> dict[str, Any]:
        data = self._upload(params.get("photo"), files)
        if len(data) > 10 * 1024 * 1024:
            raise _ApiError(400, "Bad Request: PHOTO_SAVE_FILE_INVALID")
        return self._bot_message(params, photo=self._photo_content(data), **self._caption(params))

    def _api_sendDocument(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> dict[str, Any]:
        data = self._upload(params.get("document"), files)
        name = names.get(str(params.get("document", "")).removeprefix("attach://"))
        return self._bot_message(
            params, document=self._document_content(data, name), **self._caption(params)
        )

    def _api_sendMediaGroup(
        self, params: dict[str, Any], files: dict[str, bytes], names: dict[str, str]
    ) -> list[dict[str, Any]]:
        media = params.get("media") or []
        if not 2 <= len(media) <= 10:
            raise _ApiError(400, "Bad Request: wrong number of media in the group (2-10)")
        group_id = str(next(self._media_group_ids))
        messages = []
        for item in media:
            data = self._upload(item.get("media"), files)
            content: dict[str, Any] = {"media_group_id": group_id}
            if item.get("caption"):
                content["caption"] = item["caption"]
            if item.get("type") == "document":
                name = names.get(str(item.get("media", "")).removeprefix("attach://"))
                content["document"] = self._document_content(data, name)
            else:
                content["photo"] = self._photo_content(data)
            messages.append(self._bot_message(params, **content))
        return messages


class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
