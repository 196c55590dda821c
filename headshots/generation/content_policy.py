"""What a custom description may say: attire, background, lighting and mood, nothing else.

The text comes from a chat and is rendered on a real person's face, so it is reviewed twice:
by the chat front end the moment it is typed (a clear reply, nothing queued) and again when a
worker builds the prompt (a request that skipped the bot, or an old queued one, cannot slip
through). The rules are data in ``content_policy.toml``; this module folds the text the way an
evader would bend it and matches the rules against every fold:

- Unicode NFKC (full-width letters, ligatures), invisible format characters removed,
- look-alike letters from Cyrillic and Greek mapped to their Latin twins ("nаked" with a
  Cyrillic "а"), accents dropped ("nüde"),
- digits and symbols read as letters ("n4k3d", "s3xy", "$exy"),
- letters spelled out one at a time joined ("n a k e d", "n.a.k.e.d"),
- runs of three or more of one letter shortened ("naaaked", "nuuude", "nippple").

What passes is reduced to plain words (no weighting, alternation or ``<lora:…>`` syntax) and
capped in length; it can never reach the negative prompt.
"""

from __future__ import annotations

import functools
import re
import tomllib
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from headshots.errors import ConfigurationError

POLICY_FILE = Path(__file__).with_name("content_policy.toml")
MAX_DESCRIPTION_CHARS = 160
#: What a refused description is asked to be instead (shown after every refusal reason).
ASK_INSTEAD = (
    "Describe attire, background, lighting or mood instead, "
    'for example "navy suit, soft window light, calm and confident".'
)

#: Look-alike letters that NFKC keeps apart from Latin (Unicode's confusables, the common ones).
_CONFUSABLES = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "з": "3", "і": "i", "ї": "i", "ј": "j",
        "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t", "у": "y",
        "х": "x", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ү": "y", "ɡ": "g",
        "ӏ": "l", "ь": "b", "ѵ": "v",
        # Greek
        "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v",
        "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ς": "c", "ζ": "z",
        # Latin small capitals and other look-alikes
        "ɑ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ɢ": "g", "ʜ": "h", "ɪ": "i",
        "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r",
        "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z", "ı": "i",
        "ø": "o", "ł": "l", "đ": "d", "ß": "ss", "æ": "ae", "œ": "oe",
    }
)  # fmt: skip
_LEET = str.maketrans(
    {"0": "o", "1": "i", "2": "z", "3": "e", "4": "a", "5": "s", "6": "g", "7": "t",
     "8": "b", "9": "g", "@": "a", "$": "s", "!": "i", "|": "i", "+": "t", "€": "e", "£": "l"}
)  # fmt: skip
_NUMBER_WORDS = {
    word: value
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen".split()
    )
}
_SPELLED_OUT = re.compile(r"\b(?:\w[\s.\-_*'·]+){2,}\w\b")
_AGE = re.compile(
    r"\b(\d{1,2}|" + "|".join(_NUMBER_WORDS) + r")[\s\-]*(?:years?|yrs?|y)[\s\-]*o(?:ld|\b)"
    r"|\b(\d{1,2})\s*y\.?o\b"
    r"|\bage[ds]?\s*(\d{1,2}|" + "|".join(_NUMBER_WORDS) + r")\b",
)


@dataclass(frozen=True)
class DescriptionReview:
    """The outcome of :func:`review_description`.

    ``text`` is what may reach the prompt (``None``: nothing usable); ``refusal`` is a reply
    written for the chat when the description asks for something we never render.
    """

    text: str | None
    refusal: str | None = None
    category: str | None = None

    @property
    def refused(self) -> bool:
        return self.refusal is not None


@dataclass(frozen=True)
class _Category:
    name: str
    reply: str
    patterns: tuple[re.Pattern[str], ...]


@dataclass(frozen=True)
class _Policy:
    categories: tuple[_Category, ...]
    under_age: int


def _fold(text: str) -> str:
    """NFKC, no invisible characters, look-alikes to Latin, no accents, lower case."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = text.translate(_CONFUSABLES)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


def _collapse_runs(text: str, keep: int) -> str:
    """Runs of three or more of one letter cut to ``keep`` ("naaaked" -> "naked"/"naaked")."""
    return re.sub(r"(\w)\1{2,}", r"\1" * keep, text)


def _join_spelled_out(text: str) -> str:
    """ "n a k e d" / "n.a.k.e.d" -> "naked" (only runs of single characters are joined)."""

    def join(match: re.Match[str]) -> str:
        pieces = re.split(r"[\s.\-_*'·]+", match.group(0))
        return "".join(pieces) if all(len(piece) == 1 for piece in pieces) else match.group(0)

    return _SPELLED_OUT.sub(join, text)


def _variants(text: str) -> Iterator[str]:
    """Every reading of ``text`` a rule is matched against (each already word-normalised)."""
    folded = _fold(text)
    plain = _words(folded)
    leet = _words(folded.translate(_LEET))
    seen: set[str] = set()
    joined = _words(_join_spelled_out(folded))
    joined_leet = _words(_join_spelled_out(folded.translate(_LEET)))
    for base in (plain, leet, joined, joined_leet):
        for variant in (base, _collapse_runs(base, 1), _collapse_runs(base, 2)):
            if variant not in seen:
                seen.add(variant)
                yield variant


def _compile(terms: list[str]) -> list[re.Pattern[str]]:
    alternatives = []
    for term in terms:
        prefix = term.rstrip().endswith("*")
        words = _words(_fold(term.replace("*", ""))).split(" ")
        body = r"\s+".join(re.escape(word) for word in words if word)
        alternatives.append(body + (r"\w*" if prefix else ""))
    return [re.compile(r"\b(?:" + "|".join(alternatives) + r")\b")] if alternatives else []


def _near(first: list[str], second: list[str], gap: int) -> re.Pattern[str]:
    def alternation(terms: list[str]) -> str:
        return "|".join(r"\s+".join(map(re.escape, _words(_fold(t)).split(" "))) for t in terms)

    return re.compile(
        rf"\b(?:{alternation(first)})\s+(?:\w+\s+){{0,{gap}}}(?:{alternation(second)})\b"
    )


@functools.lru_cache(maxsize=2)
def _load(path: Path = POLICY_FILE) -> _Policy:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read the content policy {path}: {exc}") from exc
    categories: list[_Category] = []
    for name, raw in data.items():
        patterns = _compile(list(raw.get("terms", [])))
        garments = list(raw.get("garments", []))
        if garments:
            patterns.append(_near(list(raw.get("exposing", [])), garments, 2))
            patterns.append(_near(list(raw.get("negations", [])), garments, 2))
            patterns.append(_near(garments, ["off"], 0))
        categories.append(_Category(name, str(raw["reply"]), tuple(patterns)))
    return _Policy(tuple(categories), int(data.get("minors", {}).get("under_age", 18)))


def _stated_ages(text: str) -> Iterator[int]:
    for match in _AGE.finditer(_words(_fold(text))):
        value = next(group for group in match.groups() if group is not None)
        yield int(value) if value.isdigit() else _NUMBER_WORDS[value]


def policy_violation(text: str) -> tuple[str, str] | None:
    """``(category, reply)`` of the first rule ``text`` breaks, or ``None``."""
    policy = _load()
    minors_reply = ""
    for category in policy.categories:
        if category.name == "minors":
            minors_reply = category.reply
        for variant in _variants(text):
            if any(pattern.search(variant) for pattern in category.patterns):
                return category.name, category.reply
    if any(age < policy.under_age for age in _stated_ages(text)):
        return "minors", minors_reply
    return None


def clean_description(text: str) -> str | None:
    """Plain words only: no weighting, alternation, tags or markup reach the pipeline."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = re.sub(r"<[^>]*>", " ", text)  # <lora:...>, <embedding> and HTML
    text = re.sub(r":\s*-?\d+(?:\.\d+)?", " ", text)  # A1111 weights
    # Letters, digits and light punctuation survive: no brackets, pipes or colons, so no
    # weighting, alternation or prompt-editing syntax.
    text = re.sub(r"[^\w\s,.'\-]", " ", text)
    text = re.sub(r"\s*,[\s,]*", ", ", " ".join(text.split())).strip(" ,.")
    if len(text) > MAX_DESCRIPTION_CHARS:
        text = text[:MAX_DESCRIPTION_CHARS].rsplit(" ", 1)[0].strip(" ,.")
    return text or None


def review_description(text: str | None) -> DescriptionReview:
    """Review an untrusted description; refused ones carry a chat-ready reply."""
    if not text or not text.strip():
        return DescriptionReview(text=None)
    violation = policy_violation(text)
    if violation is not None:
        category, reply = violation
        return DescriptionReview(text=None, refusal=f"{reply} {ASK_INSTEAD}", category=category)
    return DescriptionReview(text=clean_description(text))
