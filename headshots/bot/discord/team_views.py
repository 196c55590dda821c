"""Components of team mode: the admin's kit editor, the Join button, review and delete buttons.

Like the session components (:mod:`headshots.bot.discord.views`), every one is a
:class:`discord.ui.DynamicItem` with a stable ``custom_id`` that carries what the click is about,
so buttons keep working after a restart and every click rebuilds its state from Redis:

- ``hsdk:<op>:<admin id>:<guild id>``            the kit editor (ephemeral; only its admin)
- ``hsdt:join:<guild id>``                       Join, under the kit preview (anyone)
- ``hsdt:ok|redo:<member id>:<job id>:<rank>``   under a favourite (live admins only)
- ``hsdt:delete|keep:<admin id>:<guild id>``     the team deletion prompt
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal, cast

import discord
from pydantic import BaseModel

from headshots.bot.discord import modals, texts
from headshots.bot.labels import COLOUR_GRADE_LABELS as GRADE_LABELS
from headshots.generation.presets import COLOUR_GRADES, Preset, load_presets
from headshots.queue.teams import BrandKit

if TYPE_CHECKING:
    from headshots.bot.discord.client import HeadshotsClient
    from headshots.bot.discord.team import TeamFlow

KIT_BUTTON_OPS = "more|back|name|colours|save|cancel"
KIT_SELECT_OPS = "preset|bg|attire|grade|aspect|count|logo|review"
_KIT = r":(?P<admin>[0-9]+):(?P<guild>[0-9]+)"
DEFAULT = "-"
KIT_COUNTS = (4, 8, 12, 16, 20)
ASPECTS = ("1:1", "4:5", "2:3")
BACKGROUNDS = {
    "office": "Office",
    "blurred_office": "Blurred office",
    "colour": "Brand colour (hex)",
    "gradient": "Gradient (two hex colours)",
}
LOGO_PLACEMENTS = {
    "none": "Logo: not used",
    "corner": "Logo: small corner mark on profile pictures",
}


def team_of(interaction: discord.Interaction) -> TeamFlow:
    return cast("HeadshotsClient", interaction.client).flow.team


class KitDraft(BaseModel):
    """The kit an admin is editing (their chat state) until they save it."""

    guild_id: int
    #: The channel ``/headshot team setup`` ran in: the team's channel once saved.
    channel_id: int
    kit: BrandKit
    page: Literal["main", "more"] = "main"
    #: A logo uploaded with this setup, parked in the admin's own store until saved.
    logo_path: str | None = None
    #: The team already has a logo from an earlier setup.
    has_logo: bool = False


def kit_custom_id(op: str, admin_id: int, guild_id: int) -> str:
    return f"hsdk:{op}:{admin_id}:{guild_id}"


class KitButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=rf"hsdk:(?P<op>{KIT_BUTTON_OPS}){_KIT}",
):
    """A button of the kit editor: page, team name, colours, save, cancel."""

    def __init__(
        self,
        op: str,
        admin_id: int,
        guild_id: int,
        *,
        label: str = "",
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
        row: int | None = None,
    ) -> None:
        super().__init__(
            discord.ui.Button(
                label=label, style=style, row=row, custom_id=kit_custom_id(op, admin_id, guild_id)
            )
        )
        self.op = op
        self.admin_id = admin_id
        self.guild_id = guild_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> KitButton:
        return cls(match["op"], int(match["admin"]), int(match["guild"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Handle a kit editor button."""
        team = team_of(interaction)
        await team.flow.guarded(
            interaction, team.kit_button(interaction, self.op, self.admin_id, self.guild_id)
        )


class KitSelect(
    discord.ui.DynamicItem[discord.ui.Select[Any]],
    template=rf"hsdk:(?P<op>{KIT_SELECT_OPS}){_KIT}",
):
    """A select menu of the kit editor."""

    def __init__(
        self,
        op: str,
        admin_id: int,
        guild_id: int,
        *,
        options: list[discord.SelectOption] | None = None,
        placeholder: str | None = None,
        row: int | None = None,
    ) -> None:
        super().__init__(
            discord.ui.Select(
                custom_id=kit_custom_id(op, admin_id, guild_id),
                options=options or [discord.SelectOption(label="-")],
                placeholder=placeholder,
                row=row,
            )
        )
        self.op = op
        self.admin_id = admin_id
        self.guild_id = guild_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> KitSelect:
        return cls(match["op"], int(match["admin"]), int(match["guild"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Apply a kit choice."""
        data = cast(dict[str, Any], interaction.data or {})
        values = [str(v) for v in data.get("values", [])]
        team = team_of(interaction)
        await team.flow.guarded(
            interaction,
            team.kit_select(interaction, self.op, self.admin_id, self.guild_id, values),
        )


class JoinButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"hsdt:join:(?P<guild>[0-9]+)"
):
    """Join the team: under the kit preview in the team's channel."""

    def __init__(self, guild_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Join: get my team headshot",
                style=discord.ButtonStyle.success,
                custom_id=f"hsdt:join:{guild_id}",
            )
        )
        self.guild_id = guild_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> JoinButton:
        return cls(int(match["guild"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Join the team and open a private session."""
        team = team_of(interaction)
        await team.flow.guarded(interaction, team.join(interaction))


class ReviewButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"hsdt:(?P<op>ok|redo):(?P<member>[0-9]+):(?P<job>[0-9a-zA-Z_-]+):(?P<rank>[0-9]+)",
):
    """Approve / Redo under a member's favourite (the job and rank pin the exact picture)."""

    def __init__(
        self,
        op: str,
        member_id: int,
        job_id: str,
        rank: int,
        *,
        label: str = "",
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
    ) -> None:
        super().__init__(
            discord.ui.Button(
                label=label, style=style, custom_id=f"hsdt:{op}:{member_id}:{job_id}:{rank}"
            )
        )
        self.op = op
        self.member_id = member_id
        self.job_id = job_id
        self.rank = rank

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ReviewButton:
        return cls(match["op"], int(match["member"]), match["job"], int(match["rank"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Approve a favourite or ask for a redo (live admins only)."""
        team = team_of(interaction)
        await team.flow.guarded(
            interaction,
            team.review(interaction, self.op, self.member_id, self.job_id, self.rank),
        )


class DeleteTeamButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=rf"hsdt:(?P<op>delete|keep){_KIT}",
):
    """The confirmation of ``/headshot team delete``."""

    def __init__(
        self,
        op: str,
        admin_id: int,
        guild_id: int,
        *,
        label: str = "",
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
    ) -> None:
        super().__init__(
            discord.ui.Button(
                label=label, style=style, custom_id=f"hsdt:{op}:{admin_id}:{guild_id}"
            )
        )
        self.op = op
        self.admin_id = admin_id
        self.guild_id = guild_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> DeleteTeamButton:
        return cls(match["op"], int(match["admin"]), int(match["guild"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Delete the team, or keep it."""
        team = team_of(interaction)
        await team.flow.guarded(
            interaction, team.delete_button(interaction, self.op, self.admin_id, self.guild_id)
        )


DYNAMIC_ITEMS = (KitButton, KitSelect, JoinButton, ReviewButton, DeleteTeamButton)


# --- modals -----------------------------------------------------------------------------------


class TeamNameModal(discord.ui.Modal):
    """The team's name, shown on the preview and the export (a form: see ``modals``)."""

    name: discord.ui.TextInput[TeamNameModal] = discord.ui.TextInput(
        custom_id=modals.TEAM_NAME, label="Team name", placeholder="e.g. Acme Corp", max_length=80
    )

    def __init__(self, admin_id: int, guild_id: int, current: str) -> None:
        super().__init__(
            title="Team name", timeout=600, custom_id=kit_custom_id("m-name", admin_id, guild_id)
        )
        self.name.default = current


class BrandColoursModal(discord.ui.Modal):
    """Hex colours of a brand-colour or gradient backdrop (a form: see ``modals``)."""

    first: discord.ui.TextInput[BrandColoursModal] = discord.ui.TextInput(
        custom_id=modals.FIRST_COLOUR, label="Colour (hex)", placeholder="#1F6FEB", max_length=9
    )
    second: discord.ui.TextInput[BrandColoursModal] = discord.ui.TextInput(
        custom_id=modals.SECOND_COLOUR,
        label="Second colour (gradient only)",
        placeholder="#0B1F3A",
        max_length=9,
        required=False,
    )

    def __init__(
        self, admin_id: int, guild_id: int, kind: str, current: list[str] | None = None
    ) -> None:
        title = "Gradient: two hex colours" if kind == "gradient" else "Brand colour (hex)"
        super().__init__(
            title=title, timeout=600, custom_id=kit_custom_id(f"m-{kind}", admin_id, guild_id)
        )
        current = current or []
        self.first.default = current[0] if current else ""
        self.second.default = current[1] if len(current) > 1 else ""
        if kind == "colour":
            self.remove_item(self.second)


# --- views ------------------------------------------------------------------------------------


def _options(pairs: list[tuple[str, str]], current: str) -> list[discord.SelectOption]:
    return [
        discord.SelectOption(label=label[:100], value=value, default=value == current)
        for value, label in pairs
    ]


def _preset(kit: BrandKit) -> Preset:
    presets = load_presets()
    return presets.get(kit.preset) or next(iter(presets.values()))


def kit_view(draft: KitDraft, admin_id: int) -> discord.ui.View:
    """The kit editor: page "main" (style, backdrop, attire, grade) or "more" (the rest)."""
    view = discord.ui.View(timeout=None)
    kit, guild = draft.kit, draft.guild_id

    def select(op: str, pairs: list[tuple[str, str]], current: str, hint: str, row: int) -> None:
        view.add_item(
            KitSelect(
                op, admin_id, guild, options=_options(pairs, current), placeholder=hint, row=row
            )
        )

    preset = _preset(kit)
    if draft.page == "main":
        presets = [(name, p.title) for name, p in load_presets().items()]
        select("preset", presets, kit.preset, "Style", 0)
        select("bg", list(BACKGROUNDS.items()), kit.background.kind, "Background", 1)
        attire = [(DEFAULT, "Attire: style default")] + [
            (k, k.replace("_", " ").capitalize()) for k in preset.attire
        ]
        select("attire", attire, kit.attire or DEFAULT, "Attire", 2)
        grades = [(DEFAULT, f"Colour: style default ({GRADE_LABELS[preset.colour_grade]})")] + [
            (g, GRADE_LABELS.get(g, g)) for g in COLOUR_GRADES
        ]
        select("grade", grades, kit.colour_grade or DEFAULT, "Colour grade", 3)
        view.add_item(KitButton("more", admin_id, guild, label="More options", row=4))
    else:
        select("aspect", [(a, f"Shape {a}") for a in ASPECTS], kit.aspect_ratio, "Shape", 0)
        counts = [(str(c), f"{c} headshots per member") for c in KIT_COUNTS]
        if kit.count not in KIT_COUNTS:
            counts.append((str(kit.count), f"{kit.count} headshots per member"))
        select("count", counts, str(kit.count), "How many", 1)
        select("logo", list(LOGO_PLACEMENTS.items()), kit.logo_placement, "Logo", 2)
        reviews = [("off", "Review: favourites count at once"), ("on", "Review: admins approve")]
        select("review", reviews, "on" if kit.review else "off", "Review", 3)
        view.add_item(KitButton("back", admin_id, guild, label="Back", row=4))
    view.add_item(KitButton("name", admin_id, guild, label="Team name", row=4))
    view.add_item(KitButton("colours", admin_id, guild, label="Colours", row=4))
    view.add_item(
        KitButton("save", admin_id, guild, label="Save", style=discord.ButtonStyle.success, row=4)
    )
    view.add_item(
        KitButton(
            "cancel", admin_id, guild, label="Cancel", style=discord.ButtonStyle.danger, row=4
        )
    )
    return view


def describe_background(kit: BrandKit) -> str:
    from headshots.generation.brand import colour_name

    background = kit.background
    if background.kind == "colour":
        return f"brand colour {background.colours[0]} ({colour_name(background.colours[0])})"
    if background.kind == "gradient":
        first, second = background.colours[:2]
        return f"gradient {first} → {second} ({colour_name(first)} to {colour_name(second)})"
    return BACKGROUNDS[background.kind].lower()


def describe_kit(kit: BrandKit) -> str:
    """The kit in a few words (the member's form, ``/headshot team show``)."""
    preset = _preset(kit)
    grade = GRADE_LABELS.get(kit.colour_grade or preset.colour_grade, "style default")
    return (
        f"Style: {preset.title} · Background: {describe_background(kit)} · "
        f"Attire: {(kit.attire or 'style default').replace('_', ' ')}\n"
        f"Colour: {grade} · Shape: {kit.aspect_ratio} · Headshots: {kit.count}"
    )


def kit_text(draft: KitDraft) -> str:
    kit = draft.kit
    if draft.logo_path:
        logo = "uploaded with this setup"
    elif draft.has_logo:
        logo = "from the earlier setup"
    else:
        logo = "none uploaded (attach one with `/headshot team setup logo:`)"
    lines = [
        "**Team kit**" + (" (more options)" if draft.page == "more" else ""),
        f"Team: **{kit.team_name}** · posts go to <#{draft.channel_id}>",
        describe_kit(kit),
        f"Logo: {logo}; {LOGO_PLACEMENTS[kit.logo_placement].removeprefix('Logo: ')}",
        f"Review: {'admins approve each favourite' if kit.review else 'off'}",
        "",
        "Members only choose man / woman / person; everything else comes from this kit. "
        "**Save** posts the preview with a Join button in the channel.",
    ]
    return texts.clip("\n".join(lines))


def join_view(guild_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(JoinButton(guild_id))
    return view


def review_view(member_id: int, job_id: str, rank: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(
        ReviewButton(
            "ok", member_id, job_id, rank, label="Approve", style=discord.ButtonStyle.success
        )
    )
    view.add_item(ReviewButton("redo", member_id, job_id, rank, label="Redo"))
    return view


def delete_team_view(admin_id: int, guild_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(
        DeleteTeamButton(
            "delete", admin_id, guild_id, label="Delete the team", style=discord.ButtonStyle.danger
        )
    )
    view.add_item(DeleteTeamButton("keep", admin_id, guild_id, label="Keep it"))
    return view
