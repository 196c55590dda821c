"""Team names: visible, no bidirectional controls, no mention or link on either platform."""

from __future__ import annotations

import pytest

from headshots.bot.conversation import kit as kit_steps
from headshots.bot.conversation.kit import clean_team_name
from headshots.errors import UserError

FULLWIDTH_AT = "\uff20"


@pytest.mark.parametrize(
    "name",
    [
        "\u200b\u200b\u200b",  # zero-width spaces
        "\u200b \u2060\ufeff",  # zero-width space, word joiner, BOM
        "   \t ",
        "\u3000\u00a0",  # ideographic and no-break spaces
        "\u3164\u115f",  # Hangul fillers (the "blank name" trick)
        "\u2800\u2800",  # braille blanks
        "\u202e\u2066\u200f",  # bidi controls only
        "\u0301\u0301",  # combining marks with nothing to sit on
        "https://evil.example/x",  # nothing but a link
    ],
)
def test_a_name_that_shows_nothing_is_refused(name: str) -> None:
    with pytest.raises(UserError, match="letters people can see"):
        clean_team_name(name)


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("Acme\u202e emaN", "Acme emaN"),  # right-to-left override
        ("\u2067Acme\u2069 Corp\u200e", "Acme Corp"),  # isolates and marks
        ("Ac\u061cme", "Acme"),  # Arabic letter mark
        ("Acme\u200b Corp", "Acme Corp"),
    ],
)
def test_bidi_controls_and_invisible_characters_are_stripped(typed: str, kept: str) -> None:
    assert clean_team_name(typed) == kept


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("@everyone", f"{FULLWIDTH_AT}everyone"),
        ("Acme @here", f"Acme {FULLWIDTH_AT}here"),
        ("Acme <@123456789012345678>", f"Acme {FULLWIDTH_AT}123456789012345678"),
        ("Acme <@!42>", f"Acme {FULLWIDTH_AT}!42"),
        ("Acme <@&42>", f"Acme {FULLWIDTH_AT}&42"),
        ("Acme <#42>", "Acme #42"),
        ("Acme @acme_bot", f"Acme {FULLWIDTH_AT}acme_bot"),  # a Telegram username
    ],
)
def test_mentions_are_neutralised(typed: str, shown: str) -> None:
    name = clean_team_name(typed)
    assert name == shown
    assert "@" not in name and "<" not in name


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("[Acme](http://evil.example/login)", "Acme"),
        ("Acme [click me](https://evil.example)", "Acme click me"),
        ("Acme https://evil.example/login", "Acme"),
        ("Acme www.evil.example", "Acme"),
        ("Acme <https://evil.example> Corp", "Acme Corp"),
        ("Booking.com", "Booking\u2024com"),  # reads the same, links nowhere
        ("Acme t.me/evil", "Acme t\u2024me/evil"),
        ("Team 2.0", "Team 2.0"),  # not a host name
    ],
)
def test_links_are_neutralised(typed: str, shown: str) -> None:
    name = clean_team_name(typed)
    assert name == shown
    assert "://" not in name and "](" not in name


def test_cleaning_keeps_ordinary_names_and_is_idempotent() -> None:
    for name in ("Acme Corp", "Zoë & Partners", "株式会社アクメ", "O'Neil Ltd.", "👩\u200d💻 Devs"):
        assert clean_team_name(name) == name
        assert clean_team_name(clean_team_name(name)) == name
    messy = "  \u202eAcme\n  @everyone [x](http://y.example) "
    assert clean_team_name(clean_team_name(messy)) == clean_team_name(messy)
    with pytest.raises(UserError, match="under 80"):
        clean_team_name("x" * 81)


def test_the_typed_name_and_the_group_title_are_both_cleaned() -> None:
    draft = kit_steps.start_draft(None, has_logo=False, name="\u202e@everyone")
    assert draft.values["team_name"] == f"{FULLWIDTH_AT}everyone"
    assert kit_steps.start_draft(None, has_logo=False, name="\u200b").values["team_name"] == (
        "Our team"
    )
    long_title = kit_steps.start_draft(None, has_logo=False, name="Ab " * 40)
    assert len(long_title.values["team_name"]) <= 80
    kit_steps.take_text(draft, "Acme <@&1> [site](https://acme.example)")
    assert draft.values["team_name"] == f"Acme {FULLWIDTH_AT}&1 site"
    assert draft.step == "preset"
    with pytest.raises(UserError, match="letters people can see"):
        kit_steps.take_text(kit_steps.start_draft(None, has_logo=False), "\u200b\u200b")
    assert kit_steps.to_kit(draft).team_name == f"Acme {FULLWIDTH_AT}&1 site"
