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
from headshots.queue.contracts import JobRequest
from headshots.queue.delivery.base import OutgoingImage, split_batches

if TYPE_CHECKING:
    from headshots.queue.worker import WorkerResources

logger = logging.getLogger(__name__)


async def _already_sent(resources: WorkerResources, job_id: str, item: str) -> bool:
    return bool(await resources.redis.sismember(constants.job_delivered_key(job_id), item))


async def _mark_sent(resources: WorkerResources, job_id: str, item: str) -> None:
    key = constants.job_delivered_key(job_id)
    ttl = resources.settings.results_ttl_s
    if not await guarded.write(resources.redis, job_id, "SADD", key, item, ttl_s=ttl):
        raise JobCancelled("the user deleted their data during delivery")


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
                caption=str(result.get("caption") or f"#{result['rank']}"),
            )
        )
    for index, batch in enumerate(
        split_batches(images, sender.max_album, sender.max_message_bytes)
    ):
        item = f"album:{index}"
        if await _already_sent(resources, job_id, item):
            continue
        await sender.send_album(target, batch)
        await _mark_sent(resources, job_id, item)

    if await _already_sent(resources, job_id, "sheet"):
        return
    actions = result_actions(
        job_id, [int(r["rank"]) for r in results], team=request.team_id is not None
    )
    summary = str(record.get("message") or "")
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
        await sender.send_text(target, text, actions)
    elif record.get("contact_sheet"):
        sheet = await resources.store.get(user_key, str(record["contact_sheet"]))
        caption = f"Contact sheet: {len(images)} headshots, best first. {summary}".strip()
        await sender.send_image(target, OutgoingImage("contact-sheet.jpg", sheet, caption), actions)
    else:
        await sender.send_text(target, summary or f"{len(images)} headshots, best first.", actions)
    await _mark_sent(resources, job_id, "sheet")


async def deliver_preview(
    resources: WorkerResources, job_id: str, request: JobRequest, path: str, caption: str
) -> None:
    item = f"preview:{path}"
    if await _already_sent(resources, job_id, item):
        return
    data = await resources.store.get(request.user.key, path)
    sender = resources.senders.get(request.target.platform)
    await sender.send_image(request.target, OutgoingImage(path.rsplit("/", 1)[-1], data, caption))
    await _mark_sent(resources, job_id, item)
