"""The core's screens as Slack messages: Block Kit sections, selects, buttons, modals.

Every interactive element's ``action_id`` says what a click is about, so a click after a
restart is answered from Redis alone (nothing is kept in memory):

- ``hss:<action>:<owner>:<session>#<n>``   a person's session (consent, the style form...)
- ``hss:set.<step>:<owner>:<session>``     a select of the style form
- ``hssk:...:<admin>:<team>``              an admin's team-look editor (in their DM)
- ``hsst:<action>:<team>#<n>``             team buttons (join, review, delete); the value
  carries the core's ``Button.value``
- ``hs:...``                                the worker's result buttons (:mod:`headshots.actions`)

The ``#<n>`` suffix keeps two buttons of one action (Back and More) apart: Slack wants
``action_id`` unique within a block. A button's ``value`` is the core's ``Button.value``.
A person's screens live in their DM with the app: a private screen asked for in a channel goes
there too (Slack cannot edit an ephemeral message by API, and the core edits its menus).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx
from slack_sdk.web.async_client import AsyncWebClient

from headshots.bot.conversation import texts
from headshots.bot.conversation.screens import Button, Screen
from headshots.errors import UserError
from headshots.queue.chat_log import ChatCleanup, ChatLog, Posted
from headshots.queue.contracts import ChatTarget, Platform, UserRef
from headshots.queue.delivery.slack import MAX_FILES, MAX_TEXT, slack_id, ts_number, ts_of

logger = logging.getLogger(__name__)

#: Buttons the core offers that Slack shows no way to press (as on Discord): the upload's
#: "Done" (the form's Continue finishes it) and "Change look" (admins run the command again).
SKIPPED = ("done", "kit_change")
TONES = {"primary": "primary", "success": "primary", "danger": "danger"}
MAX_OPTIONS = 100
#: Where the core writes ``/start``, Slack has one command: ``/headshots start``.
_COMMAND = re.compile(
    r"(?<![\w/`<])/(team(?: (?:setup|show|join|status|export|delete))?"
    r"|start|add|cancel|delete|status|tips|styles|privacy|help)\b"
)
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def for_slack(text: str, limit: int = MAX_TEXT) -> str:
    """The core's Markdown as Slack mrkdwn, with Slack's command names."""
    text = _BOLD.sub(r"*\1*", _COMMAND.sub(lambda m: f"`/headshots {m[1]}`", text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_dm(channel: str) -> bool:
    return channel.startswith("D")


def split_action(action_id: str) -> tuple[str, str, str, str]:
    """``(prefix, action, owner, tail)`` of one of our ``action_id``/``callback_id`` values."""
    prefix, _, rest = action_id.partition("#")[0].partition(":")
    action, _, rest = rest.partition(":")
    owner, _, tail = rest.partition(":")
    return prefix, action, owner, tail


def _text(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:75] or "-", "emoji": True}


def blocks(screen: Screen, owner: str, session: str, team: str, *, kit: bool) -> list[Any]:
    """A section with the text, a select per question, a row of buttons."""
    found: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": for_slack(screen.text) or " "}}
    ]
    for question in screen.questions:
        prefix, tail = ("hssk", team) if question.kind == "kit" else ("hss", session)
        options = [
            {"text": _text(o.label), "value": o.value} for o in question.options[:MAX_OPTIONS]
        ]
        select: dict[str, Any] = {
            "type": "static_select", "action_id": f"{prefix}:set.{question.step}:{owner}:{tail}",
            "placeholder": _text(question.text.splitlines()[-1][:150]), "options": options,
        }  # fmt: skip
        chosen = [o for o in options if o["value"] == question.current]
        if chosen:
            select["initial_option"] = chosen[0]
        found.append({"type": "section", "text": {"type": "mrkdwn", "text": question.text[:150]},
                      "accessory": select})  # fmt: skip
    elements = []
    for n, button in enumerate(b for b in screen.buttons if b.action not in SKIPPED):
        element = {"type": "button", "action_id": button_id(button, owner, session, team, kit, n),
                   "text": _text(button.label), "value": button.value or "-"}  # fmt: skip
        if button.tone in TONES:
            element["style"] = TONES[button.tone]
        elements.append(element)
    if elements:
        found.append({"type": "actions", "elements": elements[:25]})
    return found


def button_id(button: Button, owner: str, session: str, team: str, kit: bool, n: int) -> str:
    if button.action in ("join", "review", "team_delete"):
        return f"hsst:{button.action}:{owner}:{team}#{n}"
    if kit:
        return f"hssk:{button.action}:{owner}:{team}#{n}"
    return f"hss:{button.action}:{owner}:{session}#{n}"


def modal(title: str, callback_id: str, *fields: tuple[str, str, str, str]) -> dict[str, Any]:
    """A form; ``fields``: (input id, label, placeholder, current value)."""
    inputs = []
    for input_id, label, placeholder, current in fields:
        element: dict[str, Any] = {"type": "plain_text_input", "action_id": input_id}
        element |= {"multiline": input_id == "description", "max_length": 300}
        element["placeholder"] = _text(placeholder)
        if current:
            element["initial_value"] = current
        optional = input_id in ("description", "second")
        block = {"type": "input", "block_id": input_id, "label": _text(label), "element": element}
        inputs.append({**block, "optional": optional})
    return {"type": "modal", "callback_id": callback_id, "title": _text(title[:24]),
            "submit": _text("Save"), "close": _text("Cancel"), "blocks": inputs}  # fmt: skip


def submitted_values(view: dict[str, Any]) -> dict[str, str]:
    """Input id -> typed text of a submitted modal (``view.state.values``)."""
    values: dict[str, str] = {}
    for block_id, inputs in ((view.get("state") or {}).get("values") or {}).items():
        for state in inputs.values():
            values[block_id] = str(state.get("value") or "")
    return values


class SlackSurface:
    """A DM or channel; ``user`` is who acted (private answers in a channel go to them)."""

    platform: Platform = "slack"
    form = True
    replies_only = False
    photos_by_command = False

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        *,
        owner: str = "",
        session_id: str = "",
        team: str = "",
        kit: bool = False,
    ) -> None:
        self.client, self.channel, self.owner = client, channel, owner
        self.session_id, self.team, self.kit = session_id, team, kit

    async def _private_channel(self) -> str:
        if is_dm(self.channel) or not self.owner:
            return self.channel
        opened = await self.client.conversations_open(users=self.owner)
        return str(opened["channel"]["id"])

    async def show(
        self, screen: Screen, *, message_id: int | None = None, reply_to: int | None = None
    ) -> int:
        text = for_slack(screen.text)
        shown = blocks(screen, self.owner, self.session_id, self.team, kit=self.kit)
        if message_id is not None:
            await self.client.chat_update(
                channel=self.channel, ts=ts_of(message_id), text=text, blocks=shown
            )
            return message_id
        channel = await self._private_channel() if screen.private else self.channel
        if screen.image:
            # A shared file carries no buttons: the picture, then its caption and buttons.
            await self.client.files_upload_v2(
                channel=channel, file=screen.image, filename=screen.image_name,
                title=screen.image_name,
            )  # fmt: skip
        posted = await self.client.chat_postMessage(channel=channel, text=text, blocks=shown)
        return ts_number(str(posted["ts"]))

    async def answer(self, text: str, *, alert: bool = False) -> None:
        """A reply only the person sees ("Only visible to you"), in a DM as in a channel."""
        if not self.owner:
            await self.client.chat_postMessage(channel=self.channel, text=for_slack(text))
            return
        await self.client.chat_postEphemeral(
            channel=self.channel, user=self.owner, text=for_slack(text)
        )

    async def send_files(self, files: list[tuple[str, bytes]], text: str) -> None:
        for start in range(0, len(files), MAX_FILES):
            batch = files[start : start + MAX_FILES]
            uploads = [{"file": data, "filename": name, "title": name} for name, data in batch]
            await self.client.files_upload_v2(
                channel=self.channel, file_uploads=uploads, initial_comment=for_slack(text)
            )

    async def working(self) -> None:
        """Nothing to do: every envelope is acknowledged before its work starts."""


class SlackFront:
    """Slack for the core: a surface for any target, downloads with the bot token."""

    def __init__(self, client: AsyncWebClient, token: str) -> None:
        self.client = client
        self._auth = {"Authorization": f"Bearer {token}"}
        self.http = httpx.AsyncClient(timeout=30.0, follow_redirects=True)

    def surface(
        self, target: ChatTarget, *, owner_id: int = 0, session_id: str = ""
    ) -> SlackSurface:
        owner = owner_id or target.user_id
        return SlackSurface(
            self.client, slack_id(target.chat_id), owner=slack_id(owner) if owner else "",
            session_id=session_id,
        )  # fmt: skip

    async def download(self, url: str) -> bytes:
        """A file a person shared (``url_private_download``): only with the bot token."""
        response = await self.http.get(url, headers=self._auth)
        response.raise_for_status()
        if response.headers.get("content-type", "").startswith("text/html"):
            # Slack's sign-in page: the token lacks ``files:read`` (or the URL is not Slack's).
            raise UserError(texts.DOWNLOAD_FAILED)
        return response.content

    async def clear_chats(
        self,
        user: UserRef,
        posted: list[Posted],
        log: ChatLog,
        *,
        keep: int | None,
        delivered: list[ChatTarget],
    ) -> ChatCleanup:
        from headshots.bot.slack.cleanup import clear_chats

        return await clear_chats(self.client, user, posted, log, keep=keep, delivered=delivered)

    async def close(self) -> None:
        await self.http.aclose()
