"""Download each attachment at once, check it as a selfie, store the good ones, keep a tally.

Face checks are blocking (dlib / onnxruntime): they run in a worker thread, and the face
libraries are imported only on the first selfie, so the bot process starts without them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from headshots.bot.discord import texts
from headshots.bot.discord.session import Photo, Session
from headshots.bot.numbering import renumbered
from headshots.queue.client import QueueClient
from headshots.queue.contracts import UserRef
from headshots.settings import Settings

if TYPE_CHECKING:
    from headshots.generation.faces.selfie_check import SelfieVerdict, SetVerdict
    from headshots.generation.faces.types import FaceAnalyzer

logger = logging.getLogger(__name__)

#: Discord's attachment ceiling for most servers; anything larger is refused unread.
MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024

Fetch = Callable[[str], Awaitable[bytes]]


def precheck(photo: Photo) -> str | None:
    """A reason to refuse ``photo`` from what Discord says about it, before downloading it."""
    if photo.size > MAX_ATTACHMENT_BYTES:
        return (
            f"this file is too large ({photo.size / (1024 * 1024):.0f} MB): "
            f"send photos under {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB"
        )
    if photo.content_type and not photo.content_type.startswith("image/"):
        kind = photo.content_type.split(";")[0]
        return f"this is not a photo ({kind}): send a JPEG or PNG"
    return None


def _rejected(index: int, reason: str) -> SelfieVerdict:
    from headshots.generation.faces.selfie_check import SelfieVerdict

    return SelfieVerdict(index=index, accepted=False, reasons=[reason])


def _check_and_normalise(
    data: bytes, analyzer: FaceAnalyzer, index: int
) -> tuple[SelfieVerdict, bytes | None]:
    from headshots.generation.faces import check_selfie, normalise_selfie

    verdict = check_selfie(data, analyzer, index=index)
    return verdict, (normalise_selfie(data) if verdict.accepted else None)


def accepted_count(session: Session) -> int:
    return sum(1 for v in session.verdicts if v.get("accepted"))


async def add_photos(
    session: Session,
    photos: list[Photo],
    *,
    user: UserRef,
    queue: QueueClient,
    settings: Settings,
    analyzer: FaceAnalyzer,
    fetch: Fetch,
) -> None:
    """Check every photo now (URLs expire) and record verdicts and stored selfies in ``session``."""
    for photo in photos:
        index = session.next_index
        session.next_index += 1
        session.photo_places.append(photo.place)
        session.filenames[str(index)] = photo.filename
        reason = precheck(photo)
        if reason is None and accepted_count(session) >= settings.max_selfies:
            reason = f"over the limit of {settings.max_selfies} photos"
        if reason is not None:
            session.verdicts.append(_rejected(index, reason).to_json())
            continue
        try:
            data = await fetch(photo.url)
        except Exception:  # the CDN link expired or Discord hiccuped: the user can resend
            logger.warning(
                "could not download attachment %d of session %s",
                index,
                session.session_id,
                exc_info=True,
            )
            session.verdicts.append(
                _rejected(index, "I couldn't download this file: please send it again").to_json()
            )
            continue
        verdict, jpeg = await asyncio.to_thread(_check_and_normalise, data, analyzer, index)
        if jpeg is not None:
            await queue.add_selfie(user, session.upload_id, index, jpeg)
        session.verdicts.append(verdict.to_json())


def set_verdict(session: Session, settings: Settings, analyzer: FaceAnalyzer) -> SetVerdict:
    from headshots.generation.faces import check_selfie_set
    from headshots.generation.faces.selfie_check import SelfieVerdict

    verdicts = [SelfieVerdict.from_json(v) for v in session.verdicts]
    return check_selfie_set(
        renumbered(verdicts, session.photo_numbers()),
        same_person_threshold=analyzer.same_person_threshold,
        min_count=settings.min_selfies,
        max_count=settings.max_selfies,
    )


def tally_text(session: Session, verdict: SetVerdict | None, settings: Settings) -> str:
    """The one tally message of a session: accepted and rejected photos with reasons."""
    if verdict is None or not session.verdicts:
        return (
            f"**Photos**: none yet. "
            f"Post {settings.min_selfies}-{settings.max_selfies} selfies here "
            "(attach several to one message if you like)."
        )
    # ``verdict`` counts photos as sent (see :func:`set_verdict`); file names are by index.
    index_of = {number: index for index, number in session.photo_numbers().items()}
    lines = [f"**Photos**: {len(verdict.accepted)} accepted, {len(verdict.rejected)} rejected"]
    if verdict.accepted:
        lines.append("✅ " + ", ".join(f"photo {i}" for i in verdict.accepted))
    for index, reasons in verdict.rejected.items():
        name = session.filenames.get(str(index_of.get(index, index)))
        label = f"photo {index}" + (f" (`{name}`)" if name else "")
        lines.append(f"❌ {label}: {'; '.join(reasons)}")
    for index, warnings in verdict.warnings.items():
        lines.append(f"⚠️ photo {index}: {'; '.join(warnings)}")
    if verdict.reasons:
        lines.extend(reason[0].upper() + reason[1:] + "." for reason in verdict.reasons)
    if verdict.usable:
        lines.append("Enough good photos: choose your style below (you can still add more).")
    else:
        lines.append("Post more selfies in this thread to continue.")
    return texts.clip("\n".join(lines))


def verdict_summary(verdicts: list[dict[str, Any]]) -> str:
    accepted = sum(1 for v in verdicts if v.get("accepted"))
    return f"{accepted} of {len(verdicts)} photos accepted"
