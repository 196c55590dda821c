"""What a custom description may say: known terms for attire, background, lighting and mood.

The text comes from a chat and is rendered on a real person's face. A list of bad words cannot
keep up with paraphrases, other languages and innocent words that contain bad ones, so the
policy denies by default:

1. **Refusals first, so the reply says why** (``refusals.toml``): the text is folded the way an
   evader bends it (Unicode NFKC, invisible characters removed, Cyrillic/Greek look-alikes to
   Latin, accents dropped, digits read as letters, spelled-out letters joined, stretched letters
   shortened) and matched, per category, against terms, "exposing garment" and "without
   garment" patterns and stated ages under 18. Vocabulary phrases that contain a refused word
   ("nude lipstick", "children's hospital", "power suit") and culture words that qualify attire
   or a place ("japanese garden", "jardin japonais") are taken out before this pass, and so
   are ordinary phrases whose words vary around a refused one, by pattern ("high school
   chemistry teacher", "we're a young company": ``spared``). A few patterns read the text
   before anything is taken out (``unshielded``: "natural skin, but lighter").
2. **Then only known terms** (``vocabulary.toml``): the text is split into words (Japanese,
   which has no spaces, by longest known term) and read as a sequence of vocabulary terms:
   modifiers, colours, fabrics and patterns attach to the term they precede ("navy wool
   suit"), fillers ("a", "with", "please") are dropped, and a negation ("no tie", "without a
   jacket", "ohne Krawatte", "ネクタイなし") may only remove what a headshot can do without.
   German, Spanish, French, Russian and Japanese words map onto the same English terms; a
   Russian word is matched by its stem, an inflected adjective by its listed form, a closed
   compound ("Holzboden") by its known parts and a typing slip ("blazzer") by the one term it
   misses by a letter, unless what it is read as is refused. A culture or faith word must
   qualify attire, a pattern or a place ("indian saree"; a faith word a role too: "anglican
   priest"), never the person ("japanese woman": refused as identity). Body words are read
   only where they place a thing ("around my neck", "behind my ear"), French elisions as
   words ("l'hôpital": "l hôpital"), and a profession by its learned suffix ("ornithologist")
   is dropped like a stated role. A feature of the person's own said of themselves ("keep my
   beard", "i'm bald", "with my scar": ``[kept]``) is one term that names none of them, so the
   model keeps what the photos show and never adds a feature; what is said to change such a
   feature ("shave my beard", "my eyes green", "my beard bigger") is refused as identity. A
   word is read by its spelling with accents first ("velo" Spanish, "vélo" French), a long
   word may carry two typing slips ("coperate"). Any word outside the vocabulary refuses the
   description, naming the words and the nearest known terms; a text in another script is
   asked for in English. Besides the three main files, each language has a file of its own
   (``vocabulary_de.toml`` …) with the same tables.

The model only ever receives the canonical English terms (:attr:`DescriptionReview.text`),
never the person's words. The chat stores that text and the worker reviews it again with the
same function, which gives the same terms back (the review is repeated on its own output until
it does), so what was checked is what is generated.
"""

from __future__ import annotations

import difflib
import functools
import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from headshots.errors import ConfigurationError
from headshots.style.built import cached

HERE = Path(__file__).parent
#: The code that builds a vocabulary and a shield: a kept build is read only with this code.
_CODE = Path(__file__)
REFUSALS_FILE = HERE / "refusals.toml"
#: The vocabulary: the main file (attire, backgrounds, lighting, mood, photography, filler,
#: negation, translations), the roles and scene objects a person mentions for context, and
#: everyday words that say nothing of the look (dropped, like fillers).
VOCABULARY_FILES = (
    HERE / "vocabulary.toml",
    HERE / "vocabulary_roles.toml",
    HERE / "vocabulary_context.toml",
    # Each language's words beyond those three (round 7: team and trade words, compounds,
    # framing, retouching, regional dress, colours), read after them, so a phrase listed
    # there first keeps its meaning.
    *(HERE / f"vocabulary_{language}.toml" for language in ("de", "es", "fr", "ru", "ja")),
    # Dress, marks and vestments of cultures and faiths worldwide, in all six languages.
    HERE / "vocabulary_world.toml",
    # Countries, US states and large cities named for context: read after the look, so a
    # place's name never takes a word that the look has.
    HERE / "vocabulary_places.toml",
    # Everyday words of five languages the files above do not know, dropped (written by
    # scripts/common_words.py, which leaves out words that may carry harm): read last.
    HERE / "vocabulary_common.toml",
)
#: The longest canonical text handed to the model.
MAX_DESCRIPTION_CHARS = 160
#: What a refused description is asked to be instead (shown after every refusal reason).
ASK_INSTEAD = (
    "Describe attire, background, lighting or mood instead, "
    'for example "navy suit, soft window light, calm and confident".'
)
LANGUAGE_REPLY = (
    "I read descriptions in English, German, Spanish, French, Russian and Japanese only. "
    "Please describe the look in English."
)
#: Kinds that qualify the term after them; the others are terms of their own.
MODIFIER_KINDS = ("colour", "modifier", "fabric", "pattern")
HEAD_KINDS = (
    "garment", "cultural", "accessory", "background", "lighting", "mood", "photo", "role", "scene"
)  # fmt: skip
#: Nationality, culture and faith words ("japanese", "indian", "sikh"): refused as identity on
#: their own ("make me japanese"), known only as the qualifier of attire, a pattern, a fabric or
#: a place ("japanese garden", "indian saree", "kimono japonais"), which shows what is around a
#: person and never changes the person.
CULTURE_KIND = "culture"
#: Faith words ("sikh", "anglican") qualify the same, and a role too ("anglican priest"); a
#: person's faith is no part of the identity refusals, but alone it is no look either.
FAITH_KIND = "faith"
_CULTURE_HEADS = ("garment", "cultural", "accessory", "background", "pattern", "fabric", "scene")
_QUALIFIED_HEADS = {CULTURE_KIND: _CULTURE_HEADS, FAITH_KIND: (*_CULTURE_HEADS, "role")}
#: Dropped words that may stand between a culture word and its term ("japanese style garden");
#: any other ("japanese woman in a kimono") leaves the culture word qualifying the person.
_CULTURE_LINKS = frozenset(
    {"style", "styled", "inspired", "stil", "estilo", "стиль", "стиле", "の", "風", "風の", "式"}
)
KINDS = MODIFIER_KINDS + HEAD_KINDS + (CULTURE_KIND, FAITH_KIND)
TRANSLATED = ("de", "es", "fr", "ru", "ja")
#: After a negated term these carry the negation on: "no tie or jacket".
_POSTPOSING = ("es", "fr")
_BACKDROP_WORDS = frozenset({"background", "backdrop"})

#: The canonical size modifiers ("thin tie", "small earrings", "petite" and "big" read as
#: "small" and "large"). Said of nothing ("that is fine", "petite please") they would reach
#: the model as the person's build, so a lone one is dropped.
_SIZES = frozenset({"thin", "small", "large", "short"})
#: Kinds a negation may always take away: places and things seen around a person.
_PLACES = frozenset({"background", "scene"})
#: Kinds of term that may always be negated: nothing worn is taken off.
_UNWORN = frozenset({*_PLACES, "mood", "photo", "lighting"})
#: Words that start another thing: after them a dropped word no longer speaks of a kept
#: feature ("keep my beard and more colour").
_JOINERS = frozenset("and with but plus also und mit aber y con pero et avec mais и с но".split())
#: English "and": a modifier after it starts a term of its own ("a blazer and good light"),
#: where one after "with" still qualifies the term before ("shirt with stripes"), and colours
#: put after their noun keep their pair ("polo rouge et noir", "rayas azules y blancas").
_AND = frozenset({"and", "plus"})
_CONTINUE_NEGATION = frozenset({"or", "nor", "oder", "noch", "o", "ni", "ou", "или", "ни"})

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
#: Ages under 18 spelled out in German, Spanish, French and Russian, read only before that
#: language's word for years ("once años", "seize ans", "пятнадцать лет"): several are English
#: words elsewhere ("once", "elf", "six").
_FOREIGN_NUMBER_WORDS = {
    word.translate(_CONFUSABLES): value
    for words in (
        "null ein zwei drei vier funf sechs sieben acht neun zehn elf zwolf dreizehn vierzehn "
        "funfzehn sechzehn siebzehn",
        "cero un dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce "
        "quince dieciseis diecisiete",
        "zero un deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze "
        "quinze seize dix-sept",
        "ноль один два три четыре пять шесть семь восемь девять десять одиннадцать двенадцать "
        "тринадцать четырнадцать пятнадцать шестнадцать семнадцать",
    )
    for value, word in enumerate(words.split())
}
_NUMBER = r"(\d{1,2}|" + "|".join(_NUMBER_WORDS) + r")"
_FOREIGN_NUMBER = (
    r"(\d{1,2}|"
    + "|".join(re.escape(w).replace(r"\-", r"\s*") for w in _FOREIGN_NUMBER_WORDS)
    + r")"
)
_SPELLED_OUT = re.compile(r"\b(?:\w[\s.\-_*'·]+){2,}\w\b")
#: A stated age: "12 year old", "15yo", "aged 16", "13 years of age", "looking about 15",
#: "15 Jahre", "15 años", "15 ans", "15 лет", "15歳".
_AGE = re.compile(
    rf"\b{_NUMBER}\s*(?:years?|yrs?|y|yr)\s*(?:o(?:ld|\b)|of\s+age|young)"
    rf"|\b{_NUMBER}\s*y\s*(?:,\s*)?o\b"
    rf"|\b(?:age[ds]?|age\s+of|aged\s+about|looking|look|looks|about|around|roughly|like|as"
    rf"|under|below|younger\s+than|less\s+than|not\s+yet|barely|im|i\s+am|am|turning|turned"
    # "ich bin 15": German says an age without "Jahre" as English does.
    r"|ich\s+bin"
    # "sieh aus wie 12", "como de 12", "parecer de 15", "we're all 13 and 14" (children).
    r"|wie|(?<!hace\s)como|parecer\s+de|parezca\s+de|aparentar|aparento|comme|tengo|cumplo"
    r"|acabo\s+de\s+cumplir|j\s+ai"
    r"|(?:were|we\s+are|sind|wir\s+sind|somos|sommes)\s+(?:all|alle|todos|todas|tous|toutes)"
    rf"|{'как'.translate(_CONFUSABLES)}"
    rf"|now|only|shes|she\s+is|hes|he\s+is|daughter\s+is|son\s+is|{'мне'.translate(_CONFUSABLES)}"
    # "my son (11) needs one": a child of the person's, with the child's age.
    r"|(?:my|our|his|her)\s+(?:son|daughter|kid|child|boy|girl|nephew|niece|grandson|granddaughter"
    r"|stepson|stepdaughter))"
    rf"(?:\s*[:=\-]\s*|\s+)(?:about\s+|around\s+|like\s+|maybe\s+|only\s+|just\s+)?{_NUMBER}\b"
    # "like 10 percent", "about 5 minutes": an amount, not an age.
    r"(?!\s*(?:%|percent|per\s+cent|minutes?|mins?|hours?|seconds?|secs?|days?|weeks?|months?"
    r"|people|persons|of\s+us|of\s+them|members|staff|employees|colleagues|photos|pictures"
    r"|selfies|shots|images|km|miles|mm|cm|px|x\b|times"
    # "everything under one roof", "under one banner": a business, never an age.
    r"|roofs?\b|umbrellas?\b|banners?\b|brands?\b"
    r"|von|leute|personen|mitarbeiter\w*|kolleg\w*|fotos?|bilder|minuten|stunden|mal\b"
    r"|de\s+nosotros|personas|fotos|veces|de\s+nous|personnes|fois"
    rf"|{'человек|из нас|раз'.translate(_CONFUSABLES)}"
    # "I'm one of those people", "like ONE where I look clean", "for about fifteen years": a
    # count or a span of time (a stated age says "old": "about 15 years old").
    r"|of\b|where|which|that|more|other|another|thing|things|version|versions"
    r"|years?\b(?!\s*(?:old|of\s+age|young))|yrs?\b(?!\s*old)|jahren?\b(?!\s*alt)))"
    # Matched on folded text, where Cyrillic look-alike letters are Latin already ("лет": "лet").
    # A span of time is no age: "seit 5 Jahren" (for 5 years), "hace diez años" (ten years
    # ago), "depuis 10 ans", "10 лет назад", "más de 10 años de experiencia".
    r"|(?<!seit\s)(?<!vor\s)(?<!uber\s)(?<!mehr\sals\s)(?<!hace\s)(?<!mas\sde\s)"
    r"(?<!hace\scomo\s)(?<!hace\sunos\s)(?<!hace\sya\s)(?<!vor\setwa\s)(?<!il\sy\sa\s)"
    r"(?<!depuis\s)(?<!y\sa\s)(?<!plus\sde\s)(?<!pendant\s)(?<!durant\s)"
    rf"\b{_FOREIGN_NUMBER}\s*(?:jahre?n?|jahrig\w*|anos|ans|{'лет|года?'.translate(_CONFUSABLES)})\b"
    rf"(?!\s+(?:{'назад|опыта|стажа|работы|практики'.translate(_CONFUSABLES)}|ago|erfahrung"
    r"|berufserfahrung|im\s+beruf|de\s+experiencia|d\s+experience|de\s+carrera|de\s+carriere))"
    # "лет 12" (about twelve years old), not "лет 5 назад" (some five years ago).
    rf"|\b(?:{'лет|года?'.translate(_CONFUSABLES)})\s+{_FOREIGN_NUMBER}\b"
    rf"(?!\s+(?:{'назад|опыта|стажа|работы|практики'.translate(_CONFUSABLES)}))"
    rf"|{_NUMBER}\s*(?:歳|才|さい)"
    # "I teach 4th grade" states the class a person teaches, not their age.
    r"|(?<!teach\s)(?<!teaches\s)(?<!teaching\s)(?<!taught\s)"
    r"\b(?:\d{1,2}(?:st|nd|rd|th)|first|second|third|fourth|fifth|sixth|seventh|eighth|ninth"
    r"|tenth|eleventh|twelfth)\s+grade"
    # "fifth-grade science teacher" states the class a person teaches, not their age.
    r"(?!\s+(?:\w+\s+)?teachers?\b)"
    # A British school year ("I'm in year 9"), not a year of a course or a job ("year 2 of my
    # PhD") nor the class a person teaches.
    r"|(?<!teach\s)(?<!teaches\s)(?<!teaching\s)\bin\s+year\s+(?:[1-9]|1[0-3]|seven|eight|nine"
    r"|ten|eleven|twelve|thirteen)\b(?!\s+(?:of|at|in|with|\d))"
)
#: Japanese (and Chinese) script: matched without word boundaries, split by known terms.
# (Without the middle dot "・", U+30FB, which separates like a comma.)
_CJK = "\u3005\u3040-\u30fa\u30fc-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_HAS_CJK = re.compile(f"[{_CJK}]")
_SEPARATORS = ",;.!?、。・"
_TOKEN = re.compile(
    rf"[{_CJK}]+|(?:(?![{_CJK}])[^\W_])+(?:['’`](?:(?![{_CJK}])[^\W_])+)*|[{_SEPARATORS}]"
)
#: Scripts the vocabulary reads; a word in any other is answered with LANGUAGE_REPLY.
_KNOWN_SCRIPT = re.compile(rf"^[a-z0-9\u00c0-\u024f\u0400-\u04ff{_CJK}'’`]+$")


@dataclass(frozen=True)
class DescriptionReview:
    """The outcome of :func:`review_description`.

    ``text`` is what may reach the prompt: the canonical terms joined (``None``: nothing
    usable). ``refusal`` is a reply written for the chat; ``category`` says why (one of the
    refusal categories, ``negation``, ``unknown`` or ``language``) and ``words`` which words.
    """

    text: str | None
    refusal: str | None = None
    category: str | None = None
    terms: tuple[str, ...] = ()
    words: tuple[str, ...] = ()

    @property
    def refused(self) -> bool:
        return self.refusal is not None


# --- folding --------------------------------------------------------------------------------


def _strip_cf(text: str) -> str:
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def _fold(text: str) -> str:
    """For the refusal pass: NFKC, no invisible characters, look-alikes to Latin, no accents."""
    text = _strip_cf(unicodedata.normalize("NFKC", text).casefold())
    # "children's" reads "childrens" here as in the vocabulary, so its phrases line up.
    text = re.sub(r"(?<=\w)['’`](?=\w)", "", text).translate(_CONFUSABLES)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@functools.lru_cache(maxsize=1 << 18)  # the vocabulary repeats its words: read each once
def _norm_word(word: str) -> str:
    """For the vocabulary: case and Latin accents folded, apostrophes dropped, ё as е.

    Unlike :func:`_fold`, Cyrillic stays Cyrillic and Japanese voicing marks stay: they make
    different words there.
    """
    word = unicodedata.normalize("NFKC", word).casefold().replace("ё", "е")
    out: list[str] = []
    for ch in unicodedata.normalize("NFD", word):
        if unicodedata.combining(ch) and out and out[-1].isascii():
            continue
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out)).translate({ord(c): None for c in "'’`"})


#: (ending, replacement) that take an inflected adjective to its listed form: German strong
#: and weak endings, French feminine and plural, Spanish gender ("nevada" -> "nevado").
_ADJECTIVE_ENDINGS = (
    ("en", ""), ("em", ""), ("er", ""), ("es", ""), ("e", ""), ("a", "o"), ("as", "o"),
    ("os", "o"), ("ee", "e"), ("ees", "e"),
)  # fmt: skip
#: Russian case, number and gender endings, longest first. Russian inflects every noun and
#: adjective (six cases, three genders, two numbers): listing each form of each term cannot keep
#: up, so both sides are cut to a common stem ("в форме", "форму", "форма" -> "форм").
_RUSSIAN_ENDINGS = tuple(
    sorted(
        (
            "ого его ому ему ыми ими ами ями иями ией ием ая яя ое ее ые ие ый ий ой ей ым им "
            "ом ем ую юю ых их ах ях ам ям ов ев ию ия ии ью а я о е ы и у ю ь й"
        ).split(),
        key=len,
        reverse=True,
    )
)
_CYRILLIC_WORD = re.compile(r"^[\u0400-\u04ff]+$")
_CYRILLIC_LEFT = re.compile(r"[\u0400-\u04ff]")
_MASKED = re.compile(r"(?<=[^\W\d_])\*(?=[^\W\d_])")


@functools.lru_cache(maxsize=1 << 18)  # the vocabulary repeats its words: read each once
def _stem(word: str) -> str:
    """Plural to singular, the same on both sides ("blouses" -> "blouse", "ties" -> "tie");
    a Russian word to its stem without the case ending ("шляпой", "шляпу" -> "шляп")."""
    if len(word) <= 3 or _HAS_CJK.search(word):
        return word
    if _CYRILLIC_WORD.match(word):
        for ending in _RUSSIAN_ENDINGS:
            # A stem of four letters or more: shorter ones run into other words ("лет", "лето").
            if word.endswith(ending) and len(word) - len(ending) >= 4:
                return word[: -len(ending)]
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _words(text: str) -> str:
    """Words separated by single spaces; clause punctuation kept as "," so rules stop there."""
    text = re.sub(f"[{_SEPARATORS}]", " , ", text)
    return " ".join(re.sub(r"[^\w,]+", " ", text).split())


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
    """Every reading of ``text`` a refusal is matched against (each already word-normalised)."""
    folded = _fold(text)
    # Digits read as letters, except in a Cyrillic word, where a "3" is the folded "з"
    # ("разделочной" folds to "pa3дeлoчhoи"), never a leet "e".
    leet = re.sub(
        r"\S+", lambda m: m[0] if _CYRILLIC_LEFT.search(m[0]) else m[0].translate(_LEET), folded
    )
    seen: set[str] = set()
    bases = [folded, leet, _join_spelled_out(folded), _join_spelled_out(leet)]
    # A letter masked with "*" ("n*de", "s*xy"): each vowel in its place, the same in every
    # masked place of the text.
    if _MASKED.search(folded):
        bases.extend(_MASKED.sub(vowel, folded) for vowel in "aeiou")
    for base in map(_words, bases):
        for variant in (base, _collapse_runs(base, 1), _collapse_runs(base, 2)):
            if variant not in seen:
                seen.add(variant)
                yield variant


def _clean(text: str, emoji: Sequence[tuple[str, str]] = ()) -> str:
    """No invisible characters, no prompt syntax: weights, brackets and tags become spaces.

    Tags are opened up rather than dropped ("bare<i>chest" reads "bare i chest"), so what is
    reviewed is what was typed; the pictographs of ``emoji`` read as their words, and a
    smiley ends a clause like a full stop ("not hiding them :) Audiologist").
    """
    text = _split_elisions(_strip_cf(unicodedata.normalize("NFKC", text)))
    for pictograph, word in emoji:
        text = text.replace(pictograph, f" {word} ")
    text = _SMILEY.sub(" . ", text)
    text = _F_NUMBER.sub(" aperture ", text)
    # A1111 weights "(word:1.4)", "(word:2)"; a number after a colon elsewhere ("age: 9") stays.
    text = re.sub(r":\s*-?\d+(?:\.\d+)?(?=\s*\))|:\s*-?\d+\.\d+", " ", text)
    # A "*" inside a word masks a letter ("n*de"), which the refusal pass tries (_variants).
    return re.sub(r"[<>()\[\]{}|\\/:=_#~^\"]|(?<![^\W\d_])\*|\*(?![^\W\d_])", " ", text)


#: A typed smiley (":)", ";-)", ":D", ":P", ":("), not followed by a letter or a bracket.
_SMILEY = re.compile(r"(?<![:;])[:;]-?[()DPp](?![\w()])")


#: A lens aperture ("f/1.8", "f2.8", "F/4"): the usual stops only, read as "aperture". ("f16"
#: without a slash is left alone: it is also a fighter jet.)
_F_NUMBER = re.compile(
    r"(?i)\bf\s*/\s*(?:1\.2|1\.4|1\.8|2\.8|3\.5|5\.6|1|2|4|8|11|16|22)(?!\w|\.\d)"
    r"|\bf(?:1\.2|1\.4|1\.8|2\.8|3\.5|5\.6)(?!\w|\.\d)"
)


#: French elided articles and pronouns ("l'hôpital", "d'un", "qu'il"): the word after them is
#: read as itself ("hôpital pour enfants"), on both the text's side and the vocabulary's.
_ELISION = re.compile(r"(?i)\b(?:[ldjmtnsc]|qu|jusqu|lorsqu|puisqu)['’`](?=\w)")


def _split_elisions(text: str) -> str:
    return _ELISION.sub(lambda match: match.group(0)[:-1] + " ", text)


# --- the data --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Category:
    name: str
    reply: str
    patterns: tuple[re.Pattern[str], ...]
    #: Matched before any phrase is taken out (``unshielded`` in refusals.toml): a change said
    #: of a word that an ordinary phrase carries ("natural skin, but lighter").
    unshielded: tuple[re.Pattern[str], ...] = ()


@dataclass(frozen=True)
class _Refusals:
    categories: tuple[_Category, ...]
    under_age: int
    minors_reply: str
    #: Garments a description may never take away ("no shirt"), as the stem of their last
    #: word: refused as ``sexual``.
    essential: frozenset[str]
    essential_reply: str
    #: Ordinary phrases around a refused word that no single vocabulary phrase can list
    #: ("high school chemistry teacher", "young & co"): blanked before the refusal pass, like
    #: the vocabulary's own phrases (``spared`` in refusals.toml, per category).
    spared: re.Pattern[str] | None = None
    #: Vocabulary words that are refused words themselves ("nude", a colour): they shield
    #: nothing, so the refusal pass reads them unless a ``spared`` pattern cleared them ("nude
    #: blouse"); ``unshielding`` in refusals.toml.
    unshielding: frozenset[str] = frozenset()
    #: Pictographs that say a refused word ("👙", "🔫"), read as that word before anything
    #: else (``[emoji]`` in refusals.toml); any other pictograph is dropped with the rest of
    #: what is not a letter, and never reaches the model.
    emoji: tuple[tuple[str, str], ...] = ()


#: A profession named by a learned suffix ("ornithologist", "mortician", "videographer"): no
#: such word names a look, new ones are common, and none of these suffixes makes a harmful
#: one, so it is dropped like the roles a person states for context. ("-ist" alone would take
#: in "sadist" and "extremist": not read.)
_PROFESSION = re.compile(r"^[a-z]{3,}(?:ologist|ician|grapher|ographer)s?$")


#: A time of day in one word ("4am", "6.30pm", "4h", "16h30", "7uhr"): context, like the
#: number words it is made of, and dropped.
#: ("6.30pm" reaches here as "6" and "30pm".)
_CLOCK = re.compile(
    r"^(?:(?:[01]?\d|2[0-3])(?:h?[0-5]\d)?(?:am|pm|h|uhr)|(?:[01]?\d|2[0-3])h[0-5]\d|[0-5]\d(?:am|pm))$"
)


#: A colour as a hex code ("#1A2B3C", the "#" is taken off with the other prompt syntax): six
#: hex digits with at least one digit, so that words such as "facade" stay words.
_HEX_COLOUR = re.compile(r"^(?=[a-f]*\d)[0-9a-f]{6}$")


@dataclass(frozen=True)
class _Entry:
    canonical: str
    kind: str  # a KINDS member, "filler", "negation(_post)" or "replaced(_post)"
    #: A Spanish or French adjective, which follows its noun ("camisa blanca").
    postposed: bool = False


def _culture_head(entry: _Entry, qualifier: str = CULTURE_KIND) -> bool:
    """Whether a culture (or faith) word may qualify ``entry``: attire or a place, but never a
    uniform, which with a nationality reads as a soldier's."""
    return entry.kind in _QUALIFIED_HEADS[qualifier] and "uniform" not in entry.canonical


@dataclass(frozen=True)
class Vocabulary:
    """The known terms, read from ``vocabulary.toml``."""

    exact: dict[tuple[str, ...], _Entry]
    stemmed: dict[tuple[str, ...], _Entry]
    japanese: dict[str, _Entry]
    negatable: frozenset[str]
    longest: int
    japanese_longest: int
    #: Single English words and phrases offered as "try ..." suggestions.
    suggestions: dict[str, str] = field(default_factory=dict)
    #: The keys of ``suggestions`` by first letter: the near spellings looked through for one.
    suggestion_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Words of multi-word terms ("officer" of "police officer"): such a word is read as it
    #: is, never as a compound or a typing slip.
    phrase_words: frozenset[str] = frozenset()
    #: Single-word terms by each form with one letter left out, for :meth:`typo`.
    deletions: dict[str, frozenset[str]] = field(default_factory=dict)
    #: Single-word terms of eight letters or more by first letter, for two slips in :meth:`typo`.
    long_terms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Terms by their spelling with its accents ("vélo", "moño"), read before the folded
    #: spelling so that a word of one language is not taken for another's that differs only by
    #: an accent (Spanish "velo" is a veil, French "vélo" a bicycle).
    accented: dict[tuple[str, ...], _Entry] = field(default_factory=dict)
    #: The term the person's own features stand for ("keep my beard", "i'm bald"), see [kept].
    kept_term: str | None = None
    #: Words that only carry the term before them ("friendly eyes", "relaxed shoulders"): read
    #: right after a mood, dropped; after a colour ("blue eyes"), the person's own feature.
    carriers: frozenset[str] = frozenset()
    #: Carriers that name a feature of the person, which a colour before them describes.
    features: frozenset[str] = frozenset()
    #: Modifiers that may follow a kept feature ("my scar visible"): they change nothing.
    kept_after: frozenset[str] = frozenset()
    #: Modifiers that may stand before a kept feature and only describe it ("short grey
    #: beard", "small tattoo"): ``before`` in [kept] and every ``kept_after`` word. (Colours
    #: may too: the person's own.)
    kept_before: frozenset[str] = frozenset()
    #: Dropped words that, right after a kept feature, ask to change it ("my beard bigger").
    kept_changes: frozenset[str] = frozenset()
    #: Dropped words that, before a kept feature in the same clause, ask for one to be made
    #: ("add a scar on my cheek", "make me bald and proud"), unless a keeping word comes
    #: between ("make sure to keep my scar").
    kept_makers: frozenset[str] = frozenset()
    kept_keepers: frozenset[str] = frozenset()
    #: Terms that name a flaw to take away ("light retouching" for "the shaving nick"):
    #: "remove the shaving nick" asks for the fix, so negated they read as themselves.
    fixes: frozenset[str] = frozenset()

    def match(self, tokens: Sequence[_Token], start: int) -> tuple[_Entry | None, int]:
        """The longest term at ``tokens[start:]`` and how many tokens it spans."""
        end = start
        while end < len(tokens) and end - start < self.longest and not tokens[end].separator:
            end += 1
        for stop in range(end, start, -1):
            key = tuple(token.norm for token in tokens[start:stop])
            entry = (
                self.accented.get(tuple(token.spelled for token in tokens[start:stop]))
                or self.exact.get(key)
                or self.stemmed.get(tuple(map(_stem, key)))
            )
            if entry is not None:
                return entry, stop - start
        return self._derived(tokens[start].norm), 1

    def _derived(self, word: str) -> _Entry | None:
        """What a word no table lists is read as: a profession or a time of day (dropped), a
        brand's hex colour ("#1A2B3C": a colour of its own) or an inflected term."""
        if _PROFESSION.match(word):
            return _Entry(word, "filler")
        if _HEX_COLOUR.match(word):
            return _Entry(f"#{word}", "colour")
        if _CLOCK.match(word):
            return _Entry(word, "filler")
        return self._inflected(word)

    def _inflected(self, word: str) -> _Entry | None:
        """An adverb of a known modifier says nothing more ("quietly confident": dropped); a
        comparative is its modifier ("brighter": "bright"); an inflected adjective is its
        listed form (German "verschneiter"/"verschneiten" for "verschneit", French
        "enneigée" for "enneigé", Spanish "nevada" for "nevado")."""
        for suffix, drop in (("ly", True), ("ily", True), ("er", False), ("ier", False)):
            if not word.endswith(suffix) or len(word) <= len(suffix) + 2:
                continue
            base = word[: -len(suffix)]
            for candidate in (base, base + "e", base + "y", base[:-1]):
                entry = self.exact.get((candidate,))
                if entry is not None and entry.kind in ("modifier", "colour", "mood"):
                    return _Entry(candidate, "filler") if drop else entry
        for suffix, replacement in _ADJECTIVE_ENDINGS:
            if not word.endswith(suffix) or len(word) <= len(suffix) + 3:
                continue
            entry = self.exact.get((word[: -len(suffix)] + replacement,))
            if entry is not None and entry.kind in (*MODIFIER_KINDS, *_QUALIFIED_HEADS):
                return entry
        return None

    def word(self, word: str) -> _Entry | None:
        """The term one word is on its own, if any."""
        return self.exact.get((word,)) or self.stemmed.get((_stem(word),)) or self._derived(word)

    def compound(self, word: str, depth: int = 0) -> list[str] | None:
        """A closed compound of known terms in its parts, or ``None``.

        German writes "Holzboden", "Trainingsanzug", "Perlenohrringe" as one word, and new
        ones are made every day; read it as its parts ("holz boden") when each part is a
        term, with a German linking "s", "n", "en", "e" or "es" between them. The longest
        first part wins; at most three parts, each of at least three letters. One whose last
        part is a filler after a term ("Bankfiliale") says nothing of the look.
        """
        if depth == 0 and (
            len(word) < 6 or not word.isalpha() or word in self.phrase_words or self.word(word)
        ):
            return None
        for cut in range(len(word) - 3, 2, -1):
            first, rest = word[:cut], word[cut:]
            entry = self.word(first)
            # A filler may lead ("Trainings-anzug", "Arbeits-jacke").
            if entry is None or entry.kind not in (*KINDS, "filler"):
                continue
            for link in ("", "s", "n", "en", "e", "es"):
                tail = rest[len(link) :]
                if not rest.startswith(link) or len(tail) < 3:
                    continue
                last = self.word(tail)
                # A filler may stand last only after a term, both long enough not to be a
                # chance split ("Bank-filiale"; never "pot-head", "salt-ate"): the word is
                # then read as that filler (see _tokens).
                if last is not None and (
                    last.kind in KINDS
                    or (
                        last.kind == "filler"
                        and entry.kind in KINDS
                        and len(first) >= 4
                        and len(tail) >= 6
                    )
                ):
                    return [first, tail]
                if depth == 0 and (parts := self.compound(tail, depth + 1)):
                    return [first, *parts]
        return None

    def typo(self, word: str) -> str | None:
        """The one term ``word`` is a typing slip of ("blazzer", "shrit", "backround"), or
        ``None``.

        A slip is one letter added, left out, changed or two swapped, in a word of five letters
        or more whose first letter is right ("shrit", "jaket"). Not in four: too many real
        words there are one slip from a term ("four": "flour", "swap": "swamp", Spanish
        "cara": "clara"), so the common short slips are listed as spellings ("wite", "siut").
        When several terms are that close, an English term is preferred over a translation
        ("blaser" is "blazer", not German "blasser"), then a letter left out, the commonest
        slip ("glases" is "glasses", not "glass"); when that still leaves two meanings, neither
        is guessed.
        """
        if len(word) < 5 or not word.isalpha() or self.word(word) or word in self.phrase_words:
            return None
        forms = {word, *(word[:at] + word[at + 1 :] for at in range(len(word)))}
        close = {
            term
            for form in forms
            for term in self.deletions.get(form, ())
            if term[0] == word[0]
            and _one_slip(word, term)
            # In five letters a changed letter makes too many other words ("rules" is not
            # "ruler", "verme" not "verde"): only a letter left out or two swapped.
            and (len(word) > 5 or len(term) > len(word) or sorted(term) == sorted(word))
        }
        if not close and len(word) == 5:
            # A stray letter in a term of four ("greay", "bluue"): the term must be a colour or
            # a garment, the words a short slip is most often typed in; other four-letter
            # words are too close to too many real ones.
            close = {
                form
                for form in forms - {word}
                if (entry := self.exact.get((form,))) is not None
                and entry.kind in ("colour", "garment")
                and form[0] == word[0]
            }
        if not close and len(word) >= 8:
            # Long words take two slips ("coperate" for "corporate", "profesionnal"): at that
            # length two slips still leave one term close, which is checked below.
            # Only English terms that are their own canonical form, and never a word that is
            # the other with an ending ("kindergartner" is not German "kindergartnerin"):
            # two slips reach far, and a word no term explains is better asked about.
            close = {
                term
                for term in self.long_terms.get(word[0], ())
                if abs(len(term) - len(word)) <= 2
                and self.exact[(term,)].canonical == term
                and not term.startswith(word[:-1])
                and not word.startswith(term[:-1])
                and _slips(word, term) <= 2
            }
        if len(close) > 1:
            close = {term for term in close if self.exact[(term,)].canonical == term} or close
        if len(close) > 1:
            close = {term for term in close if len(term) == len(word) + 1} or close
        meanings = {self.exact[(term,)].canonical for term in close}
        return min(close) if len(meanings) == 1 else None


@dataclass(frozen=True)
class _Token:
    text: str
    norm: str
    separator: bool = False
    entry: _Entry | None = None  # set for Japanese pieces, found while splitting
    #: The word with its accents, for :attr:`Vocabulary.accented` (empty: none to compare).
    spelled: str = ""


def _slips(typed: str, term: str) -> int:
    """Letters added, left out, changed or swapped with a neighbour between the two words
    (optimal string alignment distance)."""
    previous2: list[int] = []
    previous = list(range(len(term) + 1))
    for i in range(1, len(typed) + 1):
        current = [i] + [0] * len(term)
        for j in range(1, len(term) + 1):
            cost = typed[i - 1] != term[j - 1]
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and typed[i - 1] == term[j - 2] and typed[i - 2] == term[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def _one_slip(typed: str, term: str) -> bool:
    """Whether ``typed`` is ``term`` with one letter added, left out, changed, or two adjacent
    letters swapped."""
    if typed == term or abs(len(typed) - len(term)) > 1:
        return False
    start = 0
    while start < min(len(typed), len(term)) and typed[start] == term[start]:
        start += 1
    if len(typed) == len(term):
        swapped = typed[start + 1 : start + 2] + typed[start : start + 1]
        return typed[start + 1 :] == term[start + 1 :] or (
            swapped == term[start : start + 2] and typed[start + 2 :] == term[start + 2 :]
        )
    longer, shorter = (typed, term) if len(typed) > len(term) else (term, typed)
    return longer[start + 1 :] == shorter[start:]


def _phrase_key(phrase: str) -> tuple[str, ...]:
    return tuple(
        _norm_word(m.group(0))
        for m in _TOKEN.finditer(_split_elisions(phrase))
        if m.group(0).strip()
    )


def _joined_key(phrase: str) -> str:
    """A phrase's words as one string: the canonical form of a dropped word (a filler)."""
    return " ".join(_phrase_key(phrase))


def _read_toml(path: Path) -> dict[str, object]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc


def _compile(terms: list[str]) -> list[re.Pattern[str]]:
    latin: list[str] = []
    cjk: list[str] = []
    for term in terms:
        prefix = term.rstrip().endswith("*")
        words = [
            re.escape(word) for word in _words(_fold(term.replace("*", ""))).split(" ") if word
        ]
        # Japanese has no spaces and no word boundaries: its terms match anywhere.
        japanese = bool(_HAS_CJK.search(term))
        body = (r"\s*" if japanese else r"\s+").join(words) + (r"\w*" if prefix else "")
        (cjk if japanese else latin).append(body)
    patterns = [re.compile(r"\b(?:" + "|".join(latin) + r")\b")] if latin else []
    if cjk:
        patterns.append(re.compile("|".join(cjk)))
    return patterns


def _alternation(terms: Sequence[str]) -> str:
    return "|".join(r"\s+".join(map(re.escape, _words(_fold(t)).split(" "))) for t in terms)


#: What may stand between "without" and the garment in the refusal pattern ("without a shirt").
_ARTICLES = (
    "a an the any my your his her their all of at ein eine einen einem kein keine un una une "
    "le la les des el los las too very so overly fully properly entirely completely really much"
).split()


def _fold_pattern(expression: str) -> str:
    """A regular expression's Cyrillic and Greek look-alike letters, and its accents and
    Japanese voicing marks ("ヌード" reads "ヌート"), as :func:`_fold` reads them. (Only marks
    are dropped: the ASCII of the expression's syntax is left as written.)"""
    decomposed = unicodedata.normalize("NFKD", expression.translate(_CONFUSABLES))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@functools.lru_cache(maxsize=4)
def load_refusals(path: Path = REFUSALS_FILE) -> _Refusals:
    data = _read_toml(path)
    categories: list[_Category] = []
    essential: set[str] = set()
    essential_reply = ""
    spared: list[str] = []
    for name, raw in data.items():
        if not isinstance(raw, dict) or name == "emoji":
            continue
        # Regular expressions are matched on folded text, where Cyrillic look-alike letters are
        # Latin already ("губы": "гyбы"): their own Cyrillic is folded the same way.
        spared.extend(f"(?:{_fold_pattern(e)})" for e in raw.get("spared", []))
        patterns = _compile([*raw.get("terms", []), *raw.get("also", [])])
        patterns.extend(re.compile(_fold_pattern(e)) for e in raw.get("regex", []))
        garments = list(raw.get("garments", []))
        if garments:
            essential.update(_last_stem(g) for g in garments)
            essential_reply = str(raw["reply"])
            patterns.append(
                re.compile(
                    rf"\b(?:{_alternation(raw.get('exposing', []))})\s+(?:\w+\s+){{0,2}}"
                    rf"(?:{_alternation(garments)})\b"
                )
            )
            patterns.append(
                re.compile(
                    rf"\b(?:{_alternation(raw.get('negations', []))})\s+"
                    rf"(?:(?:{'|'.join(_ARTICLES)})\s+){{0,2}}(?:{_alternation(garments)})\b"
                )
            )
            patterns.append(re.compile(rf"\b(?:{_alternation(garments)})\s+off\b"))
        unshielded = tuple(re.compile(_fold_pattern(e)) for e in raw.get("unshielded", []))
        categories.append(_Category(name, str(raw["reply"]), tuple(patterns), unshielded))
    minors = data.get("minors", {})
    unshielding = data.get("unshielding", [])
    emoji = data.get("emoji", {})
    assert isinstance(minors, dict) and isinstance(unshielding, list)
    assert isinstance(emoji, dict)
    return _Refusals(
        tuple(categories),
        int(minors.get("under_age", 18)),
        str(minors.get("reply", "")),
        frozenset(essential),
        essential_reply,
        re.compile("|".join(spared)) if spared else None,
        frozenset(_words(_fold(str(word))) for word in unshielding),
        tuple((_strip_cf(unicodedata.normalize("NFKC", k)), str(v)) for k, v in emoji.items()),
    )


@functools.lru_cache(maxsize=4)
def load_vocabulary(paths: tuple[Path, ...] = VOCABULARY_FILES) -> Vocabulary:
    """The vocabulary of ``paths`` together (a term is known in one kind of one file only)."""
    return cached(
        _kept_builds.directory,
        "vocabulary",
        (_CODE, *paths),
        lambda: _vocabulary(paths),
        Vocabulary,
    )


def _vocabulary(paths: tuple[Path, ...]) -> Vocabulary:
    files = [(path, _read_toml(path)) for path in paths]
    exact: dict[tuple[str, ...], _Entry] = {}
    stemmed: dict[tuple[str, ...], _Entry] = {}
    japanese: dict[str, _Entry] = {}
    kind_of: dict[str, str] = {}
    suggestions: dict[str, str] = {}

    accented: dict[tuple[str, ...], _Entry] = {}

    def add(phrase: str, entry: _Entry) -> None:
        key = _phrase_key(phrase)
        if not key:
            return
        if len(key) == 1 and _HAS_CJK.search(key[0]):
            japanese.setdefault(key[0], entry)
            return
        exact.setdefault(key, entry)
        stemmed.setdefault(tuple(map(_stem, key)), entry)
        accented.setdefault(_spelled_key(phrase), entry)

    for path, data in files:
        for kind in KINDS:
            table = data.get(kind, {})
            if not isinstance(table, dict):
                raise ConfigurationError(f"{path}: [{kind}] must be a table")
            for canonical, alternatives in table.items():
                if canonical in kind_of:
                    raise ConfigurationError(
                        f"{path}: {canonical!r} is in [{kind_of[canonical]}] already"
                    )
                kind_of[canonical] = kind
                entry = _Entry(canonical, kind)
                for phrase in (canonical, *alternatives):
                    add(phrase, entry)
                    suggestions.setdefault(_joined_key(phrase), canonical)
    negatable: set[str] = set()
    fixes: set[str] = set()
    for path, data in files:
        for language in TRANSLATED:
            table = data.get(language, {})
            assert isinstance(table, dict)
            for phrase, canonical in table.items():
                if canonical not in kind_of:
                    raise ConfigurationError(
                        f"{path}: [{language}] {phrase!r} maps to {canonical!r}, not a known term"
                    )
                kind = kind_of[canonical]
                postposed = language in _POSTPOSING and kind in (*MODIFIER_KINDS, *_QUALIFIED_HEADS)
                add(phrase, _Entry(canonical, kind, postposed))
        fillers = data.get("filler", {})
        negations = data.get("negation", {})
        negatable_raw = data.get("negatable", {})
        assert isinstance(fillers, dict) and isinstance(negations, dict)
        assert isinstance(negatable_raw, dict)
        for words in fillers.values():
            for word in words:
                add(word, _Entry(_joined_key(word), "filler"))
        for language, words in negations.items():
            kind = "negation_post" if language.endswith("postfix") else "negation"
            for word in words:
                add(word, _Entry("no", kind))
        replaced = data.get("replaced", {})
        assert isinstance(replaced, dict)
        for language, words in replaced.items():
            kind = "replaced_post" if language.endswith("postfix") else "replaced"
            for word in words:
                add(word, _Entry("instead", kind))
        for phrase in _placements(data.get("placement", {})):
            add(phrase, _Entry(phrase, "filler"))
        negatable.update(negatable_raw.get("terms", []))
        fixes.update(negatable_raw.get("fixes", []))
        if unknown := sorted((negatable | fixes) - kind_of.keys()):
            raise ConfigurationError(f"{path}: [negatable] names unknown terms {unknown}")
    kept_tables: list[dict[str, list[str]]] = []
    kept_term: str | None = None
    for path, data in files:
        kept = data.get("kept")
        if kept is None:
            continue
        if not isinstance(kept, dict) or kept.get("term") not in kind_of:
            raise ConfigurationError(f"{path}: [kept] needs a term that is a known term")
        kept_tables.append(kept)
        kept_term = str(kept["term"])
        entry = _Entry(kept_term, kind_of[kept_term])
        for feature, phrase in _kept_phrases(kept):
            # A feature that is a term already ("freckles", "curly hair") stays that term;
            # one that reads as this term already ("scar above my eyebrow") takes its phrases.
            known = exact.get(_phrase_key(feature))
            if known is None or known.canonical == kept_term:
                add(phrase, entry)

    def kept_words(key: str, read: Callable[[str], str]) -> frozenset[str]:
        """The words under ``key`` in every file's [kept], each as ``read`` gives it."""
        return frozenset(read(word) for kept in kept_tables for word in kept.get(key, []))

    features = kept_words("coloured", lambda word: _stem(_norm_word(word)))
    return Vocabulary(
        exact=exact,
        stemmed=stemmed,
        japanese=japanese,
        negatable=frozenset(negatable),
        longest=max((len(key) for key in exact), default=1),
        japanese_longest=max((len(key) for key in japanese), default=1),
        suggestions=suggestions,
        suggestion_keys=_by_first_letter(key for key in suggestions if key),
        phrase_words=frozenset(
            word for keys in (exact, stemmed) for key in keys if len(key) > 1 for word in key
        ),
        deletions=_deletions(
            key[0]
            for key, entry in exact.items()
            if len(key) == 1 and len(key[0]) >= 5 and key[0].isalpha() and entry.kind in KINDS
        ),
        long_terms=_by_first_letter(
            key[0]
            for key, entry in exact.items()
            if len(key) == 1 and len(key[0]) >= 7 and key[0].isalpha() and entry.kind in KINDS
        ),
        accented=accented,
        kept_term=kept_term,
        carriers=kept_words("carriers", lambda word: _stem(_norm_word(word))) | features,
        features=features,
        kept_after=kept_words("after", str),
        kept_before=kept_words("before", str) | kept_words("after", str),
        kept_changes=kept_words("changes", _joined_key),
        kept_makers=kept_words("makers", _joined_key),
        kept_keepers=kept_words("keepers", _joined_key),
        fixes=frozenset(fixes),
    )


def _spelled(word: str) -> str:
    """A word as typed, with its accents: case folded and apostrophes dropped only."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFKC", word).casefold()).translate(
        {ord(c): None for c in "'’`"}
    )


def _spelled_key(phrase: str) -> tuple[str, ...]:
    return tuple(
        _spelled(m.group(0)) for m in _TOKEN.finditer(_split_elisions(phrase)) if m.group(0).strip()
    )


def _by_first_letter(words: Iterable[str]) -> dict[str, tuple[str, ...]]:
    index: dict[str, list[str]] = {}
    for word in words:
        index.setdefault(word[0], []).append(word)
    return {letter: tuple(found) for letter, found in index.items()}


def _kept_phrases(table: dict[str, object]) -> Iterator[tuple[str, str]]:
    """The person's own features as phrases ("my beard", "mi barba", "i'm bald", "i have a
    scar"): a feature word is read only after a possessive or a statement about oneself.

    On its own ("beard", "bald", "scar") such a word asks for a change of the face, or for an
    injury, and is refused; said of oneself it is what the person has, which the headshots keep
    anyway. It becomes the one term [kept] names, which tells the model to keep the features of
    the photos and names none of them, so a person who has none is never given one.
    """
    for language in table.values():
        if not isinstance(language, dict):
            continue
        possessives, features = language.get("possessives", []), language.get("features", [])
        for possessive in possessives:
            for feature in features:
                yield feature, f"{possessive} {feature}"
        for subject in language.get("subjects", []):
            for trait in language.get("traits", []):
                yield trait, f"{subject} {trait}"
        for phrase in language.get("phrases", []):
            yield phrase, phrase
        # Features read even with no possessive ("keep the kippah and beard", "bald and happy
        # about it"): a change asked of one is still refused (a maker before it, a change word
        # or a modifier after it), and the model is never handed the feature itself.
        for feature in language.get("bare", []):
            yield feature, feature


def _placements(table: object) -> Iterator[str]:
    """Where a thing is worn or held ("around my neck", "under one arm", "behind the ear"):
    each preposition with each place, with or without a determiner, dropped like a filler.

    A body word is never a term of its own; only in these phrases, which place a known thing
    on a person, is it read at all (the places are neck, ears, hands and the like, never the chest).
    """
    if not isinstance(table, dict):
        raise ConfigurationError("[placement] must be a table")
    determiners = ["", *table.get("determiners", [])]
    for preposition in table.get("prepositions", []):
        for determiner in determiners:
            for place in table.get("places", []):
                yield " ".join(word for word in (preposition, determiner, place) if word)
    yield from table.get("phrases", [])


def _deletions(words: Iterable[str]) -> dict[str, frozenset[str]]:
    """Each word under itself and under each form of it with one letter left out."""
    index: dict[str, set[str]] = {}
    for word in words:
        for at in range(len(word) + 1):
            index.setdefault(word[:at] + word[at + 1 :], set()).add(word)
    return {form: frozenset(found) for form, found in index.items()}


#: Endings cut from a folded word on both sides when a culture phrase is looked for: plurals,
#: German, French and Spanish adjective endings, and Russian case endings (folded like the text).
_LOOSE_ENDINGS = tuple(
    sorted(
        {"es", "en", "er", "em", "as", "os", "s", "e", "a", "o"}
        | {_fold(ending) for ending in _RUSSIAN_ENDINGS},
        key=len,
        reverse=True,
    )
)


def _loose(word: str) -> str:
    for ending in _LOOSE_ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= 4:
            return word[: -len(ending)]
    return word


@dataclass(frozen=True)
class _Shield:
    """What the refusal pass does not read: vocabulary phrases that contain a refused word
    ("nude lipstick"), and culture words that qualify attire or a place ("japanese garden",
    "jardin japonais", "японский сад"), which are refused on their own."""

    phrases: re.Pattern[str] | None
    spared: re.Pattern[str] | None
    culture: frozenset[tuple[str, ...]]
    heads: frozenset[tuple[str, ...]]
    modifiers: frozenset[str]
    longest: int

    def cover(self, variant: str) -> str:
        """``variant`` (folded words) with the shielded phrases blanked out."""
        for pattern in (self.spared, self.phrases):
            if pattern is not None:
                variant = pattern.sub(" ", variant)
        words = variant.split()
        loose = [_loose(word) for word in words]
        keep = [True] * len(words)
        for at in range(len(words)):
            for span in range(min(self.longest, len(words) - at), 0, -1):
                if tuple(loose[at : at + span]) not in self.culture:
                    continue
                # Up to two modifiers may stand between: "japanese silk kimono".
                places = range(at + span, min(at + span + 2, len(words)) + 1)
                for place in places:
                    if (end := self._head_after(loose, place)) is not None:
                        keep[at:end] = [False] * (end - at)
                        break
                    if place < len(words) and loose[place] not in self.modifiers:
                        break
                else:
                    if (begin := self._head_before(loose, at)) is not None:  # "jardin japonais"
                        keep[begin : at + span] = [False] * (at + span - begin)
                break
        return " ".join(word for word, kept in zip(words, keep, strict=True) if kept)

    def _head_after(self, loose: list[str], at: int) -> int | None:
        """Where a head term that starts at ``at`` ends, if one does."""
        for span in range(self.longest, 0, -1):
            if at + span <= len(loose) and tuple(loose[at : at + span]) in self.heads:
                return at + span
        return None

    def _head_before(self, loose: list[str], at: int) -> int | None:
        """Where a head term that ends right before ``at`` starts, if one does."""
        for span in range(self.longest, 0, -1):
            if at - span >= 0 and tuple(loose[at - span : at]) in self.heads:
                return at - span
        return None


#: Kinds of entry that are never a term: no phrase of theirs shields a refused word ("en vez
#: de" stays an instruction where no garment follows it).
_UNREAD_KINDS = ("filler", "negation", "negation_post", "replaced", "replaced_post")


@functools.lru_cache(maxsize=4)
def _protected(vocabulary_paths: tuple[Path, ...], refusals_path: Path) -> _Shield:
    """The :class:`_Shield` of this vocabulary and these refusals."""
    return cached(
        _kept_builds.directory,
        "shield",
        (_CODE, *vocabulary_paths, refusals_path),
        lambda: _shield(vocabulary_paths, refusals_path),
        _Shield,
    )


@dataclass(frozen=True)
class _RefusedPhrases:
    """Of the folded vocabulary phrases ``tried`` against one refusals file, those it refuses.

    Trying every phrase against every refusal pattern is most of a shield's build (about 20 s
    on two cores). It depends on the refusals and the phrase only, so it is kept apart from
    the shield: an operator's edited vocabulary (``headshots policy check --vocabulary``) tries
    only the phrases the kept one has not tried."""

    tried: frozenset[str]
    refused: frozenset[str]


def _refused_phrases(phrases: Iterable[str], refusals: _Refusals) -> _RefusedPhrases:
    tried = frozenset(phrases)
    return _RefusedPhrases(
        tried=tried,
        refused=frozenset(
            phrase
            for phrase in tried
            if _AGE.search(phrase)
            or any(p.search(phrase) for c in refusals.categories for p in c.patterns)
        ),
    )


def _shield(vocabulary_paths: tuple[Path, ...], refusals_path: Path) -> _Shield:
    vocabulary, refusals = load_vocabulary(vocabulary_paths), load_refusals(refusals_path)
    candidates: set[str] = set()
    japanese = [((key,), entry) for key, entry in vocabulary.japanese.items()]
    for key, entry in [*vocabulary.exact.items(), *japanese]:
        if entry.kind in _UNREAD_KINDS:
            continue
        folded = _words(_fold(" ".join(key)))
        if folded not in refusals.unshielding:
            candidates.add(folded)
    kept = cached(
        _kept_builds.directory,
        "refused-phrases",
        (_CODE, refusals_path),
        lambda: _refused_phrases(candidates, refusals),
        _RefusedPhrases,
    )
    phrases = kept.refused & candidates
    if untried := candidates - kept.tried:
        phrases |= _refused_phrases(untried, refusals).refused
    ordered = sorted(phrases, key=len, reverse=True)
    # A plural ending is allowed ("my sleeve tattoos" for "my sleeve tattoo").
    latin = [
        re.escape(p).replace(r"\ ", r"\s+") + "(?:e?s)?" for p in ordered if not _HAS_CJK.search(p)
    ]
    cjk = [re.escape(p) for p in ordered if _HAS_CJK.search(p)]
    parts = ([r"\b(?:" + "|".join(latin) + r")\b"] if latin else []) + cjk

    def loose_keys(accept: Callable[[_Entry], bool]) -> frozenset[tuple[str, ...]]:
        return frozenset(
            tuple(_loose(word) for word in _words(_fold(" ".join(key))).split(" "))
            for key, entry in vocabulary.exact.items()
            if accept(entry) and not any(_HAS_CJK.search(word) for word in key)
        )

    heads = loose_keys(_culture_head)
    culture = loose_keys(lambda entry: entry.kind in _QUALIFIED_HEADS)
    return _Shield(
        phrases=re.compile("|".join(parts)) if parts else None,
        spared=refusals.spared,
        culture=culture,
        heads=heads,
        modifiers=frozenset(
            key[0]
            for key in loose_keys(lambda entry: entry.kind in MODIFIER_KINDS)
            if len(key) == 1
        ),
        longest=max((len(key) for key in heads | culture), default=1),
    )


# --- the review ------------------------------------------------------------------------------


def _stated_ages(variant: str) -> Iterator[int]:
    for match in _AGE.finditer(variant):
        value = next((group for group in match.groups() if group is not None), None)
        if value is None:  # "sixth grade"
            yield 11
        else:
            if value.isdigit():
                yield int(value)
            else:
                yield _NUMBER_WORDS.get(
                    value, _FOREIGN_NUMBER_WORDS.get(value.replace(" ", "-"), 0)
                )


def _refusal(text: str, refusals: _Refusals, shield: _Shield) -> tuple[str, str] | None:
    """``(category, reply)`` of the first refusal ``text`` meets, or ``None``."""
    raw = list(_variants(text))
    variants = [shield.cover(variant) for variant in raw]
    for category in refusals.categories:
        for variant, uncovered in zip(variants, raw, strict=True):
            if any(pattern.search(variant) for pattern in category.patterns) or any(
                pattern.search(uncovered) for pattern in category.unshielded
            ):
                return category.name, category.reply
    if any(age < refusals.under_age for v in variants for age in _stated_ages(v)):
        return "minors", refusals.minors_reply
    return None


def _tokens(
    text: str, vocabulary: Vocabulary, refused: Callable[[str], bool] = lambda _: False
) -> list[_Token]:
    """The words of ``text``. An unknown word that is a compound of known terms is read as its
    parts, one with stretched letters ("pleeease", "hiii") as the word it stretches, and one
    that is a typing slip of a known term as that term, unless what it is read as is refused
    ("bareback" is not "bare" and "back")."""
    tokens: list[_Token] = []
    for match in _TOKEN.finditer(text):
        piece = match.group(0)
        if piece in _SEPARATORS:
            tokens.append(_Token(piece, ",", separator=True))
            continue
        norm = _norm_word(piece)
        if not _HAS_CJK.match(piece) and not vocabulary.word(norm):
            unstretched = (_collapse_runs(norm, keep) for keep in (2, 1))
            # A stretched word keeps two letters at least: "xxxx" is no stretched "x".
            meant = next((w for w in unstretched if len(w) > 1 and vocabulary.word(w)), None)
            if meant is not None and meant != norm and not refused(meant):
                tokens.append(_Token(piece, meant))
                continue
        if _HAS_CJK.match(piece):
            tokens.extend(_split_japanese(piece, vocabulary))
        elif (parts := vocabulary.compound(norm)) and not refused(" ".join(parts)):
            head = vocabulary.word(parts[-1])
            if head is not None and head.kind == "filler":
                # "Bankfiliale", "Lippenspalte": a German compound is its last part, and a
                # filler says nothing of the look; the part before only qualifies it (a cleft
                # lip is no lipstick), so the whole word is dropped.
                tokens.append(_Token(piece, parts[-1]))
            else:
                tokens.extend(_Token(part, part) for part in parts)
        elif (meant := vocabulary.typo(norm)) and not refused(meant):
            tokens.append(_Token(piece, meant))
        else:
            tokens.append(_Token(piece, norm, spelled=_spelled(piece)))
    return tokens


def _split_japanese(run: str, vocabulary: Vocabulary) -> Iterator[_Token]:
    """Known terms covering as much of ``run`` as they can, then as few as can; characters no
    term covers become one word. Taking the longest term first at each place, as this did
    until round 17, left characters over once everyday words were known: a longer word that
    starts inside a term took the term's end ("真顔はやめといて" left "め" unread)."""
    longest = vocabulary.japanese_longest
    # best[i]: (characters left unknown, tokens) for run[i:], and where the first token ends.
    best: list[tuple[int, int, int, _Entry | None]] = [(0, 0, len(run), None)] * (len(run) + 1)
    for start in range(len(run) - 1, -1, -1):
        left, count, _, _ = best[start + 1]
        choice: tuple[int, int, int, _Entry | None] = (left + 1, count + 1, start + 1, None)
        for stop in range(min(len(run), start + longest), start, -1):
            found = vocabulary.japanese.get(_norm_word(run[start:stop]))
            if found is not None and (best[stop][0], best[stop][1] + 1) < choice[:2]:
                choice = (best[stop][0], best[stop][1] + 1, stop, found)
        best[start] = choice
    at, unknown = 0, ""
    while at < len(run):
        _, _, end, entry = best[at]
        if entry is None:
            unknown += run[at:end]
        else:
            if unknown:
                yield _Token(unknown, unknown)
                unknown = ""
            yield _Token(run[at:end], run[at:end], entry=entry)
        at = end
    if unknown:
        yield _Token(unknown, unknown)


@dataclass
class _Reading:
    terms: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    refusal: tuple[str, str, str] | None = None  # category, reply, word


def _read(tokens: list[_Token], vocabulary: Vocabulary, refusals: _Refusals) -> _Reading:
    """The tokens as vocabulary terms (see the module docstring), or what is not known."""
    reading = _Reading()
    modifiers: list[str] = []
    negate = last_negated = False
    last_head: tuple[str, int] | None = None  # canonical, index in terms
    last_kind = ""  # of the last term in this clause
    culture = ""  # a culture word among the modifiers, which needs attire or a place
    culture_kind = CULTURE_KIND  # or FAITH_KIND
    culture_term = ""  # its canonical form, as it stands among the modifiers
    last_head_entry: _Entry | None = None  # of the clause's last term
    head_end = -1  # the index of the token after the last term
    kept_open = False  # only dropped words since a kept feature ("my beard a bit ...")
    making = ""  # a word asking for something to be made, earlier in this clause ("add a")
    keeping = False  # a word asking to keep, earlier in this clause ("keep the beard grey")
    after_kept = False  # the clause before ended on a kept feature ("keep my beard, but ...")
    joined = False  # "and" (a joiner) since the clause's last term: what follows stands alone
    replacing = False  # "instead of" since the clause's last term: the next one is replaced
    replaced_essential = ""  # a shirt, top or trousers replaced ("blazer instead of a shirt")
    against_kept = False  # and this one turns against it ("..., but longer")

    def on_kept() -> bool:
        """Whether the clause's last term is the person's own kept features."""
        return bool(last_kind) and last_head is not None and last_head[0] == vocabulary.kept_term

    def identity(word: str) -> None:
        reply = next((c.reply for c in refusals.categories if c.name == "identity"), "")
        reading.refusal = ("identity", reply or f"I can't use {word!r} here.", word)

    def compose(canonical: str) -> str:
        """The modifiers and ``canonical`` as one term; when together they are a term of their
        own ("dim" + "lighting" is "low light"), that term, so a second review of the text
        reads the same. A modifier the term already says is said once ("weißer Kittel" is
        a white coat, not a "white white coat")."""
        said = canonical.split()
        composed = " ".join([*(m for m in modifiers if m not in said), canonical])
        key = _phrase_key(composed)
        known = vocabulary.exact.get(key) or vocabulary.stemmed.get(tuple(map(_stem, key)))
        return known.canonical if known is not None and known.kind in KINDS else composed

    def flush() -> None:
        """Modifiers with no term after them: they qualify the clause's last term ("traje azul
        marino", "blazer in navy"), or stand alone ("navy, soft light")."""
        nonlocal culture
        if not modifiers:
            return
        if culture and (
            last_head_entry is None or not _culture_head(last_head_entry, culture_kind)
        ):
            if (
                culture_kind == CULTURE_KIND
                and last_head_entry is not None
                and last_head_entry.kind == "role"
                and not making
            ):
                # "fromager suisse", "chef japonais": where a person comes from, said after
                # the role as Romance languages put it; context, like "Swiss cheesemaker" (a
                # role that is only a dropped word, "médecin", leaves nothing to follow).
                modifiers.remove(culture_term)
            elif culture_kind == CULTURE_KIND:
                identity(culture)  # "make me japanese", "une femme japonaise"
            else:
                # A faith that qualifies nothing ("sikh, navy turban") is the person's own,
                # stated for context like a role: dropped. A faith is no look to add, and no
                # identity to change either, so it is never refused as one.
                modifiers.remove(culture_term)
        culture = ""
        if not modifiers:
            return
        if against_kept and not last_kind:
            identity(" ".join(modifiers))  # "keep my beard, but longer": the feature changed
            modifiers.clear()
            return
        if on_kept():
            # "my beard longer", "make my eyes green": a feature is kept as the photos show it,
            # and what is said after it asks for a change ("visible" does not). A colour after
            # it, when the clause asks to keep ("keep the beard grey"), is the person's own.
            own_colour = keeping and all(_kind_of(m, vocabulary) == "colour" for m in modifiers)
            if not (set(modifiers) <= vocabulary.kept_after or own_colour):
                identity(" ".join(modifiers))
            modifiers.clear()
            return
        if last_kind and last_head is not None and not joined:
            at = last_head[1]
            negated_term = reading.terms[at].startswith("no ")
            term = reading.terms[at].removeprefix("no ") if negated_term else reading.terms[at]
            reading.terms[at] = ("no " if negated_term else "") + compose(term)
        elif alone := [m for m in modifiers if m not in _SIZES]:
            reading.terms.append(" ".join(alone))
        modifiers.clear()

    def leavable(canonical: str) -> bool:
        # A place or a thing around the person may always be left out ("remove the messy
        # kitchen behind me"): that takes nothing off the person; nor does a mood, a light or
        # a photographic look not wanted ("not stern", "not too saturated", "no glow"). A
        # fix is never left out ("remove the shaving nick" asks for the fix itself).
        return canonical not in vocabulary.fixes and (
            canonical in vocabulary.negatable
            or (canonical != vocabulary.kept_term and _kind_of(canonical, vocabulary) in _UNWORN)
        )

    def negated(canonical: str, word: str) -> bool:
        if canonical in vocabulary.fixes:
            return False  # "remove the shaving nick": the fix itself, read as the term
        if leavable(canonical):
            return True
        if _essential(canonical, refusals):
            reading.refusal = ("sexual", refusals.essential_reply, word)
        else:
            reading.refusal = ("negation", f"I can't leave out {word!r}.", word)
        return False

    def trailing_negation() -> None:
        """A bare "no" that ends a clause right after a term negates it: Spanish says
        "corbata no" (no tie)."""
        nonlocal negate, last_negated
        if not (negate and not modifiers and last_head is not None and not last_negated):
            return
        before = tokens[index - 1] if index > 0 else None
        if before is None or before.norm not in _TRAILING_NO or head_end != index - 1:
            return
        canonical, at = last_head
        if negated(canonical, before.text):
            reading.terms[at] = "no " + reading.terms[at]
            last_negated = True
        negate = False

    index = 0
    while index < len(tokens) and reading.refusal is None:
        token = tokens[index]
        if token.separator:
            if replacing:
                modifiers.clear()  # "a navy blazer instead of black": nothing of it is kept
            trailing_negation()
            flush()
            after_kept = on_kept()
            negate = last_negated = kept_open = keeping = against_kept = joined = False
            replacing = False
            making = ""
            last_head_entry = None
            last_kind = ""
            index += 1
            continue
        entry, span = (token.entry, 1) if token.entry else vocabulary.match(tokens, index)
        word = " ".join(t.text for t in tokens[index : index + span])
        index += span
        if entry is None and _stem(token.norm) in vocabulary.carriers:
            if not modifiers and last_kind == "mood" and head_end == index - 1:
                continue  # "friendly eyes", "relaxed shoulders": the mood says it all
            if (
                modifiers
                and vocabulary.kept_term is not None
                and _stem(token.norm) in vocabulary.features
                and all(_kind_of(m, vocabulary) == "colour" for m in modifiers)
            ):
                # "blue eyes", "grey hair" of a person's own: kept as in the photos, never
                # recoloured (the term names no colour).
                entry = vocabulary.exact[_phrase_key(vocabulary.kept_term)]
                modifiers.clear()
        if entry is None:
            # Numbers and a person's name say nothing to the model; a stated age under 18 or
            # a hate code was refused in the first pass.
            if not (
                token.norm.isdigit()
                or token.norm in _NUMBER_WORDS
                or _name(tokens, index, vocabulary)
            ):
                reading.unknown.append(token.text)
            continue
        if entry.kind != "filler" or entry.canonical in _JOINERS:
            kept_open = False
        elif kept_open and entry.canonical in vocabulary.kept_changes:
            identity(word)  # "my beard bigger", "my scar a bit smaller": a kept feature changed
            break
        if entry.kind == "filler":
            # "a blazer and good light": a modifier after "and" is no postposed one of the
            # blazer ("light blazer") but a term of its own.
            joined = joined or (entry.canonical in _AND and bool(last_kind) and not modifiers)
            if entry.canonical in vocabulary.kept_makers:
                making = word
            elif entry.canonical in vocabulary.kept_keepers:
                making, keeping = "", True
            elif entry.canonical in _CONTRAST:
                keeping = False  # "keep my beard but grey" asks for a change
                against_kept = after_kept and not last_kind and not modifiers
            if culture and culture_kind == CULTURE_KIND and entry.canonical not in _CULTURE_LINKS:
                identity(culture)  # "japanese woman in a kimono": the person, not the look
                break
            if last_negated and entry.canonical in _CONTINUE_NEGATION:
                negate = True
            continue
        if entry.kind == "negation":
            flush()
            negate = True
            continue
        if entry.kind in ("replaced", "replaced_post"):
            # "a wool vest instead of a white coat": what is replaced is never handed to the
            # model ("no white coat" where it may be left out, else dropped), nor read as
            # taken off ("Bluse statt Hemd" is no bare chest).
            if last_head is not None and last_head[0] == vocabulary.kept_term:
                identity(word)  # "blaue Augen statt braun": one's own feature changed
                break
            if entry.kind == "replaced":
                flush()
                negate, replacing = False, True
                continue
            # Japanese "白衣じゃなくてベスト": the term right before is the one replaced.
            if last_head is not None and head_end == index - span and not last_negated:
                canonical, at = last_head
                if leavable(canonical):
                    reading.terms[at] = "no " + reading.terms[at]
                    last_negated = True
                else:
                    if _essential(canonical, refusals):
                        replaced_essential = canonical
                    del reading.terms[at]
                    last_head, last_kind = None, ""
            continue
        if entry.kind == "negation_post":
            if last_head is not None and not last_negated:
                canonical, at = last_head
                if negated(canonical, canonical):
                    reading.terms[at] = "no " + canonical
                    last_negated = True
            continue
        if (
            entry.kind == CULTURE_KIND
            and not making
            and _stated_origin(tokens, index - span, index, vocabulary)
        ):
            continue  # "I'm Nigerian", "German engineer", "a farmer in Vietnam": context
        if entry.kind in _QUALIFIED_HEADS:
            culture, culture_kind, culture_term = word, entry.kind, entry.canonical
        if entry.kind in (*MODIFIER_KINDS, *_QUALIFIED_HEADS):
            modifiers.append(entry.canonical)
            if entry.postposed and last_kind:
                flush()  # "camisa blanca y chaqueta negra": each colour to its own noun
            continue
        if entry.canonical in _BACKDROP_WORDS and not modifiers and last_kind == "background":
            continue  # "office background": the place already is the background
        if culture and culture_kind == CULTURE_KIND and entry.kind == "role" and not making:
            # "retired German engineer": where a person comes from, said for context like the
            # role itself. The model gets the role alone, never the nationality.
            modifiers.remove(culture_term)
            culture = ""
        if culture and not _culture_head(entry, culture_kind):
            if culture_kind == CULTURE_KIND:
                identity(culture)  # "german uniform", "make me an indian doctor": not the look
                break
            # A faith before what it cannot qualify ("a Lutheran congregation"): the person's
            # context, dropped as where it qualifies nothing (see flush).
            modifiers.remove(culture_term)
            culture = ""
        if (
            entry.canonical == vocabulary.kept_term
            and modifiers
            # A colour before it is the person's own ("salt-and-pepper beard", "red beard").
            and any(
                m not in vocabulary.kept_before and _kind_of(m, vocabulary) != "colour"
                for m in modifiers
            )
        ):
            identity(word)  # "shave my beard", "grey my hair": a kept feature changed
            break
        # The keeping word is part of the phrase ("keep the beard", "keep my moustache").
        kept_by_name = tokens[index - span].norm in vocabulary.kept_keepers
        if (
            entry.canonical == vocabulary.kept_term
            and making
            # "make a navy suit and keep my moustache": the phrase itself keeps the feature.
            and not kept_by_name
        ):
            identity(f"{making} … {word}")  # "add a scar on my cheek": a feature made
            break
        if entry.canonical == vocabulary.kept_term:
            modifiers.clear()  # the person's own colour is in the photos: never handed over
        if negate and entry.kind == "role":
            # "I'm not a model", "not like a student": a role said not to be the person's
            # is context like any role, left out rather than refused.
            negate = False
            modifiers.clear()
            culture = ""
            continue
        term = compose(entry.canonical)
        modifiers.clear()
        culture = ""
        if replacing:
            if entry.canonical == vocabulary.kept_term:
                identity(word)  # "blue eyes instead of my brown eyes"
                break
            replacing = False
            # What may be left out is handed over as such ("a cardigan instead of a white
            # coat": "no white coat"); anything else is only dropped.
            negate = leavable(entry.canonical)
            if not negate:
                if _essential(entry.canonical, refusals):
                    replaced_essential = word
                continue
        last_kind = entry.kind
        last_head_entry = entry
        last_negated = False
        if negate and negated(entry.canonical, word):
            term, last_negated = "no " + term, True
        negate = joined = False
        last_head = (entry.canonical, len(reading.terms))
        head_end = index
        kept_open = entry.canonical == vocabulary.kept_term
        if kept_open and kept_by_name:
            keeping = True
        reading.terms.append(term)
    if replacing:
        modifiers.clear()
    if reading.refusal is None:
        trailing_negation()
    if reading.refusal is None:
        flush()
    if (
        reading.refusal is None
        and replaced_essential
        and not any(_essential(t, refusals) or _last_stem(t) in _COVERING for t in reading.terms)
    ):
        # What replaces a shirt or trousers must be one ("Bluse statt Hemd", "a sweater
        # instead of a shirt"); "a blazer instead of a shirt" leaves the chest bare.
        reading.refusal = ("sexual", refusals.essential_reply, replaced_essential)
    return reading


#: Garments that cover the body the way a shirt does, though a shirt is not taken off when
#: they are left out: one may replace a shirt ("a sweater instead of a shirt").
_COVERING = frozenset(
    """sweater jumper pullover turtleneck polo hoodie sweatshirt tee jersey scrub tunic kurta
    chino jean slack legging jogger culotte""".split()
)


def _last_stem(term: str) -> str:
    return _stem(_norm_word(term.split()[-1]))


def _essential(canonical: str, refusals: _Refusals) -> bool:
    """Whether ``canonical`` names a garment that cannot go without a replacement."""
    return _last_stem(canonical) in refusals.essential


#: Words that turn a clause against what came before it ("keep my beard but grey").
_CONTRAST = frozenset("but yet though although however aber doch pero sino mais но а".split())

#: Words after which a capitalised unknown word is the person's name ("Hi, I'm Tunde", "my
#: name is Chidi Okafor", "thanks, Mei"): dropped, as a name says nothing of the look.
_NAMING_WORDS = frozenset(
    "name named called is i'm im am hi hello hey dear thanks cheers regards heisse soy".split()
)


def _name(tokens: list[_Token], end: int, vocabulary: Vocabulary) -> bool:
    """Whether the unknown word before ``end`` is a name: capitalised, Latin, and right after
    one of :data:`_NAMING_WORDS` or after another such name ("I'm Chidi Okafor")."""
    at = end - 1
    # (A Japanese run has no capital letter, so it never passes the first test.)
    while at >= 0 and tokens[at].text[:1].isupper() and not vocabulary.word(tokens[at].norm):
        if not tokens[at].text.isalpha():
            return False
        at -= 1
        if at >= 0 and tokens[at].norm in _NAMING_WORDS:
            return True
    return False


#: Negations that may follow the term they negate at the end of a clause ("corbata no").
_TRAILING_NO = frozenset({"no"})


#: Words after which a nationality or a country says where a person is from or works ("I'm
#: Nigerian", "a farmer in Vietnam", "soy de México", "ich bin Deutsche", "я из Казани"), or
#: a language they work in ("court interpreter (Spanish/English)", "I teach French").
_ORIGIN_WORDS = frozenset(
    """i'm im am i are we're were proud from in born raised based living live lives work works
    working bin aus in soy somos de en je suis sommes nous я мы из в родом 出身 interpreter
    interpreters translator translators interpreting translating bilingual trilingual speak
    speaks speaking teach teaches teaching учитель учительница преподаю преподаватель
    преподавательница школы школа курсы spreche sprechen spricht hablo habla hablamos parle
    parlons parlez говорю говорим по""".split()
)
#: Who works in languages: the nationalities after them, even past a comma, are languages.
_LANGUAGE_WORKERS = frozenset(
    """interpreter interpreters translator translators interpreting translating bilingual
    trilingual""".split()
)
#: A language as a subject taught or studied, after its name ("English lit professor").
_LANGUAGE_SUBJECTS = frozenset(
    """lit literature language languages class classes lesson lessons tutor tutoring teacher
    teachers professor lecturer department dept studies grammar major""".split()
)
#: Between two nationalities or languages said together ("I speak Spanish and English").
_CULTURE_JOINERS = frozenset({"and", "und", "y", "e", "et", "и", "or", "oder", "o", "ou", "или"})

#: Words after a nationality that make it the person's look, never their context.
_IDENTITY_AFTER = frozenset(
    """look looks looking features face eyes skin version vibe woman man girl boy lady guy
    person female male women men people frau mann mädchen junge mujer hombre chica chico femme
    homme fille garçon женщина женщиной мужчина мужчиной девушка парень""".split()
)


def _stated_origin(tokens: list[_Token], start: int, end: int, vocabulary: Vocabulary) -> bool:
    """Whether the nationality at ``tokens[start:end]`` is said of where a person is from: at
    the start of a clause or after one of :data:`_ORIGIN_WORDS`, and followed by a role, a
    dropped word, a subject taught or nothing ("Scottish and proud", "German engineer", "an
    English lit professor"; not "Scottish tartan tie", nor "german uniform"); at the start
    of the text before a comma ("Ghanaian, kente stole"); or the languages after an
    interpreter and a comma. Nationalities next to each other are one ("I'm
    Korean-American")."""

    def entry_at(at: int) -> _Entry | None:
        return tokens[at].entry or vocabulary.match(tokens, at)[0]

    def culture(at: int) -> bool:
        entry = entry_at(at)
        return entry is not None and entry.kind == CULTURE_KIND

    def joined(at: int) -> bool:  # "Spanish and", "French, Arabic": one list of languages
        token = tokens[at]
        return token.text == "," if token.separator else token.norm in _CULTURE_JOINERS

    while start > 0:
        if not tokens[start - 1].separator and culture(start - 1):
            start -= 1
        elif start > 1 and joined(start - 1) and culture(start - 2):
            start -= 2
        else:
            break
    while end < len(tokens):
        if not tokens[end].separator and culture(end):
            end += 1
        elif (
            end + 1 < len(tokens) and not tokens[end].separator and joined(end) and culture(end + 1)
        ):
            # Not over a comma: "I'm Nigerian, Japanese garden" is two things.
            end += 2
        else:
            break
    before = tokens[start - 1] if start > 0 else None
    origin = before is not None and before.norm in _ORIGIN_WORDS
    if before is not None and before.norm in _ARTICLES and start > 1:
        # An article between ("I'm an Igbo chief", "a player in the Philippines").
        origin = tokens[start - 2].norm in _ORIGIN_WORDS
    if before is not None and before.text == "," and start > 1:
        # The languages a translator works in, after a comma ("court interpreter, Spanish and
        # English").
        origin = tokens[start - 2].norm in _LANGUAGE_WORKERS
    if before is not None and not before.separator and not origin:
        return False
    if end >= len(tokens) or tokens[end].separator:
        # "I'm Nigerian," and a text that opens with where its writer is from ("Ghanaian,
        # kente stole"), but not "kilt, Scottish"
        return origin or (before is None and end + 1 < len(tokens))
    if tokens[end].norm in _IDENTITY_AFTER:
        return False  # "mexican look", "japanese woman": the person made into someone
    if tokens[end].norm in _LANGUAGE_SUBJECTS:
        return True  # "an English lit professor", "my Spanish classes": a language taught
    after = entry_at(end)
    # Before a look ("german uniform", "japanese minimal") it is the look's: read as before.
    return after is None or after.kind in ("role", "filler")


def _kind_of(canonical: str, vocabulary: Vocabulary) -> str | None:
    entry = vocabulary.exact.get(_phrase_key(canonical))
    return entry.kind if entry is not None else None


def _suggestion(word: str, vocabulary: Vocabulary) -> str | None:
    """The known term spelt nearest to ``word``, among those with its first letter: a slip
    seldom hits the first one, and comparing with all ~240,000 spellings took 60 ms a word."""
    typed = _norm_word(word)
    candidates = vocabulary.suggestion_keys.get(typed[:1], ())
    close = difflib.get_close_matches(typed, candidates, 1, 0.75)
    return vocabulary.suggestions[close[0]] if close else None


def _unknown_reply(words: Sequence[str], vocabulary: Vocabulary) -> tuple[str, str]:
    shown = list(dict.fromkeys(words))[:5]
    if any(not _KNOWN_SCRIPT.match(_norm_word(w)) for w in shown):
        return "language", f"{LANGUAGE_REPLY} {ASK_INSTEAD}"
    quoted = ", ".join(f"“{w}”" for w in shown)
    tries = list(dict.fromkeys(s for s in (_suggestion(w, vocabulary) for w in shown) if s))
    reply = f"I can't use {quoted} here"
    reply += (" — try " + " or ".join(f"“{t}”" for t in tries) + ".") if tries else "."
    return "unknown", f"{reply} {ASK_INSTEAD}"


@dataclass
class _KeptBuilds:
    directory: Path | None = None


#: Where this process keeps built vocabularies and shields (:func:`prepare`). Process-wide, as
#: logging is: the review runs deep in the chat and in prompt building, where no settings are
#: at hand, and an entry point says once where the cache is.
_kept_builds = _KeptBuilds()


def keep_builds(cache_dir: Path | None) -> None:
    """Keep the policies this process builds in ``cache_dir``, and read them from there (None:
    build each in memory)."""
    _kept_builds.directory = cache_dir


def prepare(
    cache_dir: Path | None,
    vocabulary_paths: tuple[Path, ...] = VOCABULARY_FILES,
    refusals_path: Path = REFUSALS_FILE,
) -> None:
    """Keep built policies in ``cache_dir`` from now on (None: build each in memory), and have
    this one built now: entry points call it at start, so that the first person's description
    is not the one that waits (about 25 s for a build, 2 s for a kept one)."""
    keep_builds(cache_dir)
    load_refusals(refusals_path)
    load_vocabulary(vocabulary_paths)
    _protected(vocabulary_paths, refusals_path)


def review_description(
    text: str | None,
    *,
    vocabulary_paths: tuple[Path, ...] = VOCABULARY_FILES,
    refusals_path: Path = REFUSALS_FILE,
) -> DescriptionReview:
    """Review an untrusted description: the canonical terms, or a chat-ready refusal.

    The chat stores the canonical text and the worker reviews that text again, so the review
    is repeated on its own output until it reads the same: a term and the modifiers before it
    may together read as another term the second time ("neat" + "hair bun" gives "neat hair
    bun", which reads "tidy hair", "hair bun"), and the text handed back is the one the worker
    will read.
    """
    review = _review(text, vocabulary_paths, refusals_path)
    for _ in range(3):
        if review.text is None:
            break
        again = _review(review.text, vocabulary_paths, refusals_path)
        if again.terms == review.terms:
            break
        review = again
    return review


def _review(
    text: str | None, vocabulary_paths: tuple[Path, ...], refusals_path: Path
) -> DescriptionReview:
    if not text or not text.strip():
        return DescriptionReview(text=None)
    refusals = load_refusals(refusals_path)
    cleaned = _clean(text, refusals.emoji)
    vocabulary = load_vocabulary(vocabulary_paths)
    shield = _protected(vocabulary_paths, refusals_path)
    found = _refusal(cleaned, refusals, shield)
    if found is not None:
        category, reply = found
        return DescriptionReview(None, f"{reply} {ASK_INSTEAD}", category)
    tokens = _tokens(
        cleaned, vocabulary, lambda parts: _refusal(parts, refusals, shield) is not None
    )
    reading = _read(tokens, vocabulary, refusals)
    if reading.refusal is not None:
        category, reply, word = reading.refusal
        return DescriptionReview(None, f"{reply} {ASK_INSTEAD}", category, words=(word,))
    if reading.unknown:
        category, reply = _unknown_reply(reading.unknown, vocabulary)
        return DescriptionReview(None, reply, category, words=tuple(reading.unknown))
    terms = tuple(dict.fromkeys(reading.terms))
    kept: list[str] = []
    for term in terms:  # whole terms only, never a term cut in two
        if len(", ".join([*kept, term])) > MAX_DESCRIPTION_CHARS:
            break
        kept.append(term)
    return DescriptionReview(text=", ".join(kept) or None, terms=tuple(kept))
