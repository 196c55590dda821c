"""Style presets (data in ``presets.toml``) and their translation into one :class:`PromptSpec`.

Choices made here, and why:

- A1111 emphasis such as ``(ohwx man)`` is *stripped*, not converted to weights: plain diffusers
  would feed the brackets to CLIP as text, and we do not ship a prompt-weighting library. Exact
  duplicate negative terms (the reference list repeats "blurry" three times) are dropped, so more
  distinct terms fit in CLIP's 77 tokens.
- A trailing ``(tiled upscale)`` / ``--tiled upscale`` is an option (``upscale``), not prompt text.
- CLIP truncates prompts at 77 tokens, so what must never be lost goes *first*: the safety
  negatives open the negative prompt, and the subject, attire, background and the (sanitised)
  custom description come before the preset's quality boilerplate in the positive prompt.
- A custom description is untrusted text from a chat: ``content_policy`` refuses what we never
  render (sexual, minors, violence, hate, identity changes, instructions) and reduces the rest to
  plain words, capped in length; it can never touch the negative prompt.
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
from headshots.generation.content_policy import review_description
from headshots.queue.contracts import AspectRatio, StyleChoice, SubjectClass

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
_WEIGHT = re.compile(r":\s*-?\d+(?:\.\d+)?")


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
    upscale: bool
    seeds: tuple[int, ...]
    custom: str | None = None
    token: str = DEFAULT_TOKEN
    extra: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["seeds"] = list(self.seeds)
        return record


def strip_emphasis(text: str) -> str:
    """Remove A1111 emphasis brackets and weights and tidy the commas they leave."""
    text = _WEIGHT.sub("", text)
    text = re.sub(r"[()\[\]{}]", "", text)
    text = re.sub(r"\s*,\s*", ", ", text)
    return " ".join(text.split()).strip(" ,")


def normalise_prompt(text: str) -> tuple[str, bool]:
    """``(prompt without emphasis or upscale suffix, whether an upscale was asked for)``."""
    upscale = bool(_UPSCALE_SUFFIX.search(text))
    return strip_emphasis(_UPSCALE_SUFFIX.sub("", text)), upscale


def dedupe_terms(text: str) -> str:
    """Drop repeated comma-separated terms, keeping first occurrences in order."""
    seen: set[str] = set()
    kept: list[str] = []
    for term in (part.strip() for part in text.split(",")):
        key = term.lower()
        if term and key not in seen:
            seen.add(key)
            kept.append(term)
    return ", ".join(kept)


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
        )
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
) -> PromptSpec:
    """Turn a chat's :class:`StyleChoice` into a full, reproducible :class:`PromptSpec`."""
    preset = get_preset(style.preset)
    cls = style.subject_class
    prompt, upscale = normalise_prompt(preset.prompts[cls])
    if token != DEFAULT_TOKEN:
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
    extras: list[str | None] = []
    if background:
        for phrase in preset.background_phrases:
            prompt = _remove_phrase(prompt, phrase)
        extras.append(background)
    if custom:
        extras.extend([custom, SAFETY_POSITIVE])
    prompt = _insert_after_subject(prompt, extras)

    negative = dedupe_terms(f"{SAFETY_NEGATIVE}, {strip_emphasis(preset.negative_prompt)}")
    aspect = style.aspect_ratio or preset.aspect_ratio
    width, height = size_for_aspect(aspect, native_resolution)
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
        steps=steps if steps is not None else preset.steps,
        cfg=preset.cfg,
        scheduler=scheduler or preset.scheduler,
        width=width,
        height=height,
        aspect_ratio=aspect,
        colour_grade=grade,
        film_grain=preset.film_grain,
        upscale=upscale,
        seeds=seeds_for(style, n, job_id),
        custom=custom,
        token=token,
    )


def _insert_after_subject(prompt: str, extras: list[str | None]) -> str:
    """Put ``extras`` right after the first clause (the subject), ahead of the boilerplate."""
    words = [extra for extra in extras if extra]
    if not words:
        return prompt
    head, _, tail = prompt.partition(", ")
    return ", ".join(part for part in [head, *words, tail] if part)
