"""Number photos as the user sent them, whatever order the bot got round to checking them in.

Chat updates are handled concurrently (python-telegram-bot's ``concurrent_updates``, one task
per Discord event), so the order in which photos take a conversation's lock is not the order
they were sent. Photos keep the index they were stored under; what the chat shows is this
number, derived from where each photo sat in the chat (message id, then attachment position).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headshots.generation.faces.selfie_check import SelfieVerdict


def numbers_in_sent_order(sent: Sequence[Any], *, photos: int) -> dict[int, int]:
    """``sent[i]`` is a sortable place of the photo with index ``i + 1``; index -> number.

    ``photos`` is how many indices were handed out. A conversation saved before places were
    recorded has fewer places than photos: its indices stay as they are (an empty map).
    """
    if len(sent) != photos:
        return {}
    by_place = sorted(range(len(sent)), key=lambda i: sent[i])
    return {index + 1: number for number, index in enumerate(by_place, start=1)}


def renumbered(verdicts: list[SelfieVerdict], numbers: dict[int, int]) -> list[SelfieVerdict]:
    """``verdicts`` with each photo's index replaced by the number the user sees."""
    for verdict in verdicts:
        verdict.index = numbers.get(verdict.index, verdict.index)
    return verdicts
