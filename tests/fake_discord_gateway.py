"""A fake Discord gateway (websocket) for :class:`tests.fake_discord.FakeDiscord`.

It speaks the part of the gateway protocol that discord.py 2.x uses: HELLO (op 10), heartbeats
(op 1, answered with op 11), IDENTIFY (op 2, answered with READY and one GUILD_CREATE per known
guild), RESUME (op 6, answered with INVALID_SESSION: the client identifies again, as after a real
session expiry). Frames go out as text: discord.py asks for ``compress=zlib-stream`` but also
accepts uncompressed text frames.

:meth:`FakeGateway.dispatch` sends an event (INTERACTION_CREATE, MESSAGE_CREATE, ...) to every
identified connection. An event sent while no bot is connected reaches nobody and is recorded in
:attr:`FakeGateway.lost_events`: real Discord does not queue interactions either (the user sees
"This interaction failed") and a message posted meanwhile is only visible through history.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from tests.fake_discord import FakeDiscord

logger = logging.getLogger(__name__)

GATEWAY_PATH = "/gateway"
#: Milliseconds between the client's heartbeats (Discord's own value).
HEARTBEAT_INTERVAL_MS = 41_250

OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_RESUME = 0, 1, 2, 6
OP_RECONNECT, OP_INVALID_SESSION, OP_HELLO, OP_HEARTBEAT_ACK = 7, 9, 10, 11
#: Close code "Authentication failed" (discord.py raises LoginFailure-like ConnectionClosed).
CLOSE_AUTH_FAILED = 4004


@dataclass
class _Connection:
    ws: web.WebSocketResponse
    number: int
    session_id: str | None = None
    sequence: int = 0
    intents: int = 0
    heartbeats: int = 0
    events: list[str] = field(default_factory=list)


class FakeGateway:
    """The websocket side of the fake; ``FakeDiscord`` routes ``GET /gateway`` here."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.guilds: dict[int, dict[str, Any]] = {}
        self.connections: list[_Connection] = []
        self.identifies = 0
        self.resumes = 0
        #: (event name, payload) of every dispatch that reached no connected bot.
        self.lost_events: list[tuple[str, dict[str, Any]]] = []
        self._numbers = itertools.count(1)
        self._sessions = itertools.count(1)

    # --- what tests use ------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{self.fake.url.replace('http://', 'ws://')}{GATEWAY_PATH}"

    def bot_gateway(self) -> dict[str, Any]:
        """The body of ``GET /gateway/bot``."""
        return {
            "url": self.url,
            "shards": 1,
            "session_start_limit": {
                "total": 1000,
                "remaining": 1000 - self.identifies,
                "reset_after": 86_400_000,
                "max_concurrency": 1,
            },
        }

    def add_guild(self, guild_id: int, name: str = "Fake server") -> dict[str, Any]:
        """A guild the bot is in: announced with GUILD_CREATE after every READY."""
        self.guilds[guild_id] = {"id": str(guild_id), "name": name}
        return self.guilds[guild_id]

    def identified(self) -> list[_Connection]:
        return [c for c in self.connections if c.session_id is not None and not c.ws.closed]

    async def wait_identified(self, count: int = 1, within: float = 30.0) -> None:
        """Until ``count`` IDENTIFYs in all have been answered and a session is open."""
        await self.fake.wait_for(
            lambda: self.identifies >= count and self.identified(),
            within=within,
            what=f"IDENTIFY #{count}",
        )

    async def dispatch(self, event: str, data: dict[str, Any]) -> bool:
        """Send ``event`` to every identified bot; False (and recorded as lost) when none is."""
        delivered = False
        for connection in self.identified():
            connection.sequence += 1
            try:
                await connection.ws.send_str(
                    json.dumps({"op": OP_DISPATCH, "t": event, "s": connection.sequence, "d": data})
                )
            except (ConnectionError, RuntimeError):
                continue  # the bot died under us: as if it had never been connected
            connection.events.append(event)
            delivered = True
        if not delivered:
            self.lost_events.append((event, data))
        return delivered

    async def interaction(self, payload: dict[str, Any]) -> bool:
        return await self.dispatch("INTERACTION_CREATE", payload)

    async def message(self, payload: dict[str, Any]) -> bool:
        return await self.dispatch("MESSAGE_CREATE", payload)

    async def drop_connections(self, code: int = 4000) -> None:
        """Close every connection from the server side (a gateway hiccup); clients reconnect."""
        for connection in list(self.connections):
            if not connection.ws.closed:
                await connection.ws.close(code=code, message=b"fake gateway drop")

    # --- server side -----------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        connection = _Connection(ws=ws, number=next(self._numbers))
        self.connections.append(connection)
        await self._send(connection, OP_HELLO, {"heartbeat_interval": HEARTBEAT_INTERVAL_MS})
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                await self._receive(connection, json.loads(message.data))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            connection.session_id = None
        return ws

    async def _send(self, connection: _Connection, op: int, data: Any) -> None:
        await connection.ws.send_str(json.dumps({"op": op, "d": data, "s": None, "t": None}))

    async def _receive(self, connection: _Connection, frame: dict[str, Any]) -> None:
        op, data = frame.get("op"), frame.get("d")
        if op == OP_HEARTBEAT:
            connection.heartbeats += 1
            # A network's worth of delay: discord.py stamps a beat as sent only after its
            # heartbeat thread hears back from the loop, so an instant ACK reads as ~41 s late.
            await asyncio.sleep(0.05)
            await self._send(connection, OP_HEARTBEAT_ACK, None)
        elif op == OP_IDENTIFY:
            await self._identify(connection, data or {})
        elif op == OP_RESUME:
            # Sessions do not outlive their connection here: "not resumable" (d=false) makes
            # discord.py start a new session with IDENTIFY, as Discord does after a long gap.
            self.resumes += 1
            await self._send(connection, OP_INVALID_SESSION, False)
        else:
            logger.debug("fake gateway ignores op %s", op)

    async def _identify(self, connection: _Connection, data: dict[str, Any]) -> None:
        if data.get("token") not in (self.fake.token, f"Bot {self.fake.token}"):
            await connection.ws.close(code=CLOSE_AUTH_FAILED, message=b"Authentication failed.")
            return
        self.identifies += 1
        connection.intents = int(data.get("intents") or 0)
        connection.session_id = f"fake-session-{next(self._sessions)}"
        ready = {
            "v": 10,
            "user": self.fake.bot_user,
            "guilds": [{"id": g["id"], "unavailable": True} for g in self.guilds.values()],
            "session_id": connection.session_id,
            "resume_gateway_url": self.url,
            "shard": [0, 1],
            "application": {"id": str(self.fake.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        connection.sequence += 1
        await connection.ws.send_str(
            json.dumps({"op": OP_DISPATCH, "t": "READY", "s": connection.sequence, "d": ready})
        )
        for guild_id in self.guilds:
            connection.sequence += 1
            await connection.ws.send_str(
                json.dumps(
                    {
                        "op": OP_DISPATCH,
                        "t": "GUILD_CREATE",
                        "s": connection.sequence,
                        "d": self._guild_payload(guild_id),
                    }
                )
            )

    def _guild_payload(self, guild_id: int) -> dict[str, Any]:
        channels = [
            c
            for c in self.fake.channels.values()
            if c.get("guild_id") == str(guild_id) and c["type"] not in (11, 12)
        ]
        threads = [
            c
            for c in self.fake.channels.values()
            if c.get("guild_id") == str(guild_id) and c["type"] in (11, 12)
        ]
        everyone = {
            "id": str(guild_id),
            "name": "@everyone",
            "permissions": str((1 << 53) - 1),
            "position": 0,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }
        return {
            **self.guilds[guild_id],
            "owner_id": str(self.fake.bot_id),
            "unavailable": False,
            "member_count": 1,
            "large": False,
            "features": [],
            "roles": [everyone],
            "emojis": [],
            "stickers": [],
            "channels": channels,
            "threads": threads,
            "members": [
                {
                    "user": self.fake.bot_user,
                    "roles": [],
                    "joined_at": "2026-01-01T00:00:00+00:00",
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                }
            ],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "verification_level": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "system_channel_flags": 0,
        }
