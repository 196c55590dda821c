"""A local fake of Slack's Web API and Socket Mode, spoken to over real HTTP and a websocket.

Point ``slack_sdk`` at :attr:`FakeSlack.api_url` (``AsyncWebClient(base_url=...)``, or
``HEADSHOTS_SLACK_API_URL``). The Web API answers as Slack documents it: HTTP 200 with
``{"ok": false, "error": ...}`` for a refused call, HTTP 429 with ``Retry-After`` when rate
limited (:meth:`FakeSlack.fail_next`), form-encoded or JSON arguments, the bot token
(``xoxb-``) for every method but ``apps.connections.open``, which takes the app-level token
(``xapp-``) and returns the Socket Mode websocket URL.

Socket Mode: the server says ``hello`` and then sends envelopes
(``{"envelope_id", "type": "slash_commands" | "interactive" | "events_api", "payload",
"accepts_response_payload", "retry_attempt", "retry_reason"}``); the app acknowledges each
with ``{"envelope_id"[, "payload"]}``. Acks are recorded with their delay (Slack's deadline is
3 s), and ``trigger_id`` expires 3 s after its envelope, as ``views.open`` enforces.

Files: ``files.getUploadURLExternal`` hands out an upload URL on this server, the bytes are
POSTed there, ``files.completeUploadExternal`` shares them as one message. A person's file is
served at its ``url_private_download`` only with the bot token; without it, Slack's sign-in
page (HTML with status 200), which is why the bot must send its token.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

BOT_TOKEN = "xoxb-1-fake-slack-bot-token"
APP_TOKEN = "xapp-1-fake-slack-app-token"
TEAM_ID, BOT_USER, BOT_ID, APP_ID = "T0FAKE", "U0HEADBOT", "B0HEADBOT", "A0HEADS"
#: Arguments Slack takes as JSON text inside a form body.
JSON_ARGS = ("blocks", "view", "files", "attachments")
SIGN_IN_PAGE = b"<!DOCTYPE html><html><body>Sign in to Slack</body></html>"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    status: int
    response: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class SlackUser:
    id: str
    name: str
    is_admin: bool = False
    is_owner: bool = False


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.users: dict[str, SlackUser] = {}
        self.usergroups: dict[str, tuple[str, list[str]]] = {}  # id -> (handle, user ids)
        #: channel id -> messages in order (each a dict as Slack returns it)
        self.channels: dict[str, list[dict[str, Any]]] = {}
        self.ephemeral: list[dict[str, Any]] = []
        self.views: dict[str, dict[str, Any]] = {}
        self.home: dict[str, dict[str, Any]] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.file_data: dict[str, bytes] = {}
        self.acks: dict[str, tuple[float, dict[str, Any] | None]] = {}
        #: Every request for a person's file: (file id, sent with the bot token).
        self.downloads: list[tuple[str, bool]] = []
        self._sent: dict[str, float] = {}
        self._triggers: dict[str, float] = {}
        self._failures: dict[str, list[tuple[int, dict[str, Any], float]]] = {}
        self._ids = itertools.count(1)
        self._ts = itertools.count(1)
        self._sockets: list[web.WebSocketResponse] = []
        self._connected = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> FakeSlack:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)  # read methods take GET with a query
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files/{file_id}/{name}", self._download)
        app.router.add_get("/link/", self._socket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        for socket in self._sockets:
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/"

    def add_user(self, name: str, *, admin: bool = False, owner: bool = False) -> SlackUser:
        user = SlackUser("U0" + name.upper(), name, admin, owner)
        self.users[user.id] = user
        return user

    def add_channel(self, name: str) -> str:
        channel = "C0" + name.upper()
        self.channels.setdefault(channel, [])
        return channel

    def dm_of(self, user_id: str) -> str:
        channel = "D" + user_id[1:]
        self.channels.setdefault(channel, [])
        return channel

    def fail_next(self, method: str, status: int = 429, body: Any = None, retry: float = 1) -> None:
        """The next call of ``method`` fails: by default a 429 with ``Retry-After: 1``."""
        failure = (status, body or {"ok": False, "error": "ratelimited"}, retry)
        self._failures.setdefault(method, []).append(failure)

    # --- the Web API ------------------------------------------------------------------------
    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    async def _args(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            return dict(await request.json())
        form = await request.post() if request.method == "POST" else {}
        args: dict[str, Any] = {**request.query, **form}
        for key in JSON_ARGS:
            if isinstance(args.get(key), str) and args[key]:
                args[key] = json.loads(args[key])
        return {k: v for k, v in args.items() if not hasattr(v, "file")}

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        token = token or str(args.pop("token", ""))
        failures = self._failures.get(method)
        if failures:
            status, body, retry = failures.pop(0)
            self.calls.append(Call(method, args, status, body))
            headers = {"Retry-After": str(int(retry))} if status == 429 else {}
            return web.json_response(body, status=status, headers=headers)
        wanted = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != wanted:
            body: dict[str, Any] = {"ok": False, "error": "invalid_auth"}
        else:
            handler = getattr(self, "m_" + method.replace(".", "_"), None)
            try:
                body = handler(args) if handler else {"ok": False, "error": "unknown_method"}
            except KeyError as missing:
                body = {"ok": False, "error": "invalid_arguments", "missing": str(missing)}
            body.setdefault("ok", True)
        self.calls.append(Call(method, args, 200, body))
        return web.json_response(body)

    def m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"url": "https://fake.slack.com/", "team": "Fake", "user": "headshots",
                "team_id": TEAM_ID, "user_id": BOT_USER, "bot_id": BOT_ID}  # fmt: skip

    def m_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"ws://127.0.0.1:{self.port}/link/?ticket={uuid.uuid4()}"}

    def _post(self, channel: str, message: dict[str, Any]) -> dict[str, Any]:
        if channel not in self.channels:
            raise KeyError("channel")
        message = {"type": "message", "ts": self._next_ts(), **message}
        self.channels[channel].append(message)
        return message

    @staticmethod
    def invalid_blocks(blocks: Any) -> str | None:
        """Why Slack would refuse these blocks (``invalid_blocks``), checking the limits the
        bot could hit: 50 blocks, 3,000 characters of section text, 75 of button text, 100
        options, ``action_id`` at most 255 characters and unique within its block."""
        if not isinstance(blocks, list) or len(blocks) > 50:
            return "more than 50 blocks"
        for block in blocks:
            if len(str((block.get("text") or {}).get("text", ""))) > 3000:
                return "section text over 3000 characters"
            elements = [*(block.get("elements") or []), *([block["accessory"]] if "accessory"
                                                            in block else [])]  # fmt: skip
            ids = [str(e.get("action_id", "")) for e in elements if e.get("action_id")]
            if len(ids) != len(set(ids)) or any(len(i) > 255 for i in ids):
                return f"action_id repeated or too long: {ids}"
            for element in elements:
                if len(str((element.get("text") or {}).get("text", ""))) > 75:
                    return "button text over 75 characters"
                if len(element.get("options") or []) > 100:
                    return "more than 100 options"
        return None

    def m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args["channel"])
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        problem = self.invalid_blocks(args.get("blocks") or [])
        if problem:
            return {"ok": False, "error": "invalid_blocks", "errors": [problem]}
        message = self._post(channel, {
            "user": BOT_USER, "bot_id": BOT_ID, "text": args.get("text", ""),
            "blocks": args.get("blocks") or [], "thread_ts": args.get("thread_ts"),
        })  # fmt: skip
        return {"channel": channel, "ts": message["ts"], "message": message}

    def m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        message = {"channel": str(args["channel"]), "user": str(args["user"]),
                   "text": args.get("text", ""), "blocks": args.get("blocks") or [],
                   "ts": self._next_ts()}  # fmt: skip
        self.ephemeral.append(message)
        return {"message_ts": message["ts"]}

    def find(self, channel: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self.channels.get(channel, []) if m["ts"] == ts), None)

    def m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self.find(str(args["channel"]), str(args["ts"]))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if message.get("user") != BOT_USER:
            return {"ok": False, "error": "cant_update_message"}
        problem = self.invalid_blocks(args.get("blocks") or [])
        if problem:
            return {"ok": False, "error": "invalid_blocks", "errors": [problem]}
        message["text"] = args.get("text", message["text"])
        if "blocks" in args:
            message["blocks"] = args["blocks"] or []
        message["edited"] = {"user": BOT_USER, "ts": self._next_ts()}
        return {"channel": args["channel"], "ts": args["ts"], "text": message["text"]}

    def m_chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, message = str(args["channel"]), self.find(str(args["channel"]), str(args["ts"]))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if message.get("user") != BOT_USER:
            return {"ok": False, "error": "cant_delete_message"}
        self.channels[channel].remove(message)
        return {"channel": channel, "ts": args["ts"]}

    def m_conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"channel": {"id": self.dm_of(str(args["users"]).split(",")[0])}}

    def m_conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        messages = list(reversed(self.channels.get(str(args["channel"]), [])))
        return {"messages": messages, "has_more": False}

    def m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(args["user"]))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"user": {"id": user.id, "name": user.name, "real_name": user.name.title(),
                         "is_admin": user.is_admin, "is_owner": user.is_owner,
                         "profile": {"display_name": user.name.title()}}}  # fmt: skip

    def m_usergroups_list(self, args: dict[str, Any]) -> dict[str, Any]:
        groups = [{"id": gid, "handle": handle} for gid, (handle, _) in self.usergroups.items()]
        return {"usergroups": groups}

    def m_usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group = self.usergroups.get(str(args["usergroup"]))
        return {"users": group[1]} if group else {"ok": False, "error": "no_such_subteam"}

    def m_views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        issued = self._triggers.get(str(args["trigger_id"]))
        if issued is None or time.monotonic() - issued > 3:
            return {"ok": False, "error": "expired_trigger_id"}
        view = {**args["view"], "id": f"V{next(self._ids):07d}"}
        self.views[view["id"]] = view
        return {"view": view}

    def m_views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        if str(args["view_id"]) not in self.views:
            return {"ok": False, "error": "not_found"}
        view = {**args["view"], "id": args["view_id"]}
        self.views[view["id"]] = view
        return {"view": view}

    def m_views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        view = args["view"]
        if view.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments"}
        view = {**view, "id": f"V{next(self._ids):07d}"}
        self.home[str(args["user_id"])] = view
        self.views[view["id"]] = view
        return {"view": view}

    def m_files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        if int(args["length"]) <= 0:
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._ids):07d}"
        self.files[file_id] = {"id": file_id, "name": str(args["filename"]),
                               "size": int(args["length"]), "complete": False}  # fmt: skip
        return {"upload_url": f"{self.base}/upload/{file_id}", "file_id": file_id}

    def m_files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        shared, channel = [], args.get("channel_id")
        for entry in args["files"]:
            file = self.files.get(str(entry["id"]))
            if file is None or file["id"] not in self.file_data:
                return {"ok": False, "error": "file_not_found"}
            file.update(title=entry.get("title") or file["name"], complete=True)
            shared.append(file)
        if channel:
            message = self._post(str(channel), {
                "user": BOT_USER, "bot_id": BOT_ID, "subtype": "file_share",
                "text": args.get("initial_comment", ""), "files": shared,
                "thread_ts": args.get("thread_ts"),
            })  # fmt: skip
            for file in shared:
                file["shares"] = {"private": {channel: [{"ts": message["ts"]}]}}
        return {"files": shared}

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if file_id not in self.files:
            return web.Response(status=404, text="not found")
        if request.content_type.startswith("multipart/"):
            part = (await request.post())["file"]
            data = part.file.read() if hasattr(part, "file") else str(part).encode()
        else:
            data = await request.read()
        self.file_data[file_id] = data
        return web.Response(text=f"OK - {len(data)}")

    async def _download(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        authorised = request.headers.get("Authorization") == f"Bearer {BOT_TOKEN}"
        self.downloads.append((file_id, authorised))
        if not authorised:
            return web.Response(body=SIGN_IN_PAGE, content_type="text/html")
        if file_id not in self.file_data:
            return web.Response(status=404)
        return web.Response(body=self.file_data[file_id], content_type="image/jpeg")

    # --- Socket Mode --------------------------------------------------------------------------
    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(heartbeat=None)
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_json({"type": "hello", "num_connections": len(self._sockets),
                                "debug_info": {"host": "fake", "approximate_connection_time": 3600},
                                "connection_info": {"app_id": APP_ID}})  # fmt: skip
        self._connected.set()
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue
            ack = json.loads(message.data)
            envelope = ack.get("envelope_id")
            if envelope in self._sent and envelope not in self.acks:
                self.acks[envelope] = (time.monotonic() - self._sent[envelope], ack.get("payload"))
        self._sockets.remove(socket)
        if not self._sockets:
            self._connected.clear()
        return socket

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    async def connected(self, within: float = 15) -> None:
        await asyncio.wait_for(self._connected.wait(), within)

    async def send(self, kind: str, payload: dict[str, Any]) -> str:
        """Send an envelope to the connected app; its ``envelope_id``."""
        await self.connected()
        envelope_id = str(uuid.uuid4())
        self._sent[envelope_id] = time.monotonic()
        await self._sockets[-1].send_json({
            "envelope_id": envelope_id, "type": kind, "payload": payload,
            "accepts_response_payload": kind != "events_api", "retry_attempt": 0,
            "retry_reason": "",
        })  # fmt: skip
        return envelope_id

    async def acked(self, envelope_id: str, within: float = 10) -> dict[str, Any] | None:
        """The ack's payload once it came (fails when it came later than Slack's 3 s)."""
        deadline = time.monotonic() + within
        while envelope_id not in self.acks:
            if time.monotonic() > deadline:
                raise AssertionError(f"envelope {envelope_id} never acknowledged")
            await asyncio.sleep(0.02)
        delay, payload = self.acks[envelope_id]
        assert delay < 3, f"acknowledged after {delay:.1f}s (Slack allows 3 s)"
        return payload

    def _trigger(self) -> str:
        trigger = f"{next(self._ids)}.{uuid.uuid4().hex[:12]}"
        self._triggers[trigger] = time.monotonic()
        return trigger

    def _who(self, user: SlackUser) -> dict[str, Any]:
        return {"id": user.id, "username": user.name, "name": user.name, "team_id": TEAM_ID}

    async def slash(self, user: SlackUser, channel: str, text: str) -> str:
        """``/headshots <text>`` typed by ``user`` in ``channel``; the envelope id."""
        return await self.send("slash_commands", {
            "token": "verification", "team_id": TEAM_ID, "team_domain": "fake",
            "channel_id": channel, "channel_name": "directmessage" if channel[0] == "D" else "x",
            "user_id": user.id, "user_name": user.name, "command": "/headshots", "text": text,
            "api_app_id": APP_ID, "is_enterprise_install": "false",
            "response_url": f"{self.base}/response", "trigger_id": self._trigger(),
        })  # fmt: skip

    async def act(
        self, user: SlackUser, where: dict[str, Any], action: dict[str, Any], *, view: bool = False
    ) -> str:
        """A ``block_actions`` payload: ``action`` pressed in a message (or a view)."""
        container: dict[str, Any]
        if view:
            container = {"type": "view", "view_id": where["id"]}
        else:
            container = {"type": "message", "message_ts": where["ts"],
                         "channel_id": where["channel"], "is_ephemeral": False}  # fmt: skip
        payload = {
            "type": "block_actions", "user": self._who(user), "api_app_id": APP_ID,
            "token": "verification", "container": container, "trigger_id": self._trigger(),
            "team": {"id": TEAM_ID, "domain": "fake"}, "enterprise": None,
            "is_enterprise_install": False, "response_url": f"{self.base}/response",
            "actions": [{**action, "action_ts": self._next_ts()}],
        }  # fmt: skip
        if view:
            payload["view"] = self.views.get(where["id"]) or where
        else:
            payload["channel"] = {"id": where["channel"], "name": "x"}
            payload["message"] = {k: v for k, v in where.items() if k != "channel"}
        return await self.send("interactive", payload)

    def element(self, message: dict[str, Any], prefix: str) -> tuple[str, dict[str, Any]]:
        """(block id, element) of the first element whose ``action_id`` starts with ``prefix``."""
        for block in message.get("blocks") or []:
            for element in block.get("elements") or [block.get("accessory") or {}]:
                if str(element.get("action_id", "")).startswith(prefix):
                    return str(block.get("block_id", "")), element
        raise AssertionError(f"no element {prefix!r} in {message.get('text', '')[:80]!r}")

    def action_ids(self, message: dict[str, Any]) -> list[str]:
        return [
            str(element.get("action_id", ""))
            for block in message.get("blocks") or []
            for element in block.get("elements") or [block.get("accessory") or {}]
            if element.get("action_id")
        ]

    async def press(
        self, user: SlackUser, message: dict[str, Any], prefix: str, *, view: bool = False
    ) -> str:
        block_id, button = self.element(message, prefix)
        action = {"type": "button", "block_id": block_id, "action_id": button["action_id"],
                  "value": button.get("value", ""), "text": button["text"]}  # fmt: skip
        return await self.act(user, message, action, view=view)

    async def pick(self, user: SlackUser, message: dict[str, Any], prefix: str, value: str) -> str:
        block_id, select = self.element(message, prefix)
        option = next(o for o in select["options"] if o["value"] == value)
        action = {"type": "static_select", "block_id": block_id,
                  "action_id": select["action_id"], "selected_option": option}  # fmt: skip
        return await self.act(user, message, action)

    async def submit(self, user: SlackUser, view: dict[str, Any], typed: list[str]) -> str:
        """Submit a modal with ``typed`` in its input blocks, in order."""
        values: dict[str, Any] = {}
        inputs = [b for b in view.get("blocks", []) if b.get("type") == "input"]
        for block, text in zip(inputs, typed, strict=False):
            element = block["element"]
            values[block["block_id"]] = {
                element["action_id"]: {"type": "plain_text_input", "value": text}
            }
        submitted = {**view, "state": {"values": values}, "team_id": TEAM_ID}
        return await self.send("interactive", {
            "type": "view_submission", "team": {"id": TEAM_ID, "domain": "fake"},
            "user": self._who(user), "api_app_id": APP_ID, "token": "verification",
            "trigger_id": self._trigger(), "view": submitted, "is_enterprise_install": False,
        })  # fmt: skip

    async def event(self, event: dict[str, Any]) -> str:
        return await self.send("events_api", {
            "token": "verification", "team_id": TEAM_ID, "api_app_id": APP_ID,
            "event": {**event, "event_ts": event.get("ts") or self._next_ts()},
            "type": "event_callback", "event_id": f"Ev{next(self._ids):08d}",
            "event_time": int(time.time()), "is_ext_shared_channel": False,
            "authorizations": [{"enterprise_id": None, "team_id": TEAM_ID, "user_id": BOT_USER,
                                "is_bot": True, "is_enterprise_install": False}],
        })  # fmt: skip

    async def send_files(
        self, user: SlackUser, channel: str, photos: list[bytes], *, mime: str = "image/jpeg"
    ) -> str:
        """``user`` shares ``photos`` in ``channel``: a ``message`` event with ``files``."""
        files = []
        for data in photos:
            file_id = f"F{next(self._ids):07d}"
            name = f"IMG_{file_id}.jpg"
            self.file_data[file_id] = data
            files.append({
                "id": file_id, "name": name, "mimetype": mime, "filetype": "jpg",
                "size": len(data), "user": user.id,
                "url_private": f"{self.base}/files/{file_id}/{name}",
                "url_private_download": f"{self.base}/files/{file_id}/{name}",
            })  # fmt: skip
        message = self._post(channel, {"user": user.id, "text": "", "subtype": "file_share",
                                       "files": files})  # fmt: skip
        event = {"type": "message", "subtype": "file_share", "channel": channel,
                 "channel_type": "im" if channel[0] == "D" else "channel", "user": user.id,
                 "text": "", "ts": message["ts"], "files": files}  # fmt: skip
        return await self.event(event)

    # --- reading what happened ------------------------------------------------------------
    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def bot_messages(self, channel: str) -> list[dict[str, Any]]:
        return [{**m, "channel": channel} for m in self.channels.get(channel, [])
                if m.get("user") == BOT_USER]  # fmt: skip

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        found = self.find(channel, ts)
        assert found is not None, f"no message {ts} in {channel}"
        return {**found, "channel": channel}

    def with_action(self, prefix: str, channel: str | None = None) -> dict[str, Any] | None:
        """The latest bot message (in ``channel``, or anywhere) with an element ``prefix``."""
        for where in [channel] if channel else list(self.channels):
            for message in reversed(self.bot_messages(where)):
                if any(a.startswith(prefix) for a in self.action_ids(message)):
                    return message
        return None

    async def wait_for(
        self, probe: Callable[[], Any], *, what: str = "a condition", within: float = 30
    ) -> Any:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = probe()
            if found:
                return found
            await asyncio.sleep(0.03)
        raise AssertionError(f"timed out waiting for {what}")
