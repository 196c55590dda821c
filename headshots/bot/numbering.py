"""Number photos as the user sent them, whatever order the bot got round to checking them in.

Chat updates are handled concurrently (python-telegram-bot's ``concurrent_updates``, one task
per Discord event), so the order in which photos take a conversation's lock is not the order
they were sent. Photos keep the index they were stored under; what the chat shows is this
number, derived from where each photo sat in the chat (message id, then attachment position).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def numbers_in_sent_order(sent: Sequence[Any]) -> dict[int, int]:
    """``sent[i]`` is a sortable place of the photo with index ``i + 1``; index -> number."""
    by_place = sorted(range(len(sent)), key=lambda i: sent[i])
    return {index + 1: number for number, index in enumerate(by_place, start=1)}
