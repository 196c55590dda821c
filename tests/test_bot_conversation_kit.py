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


# --- the reference portrait steps --------------------------------------------------------------
def _walk(draft: kit_steps.KitDraft, until: str) -> list[str]:
    """The steps a draft asks, from the preset to ``until`` (buttons at their first option)."""
    draft.step, seen = "preset", []
    while draft.step != until:
        seen.append(draft.step)
        first = kit_steps.options(draft.step, draft)[0].value
        kit_steps.choose(draft, draft.step, first)
    return seen


@pytest.mark.parametrize(
    ("hints", "asked"),
    [((), ()), (("pose",), ("reference",)), (("pose", "canny"), ("reference",))],
)
def test_the_reference_step_is_asked_only_with_a_controlnet(
    hints: tuple[str, ...], asked: tuple[str, ...]
) -> None:
    draft = kit_steps.start_draft(None, has_logo=False, hints=hints)
    steps = _walk(draft, "confirm")
    assert tuple(s for s in steps if s in ("reference", "hint")) == asked
    assert len(kit_steps.form_pages(draft)) == (3 if hints else 2)
    assert kit_steps.to_kit(draft).reference_hint is None  # "No reference photo" first


def test_a_reference_portrait_sets_the_hint_and_no_reference_clears_it() -> None:
    draft = kit_steps.start_draft(None, has_logo=False, hints=("pose", "canny"))
    _walk(draft, "reference")
    kit_steps.take_reference(draft, b"png-bytes")
    assert draft.step == "hint", "two hints configured: which one is asked"
    assert kit_steps.to_kit(draft).reference_hint == "pose"
    kit_steps.choose(draft, "hint", "canny")
    assert draft.step == "review"
    kit = kit_steps.to_kit(draft)
    assert kit.reference_hint == "canny" and draft.reference_bytes == b"png-bytes"
    assert "Reference photo: everyone framed like it, by outline (edges)" in (
        kit_steps.look_lines(kit, logo=False)
    )
    kit_steps.choose(draft, "reference", "none")
    assert kit_steps.to_kit(draft).reference_hint is None
    kit_steps.choose(draft, "reference", "new")  # the photo sent is still there to pick
    assert kit_steps.to_kit(draft).reference_hint == "pose"


def test_a_saved_reference_is_kept_and_follows_the_configured_hints() -> None:
    from headshots.queue.teams import BrandKit

    kit = BrandKit(team_name="Acme", reference_hint="canny")
    kept = kit_steps.start_draft(kit, has_logo=False, has_reference=True, hints=("canny",))
    assert kept.reference == "keep" and kit_steps.to_kit(kept).reference_hint == "canny"
    assert [o.value for o in kit_steps.options("reference", kept)] == ["keep", "none"]
    # Its file expired (or was never stored): no reference, whatever the kit says.
    lost = kit_steps.start_draft(kit, has_logo=False, has_reference=False, hints=("canny",))
    assert lost.reference == "none" and kit_steps.to_kit(lost).reference_hint is None
    # The operator now configures pose only: a new portrait takes the hint there is.
    switched = kit_steps.start_draft(kit, has_logo=False, has_reference=True, hints=("pose",))
    kit_steps.take_reference(switched, b"png")
    assert kit_steps.to_kit(switched).reference_hint == "pose"
    # No ControlNet any more: the step is not asked and offers nothing.
    none = kit_steps.start_draft(kit, has_logo=False, has_reference=True, hints=())
    assert kit_steps.options("reference", none) == []
