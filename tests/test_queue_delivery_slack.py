"""Slack delivery from a worker to the fake Slack over real HTTP: uploads, 429s, idempotence."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from headshots.actions import result_actions
from headshots.errors import DeliveryFailed
from headshots.queue import constants
from headshots.queue.contracts import ChatTarget, JobRequest, StyleChoice, UserRef
from headshots.queue.delivery import SenderPool
from headshots.queue.delivery.base import OutgoingImage
from headshots.queue.delivery.slack import (
    SlackSender,
    slack_id,
    slack_number,
    ts_number,
    ts_of,
)
from headshots.queue.store import LocalBlobStore
from tests.fake_slack import BOT_TOKEN, BOT_USER, FakeSlack
from tests.test_queue_delivery import IMAGES, png


def test_slack_ids_and_timestamps_travel_as_integers_and_back() -> None:
    for slack in ("U024BE7LH", "D0HEADS", "C0STUDIO", "T0FAKE", "W0123ABCDE"):
        assert slack_id(slack_number(slack)) == slack
    for ts in ("1712345678.000200", "1.000001", "1712345678.123456"):
        assert ts_of(ts_number(ts)) == ts


async def test_files_go_through_the_external_upload_and_a_429_waits_its_retry_after(
    fake_slack: FakeSlack,
) -> None:
    sender = SlackSender(BOT_TOKEN, api_url=fake_slack.api_url)
    dm = fake_slack.dm_of("U0ALICE")
    target = ChatTarget(platform="slack", chat_id=slack_number(dm), user_id=1)
    fake_slack.fail_next("files.getUploadURLExternal", retry=1)
    fake_slack.fail_next("chat.update", retry=1)
    try:
        started = time.monotonic()
        await sender.send_album(target, IMAGES)
        waited = time.monotonic() - started
        sheet = await sender.send_image(
            target, OutgoingImage("contact-sheet.jpg", png((9, 9, 9)), "sheet"),
            result_actions("job2", [1, 2]),
        )  # fmt: skip
        status = await sender.send_text(target, "Queued")
        await sender.edit_text(target, status, "Generating 2/3")
    finally:
        await sender.close()

    slots = fake_slack.calls_of("files.getUploadURLExternal")
    assert [c.status for c in slots][:2] == [429, 200], "one retry after the 429"
    assert waited >= 1, "the Retry-After was waited out"
    assert [int(c.args["length"]) for c in slots[1:4]] == [len(i.data) for i in IMAGES]
    (album, _) = fake_slack.calls_of("files.completeUploadExternal")
    assert album.args["channel_id"] == dm and len(album.args["files"]) == 3
    assert "#1 corporate" in album.args["initial_comment"]
    shared = [m for m in fake_slack.bot_messages(dm) if m.get("files")]
    assert [f["title"] for f in shared[0]["files"]] == [i.caption for i in IMAGES]
    assert all(
        fake_slack.file_data[f["id"]] == i.data
        for f, i in zip(shared[0]["files"], IMAGES, strict=True)
    )
    buttons = fake_slack.message(dm, ts_of(sheet))
    assert "hs:ns:job2" in fake_slack.action_ids(buttons) and "hs:ml:job2:2" in str(buttons)
    updates = fake_slack.calls_of("chat.update")
    assert [c.status for c in updates] == [429, 200]
    assert fake_slack.message(dm, ts_of(status))["text"] == "Generating 2/3"


async def test_a_refused_call_is_not_retried(fake_slack: FakeSlack) -> None:
    sender = SlackSender(BOT_TOKEN, api_url=fake_slack.api_url)
    target = ChatTarget(platform="slack", chat_id=slack_number("C0GONE"), user_id=1)
    try:
        with pytest.raises(DeliveryFailed, match="channel_not_found"):
            await sender.send_text(target, "hi")
    finally:
        await sender.close()
    assert len(fake_slack.calls_of("chat.postMessage")) == 1


async def test_a_job_delivered_twice_is_posted_once(
    fake_slack: FakeSlack, settings_factory: Any, redis_client: Any
) -> None:
    """A worker re-running a finished job's delivery (after a crash) posts nothing twice."""
    from headshots.queue.deliver import deliver_results

    settings = settings_factory(slack_bot_token=BOT_TOKEN, slack_api_url=fake_slack.api_url)
    store = LocalBlobStore(redis_client, settings.state_dir / "blobs")
    user = UserRef(platform="slack", user_id=slack_number("U0ALICE"))
    dm = fake_slack.dm_of("U0ALICE")
    request = JobRequest(
        user=user, target=ChatTarget(platform="slack", chat_id=slack_number(dm), user_id=1),
        upload_id="u", style=StyleChoice(count=2),
    )  # fmt: skip
    record = {
        "results": [{"path": f"jobs/job9/results/{r}.png", "rank": r} for r in (1, 2)],
        "contact_sheet": "jobs/job9/contact_sheet.jpg",
    }
    await redis_client.hset(constants.job_key("job9"), mapping={"state": "delivering"})
    for result in record["results"]:
        await store.put(user.key, str(result["path"]), png((30, 60, 90)), 60)  # type: ignore[index]
    await store.put(user.key, "jobs/job9/contact_sheet.jpg", png((1, 1, 1)), 60)
    for _ in range(2):
        senders = SenderPool(settings)
        resources = SimpleNamespace(
            settings=settings, redis=redis_client, store=store, senders=senders
        )
        try:
            await deliver_results(resources, "job9", request, record)  # type: ignore[arg-type]
        finally:
            await senders.close()
    posted = fake_slack.bot_messages(dm)
    assert [len(m.get("files") or []) for m in posted] == [2, 1, 0], "album, sheet, buttons"
    assert all(m["user"] == BOT_USER for m in posted)
    assert len(fake_slack.calls_of("files.completeUploadExternal")) == 2
