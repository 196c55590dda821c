"""Inline keyboards and their ``callback_data`` (at most 64 bytes, Telegram's limit).

Our own buttons carry ``<kind>:<user id>:<args...>``: the user id says whose conversation a
button belongs to, so in a group one member cannot press another's buttons. Buttons under
results use :mod:`headshots.actions` (``hs:...``), shared with the worker and Discord.
"""

from __future__ import annotations

from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from headshots.bot.telegram import style_flow

MAX_CALLBACK_BYTES = 64

CONSENT = "c"
RESUME = "u"
DONE = "d"
STYLE = "s"
SUMMARY = "f"
DELETE = "x"
KINDS = (CONSENT, RESUME, DONE, STYLE, SUMMARY, DELETE)
#: ``pattern`` for the CallbackQueryHandler of our own buttons.
PATTERN = rf"^({'|'.join(KINDS)}):\d+(:|$)"

#: Short step codes keep style buttons well inside 64 bytes.
STEP_CODES: dict[style_flow.Step, str] = {
    "preset": "p",
    "subject_class": "k",
    "background": "b",
    "attire": "a",
    "colour_grade": "g",
    "count": "n",
    "aspect_ratio": "r",
}
CODE_STEPS = {code: step for step, code in STEP_CODES.items()}


@dataclass(frozen=True)
class Callback:
    kind: str
    user_id: int
    args: tuple[str, ...]


def encode(kind: str, user_id: int, *args: str) -> str:
    data = ":".join([kind, str(user_id), *args])
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback_data over {MAX_CALLBACK_BYTES} bytes: {data!r}")
    return data


def decode(data: str) -> Callback | None:
    parts = data.split(":")
    if len(parts) < 2 or parts[0] not in KINDS or not parts[1].isdigit():
        return None
    return Callback(parts[0], int(parts[1]), tuple(parts[2:]))


def _button(text: str, kind: str, user_id: int, *args: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=encode(kind, user_id, *args))


def _rows(buttons: list[InlineKeyboardButton], width: int) -> list[list[InlineKeyboardButton]]:
    return [buttons[i : i + width] for i in range(0, len(buttons), width)]


def consent(user_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                _button("✅ I agree", CONSENT, user_id, "y"),
                _button("No, thanks", CONSENT, user_id, "n"),
            ]
        ]
    )


def resume(user_id: int, photos: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [_button(f"Continue with {photos} photos", RESUME, user_id, "go")],
            [_button("Start over", RESUME, user_id, "new")],
        ]
    )


def done(user_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[_button("✅ Done", DONE, user_id)]])


def style_step(
    user_id: int, step: style_flow.Step, style: dict[str, object]
) -> InlineKeyboardMarkup:
    code = STEP_CODES[step]
    buttons = [
        _button(option.label, STYLE, user_id, code, option.value)
        for option in style_flow.options(step, style)
    ]
    return InlineKeyboardMarkup(_rows(buttons, 2 if step in ("preset", "colour_grade") else 3))


def summary(user_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [_button("✅ Confirm", SUMMARY, user_id, "ok")],
            [
                _button("Change", SUMMARY, user_id, "change"),
                _button("Cancel", SUMMARY, user_id, "no"),
            ],
        ]
    )


def delete(user_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [_button("🗑 Yes, delete everything", DELETE, user_id, "y")],
            [_button("Keep my data", DELETE, user_id, "n")],
        ]
    )
