"""Modal submissions, answered from the submitted payload alone, so they survive a restart.

discord.py hands a modal submission only to the :class:`discord.ui.Modal` object that opened
it, which lives in the process's memory: after a restart (or on another bot process) a user's
"Submit" would go nowhere. So our modals are only forms. Every submission is routed here from
``on_interaction`` by its ``custom_id`` (which carries who and what it is for), with the text
read from the payload; the modal classes keep discord.py's default, empty ``on_submit``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import discord

if TYPE_CHECKING:
    from headshots.bot.discord.flow import Flow

#: ``custom_id`` of the text inputs (explicit, so the payload can be read without the object).
DESCRIPTION = "description"
TEAM_NAME = "name"
FIRST_COLOUR = "first"
SECOND_COLOUR = "second"

_CUSTOM = re.compile(r"hsd:modal:(?P<owner>[0-9]+):(?P<session>[0-9a-z]+)")
_KIT = re.compile(r"hsdk:m-(?P<kind>name|colour|gradient):(?P<admin>[0-9]+):(?P<guild>[0-9]+)")


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


def route(flow: Flow, interaction: discord.Interaction) -> Awaitable[None] | None:
    """The handler of a modal submission of ours, or None when the id is not one of ours."""
    data: dict[str, Any] = dict(interaction.data or {})  # type: ignore[arg-type]
    custom_id = str(data.get("custom_id", ""))
    values = submitted_values(data)
    if match := _CUSTOM.fullmatch(custom_id):
        text = values.get(DESCRIPTION, "").strip() or None
        return flow.custom_submitted(interaction, int(match["owner"]), match["session"], text)
    if match := _KIT.fullmatch(custom_id):
        admin_id, guild_id = int(match["admin"]), int(match["guild"])
        if match["kind"] == "name":
            name = values.get(TEAM_NAME, "").strip()
            return flow.team.kit_name_submitted(interaction, admin_id, guild_id, name)
        colours = [
            value.strip()
            for value in (values.get(FIRST_COLOUR, ""), values.get(SECOND_COLOUR, ""))
            if value.strip()
        ]
        return flow.team.kit_colours_submitted(
            interaction, admin_id, guild_id, match["kind"], colours
        )
    return None
