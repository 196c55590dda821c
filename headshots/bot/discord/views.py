"""Buttons, select menus and the custom-description modal of a session, and the result buttons.

Every component is a :class:`discord.ui.DynamicItem` with a stable ``custom_id`` that carries
what the click is about (``hsd:<op>:<owner id>:<session id>``, or the worker's ``hs:...`` result
actions), registered once in ``setup_hook``. Views are ``timeout=None`` and hold no state: a
click rebuilds everything from Redis, so buttons keep working after the bot restarts.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, cast

import discord

from headshots.actions import Action, decode_action
from headshots.bot.discord import modals
from headshots.bot.discord.session import Session
from headshots.bot.labels import CLASS_LABELS
from headshots.bot.labels import COLOUR_GRADE_LABELS as GRADE_LABELS
from headshots.generation.presets import COLOUR_GRADES, Preset, load_presets

if TYPE_CHECKING:
    from headshots.bot.discord.client import HeadshotsClient
    from headshots.bot.discord.flow import Flow

logger = logging.getLogger(__name__)

BUTTON_OPS = "consent|decline|more|back|custom|next|confirm|change|cancel|forget|keep"
SELECT_OPS = "preset|class|bg|attire|grade|count|aspect"
_SESSION = r":(?P<owner>[0-9]+):(?P<session>[0-9a-z]+)"
DEFAULT = "-"
COUNTS = (4, 8, 12, 16, 20, 24, 32, 40)
ASPECTS = ("1:1", "4:5", "2:3")


def flow_of(interaction: discord.Interaction) -> Flow:
    return cast("HeadshotsClient", interaction.client).flow


def session_custom_id(op: str, owner_id: int, session_id: str) -> str:
    return f"hsd:{op}:{owner_id}:{session_id}"


class SessionButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=rf"hsd:(?P<op>{BUTTON_OPS}){_SESSION}",
):
    """A button of a session: consent, paging, custom description, confirm, cancel, delete."""

    def __init__(
        self,
        op: str,
        owner_id: int,
        session_id: str,
        *,
        label: str = "",
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
        row: int | None = None,
    ) -> None:
        super().__init__(
            discord.ui.Button(
                label=label,
                style=style,
                row=row,
                custom_id=session_custom_id(op, owner_id, session_id),
            )
        )
        self.op = op
        self.owner_id = owner_id
        self.session_id = session_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> SessionButton:
        return cls(match["op"], int(match["owner"]), match["session"])

    async def callback(self, interaction: discord.Interaction) -> None:
        """Handle a session button press."""
        await flow_of(interaction).guarded(
            interaction,
            flow_of(interaction).session_button(
                interaction, self.op, self.owner_id, self.session_id
            ),
        )


class SessionSelect(
    discord.ui.DynamicItem[discord.ui.Select[Any]],
    template=rf"hsd:(?P<op>{SELECT_OPS}){_SESSION}",
):
    """A select menu of the style form (preset, class, background, attire, grade, count, aspect)."""

    def __init__(
        self,
        op: str,
        owner_id: int,
        session_id: str,
        *,
        options: list[discord.SelectOption] | None = None,
        placeholder: str | None = None,
        row: int | None = None,
    ) -> None:
        super().__init__(
            discord.ui.Select(
                custom_id=session_custom_id(op, owner_id, session_id),
                options=options or [discord.SelectOption(label="-")],
                placeholder=placeholder,
                row=row,
            )
        )
        self.op = op
        self.owner_id = owner_id
        self.session_id = session_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> SessionSelect:
        return cls(match["op"], int(match["owner"]), match["session"])

    async def callback(self, interaction: discord.Interaction) -> None:
        """Apply a style choice."""
        data = cast(dict[str, Any], interaction.data or {})
        values = [str(v) for v in data.get("values", [])]
        flow = flow_of(interaction)
        await flow.guarded(
            interaction,
            flow.session_select(interaction, self.op, self.owner_id, self.session_id, values),
        )


class ResultButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"hs:(?P<code>ns|ml|og|dl|pk):(?P<job>[0-9a-zA-Z_-]+)(?::(?P<rank>[0-9]+))?",
):
    """The worker's buttons under results ("New style", "More like #N", originals, delete,
    and a team member's "Pick #N for the team")."""

    def __init__(self, action: Action) -> None:
        super().__init__(discord.ui.Button(label="", custom_id=action.encode()))
        self.action = action

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ResultButton:
        action = decode_action(match.string)
        if action is None:  # the template and decode_action disagree: a bug of ours
            raise ValueError(f"undecodable result action {match.string!r}")
        return cls(action)

    async def callback(self, interaction: discord.Interaction) -> None:
        """Run a result action for the job's owner."""
        flow = flow_of(interaction)
        await flow.guarded(interaction, flow.result_action(interaction, self.action))


class CustomDescriptionModal(discord.ui.Modal):
    """Free-text description of the look (sanitised again by the prompt builder).

    A form only: the submission is handled by :mod:`headshots.bot.discord.modals`.
    """

    description: discord.ui.TextInput[CustomDescriptionModal] = discord.ui.TextInput(
        custom_id=modals.DESCRIPTION,
        label="Describe the look",
        style=discord.TextStyle.paragraph,
        placeholder="e.g. warm smile, soft window light, green sweater",
        required=False,
        max_length=300,
    )

    def __init__(self, owner_id: int, session_id: str, current: str | None) -> None:
        super().__init__(
            title="Custom description",
            timeout=600,
            custom_id=session_custom_id("modal", owner_id, session_id),
        )
        self.description.default = current or ""


# --- views ----------------------------------------------------------------------------------


def consent_view(owner_id: int, session_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(
        SessionButton(
            "consent", owner_id, session_id, label="I agree", style=discord.ButtonStyle.success
        )
    )
    view.add_item(SessionButton("decline", owner_id, session_id, label="No thanks"))
    return view


def forget_view(owner_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(
        SessionButton(
            "forget", owner_id, "all", label="Delete everything", style=discord.ButtonStyle.danger
        )
    )
    view.add_item(SessionButton("keep", owner_id, "all", label="Keep my data"))
    return view


def _options(pairs: list[tuple[str, str]], current: str) -> list[discord.SelectOption]:
    return [
        discord.SelectOption(label=label[:100], value=value, default=value == current)
        for value, label in pairs
    ]


def _preset(session: Session) -> Preset:
    presets = load_presets()
    return presets.get(session.style.preset) or next(iter(presets.values()))


def _select(
    op: str,
    session: Session,
    pairs: list[tuple[str, str]],
    current: str,
    placeholder: str,
    row: int,
) -> SessionSelect:
    return SessionSelect(
        op,
        session.owner_id,
        session.session_id,
        options=_options(pairs, current),
        placeholder=placeholder,
        row=row,
    )


def _nav_buttons(view: discord.ui.View, session: Session, row: int) -> None:
    owner, sid = session.owner_id, session.session_id
    if session.page == "main":
        view.add_item(SessionButton("more", owner, sid, label="More options", row=row))
    else:
        view.add_item(SessionButton("back", owner, sid, label="Back", row=row))
    view.add_item(SessionButton("custom", owner, sid, label="Custom description", row=row))
    view.add_item(
        SessionButton(
            "next", owner, sid, label="Continue", style=discord.ButtonStyle.primary, row=row
        )
    )
    view.add_item(
        SessionButton(
            "cancel", owner, sid, label="Cancel", style=discord.ButtonStyle.danger, row=row
        )
    )


def style_view(session: Session) -> discord.ui.View:
    """The style form: page "main" (preset, class, background, attire) or "more" (the rest).

    A team member's form only asks the subject class: the team's kit fixes the rest.
    """
    view = discord.ui.View(timeout=None)
    style = session.style
    preset = _preset(session)
    if session.team_id is not None:
        owner, sid = session.owner_id, session.session_id
        view.add_item(
            _select("class", session, list(CLASS_LABELS.items()), style.subject_class, "Subject", 0)
        )
        view.add_item(
            SessionButton(
                "next", owner, sid, label="Continue", style=discord.ButtonStyle.primary, row=1
            )
        )
        view.add_item(
            SessionButton(
                "cancel", owner, sid, label="Cancel", style=discord.ButtonStyle.danger, row=1
            )
        )
        return view
    if session.page == "main":
        presets = load_presets()
        view.add_item(
            _select(
                "preset",
                session,
                [(n, p.title) for n, p in presets.items()],
                style.preset,
                "Style",
                0,
            )
        )
        view.add_item(
            _select("class", session, list(CLASS_LABELS.items()), style.subject_class, "Subject", 1)
        )
        backgrounds = [(DEFAULT, "Background: style default")] + [
            (k, k.replace("_", " ").capitalize()) for k in preset.backgrounds
        ]
        view.add_item(
            _select("bg", session, backgrounds, style.background or DEFAULT, "Background", 2)
        )
        attire = [(DEFAULT, "Attire: style default")] + [
            (k, k.replace("_", " ").capitalize()) for k in preset.attire
        ]
        view.add_item(_select("attire", session, attire, style.attire or DEFAULT, "Attire", 3))
        _nav_buttons(view, session, 4)
    else:
        grades = [(DEFAULT, f"Colour: style default ({GRADE_LABELS[preset.colour_grade]})")] + [
            (g, GRADE_LABELS.get(g, g)) for g in COLOUR_GRADES
        ]
        view.add_item(
            _select("grade", session, grades, style.colour_grade or DEFAULT, "Colour grade", 0)
        )
        view.add_item(
            _select(
                "count",
                session,
                [(str(c), f"{c} headshots") for c in COUNTS],
                str(style.count),
                "How many",
                1,
            )
        )
        aspects = [(DEFAULT, f"Shape: style default ({preset.aspect_ratio})")] + [
            (a, a) for a in ASPECTS
        ]
        view.add_item(
            _select("aspect", session, aspects, style.aspect_ratio or DEFAULT, "Shape", 2)
        )
        _nav_buttons(view, session, 3)
    return view


def style_text(session: Session) -> str:
    style = session.style
    preset = _preset(session)
    if session.team_id is not None:
        return "\n".join(
            [
                "**Your team headshot**: choose man, woman or person below",
                f"Subject: {CLASS_LABELS[style.subject_class]}",
                f"Team look: {session.team_look or 'set by your admin'}",
            ]
        )
    heading = (
        "**New style** for your trained model"
        if session.mode == "new_style"
        else "**Choose your style**"
    )
    lines = [
        heading + (" (more options)" if session.page == "more" else ""),
        f"Style: {preset.title} · Subject: {CLASS_LABELS[style.subject_class]}",
        f"Background: {style.background or 'style default'} · "
        f"Attire: {style.attire or 'style default'}",
        f"Colour: {GRADE_LABELS.get(style.colour_grade or '', 'style default')} · "
        f"Headshots: {style.count} · Shape: {style.aspect_ratio or preset.aspect_ratio}",
        f"Custom description: {style.custom or '-'}",
    ]
    return "\n".join(lines)


def summary_view(session: Session) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    owner, sid = session.owner_id, session.session_id
    view.add_item(
        SessionButton("confirm", owner, sid, label="Confirm", style=discord.ButtonStyle.success)
    )
    view.add_item(SessionButton("change", owner, sid, label="Change"))
    view.add_item(
        SessionButton("cancel", owner, sid, label="Cancel", style=discord.ButtonStyle.danger)
    )
    return view


def summary_text(session: Session, photos_line: str) -> str:
    return (
        "**Summary**\n"
        + photos_line
        + "\n"
        + "\n".join(style_text(session).splitlines()[1:])
        + (
            "\n\nConfirm to start. Training and generating take a while: "
            "I'll post progress and results here."
        )
    )
