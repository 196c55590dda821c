"""Team-mode buttons and their ``callback_data`` (at most 64 bytes).

- ``tk:<user id>:<step code>:<value>`` — a step of an admin's kit setup (that admin's only);
- ``tm:change`` — "Change look" under the kit preview (anyone may press; admins only succeed);
- ``tv:<a|r>:<member user id>:<job id>`` — Approve / Redo under a member's posted pick;
- ``td:<user id>:<y|n>`` — confirmation of ``/team delete`` (that admin's only).

Kit and delete buttons carry the admin's id like the single-user buttons (:mod:`keyboards`);
review and "change" buttons are for whoever is a group admin at the moment of pressing.
"""

from __future__ import annotations

from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from headshots.bot.telegram import team_kit
from headshots.bot.telegram.keyboards import MAX_CALLBACK_BYTES

KIT = "tk"
MENU = "tm"
REVIEW = "tv"
DELETE = "td"
KINDS = (KIT, MENU, REVIEW, DELETE)
#: ``pattern`` for the CallbackQueryHandler of team buttons.
PATTERN = rf"^({'|'.join(KINDS)}):"


@dataclass(frozen=True)
class TeamCallback:
    kind: str
    args: tuple[str, ...]


def encode(kind: str, *args: str) -> str:
    data = ":".join([kind, *args])
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback_data over {MAX_CALLBACK_BYTES} bytes: {data!r}")
    return data


def decode(data: str) -> TeamCallback | None:
    parts = data.split(":")
    if len(parts) < 2 or parts[0] not in KINDS:
        return None
    return TeamCallback(parts[0], tuple(parts[1:]))


def _button(text: str, kind: str, *args: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=encode(kind, *args))


def kit_step(user_id: int, draft: team_kit.KitDraft) -> InlineKeyboardMarkup | None:
    """The buttons of the draft's current step (``None`` when it only takes text)."""
    code = team_kit.STEP_CODES[draft.step]
    buttons = [
        _button(option.label, KIT, str(user_id), code, option.value)
        for option in team_kit.options(draft.step, draft)
    ]
    if not buttons:
        return None
    width = 1 if draft.step in ("name", "logo", "placement", "review", "confirm") else 2
    return InlineKeyboardMarkup([buttons[i : i + width] for i in range(0, len(buttons), width)])


def join_url(bot_username: str, team_id: str) -> str:
    """The deep link that opens the private chat and joins ``team_id`` (``/start team_<id>``)."""
    return f"https://t.me/{bot_username}?start=team_{team_id}"


def export_url(bot_username: str, team_id: str) -> str:
    return f"https://t.me/{bot_username}?start=export_{team_id}"


def join(bot_username: str, team_id: str, *, change: bool = False) -> InlineKeyboardMarkup:
    rows = [[InlineKeyboardButton("👋 Join", url=join_url(bot_username, team_id))]]
    if change:
        rows.append([_button("Change look (admins)", MENU, "change")])
    return InlineKeyboardMarkup(rows)


def review(member_user_id: int, job_id: str) -> InlineKeyboardMarkup:
    member = str(member_user_id)
    return InlineKeyboardMarkup(
        [
            [
                _button("✅ Approve", REVIEW, "a", member, job_id),
                _button("↻ Redo", REVIEW, "r", member, job_id),
            ]
        ]
    )


def delete(user_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [_button("🗑 Yes, delete the team", DELETE, str(user_id), "y")],
            [_button("Keep it", DELETE, str(user_id), "n")],
        ]
    )
