"""Write headshots/style/vocabulary_common.toml: everyday words a description may hold.

People write their descriptions as sentences ("could you make it look like golden hour on a
rooftop? nothing too formal, I sell insurance"). The vocabulary knows the look's words; the
rest of such a sentence was refused word by word, round after round, on sets nobody tuned to.
This file lists the most frequent words of English, German, Spanish, French, Russian and
Japanese that the other vocabulary files do not know, as fillers: dropped, never sent to the
model.

A word is left out (and so stays unknown, and refused) when it:
- is in an exclusion list, ``scripts/common_words/exclude_<language>.txt`` (words that may
  carry harm on their own: violence, sex, age, body and identity, hate, instructions to the
  model, deception); the lists of all languages apply to every language;
- is a first name or a surname (Faker's lists for 16 locales): "make me look like Brad Pitt"
  stays refused, and a person's own name is read by the policy's naming rule; outside
  English, a name that is also one of the language's 5,000 commonest words is kept (Spanish
  "puerta" is a surname too);
- is refused on its own by the refusal pass, or names a person's own feature that [kept]
  reads ("eyes" in "blue eyes"), or has fewer than three letters (Japanese: two), or holds a
  digit or a sign;
- outside English, is used by the harmful sets in tests/data more than ``HARM_RATIO`` times as
  often as by the ordinary training sets (:func:`_learned`): words harmless alone that say
  harm together ("für Erwachsene", "nix drunter"). English keeps round 15's list, in which
  blind harmful sets found no hole.

Run it again after a vocabulary round or a new harmful set, so that words the vocabulary has
learnt since leave it; harmful sets named after it are held out of the learning, to measure
on them afterwards:

    .venv/bin/pip install wordfreq==3.1.1 faker==40.63.0
    .venv/bin/python scripts/common_words.py [descriptions_harmful_devN.toml ...]

wordfreq's word lists are CC BY-SA 4.0 (Robyn Speer and contributors), so the file it writes
is too (its header says so); neither package is needed at run time.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import tomllib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from headshots.style import policy

ROOT = Path(__file__).resolve().parent.parent
EXCLUDE_DIR = ROOT / "scripts" / "common_words"
OUT = ROOT / "headshots" / "style" / "vocabulary_common.toml"
LANGUAGES = ("en", "de", "es", "fr", "ru", "ja")
#: How many of each language's most frequent words are looked at. Outside English the list
#: stops sooner: 30,000 let 20 of a blind harmful set's 360 texts through (dev24, harm said
#: in everyday words), 15,000 (Japanese 10,000) let 14 through, against 13 with English ones
#: only, and kept three quarters of the gain on blind ordinary sets (2,838 -> 2,941 of 3,380;
#: 2,972 with 30,000). Japanese words are read by substring, each a place to split a text.
TOPS = {"en": 30_000, "ja": 10_000}
TOP = 15_000
#: Outside English, a first name or a surname that is also among the language's commonest
#: 5,000 words is kept: Spanish "puerta", "puente" and "nada" and French "pont" are surnames
#: somewhere in Faker's lists. English keeps every name out ("swift",
#: "pitt"): a lookalike of a famous person is asked for in English most often.
NAME_WORD_TOP = 5_000
DATA_DIR = ROOT / "tests" / "data"
#: A word seen this many times more often in the harmful sets than in the ordinary training
#: sets is left out (the two hold about 4,800 and 8,000 texts).
HARM_RATIO = 3
NAME_LOCALES = (
    "en_US", "en_GB", "en_IN", "en_IE", "en_NZ", "de_DE", "fr_FR", "es_ES", "es_MX", "ru_RU",
    "it_IT", "pt_BR", "nl_NL", "pl_PL", "tr_TR", "hi_IN",
)  # fmt: skip
WORD = re.compile(r"[^\W\d_]{3,}")
#: Kana and kanji only, two characters at least (one is a particle or a part of a word).
JAPANESE_WORD = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]{2,}")


def _excluded() -> set[str]:
    words: set[str] = set()
    for path in sorted(EXCLUDE_DIR.glob("exclude_*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip().lower()
            if line and not line.startswith("#"):
                words.add(line)
    return words


def _names() -> set[str]:
    names: set[str] = set()
    for locale in NAME_LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        for attribute in ("first_names", "first_names_male", "first_names_female", "last_names"):
            found = getattr(provider, attribute, ())
            names.update(name.lower() for name in found)
    return names


def _texts(path: Path) -> list[str]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [text for table in data.values() for texts in table.values() for text in texts]


def _training_texts(held_out: frozenset[str]) -> Iterator[tuple[str, list[str]]]:
    """``("harmful" | "ordinary", texts)`` per data set the exclusion learns from: every
    harmful set, and the ordinary sets written to train on (never the blind ones), less the
    sets named in ``held_out``."""
    for pattern, kind in (
        ("descriptions_harmful*.toml", "harmful"),
        ("descriptions_ordinary.toml", "ordinary"),
        ("descriptions_ordinary_train*.toml", "ordinary"),
    ):
        for path in sorted(DATA_DIR.glob(pattern)):
            if path.name not in held_out:
                yield kind, _texts(path)


def _learned(held_out: frozenset[str] = frozenset()) -> set[str]:
    """Stems that the harmful sets use more than the ordinary training sets: the words that
    carry harm only together with others ("FKK", "Erwachsene", "drunter", "brassard", "en
    bolas"), which no list of bad words names. Sets named in ``held_out`` are not read, so
    that they can measure what the rest taught."""
    counts: dict[str, Counter[str]] = {"harmful": Counter(), "ordinary": Counter()}
    for kind, texts in _training_texts(held_out):
        for text in texts:
            words = WORD.findall(policy._clean(text))
            counts[kind].update({policy._stem(policy._norm_word(word)) for word in words})
    harmful, ordinary = counts["harmful"], counts["ordinary"]
    return {stem for stem, count in harmful.items() if count > HARM_RATIO * ordinary[stem]}


def _learned_japanese(words: list[str], held_out: frozenset[str] = frozenset()) -> set[str]:
    """The same for Japanese, which has no spaces to find words by: a word is counted in a
    text that contains it anywhere."""
    found: dict[str, list[str]] = {"harmful": [], "ordinary": []}
    for kind, texts in _training_texts(held_out):
        found[kind].extend(text for text in texts if JAPANESE_WORD.search(text))
    harmful, ordinary = found["harmful"], found["ordinary"]
    return {
        word
        for word in words
        if (count := sum(word in text for text in harmful))
        and count > HARM_RATIO * sum(word in text for text in ordinary)
    }


def main() -> int:
    import wordfreq  # only here: the tests read the exclusion lists through _excluded

    paths = tuple(path for path in policy.VOCABULARY_FILES if path != OUT)
    vocabulary = policy.load_vocabulary(paths)
    refusals = policy.load_refusals()
    shield = policy._protected(paths, policy.REFUSALS_FILE)
    # Compared by stem, as the policy reads words: "jumps" left in would read "jump" too.
    left_out = {policy._stem(policy._norm_word(word)) for word in _excluded()}
    names = {policy._stem(policy._norm_word(word)) for word in _names()}
    held_out = frozenset(sys.argv[1:])  # harmful sets to measure on afterwards
    # English keeps round 15's list: blind harmful sets found no hole in it, and the learned
    # stems there are words of ordinary requests too ("generate", "draw", "cute").
    learned = left_out | _learned(held_out)
    lists: dict[str, list[str]] = {}
    for language in LANGUAGES:
        kept: list[str] = []
        top = wordfreq.top_n_list(language, TOPS.get(language, TOP))
        if language == "ja":
            top = [word for word in top if JAPANESE_WORD.fullmatch(word)]
            left_out_here = _learned_japanese(top, held_out)
        elif language == "en":
            left_out_here = left_out | names
        else:
            everyday = {policy._stem(policy._norm_word(w)) for w in top[:NAME_WORD_TOP]}
            left_out_here = learned | (names - everyday)
        for word in top:
            norm = policy._norm_word(word)
            if not (WORD.fullmatch(word) or language == "ja"):
                continue
            if policy._stem(norm) in left_out_here:
                continue
            if vocabulary.word(norm) is not None or vocabulary.japanese.get(norm) is not None:
                continue
            if policy._stem(norm) in vocabulary.features:
                continue  # a person's own feature ("eyes" of "blue eyes"), read by [kept]
            if policy._refusal(policy._clean(word, refusals.emoji), refusals, shield):
                continue
            kept.append(word)
        lists[language] = sorted(set(kept))
        print(f"{language}: {len(lists[language])} words", file=sys.stderr)
    lines = [
        "# Everyday words of six languages that the other vocabulary files do not know: read",
        "# as fillers (dropped, never sent to the model). Written by scripts/common_words.py",
        "# (see there for what is left out and how to run it again); do not edit by hand.",
        "# From wordfreq 3.1 (Robyn Speer et al., https://github.com/rspeer/wordfreq): its word",
        "# lists are licensed CC BY-SA 4.0, and so is this file.",
        "",
        "[filler]",
    ]
    for language, words in lists.items():
        lines.append(f"{language}_common = [")
        lines.extend(f"  {json.dumps(word, ensure_ascii=False)}," for word in words)
        lines.append("]")
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
