"""The style-choice state machine, free of any chat platform (Discord can reuse it).

A choice is built step by step in a plain dict of :class:`StyleChoice` fields, so it can live in
the JSON conversation state in Redis between button presses:

    preset -> subject class -> background -> attire -> colour grade -> count -> aspect ratio

Choosing "custom" at the preset step means the user describes the look in words instead; the
background and attire steps are then skipped (the description covers them). Option values are
short, contain no ``:`` (Telegram callback data uses it as a separator) and fit in 64 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from headshots.bot.labels import CLASS_LABELS, COLOUR_GRADE_LABELS
from headshots.errors import UserError
from headshots.queue.contracts import StyleChoice

Step = Literal[
    "preset", "subject_class", "background", "attire", "colour_grade", "count", "aspect_ratio"
]
STEPS: tuple[Step, ...] = (
    "preset",
    "subject_class",
    "background",
    "attire",
    "colour_grade",
    "count",
    "aspect_ratio",
)
#: Option value meaning "what the preset says".
DEFAULT = "default"
#: Option value of the preset step meaning "I'll describe it in words".
CUSTOM = "custom"
COUNTS = (4, 8, 12, 20, 40)
ASPECT_RATIOS = {"1x1": "1:1", "4x5": "4:5", "2x3": "2:3"}
QUESTIONS: dict[Step, str] = {
    "preset": "Which style? (Custom lets you describe the look in your own words.)",
    "subject_class": "How should the model see you?",
    "background": "Which background?",
    "attire": "What should you wear?",
    "colour_grade": "Which colour grade?",
    "count": "How many headshots?",
    "aspect_ratio": "Which shape?",
}
MAX_CUSTOM_CHARS = 300


@dataclass(frozen=True)
class Option:
    value: str
    label: str


def _presets() -> dict[str, Any]:
    # Imported lazily: presets is pure data (no torch), but the bot should not read the TOML
    # file before the first style menu is shown.
    from headshots.generation.presets import load_presets

    return dict(load_presets())


def _pretty(key: str) -> str:
    return key.replace("_", " ").replace("-", " ").capitalize()


def options(step: Step, style: dict[str, Any]) -> list[Option]:
    """The choices offered at ``step`` given what was chosen so far."""
    if step == "preset":
        found = [Option(name, preset.title) for name, preset in _presets().items()]
        return [*found, Option(CUSTOM, "✏️ Custom")]
    if step == "subject_class":
        return [Option(value, label) for value, label in CLASS_LABELS.items()]
    preset = _presets().get(str(style.get("preset", "corporate")))
    if step == "background":
        keys = list(preset.backgrounds) if preset is not None else []
        return [Option(DEFAULT, "Style default"), *(Option(k, _pretty(k)) for k in keys)]
    if step == "attire":
        keys = list(preset.attire) if preset is not None else []
        return [Option(DEFAULT, "Style default"), *(Option(k, _pretty(k)) for k in keys)]
    if step == "colour_grade":
        grades = [Option(k, label) for k, label in COLOUR_GRADE_LABELS.items()]
        return [Option(DEFAULT, "Style default"), *grades]
    if step == "count":
        return [Option(str(n), str(n)) for n in COUNTS]
    return [
        Option(DEFAULT, "Style default"),
        Option("1x1", "Square 1:1"),
        Option("4x5", "Portrait 4:5"),
        Option("2x3", "Tall 2:3"),
    ]


def first_step() -> Step:
    return STEPS[0]


def next_step(step: Step, style: dict[str, Any]) -> Step | None:
    """The step after ``step`` (``None``: the choice is complete)."""
    index = STEPS.index(step) + 1
    while index < len(STEPS):
        candidate = STEPS[index]
        if candidate in ("background", "attire") and style.get("custom"):
            index += 1
            continue
        if len(options(candidate, style)) <= 1:
            index += 1
            continue
        return candidate
    return None


def apply(style: dict[str, Any], step: Step, value: str) -> dict[str, Any]:
    """A copy of ``style`` with ``value`` chosen at ``step``; ``ValueError`` if not offered."""
    if value not in {option.value for option in options(step, style)}:
        raise ValueError(f"{value!r} is not an option at step {step}")
    updated = dict(style)
    if step == "preset":
        updated = {"custom": style.get("custom")} if value == CUSTOM else {}
        updated["preset"] = "corporate" if value == CUSTOM else value
        return {k: v for k, v in updated.items() if v is not None}
    if value == DEFAULT:
        updated.pop(step, None)
    elif step == "count":
        updated["count"] = int(value)
    elif step == "aspect_ratio":
        updated["aspect_ratio"] = ASPECT_RATIOS[value]
    else:
        updated[step] = value
    return updated


def with_custom(style: dict[str, Any], text: str) -> dict[str, Any]:
    """``style`` with a custom description; a :class:`UserError` when it is unusable."""
    words = " ".join(text.split())
    if not words:
        raise UserError("Please describe the look in a few words.")
    if len(words) > MAX_CUSTOM_CHARS:
        raise UserError(
            f"That is {len(words)} characters; please keep it under {MAX_CUSTOM_CHARS}."
        )
    updated = {k: v for k, v in style.items() if k not in ("background", "attire")}
    updated["custom"] = words
    updated.setdefault("preset", "corporate")
    return updated


def question(step: Step) -> str:
    return QUESTIONS[step]


def to_choice(style: dict[str, Any]) -> StyleChoice:
    """The finished :class:`StyleChoice`; a :class:`UserError` if the stored dict is invalid."""
    try:
        return StyleChoice.model_validate(style)
    except ValueError as exc:
        raise UserError("That style choice is incomplete; please choose again.") from exc


def summary(style: dict[str, Any]) -> str:
    """Several lines describing the choice, for the confirmation message."""
    choice = to_choice(style)
    preset = _presets().get(choice.preset)
    title = preset.title if preset is not None else choice.preset
    aspect = choice.aspect_ratio or (preset.aspect_ratio if preset is not None else "4:5")
    grade = choice.colour_grade or (preset.colour_grade if preset is not None else "none")
    lines = [
        f"Style: {title}" + (" + your description" if choice.custom else ""),
        f"Subject: {CLASS_LABELS[choice.subject_class]}",
    ]
    if choice.custom:
        lines.append(f"Description: {choice.custom}")
    else:
        lines.append(
            f"Background: {_pretty(choice.background) if choice.background else 'style default'}"
        )
        lines.append(f"Attire: {_pretty(choice.attire) if choice.attire else 'style default'}")
    lines.append(f"Colour: {COLOUR_GRADE_LABELS.get(grade, grade)}")
    lines.append(f"Images: {choice.count}, shape {aspect}")
    return "\n".join(lines)
