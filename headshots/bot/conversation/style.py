"""The style questions: what is asked, what can be answered, and what an answer does.

A choice is a plain dict of :class:`StyleChoice` fields (JSON in the conversation state):

    preset -> (the recommended look: "Looks good" or "Customise")
    customise: subject class -> features ["Set them": eye colour -> glasses -> hair colour
               [-> hair length]] -> background -> attire -> colour grade -> count -> shape

Front ends that ask one question at a time walk :data:`BRIEF_STEPS` (the default path: the
preset's recommended look is then shown for confirmation), or :data:`STEPS` once the person
presses "Customise", with :func:`next_step`; front ends that show a form show :data:`GROUPS`,
one group per page. "Custom" at the preset step means the person describes the look in words
instead (background and attire are then skipped when asked one at a time). The person's own
features (eyes, glasses, hair) are one compact question with "As in my photos" first; only
"Set them" asks each. Option values are short and fit Telegram's 64-byte callback data.
"""

from __future__ import annotations

import functools
from typing import Any, get_args

from headshots.bot.conversation import texts
from headshots.bot.conversation.screens import Option
from headshots.errors import UserError
from headshots.queue.contracts import EyeColour, HairColour, HairLength, StyleChoice

#: Option value meaning "what the preset says" / "as in my photos".
DEFAULT = "default"
#: Option value of the preset step meaning "I'll describe it in words".
CUSTOM = "custom"
PERSON = ("eye_colour", "glasses", "hair_colour", "hair_length")
#: The compact question about the person's features; its answers (see :func:`options`).
FEATURES = "features"
#: At FEATURES: ask each feature. KEEP: keep what was chosen before (features, description).
SET_FEATURES, KEEP = "set", "keep"
#: The default path, one question: the preset (its recommended look is confirmed after it).
BRIEF_STEPS = ("preset",)
STEPS = (
    "preset",
    "subject_class",
    FEATURES,
    *PERSON,
    "background",
    "attire",
    "colour_grade",
    "count",
    "aspect_ratio",
)
TEAM_STEPS = ("subject_class", FEATURES, *PERSON)
#: Pages of a form, by name (a Discord message holds four selects and a row of buttons).
GROUPS = {
    "look": ("preset", "subject_class", "background", "attire"),
    "more": ("colour_grade", "count", "aspect_ratio"),
    "you": PERSON,
}
TEAM_GROUPS = {"you": ("subject_class", "eye_colour", "glasses"), "hairstyle": PERSON[2:]}
PAGE_LABELS = {"more": "More options", "you": "Eyes, glasses, hair", "hairstyle": "Hair"}
QUESTIONS = {
    "preset": "Which style? (Custom lets you describe the look in your own words.)",
    "subject_class": "How should the model see you?",
    FEATURES: "Your eyes, glasses and hair? (As in my photos suits most people.)",
    "eye_colour": "Your eye colour? (It keeps the headshots true to you.)",
    "glasses": "Glasses in your headshots?",
    "hair_colour": "Your hair colour? (As in my photos skips the hair questions.)",
    "hair_length": "Your hair length?",
    "background": "Which background?",
    "attire": "What should you wear?",
    "colour_grade": "Which colour grade?",
    "count": "How many headshots?",
    "aspect_ratio": "Which shape?",
}
CLASS_LABELS = {"man": "Man", "woman": "Woman", "person": "Person (neutral)"}
COLOUR_GRADE_LABELS = {
    "film_portra": "Film Portra (warm)",
    "film_velvia": "Film Velvia (vivid)",
    "ektar": "Ektar (saturated)",
    "none": "No grading",
}
AS_IN_PHOTOS = "As in my photos"


def _labels(values: tuple[str, ...]) -> dict[str, str]:
    """Button labels straight from the contract's choices ("dark_brown" -> "Dark brown")."""
    return {value: value.replace("_", " ").capitalize() for value in values}


EYE_LABELS = _labels(get_args(EyeColour))
GLASSES_LABELS = {
    "as_in_photos": "As in my selfies",
    "wear": "I wear glasses",
    "none": "No glasses",
}
GLASSES_WORDS = {"as_in_photos": "as in my selfies", "wear": "yes", "none": "no"}
HAIR_LABELS = _labels(get_args(HairColour))
LENGTH_LABELS = _labels(get_args(HairLength))
ASPECT_LABELS = {"1:1": "Square 1:1", "4:5": "Portrait 4:5", "2:3": "Tall 2:3"}
COUNTS = (4, 8, 12, 16, 20, 40)
_PERSON_LABELS = {
    "eye_colour": EYE_LABELS,
    "hair_colour": HAIR_LABELS,
    "hair_length": LENGTH_LABELS,
}


@functools.cache
def presets() -> dict[str, Any]:
    # Imported lazily: presets is pure data (no torch), read on the first style question.
    from headshots.style.presets import load_presets

    return dict(load_presets())


def pretty(key: str) -> str:
    return key.replace("_", " ").replace("-", " ").capitalize()


def styles_text() -> str:
    """The /styles answer: every preset with its backgrounds and attire."""
    rows = [
        (p.title, [pretty(k).lower() for k in p.backgrounds], [pretty(k).lower() for k in p.attire])
        for p in presets().values()
    ]
    return texts.styles(rows)


def _pairs(labels: dict[str, str], default: str | None = None) -> list[Option]:
    found = [Option(value, label) for value, label in labels.items()]
    return [Option(DEFAULT, default), *found] if default else found


def options(step: str, style: dict[str, Any]) -> list[Option]:
    """The answers offered at ``step`` given what was chosen so far."""
    if step == "preset":
        found = [*(Option(n, p.title) for n, p in presets().items()), Option(CUSTOM, "✏️ Custom")]
        # Customising a described look: the description can stay (or give way to a preset).
        return [Option(KEEP, "✓ Keep my description"), *found] if style.get("custom") else found
    if step == "subject_class":
        return _pairs(CLASS_LABELS)
    if step == FEATURES:
        found = [Option(DEFAULT, f"✓ {AS_IN_PHOTOS}")]
        if not to_choice(style).attributes.is_default:
            found.insert(0, Option(KEEP, "✓ Keep: " + person_line(style)))
            found[1] = Option(DEFAULT, AS_IN_PHOTOS)
        return [*found, Option(SET_FEATURES, "Set eyes, glasses, hair")]
    if step == "glasses":
        return _pairs(GLASSES_LABELS)
    if step in _PERSON_LABELS:
        return _pairs(_PERSON_LABELS[step], AS_IN_PHOTOS)
    preset = presets().get(str(style.get("preset", "corporate")))
    if step in ("background", "attire"):
        keys = list(getattr(preset, "backgrounds" if step == "background" else "attire", []))
        return [Option(DEFAULT, "Style default"), *(Option(k, pretty(k)) for k in keys)]
    if step == "colour_grade":
        return _pairs(COLOUR_GRADE_LABELS, "Style default")
    if step == "count":
        return [Option(str(n), str(n)) for n in COUNTS]
    return _pairs(ASPECT_LABELS, "Style default")


def current(step: str, style: dict[str, Any]) -> str:
    """The value ``step`` has now (``DEFAULT`` when nothing is chosen)."""
    choice = to_choice(style)
    if step == FEATURES:
        return DEFAULT if choice.attributes.is_default else KEEP
    value = getattr(choice.attributes, step) if step in PERSON else getattr(choice, step)
    return DEFAULT if value is None else str(value)


def apply(style: dict[str, Any], step: str, value: str) -> dict[str, Any]:
    """A copy of ``style`` with ``value`` chosen at ``step``; ``ValueError`` if not offered."""
    if value not in {option.value for option in options(step, style)} or value == CUSTOM:
        raise ValueError(f"{value!r} is not an option at step {step}")
    updated = dict(style)
    if value == KEEP:
        return updated
    if step == FEATURES:
        if value == DEFAULT:  # "As in my photos" for every feature
            updated["attributes"] = {}
    elif step in PERSON:
        attributes = dict(updated.get("attributes") or {})
        attributes[step] = None if value == DEFAULT else value
        updated["attributes"] = attributes
    elif step == "preset":
        # Backgrounds and attire are per preset: the old keys mean nothing in the new one.
        updated.update(preset=value, background=None, attire=None)
    elif step == "count":
        updated["count"] = int(value)
    else:
        updated[step] = None if value == DEFAULT else value
    return updated


def next_step(
    step: str | None, style: dict[str, Any], *, steps: tuple[str, ...] = STEPS, skip: bool = False
) -> str | None:
    """The question after ``step`` (``None`` first: the first one; ``None`` back: all done).

    ``skip``: the person's features are not asked one by one (known from an earlier job, or
    answered at :data:`FEATURES`).
    """
    index = 0 if step is None else steps.index(step) + 1
    for candidate in steps[index:]:
        if candidate in ("background", "attire") and style.get("custom"):
            continue
        if candidate in PERSON and skip:
            continue
        if candidate == "hair_length" and current("hair_colour", style) == DEFAULT:
            continue
        if len(options(candidate, style)) > 1:
            return candidate
    return None


def with_custom(style: dict[str, Any], text: str) -> dict[str, Any]:
    """``style`` with a reviewed description; a :class:`UserError` (refusal) when unusable."""
    from headshots.style.policy import review_description

    words = " ".join(text.split())
    if len(words) > texts.MAX_CUSTOM_CHARS:
        raise UserError(texts.too_long(len(words)))
    review = review_description(words)
    if review.refusal is not None:
        raise UserError(review.refusal)
    if review.text is None:
        raise UserError(texts.EMPTY_DESCRIPTION)
    return {**style, "custom": review.text}


def to_choice(style: dict[str, Any]) -> StyleChoice:
    """The finished :class:`StyleChoice`; a :class:`UserError` if the stored dict is invalid."""
    try:
        return StyleChoice.model_validate(style)
    except ValueError as exc:
        raise UserError("That style choice is incomplete; please choose again.") from exc


def person_line(style: dict[str, Any]) -> str:
    """The person's features in words (every summary shows them)."""
    attributes = to_choice(style).attributes
    eyes = EYE_LABELS.get(attributes.eye_colour or "", AS_IN_PHOTOS)
    hair = [
        LENGTH_LABELS.get(attributes.hair_length or ""),
        HAIR_LABELS.get(attributes.hair_colour or ""),
    ]
    hair_text = ", ".join(h for h in hair if h).capitalize() or AS_IN_PHOTOS
    return (
        f"Eyes: {eyes.lower()} · Glasses: {GLASSES_WORDS[attributes.glasses]} · "
        f"Hair: {hair_text.lower()}"
    )


def lines(style: dict[str, Any]) -> list[str]:
    """The choice in words, one line per question (forms and the summary)."""
    choice = to_choice(style)
    preset = presets().get(choice.preset)
    title = preset.title if preset is not None else choice.preset
    aspect = choice.aspect_ratio or (preset.aspect_ratio if preset is not None else "4:5")
    grade = choice.colour_grade or (preset.colour_grade if preset is not None else "none")
    found = [
        f"Style: {title}" + (" + your description" if choice.custom else ""),
        f"Subject: {CLASS_LABELS[choice.subject_class]}",
        person_line(style),
    ]
    if choice.custom:
        found.append(f"Description: {choice.custom}")
    found.append(
        f"Background: {pretty(choice.background) if choice.background else 'style default'}"
    )
    found.append(f"Attire: {pretty(choice.attire) if choice.attire else 'style default'}")
    # A value the person chose reads plainly; the style's own says so ("style default (…)").
    grade_label = COLOUR_GRADE_LABELS.get(grade, grade)
    found.append(
        "Colour: "
        + (grade_label if choice.colour_grade else f"style default ({grade_label.split(' (')[0]})")
    )
    shape = aspect if choice.aspect_ratio else f"style default ({aspect})"
    found.append(f"Images: {choice.count}, shape {shape}")
    if choice.quick:
        found.append("Quality: quick draft (fast, lower quality)")
    if choice.reference is not None:
        hint = texts.REFERENCE_HINTS[choice.reference.hint]
        found.append(f"Reference photo: framed like your photo, by its {hint}")
    return found
