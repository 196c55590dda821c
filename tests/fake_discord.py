"""A local fake of the Discord REST API, spoken to over real HTTP by discord.py.

discord.py sends every REST call (bot-token routes, interaction callbacks and webhook followups)
to ``discord.http.Route.BASE``; point it at :attr:`FakeDiscord.api_base` and this server answers
what the headshots bot and worker call, records every request (method, path, Authorization, JSON
body, uploaded files) and can inject failures (a 429 with ``retry_after``, a 403 "Missing
Permissions").

Tests build interaction payloads with :meth:`FakeDiscord.slash`, :meth:`FakeDiscord.click`,
:meth:`FakeDiscord.select` and :meth:`FakeDiscord.modal_submit` and either feed them in-process to
``client._connection.parse_interaction_create(payload)`` or send them over the fake gateway
(:attr:`FakeDiscord.gateway`, :mod:`tests.fake_discord_gateway`) to a bot that connected the real
way (``GET /gateway/bot``, then the websocket); the fake remembers each interaction's token, so
followups land in the right channel and tokens can be expired
(:meth:`FakeDiscord.expire_interaction_tokens`) to prove that long jobs never use them.

Discord's interaction rules are enforced: an initial response (reply, defer, update, modal)
later than :attr:`FakeDiscord.ack_deadline_s` (3 s) after the interaction is refused with 10062
"Unknown interaction", a second one with 40060 "already acknowledged", and followups or edits
of the original response before any initial response with 10015 "Unknown Webhook". Threads
keep their type (11 public, 12 private: :meth:`FakeDiscord.visible_to` says who sees one) and
their members; the bot's rights per channel (:attr:`FakeDiscord.bot_permissions`) decide what
it may do: create a private or public thread, delete a thread (Manage Threads), delete
someone else's message (Manage Messages; never in a DM). A channel's messages can be listed
(``GET /channels/{id}/messages``, newest first, ephemeral replies left out), and a user in
:attr:`FakeDiscord.dms_closed` takes no DM from the bot (50007).

:meth:`FakeDiscord.fail_for` opens an outage window (a 429 or 5xx on every n-th REST call), as
``FakeTelegram.fail_for`` does for the Bot API; the soak run uses both.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import BodyPartReader, web

from tests.fake_discord_gateway import GATEWAY_PATH, FakeGateway
from tests.outage import OutageWindow

API_PREFIX = "/api/v10"
MISSING_PERMISSIONS = {"message": "Missing Permissions", "code": 50013}
RATE_LIMITED = {"message": "You are being rate limited.", "retry_after": 0.2, "global": False}
#: Permission bits the fake grants the bot by default (every permission).
ALL_PERMISSIONS = (1 << 53) - 1
MANAGE_MESSAGES = 1 << 13
MANAGE_THREADS = 1 << 34
CREATE_PUBLIC_THREADS = 1 << 35
CREATE_PRIVATE_THREADS = 1 << 36
PUBLIC_THREAD, PRIVATE_THREAD = 11, 12


@dataclass
class UploadedFile:
    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class Call:
    """One HTTP request the fake received."""

    method: str
    path: str  # relative to the API base (``/channels/1/messages``) or the full path otherwise
    query: dict[str, str]
    authorization: str | None
    json: Any
    files: list[UploadedFile]
    status: int = 200
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Failure:
    method: str
    path_prefix: str
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int


@dataclass
class _Interaction:
    id: int
    token: str
    type: int
    channel_id: int
    guild_id: int | None
    message_id: int | None
    responses: list[dict[str, Any]] = field(default_factory=list)
    original_id: int | None = None
    expired: bool = False
    #: When Discord sent it (the payload was built), and when the bot first answered it.
    created_at: float = field(default_factory=time.monotonic)
    acknowledged_at: float | None = None


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    # discord.py parses a body only when the content type is exactly "application/json".
    merged = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(body=json.dumps(data).encode(), status=status, headers=merged)


class FakeDiscord:
    """The fake server; ``await start()``, use :attr:`api_base`, ``await stop()``."""

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        bot_id: int = 900_000_000_000_000_001,
        application_id: int = 900_000_000_000_000_001,
    ) -> None:
        self.token = token
        self.bot_id = bot_id
        self.application_id = application_id
        self.bot_user: dict[str, Any] = self.user_payload(bot_id, "headshots", bot=True)
        self._ids = itertools.count(1_300_000_000_000_000_000)
        self._calls: list[Call] = []
        self._failures: list[_Failure] = []
        self.channels: dict[int, dict[str, Any]] = {}
        self.messages: dict[int, dict[str, Any]] = {}
        #: Files uploaded with each message id.
        self.message_files: dict[int, list[UploadedFile]] = {}
        self.message_auth: dict[int, str | None] = {}
        self.attachments: dict[str, tuple[bytes, str]] = {}
        self.users: dict[int, dict[str, Any]] = {bot_id: self.bot_user}
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self._interactions: dict[str, _Interaction] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.gateway = FakeGateway(self)
        #: See ``fail_for``.
        self._outage = OutageWindow()
        #: Discord refuses an interaction's initial response after this long (10062).
        self.ack_deadline_s = 3.0
        #: Seconds each attachment download takes (a slow CDN, or large photos).
        self.attachment_delay_s = 0.0
        #: The bot's permissions per text channel (threads have their parent's); default all.
        self.bot_permissions: dict[int, int] = {}
        #: Users who take no DMs from server members: a bot's DM to them is refused (50007).
        self.dms_closed: set[int] = set()

    # --- lifecycle --------------------------------------------------------------------
    @property
    def api_base(self) -> str:
        return f"{self.url}{API_PREFIX}"

    async def start(self) -> str:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        # An open websocket would hold the runner's cleanup for its whole shutdown timeout.
        await self.gateway.drop_connections(1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- what tests inspect and control -----------------------------------------------
    def next_id(self) -> int:
        return next(self._ids)

    def calls(self, method: str | None = None, path_prefix: str = "") -> list[Call]:
        """Every recorded call, optionally of one method whose path starts with ``path_prefix``."""
        return [
            c
            for c in self._calls
            if (method is None or c.method == method.upper()) and c.path.startswith(path_prefix)
        ]

    def fail_next(
        self,
        method: str,
        path_prefix: str,
        *,
        status: int = 429,
        body: dict[str, Any] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` matching calls with ``status`` (429: a real rate limit)."""
        headers: dict[str, str] = {}
        if status == 429:
            body = body or dict(RATE_LIMITED)
            headers = self._rate_limit_headers(body)
        elif status == 403 and body is None:
            body = dict(MISSING_PERMISSIONS)
        self._failures.append(
            _Failure(
                method.upper(),
                path_prefix,
                status,
                body or {"message": "error", "code": 0},
                headers,
                times,
            )
        )

    def fail_for(self, seconds: float, status: int = 429, *, every: int = 2) -> None:
        """For ``seconds``, answer every ``every``-th REST call with ``status`` (429 or 5xx).

        The gateway websocket and attachment downloads (Discord's CDN, another host) are spared.
        """
        self._outage.open(seconds, status, every)

    @property
    def outage_failures(self) -> int:
        """REST calls answered with an error by an outage window."""
        return self._outage.failures

    def _outage_answer(self) -> web.Response | None:
        status = self._outage.failing_status()
        if status is None:
            return None
        if status == 429:
            body = dict(RATE_LIMITED)
            return _json_response(body, 429, self._rate_limit_headers(body))
        return _json_response({"message": "502: Bad Gateway", "code": 0}, status)

    @staticmethod
    def _rate_limit_headers(body: dict[str, Any]) -> dict[str, str]:
        # discord.py treats a 429 without "Via" as a Cloudflare ban and does not retry.
        return {
            "Via": "1.1 google",
            "Retry-After": str(body.get("retry_after", 0.2)),
            "X-RateLimit-Scope": "user",
        }

    def add_attachment(
        self,
        data: bytes,
        filename: str,
        content_type: str | None = "image/jpeg",
        *,
        size: int | None = None,
    ) -> dict[str, Any]:
        """Serve ``data`` at a fresh attachment URL; returns the attachment payload Discord sends.

        ``size`` overrides the announced size (a "30 MB" file need not weigh 30 MB in the test).
        """
        attachment_id = self.next_id()
        path = f"/attachments/{attachment_id}/{filename}"
        self.attachments[path] = (data, content_type or "application/octet-stream")
        payload: dict[str, Any] = {
            "id": str(attachment_id),
            "filename": filename,
            "size": len(data) if size is None else size,
            "url": f"{self.url}{path}",
            "proxy_url": f"{self.url}{path}",
        }
        if content_type is not None:
            payload["content_type"] = content_type
        return payload

    def expire_interaction_tokens(self) -> None:
        """From now on, callbacks and webhook calls with any known interaction token get 401."""
        for interaction in self._interactions.values():
            interaction.expired = True

    def channel_messages(self, channel_id: int) -> list[dict[str, Any]]:
        return [m for m in self.messages.values() if int(m["channel_id"]) == channel_id]

    def dm_channel_of(self, user_id: int) -> dict[str, Any] | None:
        """The DM channel the bot opened (or a test added) with ``user_id``, if any."""
        for channel in self.channels.values():
            if channel["type"] == 1 and int(channel["recipients"][0]["id"]) == user_id:
                return channel
        return None

    def uploads(self) -> list[tuple[Call, UploadedFile]]:
        """Every file any successful request uploaded, with its call."""
        return [(c, f) for c in self._calls if c.status < 300 for f in c.files]

    def threads(self) -> list[dict[str, Any]]:
        """Every thread (deleted ones too: ``"deleted": True``)."""
        return [c for c in self.channels.values() if c["type"] in (PUBLIC_THREAD, PRIVATE_THREAD)]

    def permissions_in(self, channel_id: int) -> int:
        """The bot's permissions in a channel (a thread has its parent's)."""
        channel = self.channels.get(channel_id) or {}
        parent = channel.get("parent_id")
        key = int(parent) if parent else channel_id
        return self.bot_permissions.get(key, ALL_PERMISSIONS)

    def visible_to(self, user_id: int, channel_id: int) -> bool:
        """Whether a member sees a channel: a private thread only its members (moderators with
        Manage Threads aside), a deleted one nobody."""
        channel = self.channels[channel_id]
        if channel.get("deleted"):
            return False
        if channel["type"] == PRIVATE_THREAD:
            return user_id in {int(u) for u in channel.get("member_ids", [])}
        return True

    def interaction_responses(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """The callback bodies the bot sent for the interaction ``payload`` (at most one)."""
        return self._interactions[payload["token"]].responses

    async def answer_to(self, payload: dict[str, Any], *, within: float = 20.0) -> str:
        """What the person reads in answer to an interaction: the reply itself, or the private
        message that filled a deferred reply or followed a deferred update."""

        def text() -> str | None:
            found = self._interactions[payload["token"]]
            if not found.responses:
                return None
            first = found.responses[0]
            if int(first.get("type", 0)) == 4:
                return str((first.get("data") or {}).get("content") or "") or None
            for message in self.messages.values():
                private = int(message.get("flags", 0) or 0) & 64
                if message.get("interaction_token") == payload["token"] and private:
                    if message.get("content"):
                        return str(message["content"])
            return None

        return str(await self.wait_for(text, within=within, what="an answer to the interaction"))

    def acknowledged_after(self, payload: dict[str, Any]) -> float | None:
        """Seconds from the interaction to its accepted initial response (``None``: none)."""
        found = self._interactions[payload["token"]]
        if found.acknowledged_at is None:
            return None
        return found.acknowledged_at - found.created_at

    def refused_callbacks(self) -> list[Call]:
        """Initial responses Discord refused (late: 10062, a second one: 40060...)."""
        return [c for c in self.calls("POST", "/interactions/") if c.status >= 300]

    def live_messages(self, channel_id: int | None = None) -> list[dict[str, Any]]:
        return [
            m
            for m in self.messages.values()
            if not m.get("deleted") and (channel_id is None or int(m["channel_id"]) == channel_id)
        ]

    def message_with(
        self, custom_id_prefix: str, channel_id: int | None = None
    ) -> dict[str, Any] | None:
        """The newest message carrying a component whose custom_id starts with the prefix."""
        for message in reversed(self.live_messages(channel_id)):
            for row in message.get("components", []):
                for component in row.get("components", []):
                    if str(component.get("custom_id", "")).startswith(custom_id_prefix):
                        return message
        return None

    @staticmethod
    def custom_ids(message: dict[str, Any]) -> list[str]:
        return [
            str(c["custom_id"])
            for row in message.get("components", [])
            for c in row.get("components", [])
            if "custom_id" in c
        ]

    async def wait_for(
        self, predicate: Callable[[], Any], *, within: float = 20.0, what: str = "condition"
    ) -> Any:
        """Poll ``predicate`` until it returns something truthy; fail after ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                recent = [f"{c.method} {c.path} -> {c.status}" for c in self._calls[-15:]]
                raise AssertionError(f"timed out waiting for {what}; last calls: {recent}")
            await asyncio.sleep(0.02)

    # --- payload builders ---------------------------------------------------------------
    @staticmethod
    def user_payload(user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
        return {
            "id": str(user_id),
            "username": name,
            "global_name": name.title(),
            "discriminator": "0",
            "avatar": None,
            "bot": bot,
        }

    def add_user(self, user_id: int, name: str) -> dict[str, Any]:
        self.users[user_id] = self.user_payload(user_id, name)
        return self.users[user_id]

    def add_text_channel(self, guild_id: int, name: str = "general") -> dict[str, Any]:
        channel = {
            "id": str(self.next_id()),
            "type": 0,
            "guild_id": str(guild_id),
            "name": name,
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "rate_limit_per_user": 0,
            "topic": None,
            "last_message_id": None,
        }
        self.channels[int(channel["id"])] = channel
        return channel

    def add_dm_channel(self, user: dict[str, Any]) -> dict[str, Any]:
        channel = {
            "id": str(self.next_id()),
            "type": 1,
            "recipients": [user],
            "last_message_id": None,
        }
        self.channels[int(channel["id"])] = channel
        return channel

    def _interaction(
        self,
        itype: int,
        data: dict[str, Any],
        *,
        user: dict[str, Any],
        channel: dict[str, Any],
        message: dict[str, Any] | None = None,
        app_permissions: int | None = None,
        member_permissions: int = ALL_PERMISSIONS,
        roles: list[int] | None = None,
    ) -> dict[str, Any]:
        if app_permissions is None:  # what Discord resolves: the bot's rights in the channel
            app_permissions = self.permissions_in(int(channel["id"]))
        interaction_id = self.next_id()
        token = f"itoken-{interaction_id}"
        guild_id = channel.get("guild_id")
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": itype,
            "data": data,
            "token": token,
            "version": 1,
            "channel_id": channel["id"],
            "channel": channel,
            "app_permissions": str(app_permissions),
            "locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {},
            "attachment_size_limit": 10 * 1024 * 1024,
            "context": 0 if guild_id else 1,
        }
        if guild_id:
            payload["guild_id"] = str(guild_id)
            payload["guild_locale"] = "en-US"
            payload["member"] = {
                "user": user,
                "roles": [str(r) for r in roles or []],
                "joined_at": _now_iso(),
                "deaf": False,
                "mute": False,
                "flags": 0,
                "permissions": str(member_permissions),
            }
        else:
            payload["user"] = user
        if message is not None:
            # A snapshot: later edits of the stored message must not change a sent payload.
            payload["message"] = copy.deepcopy(message)
        self._interactions[token] = _Interaction(
            id=interaction_id,
            token=token,
            type=itype,
            channel_id=int(channel["id"]),
            guild_id=int(guild_id) if guild_id else None,
            message_id=int(message["id"]) if message else None,
        )
        return payload

    def slash(
        self,
        subcommand: str,
        *,
        user: dict[str, Any],
        channel: dict[str, Any],
        attachments: list[dict[str, Any]] | None = None,
        group: str = "headshot",
        subgroup: str | None = None,
        attachment_options: dict[str, dict[str, Any]] | None = None,
        app_permissions: int | None = None,
        member_permissions: int = ALL_PERMISSIONS,
        roles: list[int] | None = None,
    ) -> dict[str, Any]:
        """A ``/group [subgroup] subcommand`` interaction.

        ``attachments`` fill photo1..photoN options; ``attachment_options`` names them
        (``{"logo": attachment}``). ``member_permissions`` and ``roles`` are the invoking
        member's, as Discord resolves them into the payload.
        """
        named = {f"photo{i}": a for i, a in enumerate(attachments or [], start=1)}
        named.update(attachment_options or {})
        options: list[dict[str, Any]] = []
        resolved: dict[str, Any] = {}
        for name, attachment in named.items():
            options.append({"name": name, "type": 11, "value": attachment["id"]})
            resolved.setdefault("attachments", {})[attachment["id"]] = attachment
        command: dict[str, Any] = {"name": subcommand, "type": 1, "options": options}
        if subgroup is not None:
            command = {"name": subgroup, "type": 2, "options": [command]}
        data: dict[str, Any] = {
            "id": str(self.next_id()),
            "name": group,
            "type": 1,
            "options": [command],
        }
        if resolved:
            data["resolved"] = resolved
        return self._interaction(
            2,
            data,
            user=user,
            channel=channel,
            app_permissions=app_permissions,
            member_permissions=member_permissions,
            roles=roles,
        )

    def _find_component(self, message: dict[str, Any], custom_id: str) -> dict[str, Any]:
        for row in message.get("components", []):
            for component in row.get("components", []):
                if component.get("custom_id") == custom_id:
                    return dict(component)
        raise AssertionError(f"no component {custom_id!r} on message {message.get('id')}")

    def click(
        self,
        message: dict[str, Any],
        custom_id: str,
        *,
        user: dict[str, Any],
        channel: dict[str, Any] | None = None,
        member_permissions: int = ALL_PERMISSIONS,
        roles: list[int] | None = None,
    ) -> dict[str, Any]:
        """A button press on ``message`` (as stored by the fake)."""
        self._find_component(message, custom_id)
        data = {"custom_id": custom_id, "component_type": 2}
        return self._interaction(
            3,
            data,
            user=user,
            channel=channel or self.channels[int(message["channel_id"])],
            message=message,
            member_permissions=member_permissions,
            roles=roles,
        )

    def select(
        self,
        message: dict[str, Any],
        custom_id: str,
        values: list[str],
        *,
        user: dict[str, Any],
        channel: dict[str, Any] | None = None,
        member_permissions: int = ALL_PERMISSIONS,
        roles: list[int] | None = None,
    ) -> dict[str, Any]:
        """A choice in a string select menu on ``message``."""
        component = self._find_component(message, custom_id)
        offered = {o["value"] for o in component.get("options", [])}
        missing = set(values) - offered
        if missing:
            raise AssertionError(f"select {custom_id!r} offers no {sorted(missing)}")
        data = {"custom_id": custom_id, "component_type": 3, "values": values}
        return self._interaction(
            3,
            data,
            user=user,
            channel=channel or self.channels[int(message["channel_id"])],
            message=message,
            member_permissions=member_permissions,
            roles=roles,
        )

    def modal_submit(
        self,
        modal: dict[str, Any],
        values: dict[str, str],
        *,
        user: dict[str, Any],
        channel: dict[str, Any],
        message: dict[str, Any] | None = None,
        member_permissions: int = ALL_PERMISSIONS,
    ) -> dict[str, Any]:
        """Submit a modal the bot opened (``modal`` is the callback's data) with text values."""
        rows = []
        for row in modal.get("components", []):
            for component in (
                row.get("components", []) if row.get("type") == 1 else [row.get("component", {})]
            ):
                custom_id = component["custom_id"]
                rows.append(
                    {
                        "type": 1,
                        "components": [
                            {"type": 4, "custom_id": custom_id, "value": values.get(custom_id, "")}
                        ],
                    }
                )
        data = {"custom_id": modal["custom_id"], "components": rows}
        return self._interaction(
            5,
            data,
            user=user,
            channel=channel,
            message=message,
            member_permissions=member_permissions,
        )

    def user_message(
        self,
        *,
        user: dict[str, Any],
        channel: dict[str, Any],
        content: str = "",
        attachments: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A MESSAGE_CREATE payload of a member posting into ``channel``."""
        message = self._message_payload(
            int(channel["id"]), content, author=user, attachments=attachments or []
        )
        if channel.get("guild_id"):
            message["guild_id"] = channel["guild_id"]
            message["member"] = {
                "roles": [],
                "joined_at": _now_iso(),
                "deaf": False,
                "mute": False,
                "flags": 0,
            }
        self.messages[int(message["id"])] = message
        return message

    # --- server side ----------------------------------------------------------------------
    def _message_payload(
        self,
        channel_id: int,
        content: str,
        *,
        author: dict[str, Any] | None = None,
        attachments: list[dict[str, Any]] | None = None,
        components: list[dict[str, Any]] | None = None,
        flags: int = 0,
        embeds: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        return {
            "id": str(self.next_id()),
            "channel_id": str(channel_id),
            "type": 0,
            "content": content,
            "author": author or self.bot_user,
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": attachments or [],
            "embeds": embeds or [],
            "pinned": False,
            "components": components or [],
            "flags": flags,
        }

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        path = (
            request.path[len(API_PREFIX) :] if request.path.startswith(API_PREFIX) else request.path
        )
        body, files = await self._read_body(request)
        call = Call(
            method=request.method,
            path=path,
            query=dict(request.query),
            authorization=request.headers.get("Authorization"),
            json=body,
            files=files,
        )
        self._calls.append(call)
        request["call"] = call
        for failure in self._failures:
            if (
                failure.times > 0
                and failure.method == request.method
                and path.startswith(failure.path_prefix)
            ):
                failure.times -= 1
                call.status = failure.status
                return _json_response(failure.body, failure.status, failure.headers)
        if request.path.startswith(API_PREFIX):
            outage = self._outage_answer()
            if outage is not None:
                call.status = outage.status
                return outage
        response: web.StreamResponse = await handler(request)
        call.status = response.status
        return response

    @staticmethod
    async def _read_body(request: web.Request) -> tuple[Any, list[UploadedFile]]:
        if not request.can_read_body:
            return None, []
        content_type = request.content_type
        if content_type.startswith("multipart/"):
            payload: Any = None
            files: list[UploadedFile] = []
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    continue
                data = await part.read(decode=False)
                name = part.name or ""
                if name == "payload_json":
                    payload = json.loads(bytes(data).decode())
                else:
                    files.append(
                        UploadedFile(
                            field=name,
                            filename=part.filename or "",
                            content_type=part.headers.get("Content-Type", ""),
                            data=bytes(data),
                        )
                    )
            return payload, files
        raw = await request.read()
        if not raw:
            return None, []
        try:
            return json.loads(raw), []
        except ValueError:
            return raw.decode(errors="replace"), []

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        call: Call = request["call"]
        if request.path in self.attachments:
            data, content_type = self.attachments[request.path]
            if self.attachment_delay_s:
                await asyncio.sleep(self.attachment_delay_s)
            return web.Response(body=data, headers={"Content-Type": content_type})
        if request.path == GATEWAY_PATH:
            return await self.gateway.handle(request)
        if not request.path.startswith(API_PREFIX):
            return _json_response({"message": "404: Not Found", "code": 0}, 404)
        parts = [p for p in call.path.split("/") if p]
        method = request.method
        for pattern, route_method, handler in self._routes():
            if route_method != method or len(pattern) != len(parts):
                continue
            args = []
            for want, got in zip(pattern, parts, strict=True):
                if want == "*":
                    args.append(got)
                elif want != got:
                    break
            else:
                result: web.StreamResponse = await handler(call, *args)
                return result
        return _json_response({"message": f"Unknown route {method} {call.path}", "code": 0}, 404)

    def _routes(self) -> list[tuple[list[str], str, Callable[..., Any]]]:
        return [
            (["users", "@me"], "GET", self._get_me),
            (["gateway", "bot"], "GET", self._get_bot_gateway),
            (["gateway"], "GET", self._get_gateway),
            (["oauth2", "applications", "@me"], "GET", self._get_application),
            (["applications", "@me"], "GET", self._get_application),
            (["applications", "*", "commands"], "PUT", self._put_commands),
            (["applications", "*", "commands"], "GET", self._get_commands),
            (["applications", "*", "guilds", "*", "commands"], "PUT", self._put_guild_commands),
            (["applications", "*", "guilds", "*", "commands"], "GET", self._get_guild_commands),
            (["interactions", "*", "*", "callback"], "POST", self._callback),
            (["webhooks", "*", "*"], "POST", self._followup),
            (["webhooks", "*", "*", "messages", "*"], "PATCH", self._edit_webhook_message),
            (["webhooks", "*", "*", "messages", "*"], "GET", self._get_webhook_message),
            (["webhooks", "*", "*", "messages", "*"], "DELETE", self._delete_webhook_message),
            (["channels", "*"], "GET", self._get_channel),
            (["channels", "*"], "DELETE", self._delete_channel),
            (["channels", "*", "messages"], "GET", self._list_messages),
            (["channels", "*", "messages"], "POST", self._post_message),
            (["channels", "*", "messages", "*"], "PATCH", self._edit_message),
            (["channels", "*", "messages", "*"], "GET", self._get_message),
            (["channels", "*", "messages", "*"], "DELETE", self._delete_message),
            (["channels", "*", "threads"], "POST", self._create_thread),
            (
                ["channels", "*", "messages", "*", "threads"],
                "POST",
                self._create_thread_from_message,
            ),
            (["channels", "*", "thread-members", "*"], "PUT", self._add_thread_member),
            (["users", "@me", "channels"], "POST", self._open_dm),
            (["guilds", "*", "members", "*"], "GET", self._get_member),
        ]

    def _check_bot(self, call: Call) -> web.Response | None:
        if call.authorization != f"Bot {self.token}":
            return _json_response({"message": "401: Unauthorized", "code": 0}, 401)
        return None

    async def _get_me(self, call: Call) -> web.Response:
        return self._check_bot(call) or _json_response(self.bot_user)

    async def _get_bot_gateway(self, call: Call) -> web.Response:
        return self._check_bot(call) or _json_response(self.gateway.bot_gateway())

    async def _get_gateway(self, call: Call) -> web.Response:
        return _json_response({"url": self.gateway.url})

    async def _get_application(self, call: Call) -> web.Response:
        return self._check_bot(call) or _json_response(
            {
                "id": str(self.application_id),
                "name": "headshots",
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": self.users[self.bot_id],
                "verify_key": "0" * 64,
                "flags": 0,
                "summary": "",
            }
        )

    def _store_commands(self, key: str, commands: list[dict[str, Any]]) -> web.Response:
        stored = [
            {
                **c,
                "id": str(self.next_id()),
                "application_id": str(self.application_id),
                "version": "1",
            }
            for c in commands
        ]
        self.commands[key] = stored
        return _json_response(stored)

    async def _put_commands(self, call: Call, app_id: str) -> web.Response:
        return self._check_bot(call) or self._store_commands("global", call.json or [])

    async def _get_commands(self, call: Call, app_id: str) -> web.Response:
        return self._check_bot(call) or _json_response(self.commands.get("global", []))

    async def _put_guild_commands(self, call: Call, app_id: str, guild_id: str) -> web.Response:
        return self._check_bot(call) or self._store_commands(guild_id, call.json or [])

    async def _get_guild_commands(self, call: Call, app_id: str, guild_id: str) -> web.Response:
        return self._check_bot(call) or _json_response(self.commands.get(guild_id, []))

    def _live_interaction(
        self, token: str, *, webhook: bool = False
    ) -> _Interaction | web.Response:
        interaction = self._interactions.get(token)
        if interaction is None:
            return _json_response({"message": "Unknown interaction", "code": 10062}, 404)
        if interaction.expired:
            return _json_response({"message": "Invalid Webhook Token", "code": 50027}, 401)
        if webhook and not interaction.responses:
            # Followups and edits exist only once the interaction was answered or deferred.
            return _json_response({"message": "Unknown Webhook", "code": 10015}, 404)
        return interaction

    def _apply_message_data(
        self, message: dict[str, Any], data: dict[str, Any], files: list[UploadedFile]
    ) -> None:
        for key in ("content", "components", "embeds", "flags"):
            if key in data and data[key] is not None:
                message[key] = data[key]
        if "attachments" in data or files:
            message["attachments"] = [
                {
                    "id": str(self.next_id()),
                    "filename": f.filename,
                    "size": len(f.data),
                    "url": f"{self.url}/files/{f.filename}",
                    "proxy_url": f"{self.url}/files/{f.filename}",
                    "content_type": f.content_type,
                }
                for f in files
            ]
        if files:
            self.message_files[int(message["id"])] = files

    async def _callback(self, call: Call, interaction_id: str, token: str) -> web.Response:
        found = self._live_interaction(token)
        if isinstance(found, web.Response):
            return found
        if found.responses:
            return _json_response(
                {"message": "Interaction has already been acknowledged.", "code": 40060}, 400
            )
        if time.monotonic() - found.created_at > self.ack_deadline_s:
            # Discord forgets an interaction nobody answered within 3 s: "This interaction
            # failed" for the person, and every later callback or followup is unknown.
            return _json_response({"message": "Unknown interaction", "code": 10062}, 404)
        body = call.json or {}
        found.responses.append(body)
        found.acknowledged_at = time.monotonic()
        kind = int(body.get("type", 0))
        data = body.get("data") or {}
        flags = int(data.get("flags", 0) or 0)
        resource: dict[str, Any] = {"type": kind}
        if kind in (4, 5):
            message = self._message_payload(
                found.channel_id, data.get("content") or "", flags=flags
            )
            self._apply_message_data(message, data, call.files)
            message["interaction_token"] = token
            self.messages[int(message["id"])] = message
            self.message_auth[int(message["id"])] = None
            found.original_id = int(message["id"])
            resource["message"] = message
        elif kind in (6, 7) and found.message_id is not None:
            # After updating a component's message, "@original" is that message.
            found.original_id = found.message_id
        if kind == 7 and found.message_id is not None:
            message = self.messages.get(found.message_id)
            if message is not None:
                self._apply_message_data(message, data, call.files)
                message["edited_timestamp"] = _now_iso()
                resource["message"] = message
        return _json_response(
            {
                "interaction": {
                    "id": str(found.id),
                    "type": found.type,
                    "response_message_id": str(found.original_id) if found.original_id else None,
                    "response_message_loading": kind == 5,
                    "response_message_ephemeral": bool(flags & 64),
                },
                "resource": resource,
            }
        )

    async def _followup(self, call: Call, app_id: str, token: str) -> web.Response:
        found = self._live_interaction(token, webhook=True)
        if isinstance(found, web.Response):
            return found
        data = call.json or {}
        message = self._message_payload(
            found.channel_id, data.get("content") or "", flags=int(data.get("flags", 0) or 0)
        )
        self._apply_message_data(message, data, call.files)
        message["interaction_token"] = token
        message["webhook_id"] = app_id
        self.messages[int(message["id"])] = message
        self.message_auth[int(message["id"])] = None
        return _json_response(message)

    def _webhook_message(self, token: str, message_id: str) -> dict[str, Any] | web.Response:
        found = self._live_interaction(token, webhook=True)
        if isinstance(found, web.Response):
            return found
        wanted = found.original_id if message_id == "@original" else int(message_id)
        message = self.messages.get(wanted or 0)
        if message is None:
            return _json_response({"message": "Unknown Message", "code": 10008}, 404)
        return message

    async def _edit_webhook_message(
        self, call: Call, app_id: str, token: str, message_id: str
    ) -> web.Response:
        message = self._webhook_message(token, message_id)
        if isinstance(message, web.Response):
            return message
        self._apply_message_data(message, call.json or {}, call.files)
        message["edited_timestamp"] = _now_iso()
        return _json_response(message)

    async def _get_webhook_message(
        self, call: Call, app_id: str, token: str, message_id: str
    ) -> web.Response:
        message = self._webhook_message(token, message_id)
        return message if isinstance(message, web.Response) else _json_response(message)

    async def _delete_webhook_message(
        self, call: Call, app_id: str, token: str, message_id: str
    ) -> web.Response:
        message = self._webhook_message(token, message_id)
        if isinstance(message, web.Response):
            return message
        message["deleted"] = True
        return web.Response(status=204)

    def _live_channel(self, channel_id: str) -> dict[str, Any] | web.Response:
        """The channel, or Discord's 404 for one that does not exist (or was deleted)."""
        channel = self.channels.get(int(channel_id))
        if channel is None or channel.get("deleted"):
            return _json_response({"message": "Unknown Channel", "code": 10003}, 404)
        return channel

    async def _get_channel(self, call: Call, channel_id: str) -> web.Response:
        denied = self._check_bot(call)
        if denied:
            return denied
        channel = self._live_channel(channel_id)
        if isinstance(channel, web.Response):
            return channel
        return _json_response(channel)

    async def _post_message(self, call: Call, channel_id: str) -> web.Response:
        denied = self._check_bot(call)
        if denied:
            return denied
        channel = self._live_channel(channel_id)
        if isinstance(channel, web.Response):
            return channel
        if channel["type"] == 1 and int(channel["recipients"][0]["id"]) in self.dms_closed:
            body = {"message": "Cannot send messages to this user", "code": 50007}
            return _json_response(body, 403)
        data = call.json or {}
        message = self._message_payload(int(channel_id), data.get("content") or "")
        self._apply_message_data(message, data, call.files)
        self.messages[int(message["id"])] = message
        self.message_auth[int(message["id"])] = call.authorization
        return _json_response(message)

    async def _edit_message(self, call: Call, channel_id: str, message_id: str) -> web.Response:
        denied = self._check_bot(call)
        if denied:
            return denied
        message = self.messages.get(int(message_id))
        if message is None or message["channel_id"] != channel_id:
            return _json_response({"message": "Unknown Message", "code": 10008}, 404)
        self._apply_message_data(message, call.json or {}, call.files)
        message["edited_timestamp"] = _now_iso()
        return _json_response(message)

    async def _get_message(self, call: Call, channel_id: str, message_id: str) -> web.Response:
        message = self.messages.get(int(message_id))
        if message is None or message["channel_id"] != channel_id:
            return _json_response({"message": "Unknown Message", "code": 10008}, 404)
        return self._check_bot(call) or _json_response(message)

    async def _delete_message(self, call: Call, channel_id: str, message_id: str) -> web.Response:
        denied = self._check_bot(call)
        if denied:
            return denied
        message = self.messages.get(int(message_id))
        if message is None or message.get("deleted") or message["channel_id"] != channel_id:
            return _json_response({"message": "Unknown Message", "code": 10008}, 404)
        if int(message["author"]["id"]) != self.bot_id:
            # Someone else's message: never in a DM, elsewhere with Manage Messages.
            if self.channels[int(channel_id)]["type"] == 1:
                body = {"message": "Cannot execute action on a DM channel", "code": 50003}
                return _json_response(body, 403)
            if not self.permissions_in(int(channel_id)) & MANAGE_MESSAGES:
                return _json_response(dict(MISSING_PERMISSIONS), 403)
        message["deleted"] = True
        return web.Response(status=204)

    async def _list_messages(self, call: Call, channel_id: str) -> web.Response:
        denied = self._check_bot(call)
        if denied:
            return denied
        channel = self._live_channel(channel_id)
        if isinstance(channel, web.Response):
            return channel
        limit = min(100, int(call.query.get("limit", 50)))
        before = int(call.query.get("before", 0)) or None
        found = [
            m
            for m in self.live_messages(int(channel_id))
            if not int(m.get("flags", 0) or 0) & 64  # ephemeral replies are nobody's history
            and (before is None or int(m["id"]) < before)
        ]
        found.sort(key=lambda m: -int(m["id"]))  # newest first, as Discord pages them
        return _json_response(found[:limit])

    async def _delete_channel(self, call: Call, channel_id: str) -> web.Response:
        denied = self._check_bot(call)
        if denied:
            return denied
        channel = self._live_channel(channel_id)
        if isinstance(channel, web.Response):
            return channel
        if channel["type"] not in (PUBLIC_THREAD, PRIVATE_THREAD):
            return _json_response(dict(MISSING_PERMISSIONS), 403)  # the bot deletes threads only
        if not self.permissions_in(int(channel_id)) & MANAGE_THREADS:
            return _json_response(dict(MISSING_PERMISSIONS), 403)
        channel["deleted"] = True
        for message in self.channel_messages(int(channel_id)):
            message["deleted"] = True
        return _json_response(channel)

    def _new_thread(self, parent_id: int, body: dict[str, Any], thread_type: int) -> dict[str, Any]:
        parent = self.channels[parent_id]
        thread = {
            "id": str(self.next_id()),
            "type": thread_type,
            "guild_id": parent.get("guild_id"),
            "parent_id": str(parent_id),
            "owner_id": str(self.bot_id),
            "name": body.get("name", "thread"),
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "member_ids": [str(self.bot_id)],
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": int(body.get("auto_archive_duration") or 1440),
                "archive_timestamp": _now_iso(),
                "locked": False,
                "invitable": bool(body.get("invitable", True)),
            },
        }
        self.channels[int(thread["id"])] = thread
        return thread

    async def _create_thread(self, call: Call, channel_id: str) -> web.Response:
        denied = self._check_bot(call)
        if denied:
            return denied
        if int(channel_id) not in self.channels:
            return _json_response({"message": "Unknown Channel", "code": 10003}, 404)
        body = call.json or {}
        kind = int(body.get("type") or PRIVATE_THREAD)
        needed = CREATE_PRIVATE_THREADS if kind == PRIVATE_THREAD else CREATE_PUBLIC_THREADS
        if not self.permissions_in(int(channel_id)) & needed:
            return _json_response(dict(MISSING_PERMISSIONS), 403)
        return _json_response(self._new_thread(int(channel_id), body, kind), 201)

    async def _create_thread_from_message(
        self, call: Call, channel_id: str, message_id: str
    ) -> web.Response:
        denied = self._check_bot(call)
        if denied:
            return denied
        if int(message_id) not in self.messages:
            return _json_response({"message": "Unknown Message", "code": 10008}, 404)
        thread = self._new_thread(int(channel_id), call.json or {}, 11)
        thread["id"] = message_id  # Discord gives a message's thread the message's id
        self.channels[int(message_id)] = thread
        return _json_response(thread, 201)

    async def _add_thread_member(self, call: Call, channel_id: str, user_id: str) -> web.Response:
        denied = self._check_bot(call)
        if denied:
            return denied
        thread = self._live_channel(channel_id)
        if isinstance(thread, web.Response):
            return thread
        if user_id not in thread["member_ids"]:
            thread["member_ids"].append(user_id)
            thread["member_count"] = len(thread["member_ids"])
        return web.Response(status=204)

    async def _open_dm(self, call: Call) -> web.Response:
        denied = self._check_bot(call)
        if denied:
            return denied
        user = self.users.get(int((call.json or {}).get("recipient_id", 0)))
        if user is None:
            return _json_response({"message": "Unknown User", "code": 10013}, 404)
        for channel in self.channels.values():
            if channel["type"] == 1 and channel["recipients"][0]["id"] == user["id"]:
                return _json_response(channel)
        return _json_response(self.add_dm_channel(user))

    async def _get_member(self, call: Call, guild_id: str, user_id: str) -> web.Response:
        denied = self._check_bot(call)
        if denied:
            return denied
        user = self.users.get(int(user_id))
        if user is None:
            return _json_response({"message": "Unknown Member", "code": 10007}, 404)
        return _json_response(
            {
                "user": user,
                "roles": [],
                "joined_at": _now_iso(),
                "deaf": False,
                "mute": False,
                "flags": 0,
            }
        )
