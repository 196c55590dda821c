"""Posting a finished job's headshots (and instant previews) back into its chat, exactly once.

Each piece sent is recorded under the job id before the next one goes out, so a job that is
re-run after a crash resumes delivery where it stopped instead of sending everything twice.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from headshots.actions import result_actions
from headshots.errors import JobCancelled, NotFound
from headshots.queue import constants, guarded
from headshots.queue.chat_log import ChatLog, Posted
from headshots.queue.contracts import ChatTarget, JobRequest
from headshots.queue.delivery.base import OutgoingImage, split_batches

if TYPE_CHECKING:
    from headshots.queue.resources import WorkerResources

logger = logging.getLogger(__name__)

#: Every album caption says so: chat apps recompress photos and strip their metadata.
AI_CAPTION_NOTE = "AI-generated"

_REASONS = {  # (one, several)
    "low_likeness": ("did not look enough like you",) * 2,
    "no_face": ("showed no clear face",) * 2,
    "several_faces": ("showed more than one face",) * 2,
    "face_too_small": ("had the face too small",) * 2,
    "near_duplicate": ("was a near-duplicate of a better one",
                       "were near-duplicates of a better one"),
    "withheld": ("was withheld by our safety check (never sent)",
                 "were withheld by our safety check (never sent)"),
}  # fmt: skip


def _reason(reason: str, number: int) -> str:
    words = _REASONS.get(reason) or (reason.replace("_", " "),) * 2
    return f"{number} {words[0] if number == 1 else words[1]}"


def shortfall_message(record: dict[str, Any]) -> str | None:
    """What to tell the user when fewer images passed the likeness check than they ordered."""
    ordered = int(record.get("ordered") or 0)
    passed = record.get("passed")
    missing = int(record.get("missing") or 0)
    if passed is None or missing <= 0 or not ordered:
        return None
    generated = int(record.get("generated") or ordered)
    results = len(record.get("results") or [])
    # "The others" are what was made and not sent: never the closest attempts sent instead.
    others = max(0, generated - results)
    counted = {k: int(v) for k, v in (record.get("reasons") or {}).items() if int(v) > 0}
    why = "; ".join(
        _reason(reason, number)
        for reason, number in sorted(counted.items(), key=lambda item: -item[1])
    )
    if sum(counted.values()) > others:
        why = ""  # counts that do not add up are not told
    if not results:
        head = f"None of the {generated} headshots I made can be sent."
    elif int(passed) == 0:
        head = (
            f"None of the {generated} headshots I made passed our likeness check, so these "
            f"{results} are the closest attempts and may not look "
            "enough like you."
        )
    else:
        head = (
            f"{passed} of the {ordered} headshots you ordered passed our likeness check "
            f"({generated} made)."
        )
    because = f" Of the {others} not sent, {why}." if why and others else ""
    return (
        f"{head}{because} Tap 'Make {missing} more' to generate {missing} more with "
        "your personal model and new seeds (no new training)."
    )


async def _already_sent(resources: WorkerResources, job_id: str, item: str) -> bool:
    return bool(await resources.redis.sismember(constants.job_delivered_key(job_id), item))


async def _mark_sent(resources: WorkerResources, job_id: str, item: str) -> None:
    key = constants.job_delivered_key(job_id)
    ttl = resources.settings.results_ttl_s
    if not await guarded.write(resources.redis, job_id, "SADD", key, item, ttl_s=ttl):
        raise JobCancelled("the user deleted their data during delivery")


async def _record_posted(
    resources: WorkerResources, job_id: str, request: JobRequest, message_ids: list[int]
) -> None:
    """Telegram cannot list a chat: what a worker posted there is recorded with the person's
    chat log, so that ``/delete`` can delete it (Discord deletes the session's place whole).
    Written only while the job record exists, so a delete in between leaves nothing behind."""
    target: ChatTarget = request.target
    if target.platform != "telegram" or not message_ids:
        return
    items = [
        Posted(
            chat_id=target.chat_id,
            message_id=message_id,
            thread_id=target.thread_id,
            by="bot",
            kind="result",
        )
        for message_id in message_ids
    ]
    settings = resources.settings
    await guarded.write(
        resources.redis,
        job_id,
        "HSET",
        constants.user_chat_log_key(request.user.key),
        *ChatLog.fields(*items),
        ttl_s=max(settings.lora_ttl_s, settings.results_ttl_s),
    )


async def deliver_results(
    resources: WorkerResources, job_id: str, request: JobRequest, record: dict[str, Any]
) -> None:
    """Send the ranked images as album(s), then the contact sheet with the result buttons."""
    target = request.target
    sender = resources.senders.get(target.platform)
    user_key = request.user.key
    results = sorted(record.get("results", []), key=lambda r: int(r["rank"]))
    images: list[OutgoingImage] = []
    for result in results:
        path = str(result["path"])
        try:
            data = await resources.store.get(user_key, path)
        except NotFound:
            logger.warning("job %s: result %s vanished before delivery", job_id, path)
            continue
        suffix = path.rsplit(".", 1)[-1]
        images.append(
            OutgoingImage(
                filename=f"headshot-{int(result['rank']):02d}.{suffix}",
                data=data,
                caption=_ai_caption(str(result.get("caption") or f"#{result['rank']}")),
            )
        )
    for index, batch in enumerate(
        split_batches(images, sender.max_album, sender.max_message_bytes)
    ):
        item = f"album:{index}"
        if await _already_sent(resources, job_id, item):
            continue
        sent = await sender.send_album(target, batch)
        await _mark_sent(resources, job_id, item)
        await _record_posted(resources, job_id, request, sent)

    if await _already_sent(resources, job_id, "sheet"):
        return
    shortfall = shortfall_message(record)
    actions = result_actions(
        job_id,
        [int(r["rank"]) for r in results],
        team=request.team_id is not None,
        missing=int(record.get("missing") or 0) if shortfall else 0,
    )
    summary = str(record.get("message") or shortfall or "")
    if record.get("low_likeness") and not summary:
        summary = (
            "None of these passed our likeness check, so they may not look enough like you. "
            "Try another style, or send more varied selfies."
        )
    if not images:
        text = (
            summary
            or "No headshot passed our likeness check this time. "
            "Try a new style, or send more varied selfies."
        )
        last = await sender.send_text(target, text, actions)
    elif record.get("contact_sheet"):
        sheet = await resources.store.get(user_key, str(record["contact_sheet"]))
        caption = (
            f"Contact sheet: {len(images)} AI-generated headshots, best first. {summary}"
        ).strip()
        last = await sender.send_image(
            target, OutgoingImage("contact-sheet.jpg", sheet, caption), actions
        )
    else:
        text = summary or f"{len(images)} headshots, best first."
        last = await sender.send_text(target, text, actions)
    await _mark_sent(resources, job_id, "sheet")
    await _record_posted(resources, job_id, request, [last])


def _ai_caption(caption: str) -> str:
    if AI_CAPTION_NOTE.lower() in caption.lower():
        return caption
    return f"{caption} · {AI_CAPTION_NOTE}"


async def deliver_preview(
    resources: WorkerResources, job_id: str, request: JobRequest, path: str, caption: str
) -> None:
    item = f"preview:{path}"
    if await _already_sent(resources, job_id, item):
        return
    data = await resources.store.get(request.user.key, path)
    sender = resources.senders.get(request.target.platform)
    sent = await sender.send_image(
        request.target, OutgoingImage(path.rsplit("/", 1)[-1], data, _ai_caption(caption))
    )
    await _mark_sent(resources, job_id, item)
    await _record_posted(resources, job_id, request, [sent])
