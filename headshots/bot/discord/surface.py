"""The core's screens as Discord messages: selects, buttons, modals, ephemeral replies, limits.

Every component is one of two :class:`discord.ui.DynamicItem` classes with a stable
``custom_id`` that carries what a click is about, registered once in ``setup_hook``; views are
``timeout=None`` and hold no state, so a click after a restart is rebuilt from Redis:

- ``hsd:<op>:<owner id>:<session id>``      a person's session (consent, the style form...)
- ``hsdk:<op>:<admin id>:<guild id>``       an admin's team-look editor (ephemeral)
- ``hsdt:join:<guild id>``, ``hsdt:ok|redo:<member id>:<job id>:<rank>``,
  ``hsdt:delete|keep:<admin id>:<guild id>``   team buttons
- ``hs:...``                                 the worker's result buttons (:mod:`headshots.actions`)

Modals are only forms: their submissions are routed by ``custom_id`` from ``on_interaction``
(a :class:`discord.ui.Modal` object lives in one process's memory and would not survive a
restart). Interaction tokens live 15 minutes: what lasts is posted with the bot token.
"""

from __future__ import annotations

import io
import re
from typing import Any, Protocol, cast

import discord

from headshots.bot.conversation.kit import GROUPS
from headshots.bot.conversation.screens import Button, Screen
from headshots.queue.chat_log import ChatCleanup, ChatLog, Posted
from headshots.queue.contracts import ChatTarget, Platform, UserRef

MAX_MESSAGE = 2000
MAX_FILES = 10
#: Discord's default upload limit (less room for the multipart envelope).
UPLOAD_BYTES = 10 * 1024 * 1024 - 64 * 1024
#: Core step -> the op of its select (the ids the first Discord front end used).
STYLE_OPS = dict(
    pair.split("=")
    for pair in "preset=preset subject_class=class background=bg attire=attire colour_grade=grade "
    "count=count aspect_ratio=aspect eye_colour=eye glasses=glasses hair_colour=hair "
    "hair_length=length".split()
)
KIT_OPS = {step: STYLE_OPS.get(step, step) for group in GROUPS for step in group} | {
    "placement": "logo",
    # Apart from the person's own "reference"/"refhint" buttons.
    "reference": "kitref",
    "hint": "kithint",
}
OP_STEPS = {
    "hsd": {op: step for step, op in STYLE_OPS.items()},
    "hsdk": {op: step for step, op in KIT_OPS.items()},
}
#: (core action, value) -> op of the person's own buttons.
BUTTON_OPS = {("consent", "y"): "consent", ("consent", "n"): "decline"}
BUTTON_OPS |= {("forget", "y"): "forget", ("forget", "n"): "keep"}
TONES = {
    tone: getattr(discord.ButtonStyle, tone)
    for tone in ("primary", "success", "danger", "secondary")
}
#: ``Interaction.extras`` flag: the deferred reply of a command still waits for its content.
_ORIGINAL_EMPTY = "headshots_original_empty"
#: ``custom_id`` of the text inputs (explicit, so a payload can be read without the object).
DESCRIPTION, TEAM_NAME, FIRST_COLOUR, SECOND_COLOUR = "description", "name", "first", "second"
_COMMAND = re.compile(
    r"(?<![\w/`<])/(team(?: (?:setup|show|join|status|export|delete))?"
    r"|start|add|cancel|delete|status|tips|styles|privacy|help)\b"
)


def for_discord(text: str, limit: int = MAX_MESSAGE) -> str:
    """The core's text with Discord's command names (``/cancel`` -> ``/headshot cancel``)."""
    text = _COMMAND.sub(lambda m: f"`/headshot {m[1]}`", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Components(Protocol):
    """What the client answers clicks and selects with (see :class:`HeadshotsClient`)."""

    async def on_component(
        self, interaction: discord.Interaction, custom_id: str, values: list[str]
    ) -> None: ...


class _Clicked:
    async def callback(self, interaction: discord.Interaction) -> None:
        """Hand the click or choice to the client."""
        data = cast(dict[str, Any], interaction.data or {})
        values = [str(v) for v in data.get("values", [])]
        item = getattr(self, "item")  # noqa: B009 (the DynamicItem's wrapped component)
        client = cast(Components, interaction.client)
        await client.on_component(interaction, str(item.custom_id), values)


_SELECT_OPS = "|".join(sorted({*STYLE_OPS.values(), *KIT_OPS.values()}))
_BUTTON_OPS = "consent|decline|more|back|look|you|hairstyle|custom|next|confirm|change|cancel"
_BUTTON_OPS += "|forget|keep|quick|name|colours|save|reference|refoff|refhint|refback"


class ButtonItem(
    _Clicked,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=rf"(?P<id>(hs|hsdt):.+|hsdk?:({_BUTTON_OPS}):.+)",
):
    def __init__(self, custom_id: str, label: str = "-", style: Any = None, row: int = 0) -> None:
        button: discord.ui.Button[Any] = discord.ui.Button(
            label=label[:80], custom_id=custom_id, style=style or discord.ButtonStyle.secondary,
            row=row,
        )  # fmt: skip
        super().__init__(button)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ButtonItem:
        return cls(match["id"])


class SelectItem(
    _Clicked,
    discord.ui.DynamicItem[discord.ui.Select[Any]],
    template=rf"(?P<id>hsdk?:({_SELECT_OPS}):.+)",
):
    def __init__(
        self,
        custom_id: str,
        options: list[discord.SelectOption] | None = None,
        placeholder: str | None = None,
        row: int = 0,
    ) -> None:
        select: discord.ui.Select[Any] = discord.ui.Select(
            custom_id=custom_id, options=options or [discord.SelectOption(label="-")],
            placeholder=placeholder, row=row,
        )  # fmt: skip
        super().__init__(select)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> SelectItem:
        return cls(match["id"])


def _button_id(button: Button, owner: str, session: str, guild: int | None, kit: bool) -> str:
    if button.action == "join":
        return f"hsdt:join:{button.value.removeprefix('dc')}"
    if button.action == "review":
        return "hsdt:" + button.value
    if button.action == "team_delete":
        return f"hsdt:{'delete' if button.value == 'y' else 'keep'}:{owner}:{guild}"
    op = button.value if button.action == "page" else button.action
    op = BUTTON_OPS.get((button.action, button.value), op)
    if kit:
        return f"hsdk:{op}:{owner}:{guild}"
    return f"hsd:{op}:{owner}:{'all' if button.action == 'forget' else session}"


def view(
    screen: Screen, owner_id: int, session_id: str, guild_id: int | None, *, kit: bool
) -> discord.ui.View | None:
    """Selects (one row each, at most 25 options) and a row of buttons."""
    if not screen.questions and not screen.buttons:
        return None
    found = discord.ui.View(timeout=None)
    owner = str(owner_id)
    for row, question in enumerate(screen.questions):
        prefix, ops = ("hsdk", KIT_OPS) if question.kind == "kit" else ("hsd", STYLE_OPS)
        tail = guild_id if question.kind == "kit" else session_id
        options = [
            discord.SelectOption(
                label=o.label[:100], value=o.value, default=o.value == question.current
            )
            for o in question.options[:25]
        ]
        custom_id = f"{prefix}:{ops[question.step]}:{owner}:{tail}"
        found.add_item(SelectItem(custom_id, options, question.text[:150], row))
    row = len(screen.questions)
    for button in screen.buttons:
        if button.action in ("kit_change", "done", "resume"):
            continue  # nothing to press on Discord (admins run the setup command again)
        custom_id = _button_id(button, owner, session_id, guild_id, kit)
        found.add_item(ButtonItem(custom_id, button.label, TONES[button.tone], row))
    return found


def form(title: str, custom_id: str, *fields: tuple[str, str, str, str]) -> discord.ui.Modal:
    """A modal that is only a form (its submission is routed by ``custom_id``); ``fields``:
    (input id, label, placeholder, current value)."""
    modal: discord.ui.Modal = discord.ui.Modal(title=title, timeout=600, custom_id=custom_id)
    for input_id, label, placeholder, current in fields:
        long = input_id == DESCRIPTION
        modal.add_item(
            discord.ui.TextInput(
                custom_id=input_id, label=label, placeholder=placeholder, default=current,
                required=input_id in (TEAM_NAME, FIRST_COLOUR), max_length=300 if long else 80,
                style=discord.TextStyle.paragraph if long else discord.TextStyle.short,
            )
        )  # fmt: skip
    return modal


def submitted_values(data: dict[str, Any]) -> dict[str, str]:
    """Text input ``custom_id`` -> value, from action rows or labels (Discord sends either)."""
    values: dict[str, str] = {}
    pending = list(data.get("components", []))
    while pending:
        component = pending.pop()
        if not isinstance(component, dict):
            continue
        if "value" in component and "custom_id" in component:
            values[str(component["custom_id"])] = str(component["value"] or "")
        pending.extend(component.get("components", []))
        if isinstance(component.get("component"), dict):
            pending.append(component["component"])
    return values


class DiscordSurface:
    """A thread, DM or channel; with an interaction, also its private replies and edits."""

    platform: Platform = "discord"
    form = True
    replies_only = False

    def __init__(
        self,
        client: discord.Client,
        channel_id: int,
        *,
        guild_id: int | None = None,
        owner_id: int = 0,
        session_id: str = "",
        interaction: discord.Interaction | None = None,
        kit: bool = False,
    ) -> None:
        self.client = client
        self.channel_id = channel_id
        self.guild_id = guild_id
        self.owner_id = owner_id
        self.session_id = session_id
        self.interaction = interaction
        self.kit = kit

    @property
    def photos_by_command(self) -> bool:
        """Without the Message Content intent, a server's messages reach the bot with no
        attachments (DMs always carry theirs): selfies come attached to ``/headshot add``."""
        return self.guild_id is not None and not self.client.intents.message_content

    def _channel(self) -> discord.PartialMessageable:
        return self.client.get_partial_messageable(self.channel_id, guild_id=self.guild_id)

    async def show(
        self, screen: Screen, *, message_id: int | None = None, reply_to: int | None = None
    ) -> int:
        content = for_discord(screen.text)
        items = view(screen, self.owner_id, self.session_id, self.guild_id, kit=self.kit)
        shown = items or discord.utils.MISSING
        files = [discord.File(io.BytesIO(screen.image), screen.image_name)] if screen.image else []
        interaction = self.interaction
        if message_id is not None:
            own = interaction is not None and interaction.message is not None
            if own and interaction is not None and interaction.message.id == message_id:  # type: ignore[union-attr]
                if not interaction.response.is_done():
                    await interaction.response.edit_message(content=content, view=items)
                else:
                    await interaction.edit_original_response(content=content, view=items)
                return message_id
            message = self._channel().get_partial_message(message_id)
            await message.edit(content=content, view=items)
            return message_id
        if screen.private and interaction is not None:
            if not interaction.response.is_done():
                await interaction.response.send_message(
                    content, view=shown, files=files, ephemeral=True
                )
                return (await interaction.original_response()).id
            if interaction.extras.pop(_ORIGINAL_EMPTY, False):
                filled = await interaction.edit_original_response(
                    content=content, view=items, attachments=files
                )
                return filled.id
            sent = await interaction.followup.send(
                content, view=shown, files=files, ephemeral=True, wait=True
            )
            return sent.id
        posted = await self._channel().send(
            content, view=shown, files=files, allowed_mentions=discord.AllowedMentions.none()
        )
        return posted.id

    async def answer(self, text: str, *, alert: bool = False) -> None:
        interaction = self.interaction
        if interaction is None:
            await self._channel().send(for_discord(text))
        elif not interaction.response.is_done():
            await interaction.response.send_message(for_discord(text), ephemeral=True)
        elif interaction.extras.pop(_ORIGINAL_EMPTY, False):
            await interaction.edit_original_response(content=for_discord(text), view=None)
        else:
            await interaction.followup.send(for_discord(text), ephemeral=True)

    async def send_files(self, files: list[tuple[str, bytes]], text: str) -> None:
        """Files in messages of at most 10, each under the upload limit."""
        batch: list[tuple[str, bytes]] = []
        for name, data in [*files, ("", b"")]:
            if batch and (
                not name
                or len(batch) == MAX_FILES
                or sum(len(d) for _, d in batch) + len(data) > UPLOAD_BYTES
            ):
                out = [discord.File(io.BytesIO(d), filename=n) for n, d in batch]
                await self._channel().send(content=for_discord(text), files=out)
                batch = []
            if name:
                batch.append((name, data))

    async def acknowledge(self) -> None:
        """Give Discord its initial response now: it refuses one later than 3 s (10062).

        The work then waits for what it needs (a session held by a photo check) and finishes
        with edits and followups, which the interaction's token allows for 15 minutes. A
        command gets a private "thinking" reply that its first answer fills (Discord's pattern
        for the first message after a defer: edit the original response, not a followup); a
        button, select or form gets a deferred update of its message.
        """
        interaction = self.interaction
        if interaction is None or interaction.response.is_done():
            return
        if interaction.type is discord.InteractionType.application_command:
            await interaction.response.defer(ephemeral=True, thinking=True)
            interaction.extras[_ORIGINAL_EMPTY] = True
        else:
            await interaction.response.defer()

    async def working(self) -> None:
        await self.acknowledge()

    async def reply_in_place(self, text: str) -> None:
        """Replace the original response (the consent question, the "thinking" reply)."""
        if self.interaction is not None:
            self.interaction.extras.pop(_ORIGINAL_EMPTY, None)
            await self.interaction.edit_original_response(content=for_discord(text), view=None)

    async def finish(self) -> None:
        """Acknowledge the interaction if nothing answered it; no "thinking" reply is left."""
        interaction = self.interaction
        if interaction is None:
            return
        if not interaction.response.is_done():
            await interaction.response.defer()
        elif interaction.extras.pop(_ORIGINAL_EMPTY, False):
            await interaction.delete_original_response()


class DiscordFront:
    """Discord for the core: a surface for any target, downloads from the CDN."""

    def __init__(self, client: discord.Client) -> None:
        self.client = client

    def surface(
        self, target: ChatTarget, *, owner_id: int = 0, session_id: str = ""
    ) -> DiscordSurface:
        return DiscordSurface(
            self.client,
            target.thread_id or target.chat_id,
            owner_id=owner_id or target.user_id,
            session_id=session_id,
        )

    async def download(self, url: str) -> bytes:
        return await self.client.http.get_from_cdn(url)

    async def clear_chats(
        self,
        user: UserRef,
        posted: list[Posted],
        log: ChatLog,
        *,
        keep: int | None,
        delivered: list[ChatTarget],
    ) -> ChatCleanup:
        """The person's session threads go whole, the bot's messages in DMs one by one (the
        report is an ephemeral reply, so nothing in a channel needs keeping)."""
        from headshots.bot.discord.cleanup import clear_chats

        return await clear_chats(self.client, user, posted, log, delivered=delivered)
