"""``headshots policy check``: what the content policy makes of a custom description.

Operators try their vocabulary with it: ``--vocabulary my/vocabulary.toml`` reads an edited copy
in place of the shipped file of the same name (a file of another name is read as well), before
the copy replaces it. The tests drive it as a person's text would arrive.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from headshots.settings import Settings
from headshots.style.policy import VOCABULARY_FILES, prepare, review_description


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = subparsers.add_parser("policy", help="the custom-description content policy")
    policy_sub = policy.add_subparsers(dest="policy_command", metavar="COMMAND", required=True)
    check = policy_sub.add_parser(
        "check", help="accepted (with the terms the model gets) or refused (and why), per text"
    )
    check.add_argument("texts", nargs="+", metavar="TEXT", help="custom descriptions")
    check.add_argument("--json", action="store_true", help="one JSON list, one object per text")
    check.add_argument(
        "--vocabulary",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="an edited copy of a vocabulary file, read in place of the shipped file of the "
        "same name (repeatable)",
    )
    check.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    given = {path.name: path for path in args.vocabulary}
    shipped = tuple(given.pop(path.name, path) for path in VOCABULARY_FILES)
    vocabulary = shipped + tuple(given.values())
    prepare(settings.cache_dir, vocabulary)
    results = []
    for text in args.texts:
        review = review_description(text, vocabulary_paths=vocabulary)
        results.append(
            {
                "text": text,
                "accepted": not review.refused and review.text is not None,
                "terms": list(review.terms),
                "reason": review.refusal
                or (None if review.text is not None else "nothing to use in it"),
                "category": review.category,
                "words": list(review.words),
            }
        )
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        for result in results:
            if result["accepted"]:
                print(f"accepted  {result['text']!r} -> {', '.join(result['terms'])}")
            else:
                print(f"refused   {result['text']!r} ({result['category']}): {result['reason']}")
    return 0 if all(result["accepted"] for result in results) else 1
