"""The Telegram bot against a local fake Bot API server (real HTTP) and a real Redis.

The bot runs for real in the test's event loop (long polling the fake); each test plays users
by pushing updates and reads what the bot sent from the fake's call log.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from headshots.queue.contracts import JobState, PersonAttributes, UserRef
from tests.fake_telegram import FakeChat, FakeTelegram, FakeUser
from tests.plugins.queue import ROOT, parent_env, settings_env
from tests.plugins.telegram import ChatDriver, RunningBot

ALICE = FakeUser(id=1001, first_name="Alice", username="alice")
BOB = FakeUser(id=1002, first_name="Bob", username="bob")

StartBot = Callable[..., Awaitable[RunningBot]]


async def start_and_consent(driver: ChatDriver) -> dict[str, Any]:
    """/start, check the explanation, press "I agree"; returns the consent message."""
    mark = driver.fake.mark()
    driver.text("/start")
    intro = await driver.said("Do you agree", since=mark)
    text = intro["text"]
    assert "24 hours after delivery" in text and "30 days" in text and "7 days" in text
    assert "Where your photos go:" in text  # and who can see them
    assert "photos in this chat that Telegram lets me delete" in text  # what /delete does
    mark = driver.fake.mark()
    driver.press_label(intro, "I agree")
    await driver.said("Now send", since=mark)
    return intro


async def test_start_consent_and_album_tally(
    telegram_bot: StartBot,
    fake_telegram: FakeTelegram,
    face_photo_bytes: list[bytes],
    group_photo_bytes: bytes,
) -> None:
    await telegram_bot()
    driver = ChatDriver(fake_telegram, FakeChat.private(ALICE), ALICE)
    # Before consent, a photo is not taken.
    mark = fake_telegram.mark()
    driver.photos(face_photo_bytes[:1])
    await driver.said("Send /start first", since=mark)
    assert not fake_telegram.calls_since(mark, "getFile")

    await start_and_consent(driver)
    mark = fake_telegram.mark()
    driver.photos([*face_photo_bytes[:4], group_photo_bytes])
    tally = await driver.said("4 accepted, 1 rejected", since=mark)
    assert "photo 5, more than one person in the picture" in tally["text"]
    # One answer for the whole album: a single tally message, no per-photo replies.
    sent = [c for c in fake_telegram.calls_since(mark, "sendMessage")]
    assert len(sent) == 1
    assert "Done" in str(tally["reply_markup"])
    # Every photo was downloaded at its largest size.
    downloads = {c.params["file_id"] for c in fake_telegram.calls_since(mark, "getFile")}
    assert len(downloads) == 5
    assert all(fake_telegram.files[f].size > 5000 for f in downloads)


async def test_photos_are_numbered_in_the_order_they_were_sent(
    telegram_bot: StartBot,
    fake_telegram: FakeTelegram,
    face_photo_bytes: list[bytes],
    group_photo_bytes: bytes,
) -> None:
    # Album updates are handled concurrently, so they reach the checks in any order; here
    # they are even delivered newest first. "Photo 5" must still be the fifth photo sent.
    await telegram_bot()
    chat = FakeChat.private(ALICE)
    driver = ChatDriver(fake_telegram, chat, ALICE)
    await start_and_consent(driver)
    messages = [
        fake_telegram.user_message(
            chat, ALICE, photo=fake_telegram.photo_sizes(data), media_group_id="album-1"
        )
        for data in [*face_photo_bytes[:4], group_photo_bytes]
    ]
    mark = fake_telegram.mark()
    for message in reversed(messages):
        fake_telegram.send_message(message)
    tally = await driver.said("4 accepted, 1 rejected", since=mark, timeout=60)
    assert "photo 5, more than one person in the picture" in tally["text"], tally["text"]


async def test_group_in_privacy_mode_takes_photos_sent_as_replies(
    telegram_bot: StartBot, fake_telegram: FakeTelegram, face_photo_bytes: list[bytes]
) -> None:
    # BotFather's default: in groups the bot sees commands and replies to its own messages only.
    fake_telegram.set_privacy_mode(True)
    await telegram_bot()
    group = FakeChat.supergroup(-100600, "Office")
    driver = ChatDriver(fake_telegram, group, ALICE)
    intro = await start_and_consent(driver)
    prompt = fake_telegram.message(group.id, int(intro["message_id"]))
    assert "send them as a reply to this message" in prompt["text"]

    driver.photos(face_photo_bytes[:4])  # not a reply: Telegram never shows these to the bot
    assert len(fake_telegram.withheld) == 4
    mark = fake_telegram.mark()
    driver.photos(face_photo_bytes[:4], reply_to=int(prompt["message_id"]))
    tally = await driver.said("4 accepted", since=mark, timeout=60)

    # A custom description is text: the prompt asks for a reply there too.
    menu = await driver.choose(tally, "Done", "Which style?")
    custom = await driver.choose(menu, "Custom", "Describe the look")
    assert "send them as a reply to this message" in custom["text"]


async def upload_and_finish(driver: ChatDriver, photos: list[bytes], expect: str) -> dict[str, Any]:
    """Send ``photos`` as an album, wait for the tally with ``expect``, press Done."""
    mark = driver.fake.mark()
    driver.photos(photos)
    tally = await driver.said(expect, since=mark, timeout=60)
    mark = driver.fake.mark()
    driver.press_label(tally, "Done")
    return await driver.said("Which style?", since=mark)


async def choose_style(
    driver: ChatDriver, menu: dict[str, Any], labels: list[str]
) -> dict[str, Any]:
    """Press one button per step (labels in order) until the summary; returns the summary."""
    for label in labels:
        mark = driver.fake.mark()
        driver.press_label(menu, label)
        menu_id = int(menu["message_id"])
        call = await driver.fake.wait_for(
            "editMessageText", lambda c, m=menu_id: int(c.params["message_id"]) == m, since=mark
        )
        menu = dict(call.response)
    assert "Start with this look?" in menu["text"], menu["text"]
    return menu


async def confirm(driver: ChatDriver, summary: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Press Confirm; returns the status message and the submitted job id."""
    mark = driver.fake.mark()
    driver.press_label(summary, "Looks good")
    status = await driver.said("Queued: position", since=mark)
    return status, ""


#: Eye colour, glasses, hair ("As in my photos" skips the hair length).
PERSON = ["Set eyes", "Blue", "No glasses", "As in my photos"]
#: The style, then Customise: every question again, from the style on.
LOOK = ["Corporate", "Customise", "Corporate", "Woman"]
FULL_CHOICE = [*LOOK, *PERSON, "Office", "Blazer", "Ektar", "8", "Square"]


async def test_whole_session_until_queued(
    telegram_bot: StartBot,
    fake_telegram: FakeTelegram,
    face_photo_bytes: list[bytes],
    group_photo_bytes: bytes,
    redis_client: Any,
) -> None:
    bot = await telegram_bot()
    assert [c["command"] for c in fake_telegram.commands][:2] == ["start", "help"]
    driver = ChatDriver(fake_telegram, FakeChat.private(ALICE), ALICE)
    await start_and_consent(driver)
    menu = await upload_and_finish(
        driver, [*face_photo_bytes[:5], group_photo_bytes], "5 accepted, 1 rejected"
    )
    summary = await choose_style(driver, menu, FULL_CHOICE)
    assert "Background: Office" in summary["text"] and "Images: 8, shape 1:1" in summary["text"]
    assert "Eyes: blue · Glasses: no · Hair: as in my photos" in summary["text"]
    status, _ = await confirm(driver, summary)
    # No worker runs in this test: the user is told the job waits for one, with no ETA.
    assert "ETA unknown. No worker is online right now" in status["text"]

    client = bot.services.client
    user = UserRef(platform="telegram", user_id=ALICE.id)
    job = await client.active_job(user)
    assert job is not None and job.state is JobState.QUEUED
    target = job.request.target
    assert (target.chat_id, target.thread_id, target.user_id) == (ALICE.id, None, ALICE.id)
    assert target.status_message_id == status["message_id"]
    style = job.request.style
    assert (style.preset, style.subject_class, style.background, style.attire) == (
        "corporate",
        "woman",
        "office",
        "blazer",
    )
    assert (style.colour_grade, style.count, style.aspect_ratio) == ("ektar", 8, "1:1")
    assert style.attributes == PersonAttributes(eye_colour="blue", glasses="none")
    selfies = await client.list_selfies(user, job.request.upload_id)
    assert len(selfies) == 5  # the accepted ones, normalised; the group photo is not stored

    # /status reports the position; /cancel takes the queued job out at once.
    mark = fake_telegram.mark()
    driver.text("/status")
    await driver.said("position 1", since=mark)
    mark = fake_telegram.mark()
    driver.text("/cancel")
    await driver.said("taken out of the queue", since=mark)
    cancelled = await client.job(job.job_id)
    assert cancelled is not None and cancelled.state is JobState.CANCELLED


async def test_garbage_gets_helpful_replies(
    telegram_bot: StartBot, fake_telegram: FakeTelegram, face_photo_bytes: list[bytes]
) -> None:
    await telegram_bot()
    chat = FakeChat.private(ALICE)
    driver = ChatDriver(fake_telegram, chat, ALICE)

    # Text where a button was expected: say so, and show the buttons again.
    mark = fake_telegram.mark()
    driver.text("/start")
    await driver.said("Do you agree", since=mark)
    mark = fake_telegram.mark()
    driver.text("yes I agree")
    await driver.said("Please use the buttons", since=mark)
    again = await driver.said("Do you agree", since=mark)
    mark = fake_telegram.mark()
    driver.press_label(again, "I agree")
    await driver.said("Now send", since=mark)

    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: fake_telegram.send_sticker(chat, ALICE), "I can't use stickers"),
        (lambda: fake_telegram.send_video(chat, ALICE), "I can't use videos"),
        (lambda: fake_telegram.send_voice(chat, ALICE), "I can't use voice messages"),
        (
            lambda: fake_telegram.send_document(
                chat, ALICE, b"%PDF-1.4 ...", file_name="cv.pdf", mime_type="application/pdf"
            ),
            "not an image",
        ),
        (
            lambda: fake_telegram.send_document(
                chat,
                ALICE,
                face_photo_bytes[0],
                file_name="huge.jpg",
                mime_type="image/jpeg",
                size=25 * 1024 * 1024,
            ),
            "25 MB: Telegram lets bots download at most 20 MB",
        ),
        (lambda: driver.text("hello?"), "I need photos now"),
        (lambda: driver.text("/frobnicate"), "I don't know that command"),
    ]
    for send, expected in cases:
        mark = fake_telegram.mark()
        send()
        await driver.said(expected, since=mark)
    # The 25 MB file was never requested from Telegram (it would refuse it anyway).
    assert not fake_telegram.calls("getFile")

    # The same file whose update does not say its size: getFile tells, and it is refused.
    mark = fake_telegram.mark()
    fake_telegram.send_document(
        chat,
        ALICE,
        face_photo_bytes[0],
        file_name="huge.jpg",
        mime_type="image/jpeg",
        size=25 * 1024 * 1024,
        size_in_update=False,
    )
    await driver.said("huge.jpg): That file is too big: Telegram lets bots download", since=mark)
    assert len(fake_telegram.calls("getFile")) == 1

    # A full-resolution image file is taken like a photo.
    mark = fake_telegram.mark()
    fake_telegram.send_document(
        chat, ALICE, face_photo_bytes[0], file_name="me.jpg", mime_type="image/jpeg"
    )
    await driver.said("1 accepted, 1 rejected", since=mark)


async def test_restart_continues_mid_upload(
    telegram_bot: StartBot, fake_telegram: FakeTelegram, face_photo_bytes: list[bytes]
) -> None:
    first = await telegram_bot()
    driver = ChatDriver(fake_telegram, FakeChat.private(ALICE), ALICE)
    await start_and_consent(driver)
    mark = fake_telegram.mark()
    driver.photos(face_photo_bytes[:2])
    await driver.said("2 accepted, 0 rejected", since=mark)
    await first.stop()  # everything the bot knew is in Redis

    await telegram_bot()
    mark = fake_telegram.mark()
    driver.text("/start")
    offer = await driver.said("Continue with it, or start over?", since=mark)
    mark = fake_telegram.mark()
    driver.press_label(offer, "Continue with 2 photos")
    await driver.said("2 accepted, 0 rejected", since=mark)
    mark = fake_telegram.mark()
    driver.photos(face_photo_bytes[2:4])
    tally = await driver.said("4 accepted, 0 rejected", since=mark)
    assert "Done" in str(tally["reply_markup"])

    # "Start over" forgets the photos and asks for consent again.
    mark = fake_telegram.mark()
    driver.text("/start")
    offer = await driver.said("Continue with it, or start over?", since=mark)
    mark = fake_telegram.mark()
    driver.press_label(offer, "Start over")
    restarted = await driver.said("Do you agree", since=mark)
    mark = fake_telegram.mark()
    driver.press_label(restarted, "I agree")
    await driver.said("Now send", since=mark)
    mark = fake_telegram.mark()
    driver.photos(face_photo_bytes[4:5])
    await driver.said("1 accepted, 0 rejected", since=mark)


async def test_a_stopping_bot_answers_the_album_it_took(
    telegram_bot: StartBot, fake_telegram: FakeTelegram, face_photo_bytes: list[bytes]
) -> None:
    # A restart (a deploy's SIGTERM) while an album's tally waited for its quiet period used to
    # drop the tally with the process: the person's photos were stored, and never answered.
    bot = await telegram_bot(quiet_period_s=60)
    driver = ChatDriver(fake_telegram, FakeChat.private(ALICE), ALICE)
    await start_and_consent(driver)
    mark = fake_telegram.mark()
    driver.photos(face_photo_bytes[:3])
    for _ in range(300):  # every photo fetched: the bot has them, the tally waits a minute
        if len(fake_telegram.calls_since(mark, "getFile")) >= 3:
            break
        await asyncio.sleep(0.05)
    await bot.stop()
    sent = [
        c for c in fake_telegram.calls("sendMessage")
        if "3 accepted, 0 rejected" in str(c.params.get("text")) and c.response is not None
    ]  # fmt: skip
    assert sent, [c.params.get("text") for c in fake_telegram.calls("sendMessage")]


async def test_a_restarted_bot_writes_the_tally_it_owed(
    telegram_bot: StartBot,
    fake_telegram: FakeTelegram,
    face_photo_bytes: list[bytes],
    redis_client: Any,
) -> None:
    # Found by bench/soak.py: a bot killed while an album's tally waited for its quiet period
    # had stored the photos, and nobody ever told the person. Here the first bot's tally write
    # fails (as its process would die): the next bot to start writes it.
    from headshots.queue import constants

    first = await telegram_bot()
    driver = ChatDriver(fake_telegram, FakeChat.private(ALICE), ALICE)
    await start_and_consent(driver)
    fake_telegram.fail_next("sendMessage", 400)
    mark = fake_telegram.mark()
    driver.photos(face_photo_bytes[:3])
    await fake_telegram.wait_for("sendMessage", lambda c: c.status == 400, since=mark, timeout=60)
    await first.stop()
    assert not [c for c in fake_telegram.calls_since(mark, "sendMessage") if c.status == 200]

    mark = fake_telegram.mark()
    await telegram_bot()
    tally = await driver.said("3 accepted, 0 rejected", since=mark, timeout=30)
    assert "Done" not in str(tally.get("reply_markup"))  # 3 is not enough yet: no Done button
    # Written once: the flag is cleared, a third bot owes nothing.
    states = [
        json.loads(await redis_client.get(key))
        async for key in redis_client.scan_iter(match=constants.user_state_pattern("tg"))
    ]
    collecting = [state for state in states if state.get("stage") == "collecting"]
    assert collecting and not any(state["tally_due"] for state in collecting), collecting


async def test_photos_are_taken_when_the_instructions_never_arrived(
    telegram_bot: StartBot, fake_telegram: FakeTelegram, face_photo_bytes: list[bytes]
) -> None:
    # Found by bench/soak.py: a bot killed after showing "send your selfies" but before saving
    # the conversation refused the photos with "answer the question above" (the question's
    # buttons were gone). Here showing the instructions fails, as the dead bot's save would:
    # the conversation was saved first, so the photos are taken.
    await telegram_bot()
    driver = ChatDriver(fake_telegram, FakeChat.private(ALICE), ALICE)
    mark = fake_telegram.mark()
    driver.text("/start")
    intro = await driver.said("Do you agree", since=mark)
    fake_telegram.fail_next("editMessageText", 400)
    mark = fake_telegram.mark()
    driver.press_label(intro, "I agree")
    await fake_telegram.wait_for("editMessageText", lambda c: c.status == 400, since=mark)
    mark = fake_telegram.mark()
    driver.photos(face_photo_bytes[:2])
    await driver.said("2 accepted, 0 rejected", since=mark, timeout=60)
    refused = [
        c for c in fake_telegram.calls_since(mark, "sendMessage")
        if "answer the question above" in str(c.params.get("text"))
    ]  # fmt: skip
    assert not refused


async def test_delete_leaves_nothing_in_redis(
    telegram_bot: StartBot,
    fake_telegram: FakeTelegram,
    face_photo_bytes: list[bytes],
    redis_client: Any,
) -> None:
    bot = await telegram_bot()
    driver = ChatDriver(fake_telegram, FakeChat.private(ALICE), ALICE)
    await start_and_consent(driver)
    menu = await upload_and_finish(driver, face_photo_bytes[:4], "4 accepted, 0 rejected")
    summary = await choose_style(driver, menu, FULL_CHOICE)
    await confirm(driver, summary)
    user = UserRef(platform="telegram", user_id=ALICE.id)
    jobs = await bot.services.client.user_jobs(user)
    assert len(jobs) == 1
    job_id = jobs[0].job_id
    # Bob's data must survive Alice's /delete.
    bob = ChatDriver(fake_telegram, FakeChat.private(BOB), BOB)
    await start_and_consent(bob)

    mark = fake_telegram.mark()
    driver.text("/delete")
    question = await driver.said("Delete everything", since=mark)
    mark = fake_telegram.mark()
    driver.press_label(question, "Yes, delete everything")
    report = await driver.said("Deleted: 1 job", since=mark)
    assert "Nothing of yours is left" in report["text"]

    leftovers = [
        key
        async for key in redis_client.scan_iter(count=1000)
        if b"tg:1001" in key or job_id.encode() in key
    ]
    assert leftovers == []
    for key in [k async for k in redis_client.scan_iter(count=1000)]:
        if await redis_client.type(key) == b"string":
            value = await redis_client.get(key)
            assert job_id.encode() not in value and b'"user_id":1001' not in value, key
    assert [k async for k in redis_client.scan_iter(match="*tg:1002*")]


async def test_rate_limited_reply_is_retried(
    telegram_bot: StartBot, fake_telegram: FakeTelegram
) -> None:
    await telegram_bot()
    driver = ChatDriver(fake_telegram, FakeChat.private(ALICE), ALICE)
    fake_telegram.fail_next("sendMessage", 429)
    mark = fake_telegram.mark()
    driver.text("/help")
    await driver.said("/privacy", since=mark)
    attempts = fake_telegram.calls_since(mark, "sendMessage")
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 0.9  # waited retry_after


async def test_custom_description(
    telegram_bot: StartBot, fake_telegram: FakeTelegram, face_photo_bytes: list[bytes]
) -> None:
    bot = await telegram_bot()
    driver = ChatDriver(fake_telegram, FakeChat.private(ALICE), ALICE)
    await start_and_consent(driver)
    menu = await upload_and_finish(driver, face_photo_bytes[:4], "4 accepted")
    mark = fake_telegram.mark()
    driver.press_label(menu, "Custom")
    await driver.said("Describe the look", since=mark)
    mark = fake_telegram.mark()
    driver.text("x" * 301)
    await driver.said("keep it under 300", since=mark)
    mark = fake_telegram.mark()
    driver.text("navy turtleneck,   rooftop at golden hour")
    # The description is the look: the summary follows at once (Customise asks the rest).
    summary = await driver.said("Start with this look?", since=mark)
    assert "Description: navy turtleneck, rooftop, golden hour" in summary["text"]
    # Customise starts the menus again; Cancel drops the upload.
    mark = fake_telegram.mark()
    driver.press_label(summary, "Customise")
    await driver.said("Which style?", since=mark)
    mark = fake_telegram.mark()
    driver.text("/cancel")
    await driver.said("Cancelled. The photos you sent are deleted", since=mark)
    user = UserRef(platform="telegram", user_id=ALICE.id)
    assert await bot.services.conversations.client.load_chat_state(user, str(ALICE.id)) is None


TEAM = FakeChat.supergroup(-100500, "Team", forum=True)
TOPIC = 77


async def test_forum_topic_keeps_members_apart(
    telegram_bot: StartBot,
    fake_telegram: FakeTelegram,
    face_photo_bytes: list[bytes],
    other_person_photo_bytes: bytes,
) -> None:
    bot = await telegram_bot()
    alice = ChatDriver(fake_telegram, TEAM, ALICE, TOPIC)
    bob = ChatDriver(fake_telegram, TEAM, BOB, TOPIC)
    carol_user = FakeUser(id=1003, first_name="Carol")
    carol = ChatDriver(fake_telegram, TEAM, carol_user, TOPIC)

    for driver in (alice, bob):
        mark = fake_telegram.mark()
        driver.text("/start@headshots_test_bot")
        intro = await driver.said("Do you agree", since=mark)
        assert intro["message_thread_id"] == TOPIC
        assert intro["reply_to_message"]["from"]["id"] == driver.user.id
        # Bob cannot agree for Alice (and vice versa).
        other = bob if driver is alice else alice
        mark = fake_telegram.mark()
        other.press_label(intro, "I agree")
        answer = await fake_telegram.wait_for("answerCallbackQuery", since=mark)
        assert "someone else" in answer.params["text"]
        mark = fake_telegram.mark()
        driver.press_label(intro, "I agree")
        await driver.said("Now send", since=mark)

    # A member who is not uploading is ignored (busy groups), whatever they post.
    mark = fake_telegram.mark()
    carol.photos(face_photo_bytes[:1])
    fake_telegram.send_sticker(TEAM, carol_user, thread_id=TOPIC)
    carol.text("nice photos everyone")

    # Both upload at once: albums arrive interleaved, tallies stay apart.
    mark = fake_telegram.mark()
    for mine, his in zip(face_photo_bytes[:4], face_photo_bytes[2:6], strict=True):
        fake_telegram.send_photo(TEAM, ALICE, mine, thread_id=TOPIC, media_group_id="album-a")
        fake_telegram.send_photo(TEAM, BOB, his, thread_id=TOPIC, media_group_id="album-b")
    alice_tally = await alice.said("4 accepted, 0 rejected", since=mark)
    bob_tally = await bob.said("4 accepted, 0 rejected", since=mark)
    assert alice_tally["message_id"] != bob_tally["message_id"]
    for tally in (alice_tally, bob_tally):
        assert tally["message_thread_id"] == TOPIC
    assert alice.button(alice_tally, "Done") == f"d:{ALICE.id}"
    assert bob.button(bob_tally, "Done") == f"d:{BOB.id}"
    # Carol got no answer at all, and none of her photos was downloaded.
    carol_files = {
        size["file_id"]
        for m in fake_telegram.messages.values()
        if m.get("from", {}).get("id") == carol_user.id
        for size in m.get("photo", [])
    }
    assert not {c.params["file_id"] for c in fake_telegram.calls("getFile")} & carol_files
    replies = [
        m
        for m in fake_telegram.bot_messages(TEAM.id)
        if (m.get("reply_to_message") or {}).get("from", {}).get("id") == carol_user.id
    ]
    assert replies == []

    statuses = {}
    for driver in (alice, bob):
        mark = fake_telegram.mark()
        driver.press_label(alice_tally if driver is alice else bob_tally, "Done")
        menu = await driver.said("Which style?", since=mark)
        assert menu["message_thread_id"] == TOPIC
        summary = await choose_style(driver, menu, FULL_CHOICE)
        status, _ = await confirm(driver, summary)
        assert status["text"].startswith(f"{driver.user.first_name}: Queued")
        assert status["message_thread_id"] == TOPIC
        statuses[driver.user.id] = status

    client = bot.services.client
    for user_id in (ALICE.id, BOB.id):
        user = UserRef(platform="telegram", user_id=user_id)
        job = await client.active_job(user)
        assert job is not None
        target = job.request.target
        assert (target.chat_id, target.thread_id, target.user_id) == (TEAM.id, TOPIC, user_id)
        assert target.status_message_id == statuses[user_id]["message_id"]
        # Results will reply to the member's own /start message.
        anchor = fake_telegram.message(TEAM.id, target.reply_to_message_id or 0)
        assert anchor["from"]["id"] == user_id
        assert len(await client.list_selfies(user, job.request.upload_id)) == 4


def test_every_callback_data_fits_64_bytes() -> None:
    from headshots.bot.conversation import style
    from headshots.bot.conversation.flow import delete_screen
    from headshots.bot.conversation.screens import Button, Question, Screen
    from headshots.bot.telegram.surface import decode, keyboard

    user_id = 2**53  # larger than any Telegram user id
    screens = [
        delete_screen(),
        Screen("", buttons=[Button("consent", "", v) for v in "yn"]),
        Screen("", buttons=[Button("resume", "", v) for v in ("go", "new")]),
        Screen("", buttons=[Button(a, "") for a in ("done", "confirm", "quick", "change")]),
    ]
    for preset in style.presets():
        chosen = style.apply({}, "preset", preset)
        for step in style.STEPS:
            options = tuple(style.options(step, chosen))
            screens.append(Screen("", questions=[Question("style", step, "", options)]))
    markups = [keyboard(screen, user_id, "headshots_test_bot") for screen in screens]
    datas = [
        str(button.callback_data)
        for markup in markups
        if markup is not None
        for row in markup.inline_keyboard
        for button in row
    ]
    assert len(datas) > 100
    assert all(len(d.encode()) <= 64 for d in datas), max(datas, key=len)
    for data in datas:
        decoded = decode(data)
        assert decoded is not None and decoded.user_id == user_id
    # Buttons under results, as the worker attaches them.
    from headshots.actions import result_actions

    for row in result_actions("f" * 20, [1, 2, 3, 4, 5, 40]):
        for action in row:
            assert len(action.encode().encode()) <= 64


async def test_webhook_mode(
    fake_telegram: FakeTelegram,
    settings_factory: Callable[..., Any],
    redis_url: str,
    redis_client: Any,
) -> None:
    import asyncio

    import httpx

    from headshots.bot.telegram.app import build_application
    from headshots.bot.telegram.webhook import SECRET_HEADER, secret_token, serve_webhook
    from headshots.queue.embedded import free_port

    port = free_port()
    settings = settings_factory(
        telegram_token=fake_telegram.token,
        telegram_api_url=fake_telegram.url,
        telegram_webhook_url="https://bot.example.org/tg/hook",
        telegram_webhook_listen=f"127.0.0.1:{port}",
    )
    application = build_application(settings, redis_url)
    assert application.updater is None
    stop = asyncio.Event()
    server = asyncio.create_task(serve_webhook(application, settings, stop))
    try:
        registered = await fake_telegram.wait_for("setWebhook")
        secret = secret_token(fake_telegram.token)
        assert registered.params["url"] == "https://bot.example.org/tg/hook"
        assert registered.params["secret_token"] == secret
        assert fake_telegram.token not in secret
        chat = FakeChat.private(ALICE)
        message = fake_telegram.user_message(
            chat, ALICE, text="/help", entities=[{"type": "bot_command", "offset": 0, "length": 5}]
        )
        async with httpx.AsyncClient() as http:
            url = f"http://127.0.0.1:{port}/tg/hook"
            forged = await http.post(url, json={"update_id": 1, "message": message})
            assert forged.status_code == 403
            mark = fake_telegram.mark()
            ok = await http.post(
                url, json={"update_id": 2, "message": message}, headers={SECRET_HEADER: secret}
            )
            assert ok.status_code == 200
        await ChatDriver(fake_telegram, chat, ALICE).said("/privacy", since=mark)
        assert len(fake_telegram.calls("sendMessage")) == 1
    finally:
        stop.set()
        await server


def test_bot_package_does_not_import_torch() -> None:
    code = (
        "import sys, headshots.bot.telegram, headshots.bot.telegram.app; "
        "assert not {'torch', 'diffusers', 'onnxruntime', 'dlib'} & set(sys.modules), "
        "sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'diffusers', 'dlib'})"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def bot_process(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    full_env = parent_env()
    full_env.update(env, PYTHONPATH=str(ROOT))
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "headshots", "bot", "telegram"],
            env=full_env,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_crashed_bot_process_is_replaced_mid_upload(
    fake_telegram: FakeTelegram,
    settings_factory: Callable[..., Any],
    redis_client: Any,
    face_photo_bytes: list[bytes],
    tmp_path: Path,
) -> None:
    settings = settings_factory(
        telegram_token=fake_telegram.token, telegram_api_url=fake_telegram.url
    )
    env = settings_env(settings)
    log = tmp_path / "bot.log"
    driver = ChatDriver(fake_telegram, FakeChat.private(ALICE), ALICE)
    first = bot_process(env, log)
    try:
        await fake_telegram.wait_for("setMyCommands", timeout=30)
        await start_and_consent(driver)
        mark = fake_telegram.mark()
        driver.photos(face_photo_bytes[:2])
        await driver.said("2 accepted, 0 rejected", since=mark, timeout=60)
    finally:
        first.send_signal(signal.SIGKILL)  # a crash: no clean shutdown
        first.wait(10)
    second = bot_process(env, log)
    try:
        mark = fake_telegram.mark()
        driver.text("/start")
        offer = await driver.said(
            "upload in progress with 2 accepted photos", since=mark, timeout=30
        )
        mark = fake_telegram.mark()
        driver.press_label(offer, "Continue with 2 photos")
        await driver.said("2 accepted, 0 rejected", since=mark)
        mark = fake_telegram.mark()
        driver.photos(face_photo_bytes[2:4])
        tally = await driver.said("4 accepted, 0 rejected", since=mark, timeout=60)
        assert "Done" in str(tally["reply_markup"]), log.read_text()
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(20)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait()
    assert fake_telegram.token not in log.read_text()  # never log the token


async def test_info_commands_and_error_handler(
    telegram_bot: StartBot,
    fake_telegram: FakeTelegram,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bot = await telegram_bot(selfie_ttl_hours=12, results_ttl_days=3)
    driver = ChatDriver(fake_telegram, FakeChat.private(ALICE), ALICE)
    for command, expected in [
        ("/tips", "no sunglasses"),
        ("/styles", "Tech startup: backgrounds office, white, plants"),
        ("/privacy", "deleted 12 hours after delivery"),
        ("/privacy", "results after 3 days"),
        ("/status", "Nothing in progress"),
        ("/cancel", "nothing to cancel"),
    ]:
        mark = fake_telegram.mark()
        driver.text(command)
        await driver.said(expected, since=mark)

    async def broken(*args: object) -> None:
        raise RuntimeError("redis exploded")

    monkeypatch.setattr(bot.services.client, "active_job", broken)
    mark = fake_telegram.mark()
    driver.text("/start")
    await driver.said("something went wrong on my side", since=mark)
    logged = [r for r in caplog.records if r.name == "headshots.bot.telegram.handlers"]
    assert logged and logged[-1].exc_info is not None
    assert fake_telegram.token not in caplog.text


async def test_a_bot_api_5xx_is_sent_again_not_dropped(
    fake_telegram: FakeTelegram,
    settings_factory: Callable[..., Any],
    redis_url: str,
    redis_client: Any,
) -> None:
    # Found by bench/soak.py: PTB's rate limiter retries only 429s, so one 502 from the Bot API
    # made a reply vanish (a selfie tally never came). The production limiter retries 5xx.
    from headshots.bot.telegram.app import build_application, polling

    settings = settings_factory(
        telegram_token=fake_telegram.token, telegram_api_url=fake_telegram.url
    )
    application = build_application(settings, redis_url, quiet_period_s=0.3)
    async with polling(application, poll_timeout_s=1):
        driver = ChatDriver(fake_telegram, FakeChat.private(ALICE), ALICE)
        fake_telegram.fail_next("sendMessage", 502)
        mark = fake_telegram.mark()
        driver.text("/start")
        await driver.said("Do you agree", since=mark)
        sent = fake_telegram.calls_since(mark, "sendMessage")
        assert [c.status for c in sent] == [502, 200]
        # A 400 is our mistake: sent once, never again.
        fake_telegram.fail_next("sendMessage", 400)
        mark = fake_telegram.mark()
        driver.text("/help")
        await fake_telegram.wait_for("sendMessage", since=mark)
        await asyncio.sleep(1.5)
        refused, *later = fake_telegram.calls_since(mark, "sendMessage")
        assert refused.status == 400
        assert all(c.params["text"] != refused.params["text"] for c in later), "sent again"


async def test_a_late_queued_edit_gives_the_status_back_to_the_worker(
    telegram_bot: StartBot,
    fake_telegram: FakeTelegram,
    face_photo_bytes: list[bytes],
) -> None:
    # Found by bench/soak.py: in a throttled group the bot's "Queued" edit waited in its rate
    # limiter while a worker ran the job; it landed last and the message said "Queued" for good.
    from headshots.queue import constants
    from headshots.queue.delivery import SenderPool
    from headshots.queue.progress import set_state
    from headshots.queue.status import StatusReporter

    bot = await telegram_bot()
    driver = ChatDriver(fake_telegram, FakeChat.private(ALICE), ALICE)
    await start_and_consent(driver)
    menu = await upload_and_finish(driver, face_photo_bytes[:5], "5 accepted")
    summary = await choose_style(driver, menu, FULL_CHOICE)
    fake_telegram.hold_next(
        "editMessageText", 2.0, lambda params: "Queued: position" in str(params.get("text"))
    )
    mark = fake_telegram.mark()
    driver.press_label(summary, "Looks good")

    # Meanwhile a worker takes the job and finishes it, editing the same status message with
    # the worker's own sender (what headshots.queue.worker does).
    client = bot.services.client
    user = UserRef(platform="telegram", user_id=ALICE.id)
    for _ in range(100):
        job = await client.active_job(user)
        key = constants.job_status_key(job.job_id) if job else ""
        status = await client.redis.hget(key, "message_id") if job else None
        if status:
            break
        await asyncio.sleep(0.05)
    assert job is not None and status is not None
    senders = SenderPool(bot.settings)
    reporter = StatusReporter(client.redis, senders, min_interval_s=0, ttl_s=3600)
    try:
        for state, text in (
            (JobState.TRAINING, "Training your personal model…"),
            (JobState.DONE, "Done! Your headshots are below."),
        ):
            await set_state(client.redis, job.job_id, state, text=text)
            await reporter.update(job.job_id, job.request.target, text, force=True)
    finally:
        await senders.close()
    late = await fake_telegram.wait_for(
        "editMessageText",
        # Carried out (answered), not only received: the fake holds it for 2 s.
        lambda c: "Queued: position" in str(c.params.get("text")) and c.response is not None,
        since=mark,
        timeout=10,
    )
    await asyncio.sleep(1.0)  # the bot's look after its edit
    message = fake_telegram.message(ALICE.id, int(status))
    assert message["text"] == "Done! Your headshots are below.", message["text"]
    edits = [
        c.params["text"]
        for c in fake_telegram.calls_since(mark, "editMessageText")
        if int(c.params["message_id"]) == int(status) and c.status == 200
    ]
    # Logged as they arrived: the held "Queued", the worker's two, and the bot's "Done!" again
    # (the held one was carried out after the worker's).
    assert edits == [
        late.params["text"],
        "Training your personal model…",
        "Done! Your headshots are below.",
        "Done! Your headshots are below.",
    ], edits


async def test_a_press_during_a_photo_check_is_answered_at_once(
    telegram_bot: StartBot, fake_telegram: FakeTelegram, face_photo_bytes: list[bytes]
) -> None:
    """answerCallbackQuery goes out before the press waits for a photo check that holds the
    conversation, not seconds later when the check lets go of it."""
    await telegram_bot()
    driver = ChatDriver(fake_telegram, FakeChat.private(ALICE), ALICE)
    await start_and_consent(driver)
    mark = fake_telegram.mark()
    driver.photos(face_photo_bytes[:4])
    tally = await driver.said("4 accepted", since=mark, timeout=60)
    mark = fake_telegram.mark()
    fake_telegram.hold_next("getFile", 3.0, lambda params: True)  # a slow download
    driver.photos(face_photo_bytes[4:5])
    await fake_telegram.wait_for("getFile", since=mark)
    pressed = time.monotonic()
    query = driver.press_label(tally, "Done")

    answer = await fake_telegram.wait_for(
        "answerCallbackQuery", lambda c: c.params.get("callback_query_id") == query["id"]
    )
    assert answer.at - pressed < 1.5, "answered after the check, not at once"
    await driver.said("Which style?", since=mark, timeout=60)
    tally_now = fake_telegram.message(ALICE.id, int(tally["message_id"]))
    assert "5 accepted" in tally_now["text"]  # the press waited for the photo, then finished


async def delete_everything(driver: ChatDriver) -> str:
    """/delete, then "Yes"; the report."""
    mark = driver.fake.mark()
    driver.text("/delete")
    question = await driver.said("Delete everything", since=mark)
    mark = driver.fake.mark()
    driver.press_label(question, "Yes, delete everything")
    return str((await driver.said("Deleted:", since=mark))["text"])


async def test_delete_clears_the_private_chat_within_telegrams_48_hours(
    telegram_bot: StartBot, fake_telegram: FakeTelegram, face_photo_bytes: list[bytes]
) -> None:
    """/delete removes the bot's messages and the person's photos from the chat too; a photo
    older than 48 hours stays (Telegram refuses), and the report says so and what to do."""
    fake = fake_telegram
    await telegram_bot()
    driver = ChatDriver(fake, FakeChat.private(ALICE), ALICE)
    await start_and_consent(driver)
    menu = await upload_and_finish(driver, face_photo_bytes[:4], "4 accepted, 0 rejected")
    await confirm(driver, await choose_style(driver, menu, FULL_CHOICE))
    photos = [m for m in fake.visible(ALICE.id, sender=ALICE.id) if "photo" in m]
    assert len(photos) == 4 and len(fake.visible(ALICE.id, sender=fake.bot_id)) > 3
    fake.age(ALICE.id, int(photos[0]["message_id"]), hours=49)
    fake.fail_next("deleteMessages", 429)  # retried, not given up on

    report = await delete_everything(driver)

    left_by_bot = fake.visible(ALICE.id, sender=fake.bot_id)
    assert [m["text"] for m in left_by_bot] == [report], "only the report is left of the bot's"
    left_photos = [m for m in fake.visible(ALICE.id, sender=ALICE.id) if "photo" in m]
    assert [m["message_id"] for m in left_photos] == [photos[0]["message_id"]]
    assert report.startswith("Deleted: 1 job,")
    assert "the 1 photo you sent in our private chat on " in report
    assert "yours to delete" in report
    # The 429 was retried; the retry was refused for the old photo, found one by one.
    assert [c.status for c in fake.calls("deleteMessages")][:2] == [429, 400]
    assert any(c.status == 400 for c in fake.calls("deleteMessage"))


async def test_delete_in_a_group_names_the_photos_only_an_admin_bot_could_remove(
    telegram_bot: StartBot, fake_telegram: FakeTelegram, face_photo_bytes: list[bytes]
) -> None:
    fake = fake_telegram
    await telegram_bot()
    group = FakeChat.supergroup(-100600, "Office")
    alice = ChatDriver(fake, group, ALICE)
    intro = await start_and_consent(alice)
    assert "every member sees the selfies you send" in intro["text"]
    mark = fake.mark()
    alice.photos(face_photo_bytes[:4])
    await alice.said("4 accepted", since=mark, timeout=60)

    report = await delete_everything(alice)

    assert "the 4 photos you sent in “Office” on " in report and "yours to delete" in report
    ours = [m for m in fake.visible(group.id, sender=fake.bot_id) if m["text"] != report]
    assert ours == [], "the bot's messages to her went"
    assert len([m for m in fake.visible(group.id, sender=ALICE.id) if "photo" in m]) == 4

    # Where the bot is an admin, her photos go too.
    fake.set_bot_admin(group)
    bob = ChatDriver(fake, group, BOB)
    await start_and_consent(bob)
    mark = fake.mark()
    bob.photos(face_photo_bytes[:2])
    await bob.said("2 accepted", since=mark, timeout=60)
    report = await delete_everything(bob)
    assert not [m for m in fake.visible(group.id, sender=BOB.id) if "photo" in m]
    assert report.endswith("Nothing of yours is left."), report


async def test_a_delete_telegram_refuses_for_now_is_kept_and_finished_by_the_next(
    telegram_bot: StartBot,
    fake_telegram: FakeTelegram,
    face_photo_bytes: list[bytes],
    redis_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 5xx past every retry leaves the chat's record in place, the report says to send
    /delete again, and that one finishes the job."""
    from headshots.queue import constants
    from headshots.queue.delivery import base
    from headshots.queue.delivery.base import SEND_ATTEMPTS

    monkeypatch.setattr(base, "backoff", lambda attempt=1: 0.01)  # the same retries, quicker
    fake = fake_telegram
    await telegram_bot()
    driver = ChatDriver(fake, FakeChat.private(ALICE), ALICE)
    await start_and_consent(driver)
    mark = fake.mark()
    driver.photos(face_photo_bytes[:2])
    await driver.said("2 accepted", since=mark, timeout=60)
    for _ in range(SEND_ATTEMPTS):
        fake.fail_next("deleteMessages", 502)

    report = await delete_everything(driver)
    assert "would not let me delete everything in the chat just now" in report
    assert "send /delete again" in report and "Nothing of yours is left" not in report
    log = constants.user_chat_log_key(f"tg:{ALICE.id}")
    assert await redis_client.exists(log)
    assert len([m for m in fake.visible(ALICE.id, sender=ALICE.id) if "photo" in m]) == 2

    report = await delete_everything(driver)
    assert report.endswith("Nothing of yours is left."), report
    assert not [m for m in fake.visible(ALICE.id, sender=ALICE.id) if "photo" in m]
    assert not await redis_client.exists(log)
