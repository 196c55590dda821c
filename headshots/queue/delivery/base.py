"""What every platform sender offers, and the retry policy around it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from headshots.actions import Action
from headshots.errors import DeliveryFailed
from headshots.queue.contracts import ChatTarget

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class OutgoingImage:
    filename: str
    data: bytes
    caption: str = ""


class Sender(Protocol):
    """Posts into chats with the bot token alone (GPU hosts run no bot process)."""

    platform: str
    #: Most images one album/message may carry.
    max_album: int
    #: Most bytes one message's attachments may weigh.
    max_message_bytes: int

    async def send_text(
        self, target: ChatTarget, text: str, actions: Sequence[Sequence[Action]] | None = None
    ) -> int:
        """Send ``text`` (with buttons); returns the new message id."""
        ...

    async def edit_text(self, target: ChatTarget, message_id: int, text: str) -> None: ...

    async def send_album(
        self, target: ChatTarget, images: Sequence[OutgoingImage]
    ) -> list[int]: ...

    async def send_image(
        self,
        target: ChatTarget,
        image: OutgoingImage,
        actions: Sequence[Sequence[Action]] | None = None,
    ) -> int: ...

    async def close(self) -> None: ...


class Transient(Exception):
    """Raised by a classifier wrapper: retry after ``delay_s``."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(delay_s)
        self.delay_s = delay_s


#: What a ``classify`` returns for an outage (5xx, time-out, refused connection): wait the
#: growing :func:`backoff` of this attempt.
TRANSIENT = -1.0
#: Tries of one send: with the growing back-off they span 1+2+4+8+16+30 s, about a minute, so a
#: Bot API outage of a few seconds cannot fail a finished job (a constant 1 s did, in the soak).
SEND_ATTEMPTS = 7


async def with_retries(
    call: Callable[[], Awaitable[T]],
    classify: Callable[[BaseException], float | None],
    *,
    attempts: int = SEND_ATTEMPTS,
    what: str = "send",
) -> T:
    """Run ``call``; on an error that ``classify`` maps to a delay, wait and try again.

    ``classify`` returns the seconds to wait (429's retry_after), :data:`TRANSIENT` for an
    outage (waits 1, 2, 4 ... 30 s as attempts go on), or ``None`` for errors that a retry
    cannot fix.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except Exception as exc:
            delay = classify(exc)
            if delay == TRANSIENT:
                delay = backoff(attempt)
            if delay is None or attempt == attempts:
                raise DeliveryFailed(f"{what} failed after {attempt} attempt(s): {exc}") from exc
            logger.warning(
                "%s failed (%s), retry %d in %.1fs", what, type(exc).__name__, attempt, delay
            )
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def backoff(attempt_hint: int = 1) -> float:
    return float(min(30.0, 2.0 ** max(0, attempt_hint - 1)))


#: Tries of a bot's first calls (getMe, setWebhook, Discord's login) before its start fails;
#: ``headshots up`` then restarts the process after its own, growing delay.
STARTUP_ATTEMPTS = 8


def split_batches(
    images: Sequence[OutgoingImage], max_items: int, max_bytes: int
) -> list[list[OutgoingImage]]:
    """Group images into messages within the platform's count and size limits, order kept."""
    batches: list[list[OutgoingImage]] = []
    current: list[OutgoingImage] = []
    size = 0
    for image in images:
        if current and (len(current) >= max_items or size + len(image.data) > max_bytes):
            batches.append(current)
            current, size = [], 0
        current.append(image)
        size += len(image.data)
    if current:
        batches.append(current)
    return batches
