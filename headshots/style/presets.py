"""Style presets (data in ``presets.toml``) and their translation into one :class:`PromptSpec`.

Choices made here, and why:

- A1111 emphasis such as ``(ohwx man)`` is *translated* to compel's syntax (``(ohwx man)1.1``,
  see :mod:`prompts`): generation encodes prompts with compel, which honours the weights and
  never truncates, so every word of a preset reaches the model, the reference negative prompt
  verbatim (repeats included) after the safety negatives.
- The delivered size is the style's, never the prompt's: every preset delivers the same long
  side (``upscale_factor`` x the model's native resolution, 1024 px on SD1.5 and 2048 px on
  SDXL, or ``HEADSHOTS_OUTPUT_LONG_SIDE``) for every class. A trailing ``(tiled upscale)`` /
  ``--tiled upscale`` in the reference prompts is removed: it asked that service for the detail
  pass we always run.
- What the person told us about themselves (eye colour, glasses, hair) comes right after the
  subject, ahead of attire, background and the preset's quality boilerplate; the same phrases
  caption the training crops, so the LoRA does not bind them to the token.
- A custom description is untrusted text from a chat: :mod:`headshots.style.policy` refuses
  what we never render (sexual, minors, violence, hate, identity changes, instructions) and
  turns the rest into known canonical terms; it can never touch the negative prompt.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from headshots.errors import ConfigurationError, UserError
from headshots.queue.contracts import AspectRatio, PersonAttributes, StyleChoice, SubjectClass
from headshots.style.policy import review_description
from headshots.style.prompt_text import a1111_to_compel, join_terms

logger = logging.getLogger(__name__)

SchedulerName = Literal["euler_a", "dpm++2m_karras", "dpm++sde_karras", "lcm"]
ColourGrade = Literal["none", "film_portra", "film_velvia", "ektar"]

SCHEDULERS: tuple[SchedulerName, ...] = ("euler_a", "dpm++2m_karras", "dpm++sde_karras", "lcm")
COLOUR_GRADES: tuple[ColourGrade, ...] = ("none", "film_portra", "film_velvia", "ektar")
SUBJECT_CLASSES: tuple[SubjectClass, ...] = ("man", "woman", "person")
DEFAULT_TOKEN = "ohwx"

#: Always first in every negative prompt, whatever the preset or the user says.
SAFETY_NEGATIVE = (
    "nsfw, nude, naked, nudity, topless, underwear, lingerie, cleavage, sexual, explicit"
)
#: Added to the positive prompt whenever a custom description is used.
SAFETY_POSITIVE = "fully clothed"

_PRESETS_FILE = Path(__file__).with_name("presets.toml")
_UPSCALE_SUFFIX = re.compile(r"[\s,]*(?:\(tiled upscale\)|--tiled upscale)\s*$", re.IGNORECASE)
#: Delivered long side = this x the model's native resolution, unless a preset says otherwise.
DEFAULT_UPSCALE_FACTOR = 2.0

_EYES: dict[str, str] = {
    "brown": "brown eyes",
    "dark_brown": "dark brown eyes",
    "hazel": "hazel eyes",
    "green": "green eyes",
    "blue": "blue eyes",
    "grey": "grey eyes",
}
_HAIR_COLOUR: dict[str, str] = {
    "black": "black",
    "dark_brown": "dark brown",
    "brown": "brown",
    "auburn": "auburn",
    "red": "red",
    "blonde": "blonde",
    "grey": "grey",
    "white": "white",
}
_HAIR_LENGTH: dict[str, str] = {"short": "short", "medium": "shoulder-length", "long": "long"}
#: Eye colour is the feature users most often find wrong, and a small one in the frame.
EYE_COLOUR_WEIGHT = 1.1
GLASSES_PHRASE = "wearing glasses"
#: Negative terms when the person wants no glasses ("no glasses" in a positive prompt draws them).
NO_GLASSES_NEGATIVE = "(eyeglasses, glasses, sunglasses)1.2"


@dataclass(frozen=True)
class Preset:
    """One style as it appears in ``presets.toml`` (prompts still verbatim)."""

    name: str
    title: str
    prompts: dict[SubjectClass, str]
    negative_prompt: str
    attire_phrase: str
    background_phrases: tuple[str, ...]
    backgrounds: dict[str, str]
    attire: dict[str, str]
    steps: int
    cfg: float
    scheduler: SchedulerName
    aspect_ratio: AspectRatio
    colour_grade: ColourGrade
    film_grain: bool
    upscale_factor: float = DEFAULT_UPSCALE_FACTOR
    #: For text encoders that read plain language (FLUX.2 [klein]): ``{subject}`` = token +
    #: class, no emphasis; with its own negative prompt, steps and guidance.
    natural_prompt: str = ""
    natural_negative_prompt: str = ""
    natural_steps: int = 50
    natural_cfg: float = 4.0


#: Families whose text encoder reads plain language: presets give them ``natural_prompt``.
NATURAL_LANGUAGE_FAMILIES = frozenset({"flux2-klein"})
#: :data:`NO_GLASSES_NEGATIVE` in plain words.
NO_GLASSES_NEGATIVE_PLAIN = "eyeglasses, glasses, sunglasses"


@dataclass(frozen=True)
class PromptSpec:
    """Everything generation needs for one request; ``to_record`` makes it reproducible."""

    preset: str
    subject_class: SubjectClass
    prompt: str
    negative_prompt: str
    steps: int
    cfg: float
    scheduler: SchedulerName
    width: int
    height: int
    aspect_ratio: AspectRatio
    colour_grade: ColourGrade
    film_grain: bool
    #: The delivered size (the style's rule, the same for every class and team member).
    output_width: int
    output_height: int
    #: Whether the delivered size is larger than the generated one (the detail pass runs).
    upscale: bool
    seeds: tuple[int, ...]
    custom: str | None = None
    token: str = DEFAULT_TOKEN
    #: The person's own features as prompt text, e.g. ["(hazel eyes)1.1", "wearing glasses"].
    attributes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["seeds"] = list(self.seeds)
        return record


def normalise_prompt(text: str) -> str:
    """A preset's A1111 prompt in compel syntax, without the reference's upscale suffix."""
    return a1111_to_compel(_UPSCALE_SUFFIX.sub("", text))


# --- the person's own features ------------------------------------------------------------


def attribute_phrases(
    attributes: PersonAttributes, *, glasses_in_photo: bool | None = None, weighted: bool = True
) -> list[str]:
    """Prompt (or caption) phrases for what the person told us, in a fixed order.

    ``glasses_in_photo`` describes one training photo (captions); for prompts it is ``None`` and
    the person's choice decides. "As in my photos" and unset fields add nothing.
    """
    phrases: list[str] = []
    if attributes.eye_colour is not None:
        eyes = _EYES[attributes.eye_colour]
        phrases.append(f"({eyes}){EYE_COLOUR_WEIGHT:g}" if weighted else eyes)
    wears = glasses_in_photo if glasses_in_photo is not None else attributes.glasses == "wear"
    if wears:
        phrases.append(GLASSES_PHRASE)
    if attributes.hair_length == "shaved":
        phrases.append("shaved head")
    elif attributes.hair_colour is not None or attributes.hair_length is not None:
        length = _HAIR_LENGTH.get(attributes.hair_length or "", "")
        colour = _HAIR_COLOUR.get(attributes.hair_colour or "", "")
        phrases.append(" ".join(part for part in (length, colour, "hair") if part))
    return phrases


def training_caption(
    subject_class: str,
    attributes: PersonAttributes,
    *,
    token: str = DEFAULT_TOKEN,
    glasses_in_photo: bool | None = None,
) -> str:
    """``photo of ohwx woman, hazel eyes, wearing glasses``: the token plus the stated features."""
    phrases = attribute_phrases(attributes, glasses_in_photo=glasses_in_photo, weighted=False)
    return join_terms(f"photo of {token} {subject_class}", *phrases)


# --- custom description ---------------------------------------------------------------------


def sanitise_custom(text: str | None) -> str | None:
    """Plain, safe words from an untrusted description; a refused one raises :class:`UserError`.

    The chat front ends review a description as it is typed (and reply there); this second
    review stops a request that skipped them.
    """
    review = review_description(text)
    if review.refusal is not None:
        raise UserError(review.refusal)
    return review.text


# --- loading ----------------------------------------------------------------------------


def _derive_person_prompt(man_prompt: str) -> str:
    return re.sub(r"\bman\b", "person", man_prompt, count=1)


@functools.lru_cache(maxsize=4)
def load_presets(path: Path = _PRESETS_FILE) -> dict[str, Preset]:
    """All presets by name, validated; raises :class:`ConfigurationError` on a bad file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read presets from {path}: {exc}") from exc
    defaults: dict[str, Any] = data.get("defaults", {})
    presets: dict[str, Preset] = {}
    for name, raw in data.get("presets", {}).items():
        merged = {**defaults, **raw}
        prompts = dict(merged["prompts"])
        prompts.setdefault("person", _derive_person_prompt(prompts["man"]))
        scheduler = merged["scheduler"]
        grade = merged["colour_grade"]
        if scheduler not in SCHEDULERS or grade not in COLOUR_GRADES:
            raise ConfigurationError(f"preset {name}: unknown scheduler or colour grade")
        if set(prompts) != set(SUBJECT_CLASSES):
            raise ConfigurationError(f"preset {name}: prompts must cover {SUBJECT_CLASSES}")
        presets[name] = Preset(
            name=name,
            title=str(merged.get("title", name)),
            prompts=cast(dict[SubjectClass, str], prompts),
            negative_prompt=str(merged["negative_prompt"]),
            attire_phrase=str(merged["attire_phrase"]),
            background_phrases=tuple(merged.get("background_phrases", ())),
            backgrounds=dict(merged.get("backgrounds", {})),
            attire=dict(merged.get("attire", {})),
            steps=int(merged["steps"]),
            cfg=float(merged["cfg"]),
            scheduler=scheduler,
            aspect_ratio=merged["aspect_ratio"],
            colour_grade=grade,
            film_grain=bool(merged.get("film_grain", True)),
            upscale_factor=float(merged.get("upscale_factor", DEFAULT_UPSCALE_FACTOR)),
            natural_prompt=str(merged.get("natural_prompt", "")),
            natural_negative_prompt=str(merged.get("natural_negative_prompt", "")),
            natural_steps=int(merged.get("natural_steps", 50)),
            natural_cfg=float(merged.get("natural_cfg", 4.0)),
        )
        if "{subject}" not in presets[name].natural_prompt:
            raise ConfigurationError(f"preset {name}: natural_prompt must contain {{subject}}")
        if presets[name].upscale_factor < 1:
            raise ConfigurationError(f"preset {name}: upscale_factor must be at least 1")
    return presets


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a :class:`UserError` listing the choices otherwise."""
    presets = load_presets()
    try:
        return presets[name]
    except KeyError:
        raise UserError(f"Unknown style {name!r}. Choose one of: {', '.join(presets)}.") from None


# --- building a prompt --------------------------------------------------------------------


def size_for_aspect(aspect_ratio: AspectRatio, native_resolution: int) -> tuple[int, int]:
    """(width, height): the short side is native, the long side rounded to what the UNet tiles."""
    quantum = max(8, native_resolution // 8)
    ratio_w, ratio_h = (int(part) for part in aspect_ratio.split(":"))
    width = native_resolution
    height = round(native_resolution * ratio_h / ratio_w / quantum) * quantum
    return width, height


def output_size(aspect_ratio: AspectRatio, long_side: int) -> tuple[int, int]:
    """(width, height) of a delivered image: ``long_side`` on its long side, exact aspect."""
    ratio_w, ratio_h = (int(part) for part in aspect_ratio.split(":"))
    if ratio_h >= ratio_w:
        return round(long_side * ratio_w / ratio_h), long_side
    return long_side, round(long_side * ratio_h / ratio_w)


def delivered_long_side(preset: Preset, native_resolution: int, override: int | None = None) -> int:
    """The long side every image of ``preset`` is delivered at on this model."""
    if override is not None:
        return override
    return round(native_resolution * preset.upscale_factor)


def seeds_for(style: StyleChoice, count: int, job_id: str) -> tuple[int, ...]:
    """The user's seed, or one derived from the job id (a re-run of a job is reproducible)."""
    if style.seed is not None:
        base = style.seed
    else:
        base = int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:4], "big") % 2**31
    return tuple((base + offset) % 2**32 for offset in range(count))


def _option_text(options: dict[str, str], choice: str | None) -> str | None:
    if choice is None:
        return None
    if choice in options:
        return options[choice]
    # Free text from a chat is as untrusted as a custom description.
    return sanitise_custom(choice)


def _remove_phrase(prompt: str, phrase: str) -> str:
    pattern = re.compile(r"(?:,\s*)?" + re.escape(phrase) + r"(?=,|$)")
    return pattern.sub("", prompt, count=1).strip(" ,")


def build_prompt_spec(
    style: StyleChoice,
    *,
    job_id: str,
    native_resolution: int = 512,
    count: int | None = None,
    token: str = DEFAULT_TOKEN,
    steps: int | None = None,
    scheduler: SchedulerName | None = None,
    output_long_side: int | None = None,
    family: str = "sd15",
) -> PromptSpec:
    """Turn a chat's :class:`StyleChoice` into a full, reproducible :class:`PromptSpec`.

    ``family`` picks the prompt language: A1111/compel tags for the CLIP families, the
    preset's ``natural_prompt`` in plain words for :data:`NATURAL_LANGUAGE_FAMILIES`.
    """
    preset = get_preset(style.preset)
    cls = style.subject_class
    natural = family in NATURAL_LANGUAGE_FAMILIES
    if natural:
        prompt = preset.natural_prompt.replace("{subject}", f"{token} {cls}")
    else:
        prompt = normalise_prompt(preset.prompts[cls])
    if token != DEFAULT_TOKEN and not natural:
        prompt = re.sub(rf"\b{DEFAULT_TOKEN}\b", token, prompt)

    attire = _option_text(preset.attire, style.attire)
    if attire:
        if preset.attire_phrase in prompt:
            prompt = prompt.replace(preset.attire_phrase, attire, 1)
        else:
            attire_extra: str | None = attire
            prompt = _insert_after_subject(prompt, [attire_extra])
    background = _option_text(preset.backgrounds, style.background)
    custom = sanitise_custom(style.custom)
    attributes = attribute_phrases(style.attributes, weighted=not natural)
    extras: list[str | None] = list(attributes)
    if background:
        for phrase in preset.background_phrases:
            prompt = _remove_phrase(prompt, phrase)
        extras.append(background)
    if custom:
        extras.extend([custom, SAFETY_POSITIVE])
    prompt = _insert_after_subject(prompt, extras)

    no_glasses = style.attributes.glasses == "none"
    if natural:
        negative = join_terms(
            SAFETY_NEGATIVE,
            NO_GLASSES_NEGATIVE_PLAIN if no_glasses else None,
            preset.natural_negative_prompt,
        )
    else:
        # The reference negative prompt verbatim (its repeats too: nothing is truncated now).
        negative = join_terms(
            SAFETY_NEGATIVE,
            NO_GLASSES_NEGATIVE if no_glasses else None,
            normalise_prompt(preset.negative_prompt),
        )
    aspect = style.aspect_ratio or preset.aspect_ratio
    width, height = size_for_aspect(aspect, native_resolution)
    out_width, out_height = output_size(
        aspect, delivered_long_side(preset, native_resolution, output_long_side)
    )
    grade = style.colour_grade or preset.colour_grade
    if grade not in COLOUR_GRADES:
        raise UserError(
            f"Unknown colour grade {grade!r}. Choose one of: {', '.join(COLOUR_GRADES)}."
        )
    n = count if count is not None else style.count
    return PromptSpec(
        preset=preset.name,
        subject_class=cls,
        prompt=prompt,
        negative_prompt=negative,
        steps=steps if steps is not None else (preset.natural_steps if natural else preset.steps),
        cfg=preset.natural_cfg if natural else preset.cfg,
        scheduler=scheduler or preset.scheduler,
        width=width,
        height=height,
        aspect_ratio=aspect,
        colour_grade=grade,
        film_grain=preset.film_grain,
        output_width=out_width,
        output_height=out_height,
        upscale=max(out_width, out_height) > max(width, height),
        seeds=seeds_for(style, n, job_id),
        custom=custom,
        token=token,
        attributes=tuple(attributes),
    )


def _insert_after_subject(prompt: str, extras: list[str | None]) -> str:
    """Put ``extras`` right after the first clause (the subject), ahead of the boilerplate."""
    words = [extra for extra in extras if extra]
    if not words:
        return prompt
    head, _, tail = prompt.partition(", ")
    return ", ".join(part for part in [head, *words, tail] if part)
