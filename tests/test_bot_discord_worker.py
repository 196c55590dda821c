"""Discord sessions end to end: the bot submits, a real worker process delivers into the thread.

The worker posts with the bot token to ``/channels/<thread>/messages``; interaction tokens are
expired in the fake before it runs, so any use of a followup would fail the test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headshots.bot.discord.client import HeadshotsClient
from headshots.queue.contracts import JobState
from headshots.settings import Settings
from tests.fake_discord import FakeDiscord
from tests.plugins.queue import settings_env
from tests.queue_helpers import wait_for_state
from tests.test_bot_discord import (
    GUILD_ID,
    Member,
    feed,
    photo_attachments,
    responded,
    submitted_job,
)

FINISHED = {JobState.DONE, JobState.FAILED, JobState.CANCELLED}


def worker_env(bot: HeadshotsClient, fake: FakeDiscord, **extra: str) -> dict[str, str]:
    env = settings_env(bot.settings)
    env.update(
        HEADSHOTS_DISCORD_API_URL=fake.api_base,
        HEADSHOTS_DISCORD_TOKEN=fake.token,
        HEADSHOTS_FACE_BACKEND="dlib",
        **extra,
    )
    return env


async def confirm_session(
    member: Member, channel: dict[str, Any], photos: list[bytes], *, count: str = "4"
) -> tuple[dict[str, Any], str]:
    fake = member.fake
    thread, form = await member.start_session(channel, photo_attachments(fake, photos))
    await member.click(form, "hsd:more")
    await member.choose(fake.messages[int(form["id"])], "hsd:count", count)
    await member.click(fake.messages[int(form["id"])], "hsd:next")
    await member.click(fake.messages[int(form["id"])], "hsd:confirm")
    return thread, await submitted_job(member.bot, member)


def thread_posts_with_files(fake: FakeDiscord, thread: dict[str, Any]) -> list[Any]:
    return [
        c
        for c in fake.calls("POST", f"/channels/{thread['id']}/messages")
        if c.files and c.status == 200
    ]


@pytest.mark.slow
async def test_whole_session_on_the_tiny_model(
    fake_discord: FakeDiscord,
    discord_bot: HeadshotsClient,
    face_photo_bytes: list[bytes],
    tiny_model_path: Path,
    start_worker: Callable[..., Any],
    worker_processes: Any,
) -> None:
    fake = fake_discord
    alice = Member(fake, discord_bot, 1001, "alice")
    channel = fake.add_text_channel(GUILD_ID)
    photos = photo_attachments(fake, face_photo_bytes[:5])
    photos.append(fake.add_attachment(b"%PDF-1.4 not a photo", "cv.pdf", "application/pdf"))
    thread, form = await alice.start_session(channel, photos)
    await alice.choose(form, "hsd:preset", "corporate")
    await alice.choose(fake.messages[int(form["id"])], "hsd:class", "woman")
    await alice.click(fake.messages[int(form["id"])], "hsd:more")
    await alice.choose(fake.messages[int(form["id"])], "hsd:count", "4")
    await alice.click(fake.messages[int(form["id"])], "hsd:next")
    await alice.click(fake.messages[int(form["id"])], "hsd:confirm")
    job_id = await submitted_job(discord_bot, alice)
    info = await discord_bot.queue.job(job_id)
    assert info is not None and info.request.target.status_message_id is not None
    status_id = info.request.target.status_message_id

    # The interaction tokens "expire" before the long part: nothing may use them from here on.
    fake.expire_interaction_tokens()
    start_worker(
        worker_env(
            discord_bot,
            fake,
            HEADSHOTS_BASE_MODEL=str(tiny_model_path),
            HEADSHOTS_TRAIN_STEPS="2",
            HEADSHOTS_SAMPLE_STEPS="4",
            HEADSHOTS_HF_OFFLINE="true",
            HEADSHOTS_DEVICE="cpu",
            HEADSHOTS_DTYPE="float32",
        )
    )
    state = await wait_for_state(discord_bot.queue, job_id, FINISHED, timeout_s=240)
    assert state is JobState.DONE, worker_processes.logs()[-3000:]

    # The status message in the thread went through the stages, edited with the bot token.
    edits = [c for c in fake.calls("PATCH", f"/channels/{thread['id']}/messages/{status_id}")]
    assert len(edits) >= 3 and all(c.authorization == f"Bot {fake.token}" for c in edits)
    contents = [str((c.json or {}).get("content", "")) for c in edits]
    assert any("rain" in t for t in contents), contents  # "Training ..."
    assert fake.messages[status_id]["content"].lower().startswith("done"), contents

    # Results: files posted into the thread with the bot token, never through a webhook.
    posts = thread_posts_with_files(fake, thread)
    assert posts and all(c.authorization == f"Bot {fake.token}" for c in posts)
    assert sum(len(c.files) for c in posts) >= 4
    assert all(len(c.files) <= 10 for c in posts)
    assert not [c for c in fake.calls(None, "/webhooks/") if c.status == 200 and c.at > edits[0].at]
    buttons = fake.message_with(f"hs:ns:{job_id}", int(thread["id"]))
    assert buttons is not None

    # The album's files are the originals (Discord keeps attachments byte for byte): no
    # "Originals as files" button sends them twice.
    assert not [c for c in fake.custom_ids(buttons) if c.startswith("hs:og:")]
    stored = {
        await discord_bot.queue.read_blob(alice.ref, str(r["path"]))
        for r in (await discord_bot.queue.job(job_id)).results  # type: ignore[union-attr]
    }
    assert stored <= {f.data for c in posts for f in c.files}

    # Result buttons work for the owner only.
    bob = Member(fake, discord_bot, 1002, "bob")
    intruder = await bob.click(buttons, f"hs:ns:{job_id}")
    assert "not your job" in await fake.answer_to(intruder)

    # "Delete my data": nothing of hers is left in the chat, the thread goes whole.
    delete = await alice.click(buttons, f"hs:dl:{job_id}")
    prompt = fake.message_with(f"hsd:forget:{alice.id}:")
    assert prompt is not None and delete
    await alice.click(prompt, f"hsd:forget:{alice.id}:")
    assert fake.channels[int(thread["id"])].get("deleted")
    assert not [m for m in fake.live_messages() if m["channel_id"] == thread["id"]]


async def test_two_members_at_once_get_their_own_threads(
    fake_discord: FakeDiscord,
    discord_bot: HeadshotsClient,
    face_photo_bytes: list[bytes],
    other_person_photo_bytes: bytes,
    start_worker: Callable[..., Any],
    settings_factory: Callable[..., Settings],
) -> None:
    fake = fake_discord
    channel = fake.add_text_channel(GUILD_ID)
    alice = Member(fake, discord_bot, 1001, "alice")
    bob = Member(fake, discord_bot, 1002, "bob")
    # Both start before either confirms: sessions interleave in one channel.
    alice_thread, alice_form = await alice.start_session(
        channel, photo_attachments(fake, face_photo_bytes[:4])
    )
    bob_thread, bob_form = await bob.start_session(
        channel, photo_attachments(fake, face_photo_bytes[2:6])
    )
    assert alice_thread["id"] != bob_thread["id"]

    # Bob cannot touch Alice's form, and a command in her thread tells him it is hers.
    intrusion = await bob.click(alice_form, "hsd:next")
    assert "not your session" in await fake.answer_to(intrusion)
    wrong_place = bob.slash("start", alice_thread)
    await responded(fake, wrong_place)
    assert "someone else's" in await fake.answer_to(wrong_place)

    # Bob's photos posted in Alice's thread are not added to anybody's session.
    stray = fake.add_attachment(other_person_photo_bytes, "bob.jpg")
    discord_bot._connection.parse_message_create(  # type: ignore[arg-type]
        fake.user_message(user=bob.user, channel=alice_thread, attachments=[stray])
    )

    for member, form in ((alice, alice_form), (bob, bob_form)):
        await member.click(fake.messages[int(form["id"])], "hsd:more")
        await member.choose(fake.messages[int(form["id"])], "hsd:count", "4")
        await member.click(fake.messages[int(form["id"])], "hsd:next")
        await member.click(fake.messages[int(form["id"])], "hsd:confirm")
    alice_job = await submitted_job(discord_bot, alice)
    bob_job = await submitted_job(discord_bot, bob)
    assert alice_job != bob_job
    assert not fake.calls("GET", f"/attachments/{stray['id']}")

    fake.expire_interaction_tokens()
    env = worker_env(discord_bot, fake, HEADSHOTS_STAGES="tests.stub_stages:build")
    start_worker(env)
    for job_id in (alice_job, bob_job):
        assert (
            await wait_for_state(discord_bot.queue, job_id, FINISHED, timeout_s=90) is JobState.DONE
        )

    for member, thread, job_id in ((alice, alice_thread, alice_job), (bob, bob_thread, bob_job)):
        info = await discord_bot.queue.job(job_id)
        assert info is not None
        assert info.request.user.user_id == member.id
        assert info.request.target.thread_id == int(thread["id"])
        assert thread_posts_with_files(fake, thread), (
            f"no results in {member.user['username']}'s thread"
        )
        assert fake.message_with(f"hs:ns:{job_id}", int(thread["id"])) is not None
        other = bob_job if job_id == alice_job else alice_job
        assert fake.message_with(f"hs:ns:{other}", int(thread["id"])) is None
    _ = settings_factory, feed
