"""The team look (brand kit) an admin builds, question by question or as a form.

    name -> preset -> background [-> colour | gradient] -> attire -> colour grade -> shape
         -> count -> logo [-> placement] [-> reference [-> hint]] -> review -> confirm

The draft lives in the admin's own conversation state (JSON in Redis) until it is saved as the
team's :class:`BrandKit`. Text steps (name, hex colours) take a typed answer; the logo and the
reference steps take an image. The reference portrait ("frame everyone like this") is asked only
where the operator configured a ControlNet (:attr:`KitDraft.hints`), its hint only where there
are two. A form shows :data:`GROUPS` (the name, colours, logo and reference photo come from their
own forms or uploads). The person's own features are never part of the kit: every member answers
them.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from headshots.bot.conversation import style as style_steps
from headshots.bot.conversation import texts
from headshots.bot.conversation.screens import Option
from headshots.errors import UserError
from headshots.queue.teams import BrandKit, normalise_hex

#: Steps answered by a typed message (the rest by buttons; "logo" and "reference" by an image
#: or a button).
IMAGE_STEPS = ("logo", "reference")
#: A form's draft step: every question is on screen, no file is awaited.
FORM_STEP = "form"
TEXT_STEPS = ("name", "colour", "gradient")
ORDER = (
    "name",
    "preset",
    "background",
    "attire",
    "colour_grade",
    "aspect_ratio",
    "count",
    "logo",
    "placement",
    "reference",
    "hint",
    "review",
    "confirm",
)
STEPS = (*ORDER[:3], "colour", "gradient", *ORDER[3:])
#: The form's pages; the third exists only where a reference photo can be used (four selects a
#: page at most: Discord's five rows hold them and the buttons).
GROUPS = (
    ("preset", "background", "attire", "colour_grade"),
    ("aspect_ratio", "count", "placement", "review"),
    ("reference", "hint"),
)
BACKGROUND_LABELS = {
    "office": "Office",
    "blurred_office": "Blurred office",
    "colour": "Brand colour",
    "gradient": "Gradient",
}
QUESTIONS = {
    "name": "What is the team's name? Reply to this message with it.",
    "preset": "Which style for the whole team?",
    "background": "Which background?",
    "colour": "Reply with the brand colour as hex, e.g. #1F6FEB.",
    "gradient": "Reply with the two gradient colours as hex, top then bottom: #1F6FEB #0B1F3A.",
    "attire": "What should everyone wear?",
    "colour_grade": "Which colour grade?",
    "aspect_ratio": "Which shape?",
    "count": "How many headshots should each member get to choose from?",
    "logo": "Reply to this message with the team's logo (an image or PNG file), or:",
    "placement": "Where should the logo go? (Corner: a small mark on the exported profile "
    "pictures only, never on the headshots themselves.)",
    "reference": "Reply to this message with a reference portrait to frame every member like "
    "it (pose and crop; exactly one person, who need not be in the team), or:",
    "hint": "What should every headshot follow in the reference?",
    "review": "Should an admin approve each member's pick before it counts?",
    "confirm": "Save this look for the team?",
}
COUNTS = (4, 8, 12, 16, 20)
MAX_TEAM_NAME = 80
DEFAULT_TEAM_NAME = "Our team"

#: Bidirectional controls: one U+202E in a name reverses the caption text that follows it.
_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: Characters that show nothing: zero-width space, word joiner, soft hyphen, Hangul and braille
#: blanks (the "empty name" tricks). The joiners U+200C/U+200D stay: scripts and emoji need them.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180e\u200b\u2060-\u2064\u2800\u3164\ufeff\uffa0]"
)
_MARKDOWN_LINK = re.compile(r"\[([^\[\]]*)\]\([^()]*\)")
_URL = re.compile(r"<?(?:\b[a-z][a-z0-9+.-]*://|\bwww\.)[^\s>]*>?", re.IGNORECASE)
#: Discord's user, role and channel mentions (``<@123>``, ``<@!123>``, ``<@&123>``, ``<#123>``).
_DISCORD_MENTION = re.compile(r"<(@[!&]?|#)(\d+)>")
#: What a chat would turn into a link (``acme.com``, ``t.me``): a dot between word characters
#: followed by letters.
_LINKABLE_DOT = re.compile(r"(?<=\w)\.(?=[^\W\d_]{2,})")
_NAME_UNUSABLE = (
    "Please send the team's name in letters people can see (links, mentions and invisible "
    "characters are removed)."
)


def clean_team_name(text: str) -> str:
    """``text`` as a team name both chats show as it reads; :class:`UserError` when nothing
    visible is left.

    Bidirectional controls and invisible characters are dropped; mentions (``@everyone``,
    ``@here``, ``@user``, ``<@123>``, ``<#123>``, ``<@&123>``) and links (``[x](http://…)``
    keeps ``x``; bare URLs are removed; ``acme.com`` keeps its look with a one-dot leader) are
    neutralised, so no chat pings anyone or links anywhere with it. Idempotent.
    """
    name = _neutralised(text)
    if not _visible(name):
        raise UserError(_NAME_UNUSABLE)
    if len(name) > MAX_TEAM_NAME:
        raise UserError(
            f"That is {len(name)} characters; please keep the name under {MAX_TEAM_NAME}."
        )
    return name


def _neutralised(text: str) -> str:
    name = unicodedata.normalize("NFC", text)
    name = _INVISIBLE.sub("", _BIDI_CONTROLS.sub("", name))
    name = _MARKDOWN_LINK.sub(r"\1", name)
    name = _URL.sub(" ", name)
    name = _DISCORD_MENTION.sub(r"\1\2", name)
    # A full-width at sign reads the same, and neither platform takes it for a mention.
    name = name.replace("@", "\uff20")
    name = _LINKABLE_DOT.sub("\u2024", name)
    return " ".join(name.split())


def _visible(name: str) -> bool:
    """Whether ``name`` shows anything: a letter, digit, symbol or punctuation mark."""
    return any(unicodedata.category(char)[0] not in "CZM" for char in name)


@dataclass
class KitDraft:
    """An admin's team look in progress; ``to_json``/``from_json`` are what Redis holds."""

    step: str = "name"
    #: :class:`BrandKit` fields as JSON (the saved kit's when changing one).
    values: dict[str, Any] = field(default_factory=dict)
    #: What happens to the logo on save: keep the current one, remove it, or store ``logo_png``.
    logo: Literal["keep", "none", "new"] = "none"
    logo_png: str | None = None  # base64 PNG
    had_logo: bool = False
    #: The same for the reference portrait (its hint is ``values["reference_hint"]``).
    reference: Literal["keep", "none", "new"] = "none"
    reference_png: str | None = None  # base64 PNG
    had_reference: bool = False
    #: The ControlNet hints the operator configured (none: no reference step).
    hints: list[str] = field(default_factory=list)
    #: Changing a saved kit (the name step offers to keep the name).
    editing: bool = False
    #: Where the team's posts go once saved (the group or topic, the channel).
    chat_id: int = 0
    thread_id: int | None = None
    page: int = 0
    menu_message_id: int | None = None
    anchor_message_id: int | None = None
    #: When the current question was asked (``time.time()``).
    asked_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KitDraft:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def logo_bytes(self) -> bytes | None:
        return base64.b64decode(self.logo_png) if self.logo_png else None

    @property
    def reference_bytes(self) -> bytes | None:
        return base64.b64decode(self.reference_png) if self.reference_png else None


def start_draft(
    kit: BrandKit | None,
    *,
    has_logo: bool,
    name: str = "",
    has_reference: bool = False,
    hints: tuple[str, ...] | list[str] = (),
) -> KitDraft:
    """A draft from the saved kit (or the defaults), at the first step."""
    if kit is None:  # named after the group or server, made as safe as a typed name
        name = _neutralised(name)[:MAX_TEAM_NAME].strip()
        name = name if _visible(name) else DEFAULT_TEAM_NAME
    values = (kit or BrandKit(team_name=name)).model_dump(mode="json")
    # A stored reference without a hint (or the other way round) is no reference.
    has_reference = has_reference and values.get("reference_hint") is not None
    if not has_reference:
        values["reference_hint"] = None
    return KitDraft(
        values=values,
        logo="keep" if has_logo else "none",
        had_logo=has_logo,
        reference="keep" if has_reference else "none",
        had_reference=has_reference,
        hints=list(hints),
        editing=kit is not None,
    )


def options(step: str, draft: KitDraft) -> list[Option]:
    """The buttons at ``step`` (empty for pure text steps)."""
    values = draft.values
    if step == "name":
        current = str(values.get("team_name") or "")
        return [Option("keep", f"Keep “{current}”")] if draft.editing else []
    if step == "preset":
        return [Option(name, preset.title) for name, preset in style_steps.presets().items()]
    if step == "background":
        return [Option(kind, label) for kind, label in BACKGROUND_LABELS.items()]
    if step in ("attire", "colour_grade"):
        return style_steps.options(step, {"preset": values.get("preset", "corporate")})
    if step == "aspect_ratio":
        return [Option(value, label) for value, label in style_steps.ASPECT_LABELS.items()]
    if step == "count":
        return [Option(str(n), str(n)) for n in COUNTS]
    if step == "logo":
        found = [Option("none", "No logo")]
        return [Option("keep", "Keep the current logo"), *found] if draft.had_logo else found
    if step == "placement":
        return [Option("none", "Don't use it"), Option("corner", "Small corner mark")]
    if step == "reference":
        if not draft.hints:
            return []
        found = [Option("none", "No reference photo")]
        if draft.had_reference:
            found.insert(0, Option("keep", "Keep the current reference"))
        if draft.reference_png:
            found.insert(0, Option("new", "The photo I sent"))
        return found
    if step == "hint":
        if draft.reference == "none" or len(draft.hints) < 2:
            return []
        return [Option(h, texts.REFERENCE_HINTS[h].capitalize()) for h in draft.hints]
    if step == "review":
        return [Option("on", "Yes, admins approve"), Option("off", "No, picks are final")]
    if step == "confirm":
        return [
            Option("save", "✅ Save"),
            Option("restart", "Start over"),
            Option("cancel", "Cancel"),
        ]
    return []


def form_pages(draft: KitDraft) -> tuple[tuple[str, ...], ...]:
    """The form's pages for this draft: the reference page only with a ControlNet."""
    return GROUPS if draft.hints else GROUPS[:2]


def current(step: str, draft: KitDraft) -> str | None:
    kit = to_kit(draft)
    return {
        "preset": kit.preset,
        "background": kit.background.kind,
        "attire": kit.attire or style_steps.DEFAULT,
        "colour_grade": kit.colour_grade or style_steps.DEFAULT,
        "aspect_ratio": kit.aspect_ratio,
        "count": str(kit.count),
        "placement": kit.logo_placement,
        "reference": draft.reference,
        "hint": kit.reference_hint,
        "review": "on" if kit.review else "off",
    }.get(step)


def applies(step: str, draft: KitDraft) -> bool:
    """Whether ``step`` is asked of this draft: the logo's placement only with a logo, the
    reference only with a ControlNet, its hint only with a reference and a choice of two."""
    if step == "placement":
        return draft.logo != "none"
    if step in ("reference", "hint"):
        return bool(options(step, draft))
    return True


def _after(step: str, draft: KitDraft) -> str:
    if step in ("colour", "gradient"):
        return "attire"
    return next(s for s in ORDER[ORDER.index(step) + 1 :] if applies(s, draft))


def choose(draft: KitDraft, step: str, value: str) -> KitDraft:
    """Apply a button press at ``step`` and move on; ``ValueError`` if it was not offered."""
    if value not in {option.value for option in options(step, draft)}:
        raise ValueError(f"{value!r} is not an option at step {step}")
    values = draft.values
    if step == "preset":
        values.update(preset=value, attire=None)  # attire keys belong to a preset
    elif step == "background":
        if value in ("colour", "gradient"):
            draft.step = value
            return draft
        values["background"] = {"kind": value, "colours": []}
    elif step in ("attire", "colour_grade"):
        values[step] = None if value == style_steps.DEFAULT else value
    elif step == "aspect_ratio":
        values["aspect_ratio"] = value
    elif step == "count":
        values["count"] = int(value)
    elif step == "logo":
        draft.logo, draft.logo_png = ("keep" if value == "keep" else "none"), None
    elif step == "placement":
        values["logo_placement"] = value
    elif step == "reference":
        draft.reference = value  # type: ignore[assignment]  # one of the options above
        _fit_hint(draft)
    elif step == "hint":
        values["reference_hint"] = value
    elif step == "review":
        values["review"] = value == "on"
    if step == "logo" and draft.logo == "none":
        values["logo_placement"] = "none"
    draft.step = _after(step, draft)
    return draft


def take_text(draft: KitDraft, text: str, step: str | None = None) -> KitDraft:
    """Apply a typed answer (team name, hex colours); a :class:`UserError` when unusable."""
    step = step or draft.step
    words = " ".join(text.split())
    if step == "name":
        if not words:
            raise UserError("Please send the team's name.")
        draft.values["team_name"] = clean_team_name(text)
    elif step == "colour":
        draft.values["background"] = {"kind": "colour", "colours": [normalise_hex(words)]}
    elif step == "gradient":
        parts = words.replace(",", " ").split()
        if len(parts) != 2:
            raise UserError("Send exactly two hex colours, like #1F6FEB #0B1F3A.")
        colours = [normalise_hex(part) for part in parts]
        draft.values["background"] = {"kind": "gradient", "colours": colours}
    else:
        raise ValueError(f"step {step} takes no text")
    draft.step = _after(step, draft)
    return draft


def take_logo(draft: KitDraft, png: bytes) -> KitDraft:
    draft.logo, draft.logo_png = "new", base64.b64encode(png).decode()
    draft.step = _after("logo", draft)
    return draft


def take_reference(draft: KitDraft, png: bytes) -> KitDraft:
    """A checked reference portrait (one person, passed the output check) for the kit."""
    draft.reference, draft.reference_png = "new", base64.b64encode(png).decode()
    _fit_hint(draft)
    draft.step = _after("reference", draft)
    return draft


def _fit_hint(draft: KitDraft) -> None:
    """The kit's hint follows the reference: none without one; with one, the chosen hint if
    the operator still configures it, else the first configured."""
    hint = draft.values.get("reference_hint")
    if draft.reference == "none" or not draft.hints:
        draft.values["reference_hint"] = None
    elif hint not in draft.hints:
        draft.values["reference_hint"] = draft.hints[0]


def to_kit(draft: KitDraft) -> BrandKit:
    """The finished kit; a :class:`UserError` when the draft is invalid."""
    try:
        return BrandKit.model_validate(draft.values)
    except UserError:
        raise
    except ValueError as exc:
        raise UserError("That team look is incomplete; please run /team setup again.") from exc


def look_lines(kit: BrandKit, *, logo: bool) -> list[str]:
    """The kit in words, one line per choice (summaries, the preview caption, the editor)."""
    preset = style_steps.presets().get(kit.preset)
    title = preset.title if preset is not None else kit.preset
    background = BACKGROUND_LABELS[kit.background.kind]
    if kit.background.colours:
        from headshots.style.brand import colour_name

        named = " → ".join(f"{colour_name(c)} ({c})" for c in kit.background.colours)
        background = f"{background}: {named}"
    grade = kit.colour_grade or (preset.colour_grade if preset is not None else "none")
    attire = style_steps.pretty(kit.attire) if kit.attire else "style default"
    lines = [
        f"Team: **{kit.team_name}**",
        f"Style: {title}",
        f"Background: {background}",
        f"Attire: {attire}",
        f"Colour: {style_steps.COLOUR_GRADE_LABELS.get(grade, grade)}",
        f"Shape: {kit.aspect_ratio}, {kit.count} headshots each",
    ]
    if kit.logo_placement == "corner" and logo:
        lines.append("Logo: small corner mark on the exported profile pictures")
    if kit.reference_hint is not None:
        hint = texts.REFERENCE_HINTS[kit.reference_hint]
        lines.append(f"Reference photo: everyone framed like it, by {hint}")
    lines.append(f"Admin review: {'on' if kit.review else 'off'}")
    return lines


def draft_lines(draft: KitDraft) -> list[str]:
    """The draft in words (the confirm step, the editor)."""
    lines = look_lines(to_kit(draft), logo=draft.logo != "none")
    if draft.logo == "none":
        lines.insert(-1, "Logo: none")
    return lines
