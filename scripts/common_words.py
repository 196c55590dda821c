"""Write headshots/style/vocabulary_common.toml: everyday words a description may hold.

People write their descriptions as sentences ("could you make it look like golden hour on a
rooftop? nothing too formal, I sell insurance"). The vocabulary knows the look's words; the
rest of such a sentence was refused word by word, round after round, on sets nobody tuned to.
This file lists the most frequent words of English, German, Spanish, French and Russian that
the other vocabulary files do not know, as fillers: dropped, never sent to the model.

A word is left out (and so stays unknown, and refused) when it:
- is in an exclusion list, ``scripts/common_words/exclude_<language>.txt`` (words that may
  carry harm on their own: violence, sex, age, body and identity, hate, instructions to the
  model, deception); the lists of all languages apply to every language;
- is a first name or a surname (Faker's lists for 16 locales): "make me look like Brad Pitt"
  stays refused, and a person's own name is read by the policy's naming rule;
- is refused on its own by the refusal pass, or names a person's own feature that [kept]
  reads ("eyes" in "blue eyes"), or has fewer than three letters, or holds a digit or a sign.

Run it again after a vocabulary round, so that words the vocabulary has learnt since leave it:

    .venv/bin/pip install wordfreq==3.1.1 faker==40.63.0
    .venv/bin/python scripts/common_words.py

wordfreq's word lists are CC BY-SA 4.0 (Robyn Speer and contributors), so the file it writes
is too (its header says so); neither package is needed at run time.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

from headshots.style import policy

ROOT = Path(__file__).resolve().parent.parent
EXCLUDE_DIR = ROOT / "scripts" / "common_words"
OUT = ROOT / "headshots" / "style" / "vocabulary_common.toml"
LANGUAGES = ("en",)
#: How many of each language's most frequent words are looked at.
TOP = 30_000
NAME_LOCALES = (
    "en_US", "en_GB", "en_IN", "en_IE", "en_NZ", "de_DE", "fr_FR", "es_ES", "es_MX", "ru_RU",
    "it_IT", "pt_BR", "nl_NL", "pl_PL", "tr_TR", "hi_IN",
)  # fmt: skip
WORD = re.compile(r"[^\W\d_]{3,}")


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


def main() -> int:
    import wordfreq  # only here: the tests read the exclusion lists through _excluded

    paths = tuple(path for path in policy.VOCABULARY_FILES if path != OUT)
    vocabulary = policy.load_vocabulary(paths)
    refusals = policy.load_refusals()
    shield = policy._protected(paths, policy.REFUSALS_FILE)
    # Compared by stem, as the policy reads words: "jumps" left in would read "jump" too.
    left_out = {policy._stem(policy._norm_word(word)) for word in _excluded() | _names()}
    lists: dict[str, list[str]] = {}
    for language in LANGUAGES:
        kept: list[str] = []
        for word in wordfreq.top_n_list(language, TOP):
            norm = policy._norm_word(word)
            if not WORD.fullmatch(word) or policy._stem(norm) in left_out:
                continue
            if vocabulary.word(norm) is not None:
                continue
            if policy._stem(norm) in vocabulary.features:
                continue  # a person's own feature ("eyes" of "blue eyes"), read by [kept]
            if policy._refusal(policy._clean(word, refusals.emoji), refusals, shield):
                continue
            kept.append(word)
        lists[language] = sorted(set(kept))
        print(f"{language}: {len(lists[language])} words", file=sys.stderr)
    lines = [
        "# Everyday words of five languages that the other vocabulary files do not know: read",
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
