"""The custom-description policy, driven by the probe's phrases (tests/data) as data."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from headshots.generation.content_policy import (
    ASK_INSTEAD,
    MAX_DESCRIPTION_CHARS,
    review_description,
)

DATA = tomllib.loads(
    (Path(__file__).parent / "data" / "custom_descriptions.toml").read_text(encoding="utf-8")
)
REFUSED = [(category, text) for category, texts in DATA["refused"].items() for text in texts]
ACCEPTED = list(DATA["accepted"]["descriptions"])


@pytest.mark.parametrize(("category", "text"), REFUSED)
def test_harmful_descriptions_are_refused_with_a_reason(category: str, text: str) -> None:
    review = review_description(text)
    assert review.refused, text
    assert review.text is None
    assert review.category == category, (text, review.category)
    assert review.refusal is not None and review.refusal.endswith(ASK_INSTEAD)


@pytest.mark.parametrize("text", ACCEPTED)
def test_ordinary_descriptions_pass(text: str) -> None:
    review = review_description(text)
    assert not review.refused, (text, review.category)
    assert review.text


def test_passing_text_is_reduced_to_plain_words() -> None:
    review = review_description("red tie, (round glasses:1.4) | [gold] {cufflinks}")
    assert review.text == "red tie, round glasses gold cufflinks"
    long = review_description("soft light, " * 40)
    assert long.text is not None and len(long.text) <= MAX_DESCRIPTION_CHARS


def test_empty_is_nothing_not_a_refusal() -> None:
    for text in (None, "", "   ", "(())"):
        review = review_description(text)
        assert not review.refused and review.text is None
