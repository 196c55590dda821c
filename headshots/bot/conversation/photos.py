"""Selfies: check each photo as it arrives, store the good ones, write one tally.

Photos are numbered as the person sent them, whatever order the bot got round to checking
them in: chat updates are handled concurrently (python-telegram-bot's ``concurrent_updates``,
one task per Discord event), so each photo keeps the index it was stored under and the tally
shows its place in the chat (message id, then attachment position).

Face checks are blocking (dlib / onnxruntime): they run in :class:`FaceWork`'s threads, at most
``HEADSHOTS_CHECK_CONCURRENCY`` at once for the whole process (each holds a downloaded photo in
memory), and the face libraries are imported only on the first photo. Team logos and
reference photos are decoded under the same limit and the same pixel cap
(:meth:`FaceWork.logo`, :meth:`FaceWork.reference`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from headshots.bot.conversation import texts
from headshots.bot.conversation.state import Conversation, Photo
from headshots.errors import UserError
from headshots.queue.client import QueueClient
from headshots.queue.contracts import UserRef
from headshots.settings import Settings

if TYPE_CHECKING:
    from headshots.generation.faces import FaceAnalyzer
    from headshots.generation.faces.selfie_check import SelfieVerdict, SetVerdict

logger = logging.getLogger(__name__)

T = TypeVar("T")


class FaceWork:
    """The face analyzer and the one limiter every selfie check of the process goes through."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.limit = asyncio.Semaphore(settings.check_concurrency)
        # The analyzers serialise their own model calls (dlib's detector aborts when two
        # threads use it at once); decoding and re-encoding run in parallel around them.
        self._threads = ThreadPoolExecutor(
            max_workers=settings.check_concurrency, thread_name_prefix="faces"
        )
        self._analyzer: FaceAnalyzer | None = None
        self._analyzer_lock = asyncio.Lock()

    async def analyzer(self) -> FaceAnalyzer:
        """The face analyzer, loaded in a thread on first use (not at start-up: it is heavy)."""
        async with self._analyzer_lock:
            if self._analyzer is None:
                from headshots.generation.faces import load_analyzer

                self._analyzer = await self.run(load_analyzer, self.settings)
            return self._analyzer

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """Run blocking image work (checks, previews, logos) off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(function, *args))

    async def check(
        self, fetch: Callable[[], Awaitable[bytes]], index: int
    ) -> tuple[SelfieVerdict, bytes | None]:
        """Download and check one photo within the limit; the verdict and the stored JPEG."""
        from headshots.generation.faces.selfie_check import SelfieVerdict

        async with self.limit:
            try:
                data = await _download(fetch, f"photo {index}")
            except UserError as exc:
                return SelfieVerdict(index, False, [str(exc)]), None
            analyzer = await self.analyzer()
            return await self.run(_check_and_normalise, data, analyzer, index)

    async def logo(self, fetch: Callable[[], Awaitable[bytes]]) -> bytes:
        """Download and normalise a team logo within the same limit: the small PNG we keep.

        Raises :class:`UserError` with the chat's reply when the file can't be a logo.
        """
        from headshots.style.brand import LogoRejected, normalise_logo

        async with self.limit:
            data = await _download(fetch, "a logo")
            try:
                return await self.run(normalise_logo, data)
            except LogoRejected as exc:
                raise UserError(texts.logo_refused(exc.kind, exc.detail)) from None

    async def reference(self, fetch: Callable[[], Awaitable[bytes]]) -> bytes:
        """Download and check a reference photo within the same limit: the PNG we keep.

        Raises :class:`UserError` with the chat's reply when it can't be a reference.
        """
        from headshots.generation.faces import ImageRejected, check_reference

        async with self.limit:
            data = await _download(fetch, "a reference photo")
            analyzer = await self.analyzer()
            try:
                return await self.run(check_reference, data, analyzer)
            except ImageRejected as exc:
                raise UserError(f"I can't use this photo as a reference: {exc.reason}.") from None

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


async def _download(fetch: Callable[[], Awaitable[bytes]], what: str) -> bytes:
    """``fetch()``; the platform's own refusal (a :class:`UserError`, e.g. over its download
    limit) as it is, any other failure (a link expired, the platform hiccuped) as "download
    failed, send it again"."""
    try:
        return await fetch()
    except UserError:
        raise
    except Exception:
        logger.warning("could not download %s", what, exc_info=True)
        raise UserError(texts.DOWNLOAD_FAILED) from None


def _check_and_normalise(
    data: bytes, analyzer: FaceAnalyzer, index: int
) -> tuple[SelfieVerdict, bytes | None]:
    from headshots.generation.faces import check_selfie, normalise_selfie

    verdict = check_selfie(data, analyzer, index=index)
    return verdict, (normalise_selfie(data) if verdict.accepted else None)


async def take(
    conversation: Conversation,
    photos: Sequence[Photo],
    *,
    user: UserRef,
    client: QueueClient,
    faces: FaceWork,
    download: Callable[[str], Awaitable[bytes]],
) -> None:
    """Check every photo now (links expire) and record verdicts and stored selfies;
    ``download`` fetches a photo's ``url`` (a Telegram file id, a Discord CDN link)."""
    from headshots.generation.faces.selfie_check import SelfieVerdict

    limit = faces.settings.max_selfies
    for photo in photos:
        if tuple(photo.place) in {tuple(p) for p in conversation.places}:
            continue  # re-delivered after a restart: already counted
        index = conversation.next_index
        conversation.next_index += 1
        conversation.places.append(photo.place)
        if photo.name:
            conversation.names[str(index)] = photo.name
        reason = photo.refused
        if reason is None and len(conversation.stored) >= limit:
            reason = texts.OVER_LIMIT.format(limit=limit)
        if reason is not None:
            conversation.verdicts.append(SelfieVerdict(index, False, [reason]).to_json())
            continue
        verdict, jpeg = await faces.check(functools.partial(download, photo.url), index)
        if jpeg is not None:
            assert conversation.upload_id is not None
            await client.add_selfie(user, conversation.upload_id, index, jpeg)
            conversation.stored.append(index)
        conversation.verdicts.append(verdict.to_json())
        logger.info("selfie %d of %s: accepted=%s", index, user.key, verdict.accepted)


def numbers(conversation: Conversation) -> dict[int, int]:
    """Index -> the number the person sees (an old state without places keeps its indices)."""
    places = conversation.places
    if len(places) != conversation.next_index - 1:
        return {}
    by_place = sorted(range(len(places)), key=lambda i: tuple(places[i]))
    return {index + 1: number for number, index in enumerate(by_place, start=1)}


async def set_verdict(conversation: Conversation, faces: FaceWork) -> SetVerdict:
    """The set check over the photos so far, numbered as sent."""
    from headshots.generation.faces import SelfieVerdict, check_selfie_set

    numbered = numbers(conversation)
    verdicts = [SelfieVerdict.from_json(v) for v in conversation.verdicts]
    for verdict in verdicts:
        verdict.index = numbered.get(verdict.index, verdict.index)
    analyzer = await faces.analyzer()
    settings = faces.settings
    return check_selfie_set(
        verdicts,
        same_person_threshold=analyzer.same_person_threshold,
        min_count=settings.min_selfies,
        max_count=settings.max_selfies,
    )


def accepted_indices(conversation: Conversation, verdict: SetVerdict) -> list[int]:
    """The stored indices of the photos ``verdict`` accepts (it counts by number)."""
    index_of = {number: index for index, number in numbers(conversation).items()}
    return sorted(index_of.get(number, number) for number in verdict.accepted)


def headline(verdict: SetVerdict, names: dict[int, str]) -> str:
    text = f"**Photos**: {len(verdict.accepted)} accepted, {len(verdict.rejected)} rejected"
    details = [
        (f"photo {n} (`{names[n]}`): " if names.get(n) else f"photo {n}, ") + ", ".join(reasons)
        for n, reasons in sorted(verdict.rejected.items())
    ]
    return text + (": " + "; ".join(details) if details else "")


def tally(
    conversation: Conversation, verdict: SetVerdict | None, settings: Settings, *, form: bool
) -> str:
    """The one tally message of an upload: counts, each refused photo with its reasons, notes."""
    if verdict is None or not conversation.verdicts:
        return texts.no_photos_yet(settings)
    index_of = {number: index for index, number in numbers(conversation).items()}
    names = {n: conversation.names.get(str(index_of.get(n, n)), "") for n in verdict.rejected}
    lines = [headline(verdict, names)]
    lines += [f"⚠️ photo {n}: {'; '.join(w)}" for n, w in sorted(verdict.warnings.items())]
    lines += [f"ℹ️ {note}" for note in verdict.notes]
    lines += [reason[0].upper() + reason[1:] + "." for reason in verdict.reasons]
    enough = len(verdict.accepted) >= settings.min_selfies
    if enough or not verdict.reasons:
        lines.append(texts.collecting_hint(len(verdict.accepted), settings, form=form))
    return "\n".join(lines)
