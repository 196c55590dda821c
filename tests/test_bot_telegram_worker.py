"""Telegram sessions end to end: the bot submits, a real worker process delivers into the chat.

The worker talks to the same fake Bot API server (HEADSHOTS_TELEGRAM_API_URL) with the same
token; it edits the bot's status message and posts the results into the chat or forum topic.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headshots.queue import constants
from headshots.queue.contracts import JobState, UserRef
from tests.fake_telegram import Call, FakeChat, FakeTelegram
from tests.plugins.queue import settings_env
from tests.plugins.telegram import ChatDriver, RunningBot
from tests.queue_helpers import wait_for_state
from tests.test_bot_telegram import (
    ALICE,
    BOB,
    LOOK,
    PERSON,
    TEAM,
    TOPIC,
    StartBot,
    choose_style,
    delete_everything,
    start_and_consent,
    upload_and_finish,
)

FINISHED = {JobState.DONE, JobState.FAILED, JobState.CANCELLED}
QUICK_CHOICE = [*LOOK, *PERSON, "Office", "Blazer", "Ektar", "4", "Square"]


def worker_env(bot: RunningBot, fake: FakeTelegram, **extra: str) -> dict[str, str]:
    env = settings_env(bot.settings)
    env.update(
        HEADSHOTS_TELEGRAM_API_URL=fake.url,
        HEADSHOTS_TELEGRAM_TOKEN=fake.token,
        HEADSHOTS_FACE_BACKEND="dlib",
        **extra,
    )
    return env


def tiny_env(tiny_model_path: Path) -> dict[str, str]:
    return {
        "HEADSHOTS_BASE_MODEL": str(tiny_model_path),
        "HEADSHOTS_TRAIN_STEPS": "2",
        "HEADSHOTS_SAMPLE_STEPS": "4",
        "HEADSHOTS_HF_OFFLINE": "true",
        "HEADSHOTS_DEVICE": "cpu",
        "HEADSHOTS_DTYPE": "float32",
    }


async def confirmed_job(
    bot: RunningBot, driver: ChatDriver, summary: dict[str, Any]
) -> tuple[str, int]:
    """Press Confirm; the job id and its status message id."""
    mark = driver.fake.mark()
    driver.press_label(summary, "Looks good")
    status = await driver.said("Queued: position", since=mark)
    user = UserRef(platform="telegram", user_id=driver.user.id)
    job = await bot.services.client.active_job(user)
    assert job is not None and job.request.target.status_message_id == status["message_id"]
    return job.job_id, int(status["message_id"])


def results_posted(fake: FakeTelegram, chat_id: int, job_id: str) -> tuple[list[Call], Call]:
    """The albums and the contact sheet (with the result buttons) of ``job_id``."""
    sheet = [
        c
        for c in fake.calls("sendPhoto")
        if c.status == 200
        and int(c.params["chat_id"]) == chat_id
        and f"hs:ns:{job_id}" in str(c.params.get("reply_markup"))
    ]
    assert len(sheet) == 1, "one contact sheet with the result buttons"
    albums = [
        c
        for c in fake.calls("sendMediaGroup")
        if c.status == 200 and int(c.params["chat_id"]) == chat_id and c.at < sheet[0].at
    ]
    return albums, sheet[0]


@pytest.mark.slow
async def test_whole_session_on_the_tiny_model(
    telegram_bot: StartBot,
    fake_telegram: FakeTelegram,
    face_photo_bytes: list[bytes],
    group_photo_bytes: bytes,
    tiny_model_path: Path,
    start_worker: Callable[..., Any],
    worker_processes: Any,
) -> None:
    bot = await telegram_bot()
    chat = FakeChat.private(ALICE)
    driver = ChatDriver(fake_telegram, chat, ALICE)
    intro = await start_and_consent(driver)
    # Nothing measured, no worker yet: no number is promised (it was "about 19 min" for 14 s).
    assert "a few minutes once it is your turn" in intro["text"]
    menu = await upload_and_finish(
        driver, [*face_photo_bytes[:5], group_photo_bytes], "5 accepted, 1 rejected: photo 6"
    )
    summary = await choose_style(driver, menu, QUICK_CHOICE)
    job_id, status_id = await confirmed_job(bot, driver, summary)

    start_worker(worker_env(bot, fake_telegram, **tiny_env(tiny_model_path)))
    client = bot.services.client
    state = await wait_for_state(client, job_id, FINISHED, timeout_s=240)
    assert state is JobState.DONE, worker_processes.logs()[-3000:]

    # The first job's ETA: the worker's estimate (its steps x its model's and device's step
    # costs) is within 10x of what the job then took.
    redis = client.redis
    estimate = await redis.hgetall(constants.ESTIMATE_KEY)
    expected = sum(float(v) for v in estimate.values())
    took = 0.0
    for part in ("train", "generate"):
        took += float((await redis.lrange(constants.stage_durations_key(part), 0, 0))[0])
    assert len(estimate) == 2 and took / 10 <= expected <= took * 10, (estimate, took)

    # The one status message went through the stages, edited by the worker.
    edits = [
        str(c.params["text"])
        for c in fake_telegram.calls("editMessageText")
        if int(c.params["message_id"]) == status_id and c.status == 200
    ]
    assert len(edits) >= 3, edits
    assert any("rain" in t for t in edits), edits
    assert fake_telegram.message(chat.id, status_id)["text"].lower().startswith("done"), edits

    # Results: an album of the headshots, then the contact sheet with the buttons, same chat.
    albums, sheet = results_posted(fake_telegram, chat.id, job_id)
    assert albums and sum(len(c.files) for c in albums) == 4
    assert all(c.params.get("message_thread_id") is None for c in [*albums, sheet])

    # "Originals as files": the results again, uncompressed, as documents.
    sheet_message = dict(sheet.response)
    mark = fake_telegram.mark()
    driver.press(sheet_message, f"hs:og:{job_id}")
    originals = await fake_telegram.wait_for("sendMediaGroup", since=mark)
    assert [m["type"] for m in originals.params["media"]] == ["document"] * 4
    assert sorted(originals.filenames.values())[0] == "headshot-01.png"

    # "More like #1": a generate-only job on the trained model, delivered the same way.
    mark = fake_telegram.mark()
    driver.press(sheet_message, f"hs:ml:{job_id}:1")
    await driver.said("Queued: position", since=mark)
    more = await client.active_job(UserRef(platform="telegram", user_id=ALICE.id))
    assert more is not None and more.request.kind == "more_like"
    assert (more.request.lora_job_id, more.request.like_rank) == (job_id, 1)
    assert await wait_for_state(client, more.job_id, FINISHED, timeout_s=120) is JobState.DONE
    results_posted(fake_telegram, chat.id, more.job_id)

    # "New style": the menus again, then a job that reuses the model (no training stage).
    mark = fake_telegram.mark()
    driver.press(sheet_message, f"hs:ns:{job_id}")
    menu = await driver.said("Which style?", since=mark)
    assert "no retraining" in menu["text"]
    summary = await choose_style(
        driver,
        menu,
        ["Legal", "Customise", "Legal", "Man", "Keep", "Bookshelf", "Suit", "Ektar", "4", "Tall"],
    )
    new_job_id, _ = await confirmed_job(bot, driver, summary)
    new = await client.job(new_job_id)
    assert new is not None and new.request.kind == "new_style"
    assert new.request.lora_job_id == job_id and new.request.style.preset == "legal"
    assert await wait_for_state(client, new_job_id, FINISHED, timeout_s=120) is JobState.DONE

    # "Delete my data": the albums and contact sheets the worker posted go from the chat too
    # (the worker records them; Telegram cannot list a chat). Only the report is left.
    report = await delete_everything(driver)
    assert [m.get("text") for m in fake_telegram.visible(chat.id, sender=fake_telegram.bot_id)] == [
        report
    ]
    assert "the headshots I posted" not in report


async def test_forum_topic_two_members_get_their_own_results(
    telegram_bot: StartBot,
    fake_telegram: FakeTelegram,
    face_photo_bytes: list[bytes],
    start_worker: Callable[..., Any],
    worker_processes: Any,
) -> None:
    bot = await telegram_bot()
    members = [ChatDriver(fake_telegram, TEAM, user, TOPIC) for user in (ALICE, BOB)]
    jobs: dict[int, str] = {}
    anchors: dict[int, int] = {}
    for index, driver in enumerate(members):
        intro = await start_and_consent(driver)
        anchors[driver.user.id] = int(intro["reply_to_message"]["message_id"])
        menu = await upload_and_finish(
            driver, face_photo_bytes[index : index + 4], "4 accepted, 0 rejected"
        )
        summary = await choose_style(driver, menu, QUICK_CHOICE)
        jobs[driver.user.id], _ = await confirmed_job(bot, driver, summary)

    start_worker(worker_env(bot, fake_telegram, HEADSHOTS_STAGES="tests.stub_stages:build"))
    for job_id in jobs.values():
        state = await wait_for_state(bot.services.client, job_id, FINISHED, timeout_s=90)
        assert state is JobState.DONE, worker_processes.logs()[-3000:]

    for user_id, job_id in jobs.items():
        albums, sheet = results_posted(fake_telegram, TEAM.id, job_id)
        own = [
            c
            for c in albums
            if (c.params.get("reply_parameters") or {}).get("message_id") == anchors[user_id]
        ]
        assert own, f"no album replying to {user_id}'s request"
        for call in [*own, sheet]:
            assert call.params["message_thread_id"] == TOPIC
            assert call.params["reply_parameters"]["message_id"] == anchors[user_id]
        other = next(j for u, j in jobs.items() if u != user_id)
        assert other not in str(sheet.params.get("reply_markup"))

    # Bob cannot use the buttons under Alice's results.
    alice_sheet = dict(results_posted(fake_telegram, TEAM.id, jobs[ALICE.id])[1].response)
    mark = fake_telegram.mark()
    fake_telegram.press(BOB, alice_sheet, f"hs:og:{jobs[ALICE.id]}")
    answer = await fake_telegram.wait_for("answerCallbackQuery", since=mark)
    assert "someone else" in answer.params["text"]


async def test_cancel_while_training(
    telegram_bot: StartBot,
    fake_telegram: FakeTelegram,
    face_photo_bytes: list[bytes],
    start_worker: Callable[..., Any],
    worker_processes: Any,
) -> None:
    bot = await telegram_bot()
    driver = ChatDriver(fake_telegram, FakeChat.private(ALICE), ALICE)
    await start_and_consent(driver)
    menu = await upload_and_finish(driver, face_photo_bytes[:4], "4 accepted")
    summary = await choose_style(driver, menu, QUICK_CHOICE)
    job_id, status_id = await confirmed_job(bot, driver, summary)
    start_worker(
        worker_env(
            bot,
            fake_telegram,
            HEADSHOTS_STAGES="tests.stub_stages:build",
            STUB_STEPS="400",
            STUB_STEP_S="0.05",
        )
    )
    client = bot.services.client
    await wait_for_state(client, job_id, {JobState.TRAINING}, timeout_s=60)
    mark = fake_telegram.mark()
    driver.text("/cancel")
    await driver.said("Stopping your job (it is training)", since=mark)
    state = await wait_for_state(client, job_id, FINISHED, timeout_s=60)
    assert state is JobState.CANCELLED, worker_processes.logs()[-3000:]
    assert "cancel" in fake_telegram.message(ALICE.id, status_id)["text"].lower()
    # The slot is free again: /status reports the cancelled job, /start works.
    mark = fake_telegram.mark()
    driver.text("/status")
    await driver.said("cancelled", since=mark)
