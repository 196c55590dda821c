"""Delivery from a worker to local fake Telegram and Discord servers over real HTTP."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from headshots.actions import result_actions
from headshots.errors import DeliveryFailed
from headshots.queue.contracts import ChatTarget
from headshots.queue.delivery.base import OutgoingImage, split_batches
from headshots.queue.delivery.discord import DiscordSender
from headshots.queue.delivery.telegram import TelegramSender, build_telegram_bot
from tests.fake_discord import FakeDiscord
from tests.fake_telegram import FakeTelegram


def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 60), colour).save(buffer, format="PNG")
    return buffer.getvalue()


IMAGES = [
    OutgoingImage(f"headshot-{i:02d}.png", png((i * 60, 90, 200)), f"#{i} corporate")
    for i in (1, 2, 3)
]


async def test_telegram_album_into_topic_with_reply_and_429_retry(
    fake_telegram: FakeTelegram,
) -> None:
    sender = TelegramSender(build_telegram_bot(fake_telegram.token, fake_telegram.url))
    target = ChatTarget(
        platform="telegram", chat_id=-100777, thread_id=42, user_id=5, reply_to_message_id=9
    )
    fake_telegram.fail_next("sendMediaGroup")  # a 429 with retry_after 1
    try:
        ids = await sender.send_album(target, IMAGES)
        sheet_id = await sender.send_image(
            target,
            OutgoingImage("contact-sheet.jpg", png((1, 2, 3)), "sheet"),
            result_actions("job1", [1, 2]),
        )
        status_id = await sender.send_text(target, "Queued")
        await sender.edit_text(target, status_id, "Training 40%")
        await sender.edit_text(target, status_id, "Training 40%")  # unchanged: not an error
    finally:
        await sender.close()

    calls = fake_telegram.calls("sendMediaGroup")
    assert [c.status for c in calls] == [429, 200], "exactly one retry after the 429"
    sent = calls[-1]
    assert int(sent.params["chat_id"]) == -100777
    assert int(sent.params["message_thread_id"]) == 42
    assert '"message_id": 9' in str(sent.params["reply_parameters"]).replace("'", '"')
    assert len(sent.files) == 3 and all(data.startswith(b"\x89PNG") for data in sent.files.values())
    assert len(ids) == 3
    photo = fake_telegram.calls("sendPhoto")[-1]
    assert "hs:ns:job1" in str(photo.params["reply_markup"]) and sheet_id
    edits = fake_telegram.calls("editMessageText")
    assert len(edits) == 2 and fake_telegram.message(-100777, status_id)["text"] == "Training 40%"


async def test_telegram_gives_up_on_a_bad_request(fake_telegram: FakeTelegram) -> None:
    sender = TelegramSender(build_telegram_bot(fake_telegram.token, fake_telegram.url))
    fake_telegram.fail_next(
        "sendMessage",
        400,
        {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"},
    )
    try:
        with pytest.raises(DeliveryFailed, match=r"(?i)chat not found"):
            await sender.send_text(ChatTarget(platform="telegram", chat_id=1, user_id=1), "hi")
    finally:
        await sender.close()
    assert len(fake_telegram.calls("sendMessage")) == 1


async def test_discord_files_into_thread_with_bot_token_and_429_retry(
    fake_discord: FakeDiscord,
) -> None:
    sender = DiscordSender(fake_discord.token, api_base=fake_discord.api_base)
    channel_id = int(fake_discord.add_text_channel(guild_id=77)["id"])
    thread_id = int(fake_discord._new_thread(channel_id, {"name": "headshots"}, 11)["id"])
    target = ChatTarget(platform="discord", chat_id=channel_id, thread_id=thread_id, user_id=6)
    fake_discord.fail_next("POST", f"/channels/{thread_id}/messages")
    try:
        await sender.send_album(target, IMAGES)
        await sender.send_image(
            target,
            OutgoingImage("contact-sheet.jpg", png((9, 9, 9)), "sheet"),
            result_actions("job2", [1]),
        )
        status_id = await sender.send_text(target, "Queued")
        await sender.edit_text(target, status_id, "Generating 2/3")
    finally:
        await sender.close()

    posts = fake_discord.calls("POST", f"/channels/{thread_id}/messages")
    assert [c.status for c in posts][:2] == [429, 200], "one retry after the 429"
    assert all(c.authorization == f"Bot {fake_discord.token}" for c in posts)
    assert sorted(f.filename for f in posts[1].files) == [i.filename for i in IMAGES]
    assert not fake_discord.calls("POST", f"/channels/{channel_id}/"), (
        "nothing to the parent channel"
    )
    sheet_post: dict[str, Any] = posts[2].json or {}
    assert "hs:ns:job2" in str(sheet_post.get("components"))
    assert fake_discord.calls("PATCH", f"/channels/{thread_id}/messages/{status_id}")


def test_split_batches_respects_count_and_size() -> None:
    images = [OutgoingImage(f"{i}.png", b"x" * 400, "") for i in range(23)]
    batches = split_batches(images, max_items=10, max_bytes=2000)
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    assert [i.filename for b in batches for i in b] == [i.filename for i in images]
    assert [len(b) for b in split_batches(images, 10, 10**9)] == [10, 10, 3]


async def _delivered(
    fake_telegram: FakeTelegram,
    settings_factory: Any,
    redis_client: Any,
    record: dict[str, Any],
    *,
    team: bool = False,
) -> None:
    from types import SimpleNamespace

    from headshots.queue import constants
    from headshots.queue.contracts import JobRequest, StyleChoice, UserRef
    from headshots.queue.deliver import deliver_results
    from headshots.queue.delivery import SenderPool
    from headshots.queue.store import LocalBlobStore

    settings = settings_factory(
        telegram_token=fake_telegram.token, telegram_api_url=fake_telegram.url
    )
    store = LocalBlobStore(redis_client, settings.state_dir / "blobs")
    user = UserRef(platform="telegram", user_id=7)
    request = JobRequest(
        user=user,
        target=ChatTarget(platform="telegram", chat_id=7, user_id=7),
        upload_id="u",
        style=StyleChoice(count=int(record["ordered"])),
        team_id="team1" if team else None,
    )
    await redis_client.hset(constants.job_key("job9"), mapping={"state": "delivering"})
    for result in record["results"]:
        await store.put(user.key, result["path"], png((30, 60, 90)), 60)
    await store.put(user.key, "jobs/job9/contact_sheet.jpg", png((1, 1, 1)), 60)
    senders = SenderPool(settings)
    resources = SimpleNamespace(settings=settings, redis=redis_client, store=store, senders=senders)
    try:
        await deliver_results(resources, "job9", request, record)  # type: ignore[arg-type]
    finally:
        await senders.close()


def _results(count: int) -> list[dict[str, Any]]:
    return [
        {"path": f"jobs/job9/results/{rank:02d}.png", "rank": rank, "caption": f"#{rank} Legal"}
        for rank in range(1, count + 1)
    ]


async def test_a_shortfall_says_how_many_passed_why_and_offers_the_rest(
    fake_telegram: FakeTelegram, settings_factory: Any, redis_client: Any
) -> None:
    record = {
        "results": _results(3),
        "contact_sheet": "jobs/job9/contact_sheet.jpg",
        "low_likeness": False,
        "generated": 10,
        "ordered": 8,
        "passed": 3,
        "missing": 5,
        "reasons": {"low_likeness": 5, "no_face": 2},
    }
    await _delivered(fake_telegram, settings_factory, redis_client, record)
    album = fake_telegram.calls("sendMediaGroup")[-1]
    captions = [m["caption"] for m in album.params["media"]]
    assert captions == [f"#{r} Legal · AI-generated" for r in (1, 2, 3)]
    sheet = fake_telegram.calls("sendPhoto")[-1]
    caption = str(sheet.params["caption"])
    assert caption.startswith("Contact sheet: 3 AI-generated headshots")
    assert "3 of the 8 headshots you ordered passed our likeness check (10 made)" in caption
    assert "Of the 7 not sent, 5 did not look enough like you; 2 showed no clear face" in caption
    assert "Make 5 more" in caption
    markup = str(sheet.params["reply_markup"])
    assert "hs:mm:job9:5" in markup and "Make 5 more" in markup


def test_the_shortfall_text_counts_what_was_really_left_over() -> None:
    """0 passed, 4 closest attempts sent, 1 other: the others are that one, not all five."""
    from headshots.queue.deliver import shortfall_message

    record = {
        "results": _results(4), "generated": 5, "ordered": 4, "passed": 0, "missing": 4,
        "reasons": {"no_face": 1, "low_likeness": 0, "near_duplicate": 0},
    }  # fmt: skip
    text = shortfall_message(record) or ""
    assert text.startswith("None of the 5 headshots I made passed our likeness check, so these 4")
    assert "Of the 1 not sent, 1 showed no clear face." in text and "0 " not in text
    # Counts that do not add up (more reasons than images left over) are not told.
    assert "not sent" not in (shortfall_message({**record, "reasons": {"no_face": 5}}) or "")
    two = {
        **record,
        "results": _results(2),
        "passed": 2,
        "reasons": {"near_duplicate": 1, "withheld": 2},
    }
    assert "Of the 3 not sent, 2 were withheld by our safety check (never sent); 1 was a near-" in (
        shortfall_message(two) or ""
    )
    assert shortfall_message({**record, "passed": 4, "missing": 0}) is None


async def test_a_full_order_offers_no_make_more(
    fake_telegram: FakeTelegram, settings_factory: Any, redis_client: Any
) -> None:
    record = {
        "results": _results(2),
        "contact_sheet": "jobs/job9/contact_sheet.jpg",
        "generated": 3,
        "ordered": 2,
        "passed": 2,
        "missing": 0,
    }
    await _delivered(fake_telegram, settings_factory, redis_client, record, team=True)
    sheet = fake_telegram.calls("sendPhoto")[-1]
    assert "hs:mm:" not in str(sheet.params["reply_markup"])
    assert "hs:pk:job9:1" in str(sheet.params["reply_markup"])
    assert "likeness check" not in str(sheet.params["caption"])


def test_result_actions_put_make_more_first() -> None:
    rows = result_actions("j", [1, 2], missing=3)
    assert [a.encode() for a in rows[0]] == ["hs:mm:j:3", "hs:ns:j", "hs:og:j"]
    team = result_actions("j", [1], team=True, missing=2)
    assert [a.encode() for a in team[0]] == ["hs:mm:j:2"]
    assert all(a.name != "make_more" for row in result_actions("j", [1]) for a in row)


async def test_telegram_rides_out_an_outage_with_a_growing_back_off(
    fake_telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by bench/soak.py: five tries 1 s apart failed a finished job in a 5 s outage."""
    import headshots.queue.delivery.base as base

    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(base.asyncio, "sleep", no_wait)
    sender = TelegramSender(build_telegram_bot(fake_telegram.token, fake_telegram.url))
    for _ in range(5):
        fake_telegram.fail_next("sendMessage", 502)
    try:
        await sender.send_text(ChatTarget(platform="telegram", chat_id=1, user_id=1), "hi")
    finally:
        await sender.close()
    assert [c.status for c in fake_telegram.calls("sendMessage")] == [502] * 5 + [200]
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0]


async def test_a_502_on_the_senders_first_getme_is_retried_not_raised(
    fake_telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by bench/soak.py: getMe ran outside the retries, so a 502 escaped a status update
    as a raw NetworkError and failed the job."""
    import headshots.queue.delivery.base as base

    async def no_wait(seconds: float) -> None:
        return None

    monkeypatch.setattr(base.asyncio, "sleep", no_wait)
    sender = TelegramSender(build_telegram_bot(fake_telegram.token, fake_telegram.url))
    fake_telegram.fail_next("getMe", 502)
    try:
        await sender.send_text(ChatTarget(platform="telegram", chat_id=1, user_id=1), "hi")
    finally:
        await sender.close()
    assert [c.status for c in fake_telegram.calls("getMe")][:2] == [502, 200]
    assert [c.status for c in fake_telegram.calls("sendMessage")] == [200]
