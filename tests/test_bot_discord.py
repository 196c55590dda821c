"""The Discord front end against the fake REST server, a real Redis and real photographs.

Interactions are fed the way the gateway would (``parse_interaction_create``); every REST call
the bot makes goes over HTTP to :class:`tests.fake_discord.FakeDiscord`.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from headshots.bot.discord.client import HeadshotsClient
from headshots.queue.contracts import UserRef
from tests.fake_discord import (
    ALL_PERMISSIONS,
    CREATE_PRIVATE_THREADS,
    CREATE_PUBLIC_THREADS,
    MANAGE_MESSAGES,
    MANAGE_THREADS,
    PRIVATE_THREAD,
    PUBLIC_THREAD,
    FakeDiscord,
    UploadedFile,
)
from tests.queue_helpers import keys_mentioning

GUILD_ID = 700_000_000_000_000_001


#: The bot each fed interaction went to (by token), to wait until it has finished with it.
_FED_TO: dict[str, HeadshotsClient] = {}


def feed(client: HeadshotsClient, payload: dict[str, Any]) -> dict[str, Any]:
    """Deliver an INTERACTION_CREATE as the gateway would."""
    _FED_TO[payload["token"]] = client
    client._connection.parse_interaction_create(payload)  # type: ignore[arg-type]
    return payload


async def responded(fake: FakeDiscord, payload: dict[str, Any]) -> dict[str, Any]:
    """The interaction's initial response, once the bot it was fed to has finished it.

    The bot acknowledges first and works afterwards: the response alone does not say that the
    edits and followups are there yet.
    """
    responses = await fake.wait_for(
        lambda: fake.interaction_responses(payload), what="an interaction response"
    )
    client = _FED_TO.pop(payload["token"], None)
    if client is not None:
        await asyncio.wait_for(client.bot.settled(), 60)
    return dict(responses[0])


def ephemeral_followups(fake: FakeDiscord, payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        m
        for m in fake.messages.values()
        if m.get("interaction_token") == payload["token"] and int(m.get("flags", 0)) & 64
    ]


async def followup_text(fake: FakeDiscord, payload: dict[str, Any]) -> str:
    """The text the user finally sees for a deferred command (its first followup/edit)."""

    def text() -> str | None:
        for message in ephemeral_followups(fake, payload):
            if message.get("content"):
                return str(message["content"])
        return None

    return str(await fake.wait_for(text, what="a followup"))


async def reply_text(fake: FakeDiscord, payload: dict[str, Any]) -> str:
    """What the person reads in answer to ``payload``: a reply, or what fills the deferral."""
    await responded(fake, payload)
    return await fake.answer_to(payload)


class Member:
    """One Discord user driving the bot through the fake."""

    def __init__(self, fake: FakeDiscord, bot: HeadshotsClient, user_id: int, name: str) -> None:
        self.fake = fake
        self.bot = bot
        self.user = fake.add_user(user_id, name)
        self.id = user_id
        self.ref = UserRef(platform="discord", user_id=user_id)

    def slash(self, sub: str, channel: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return feed(self.bot, self.fake.slash(sub, user=self.user, channel=channel, **kwargs))

    async def click(self, message: dict[str, Any], op: str, **kwargs: Any) -> dict[str, Any]:
        custom_id = next(c for c in self.fake.custom_ids(message) if c.startswith(op))
        payload = feed(self.bot, self.fake.click(message, custom_id, user=self.user, **kwargs))
        await responded(self.fake, payload)
        return payload

    async def choose(self, message: dict[str, Any], op: str, value: str) -> dict[str, Any]:
        custom_id = next(c for c in self.fake.custom_ids(message) if c.startswith(op))
        payload = feed(self.bot, self.fake.select(message, custom_id, [value], user=self.user))
        await responded(self.fake, payload)
        return payload

    async def start_session(
        self, channel: dict[str, Any], photos: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``/headshot start`` with photos, consent; returns (thread, style form message)."""
        payload = self.slash("start", channel, attachments=photos)
        await responded(self.fake, payload)
        consent = await self.fake.wait_for(
            lambda: self.fake.message_with(f"hsd:consent:{self.id}:"), what="the consent prompt"
        )
        assert int(consent["flags"]) & 64, "consent is asked privately"
        await self.click(consent, "hsd:consent")
        form = await self.fake.wait_for(
            lambda: self.fake.message_with(f"hsd:preset:{self.id}:"), what="the style form"
        )
        thread = self.fake.channels[int(form["channel_id"])]
        return thread, form


def photo_attachments(fake: FakeDiscord, photos: list[bytes]) -> list[dict[str, Any]]:
    return [fake.add_attachment(data, f"selfie{i}.jpg") for i, data in enumerate(photos, 1)]


def tally(fake: FakeDiscord, thread: dict[str, Any]) -> str:
    return next(
        str(m["content"])
        for m in fake.live_messages(int(thread["id"]))
        if str(m["content"]).startswith("**Photos**")
    )


async def test_session_from_start_to_submitted_job(
    fake_discord: FakeDiscord, discord_bot: HeadshotsClient, face_photo_bytes: list[bytes]
) -> None:
    fake = fake_discord
    alice = Member(fake, discord_bot, 1001, "alice")
    channel = fake.add_text_channel(GUILD_ID)
    photos = photo_attachments(fake, face_photo_bytes[:4])
    photos.append(fake.add_attachment(b"just some notes", "notes.txt", "text/plain"))
    photos.append(fake.add_attachment(b"\0" * 1024, "huge.png", "image/png", size=30 * 1024 * 1024))

    thread, form = await alice.start_session(channel, photos)

    # A private thread in the channel, archived after the configured time, the user added:
    # nobody else in the channel sees the selfies.
    assert thread["type"] == PRIVATE_THREAD and thread["parent_id"] == channel["id"]
    assert thread["thread_metadata"]["auto_archive_duration"] == 1440
    assert fake.visible_to(alice.id, int(thread["id"]))
    assert not fake.visible_to(1002, int(thread["id"]))
    # Photos were downloaded at once; the big and the non-image file never were.
    fetched = {c.path for c in fake.calls("GET", "/attachments/")}
    assert len(fetched) == 4 and not any("notes" in p or "huge" in p for p in fetched)
    text = tally(fake, thread)
    assert "4 accepted, 2 rejected" in text
    assert "photo 5 (`notes.txt`): this is not a photo (text/plain)" in text
    assert "photo 6 (`huge.png`): this file is too large (30 MB)" in text
    (session,) = await sessions_of(discord_bot, alice)
    stored = await discord_bot.queue.list_selfies(alice.ref, session["upload_id"])
    assert len(stored) == 4

    # A fifth selfie posted as a message in the thread is checked and tallied too.
    extra = fake.add_attachment(face_photo_bytes[4], "later.jpg")
    discord_bot._connection.parse_message_create(  # type: ignore[arg-type]
        fake.user_message(user=alice.user, channel=thread, attachments=[extra])
    )
    await fake.wait_for(lambda: "5 accepted, 2 rejected" in tally(fake, thread), what="tally")

    # Style choices: preset, subject, background, attire, then page two and a description.
    await alice.choose(form, "hsd:preset", "legal")
    form = fake.messages[int(form["id"])]
    assert "Style: Legal" in form["content"]
    await alice.choose(form, "hsd:class", "woman")
    await alice.choose(fake.messages[int(form["id"])], "hsd:bg", "bookshelf")
    await alice.choose(fake.messages[int(form["id"])], "hsd:attire", "blazer")
    await alice.click(fake.messages[int(form["id"])], "hsd:more")
    await alice.choose(fake.messages[int(form["id"])], "hsd:grade", "ektar")
    await alice.choose(fake.messages[int(form["id"])], "hsd:count", "4")
    await alice.choose(fake.messages[int(form["id"])], "hsd:aspect", "1:1")
    opened = await alice.click(fake.messages[int(form["id"])], "hsd:custom")
    modal = fake.interaction_responses(opened)[0]
    assert modal["type"] == 9
    submit = feed(
        discord_bot,
        fake.modal_submit(
            modal["data"],
            {_text_input_id(modal["data"]): "warm smile,   soft window light"},
            user=alice.user,
            channel=thread,
            message=fake.messages[int(form["id"])],
        ),
    )
    await responded(fake, submit)
    await alice.click(fake.messages[int(form["id"])], "hsd:next")
    summary = fake.messages[int(form["id"])]
    assert summary["content"].startswith("**Summary**")
    assert "Photos: 5 accepted." in summary["content"]
    await alice.click(summary, "hsd:confirm")

    job = await submitted_job(discord_bot, alice)
    info = await discord_bot.queue.job(job)
    assert info is not None
    style = info.request.style
    assert (style.preset, style.subject_class, style.background, style.attire) == (
        "legal",
        "woman",
        "bookshelf",
        "blazer",
    )
    assert (style.colour_grade, style.count, style.aspect_ratio) == ("ektar", 4, "1:1")
    assert style.custom == "warm smile, soft window light"
    target = info.request.target
    assert target.platform == "discord" and target.chat_id == int(channel["id"])
    assert target.thread_id == int(thread["id"]) and target.user_id == alice.id
    status = fake.messages[target.status_message_id or 0]
    assert status["channel_id"] == thread["id"]
    assert status["content"].startswith("Queued: position 1, ETA")
    assert "No worker is online right now" in status["content"]  # none runs in this test
    assert fake.message_auth[int(status["id"])] == f"Bot {fake.token}"


async def sessions_of(bot: HeadshotsClient, member: Member) -> list[dict[str, Any]]:
    """The member's sessions as stored in Redis."""
    redis = bot.queue.redis
    pattern = f"hs:user:dc:{member.id}:chat:dc-session:*"
    return [json.loads(await redis.get(key)) async for key in redis.scan_iter(match=pattern)]


async def eventually(probe: Callable[[], Awaitable[Any]], what: str, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def submitted_job(bot: HeadshotsClient, member: Member) -> str:
    async def probe() -> str | None:
        return next((s["job_id"] for s in await sessions_of(bot, member) if s.get("job_id")), None)

    return str(await eventually(probe, "a submitted job"))


def _text_input_id(modal: dict[str, Any]) -> str:
    for row in modal["components"]:
        for component in row.get("components", []) if row.get("type") == 1 else [row["component"]]:
            return str(component["custom_id"])
    raise AssertionError(json.dumps(modal))


async def test_consent_says_where_the_photos_go(
    fake_discord: FakeDiscord, discord_bot: HeadshotsClient
) -> None:
    fake = fake_discord
    alice = Member(fake, discord_bot, 1001, "alice")
    payload = alice.slash("start", fake.add_text_channel(GUILD_ID))
    await responded(fake, payload)
    consent = fake.message_with(f"hsd:consent:{alice.id}:")
    assert consent is not None and int(consent["flags"]) & 64, "asked privately"
    assert "a private thread that only you and I can see" in consent["content"]
    assert "your session thread with everything in it" in consent["content"]  # what /delete does
    # Discord's pattern after a defer: the question fills the deferred reply (no followup).
    assert consent["interaction_token"] == payload["token"]
    assert not [c for c in fake.calls("POST", "/webhooks/") if payload["token"] in c.path]


async def test_no_private_threads_here_means_a_dm(
    fake_discord: FakeDiscord, discord_bot: HeadshotsClient, face_photo_bytes: list[bytes]
) -> None:
    """A channel where the bot may not open private threads: the session goes to a DM, never
    to a public thread."""
    fake = fake_discord
    alice = Member(fake, discord_bot, 1001, "alice")
    channel = fake.add_text_channel(GUILD_ID)
    fake.bot_permissions[int(channel["id"])] = ALL_PERMISSIONS & ~CREATE_PRIVATE_THREADS
    thread, _ = await alice.start_session(channel, photo_attachments(fake, face_photo_bytes[:1]))
    assert thread["type"] == 1 and thread == fake.dm_channel_of(alice.id)
    assert not fake.threads()
    assert "only you and I see this DM" in " ".join(
        str(m["content"]) for m in fake.live_messages(int(thread["id"]))
    )
    assert "1 accepted" in tally(fake, thread)


async def test_a_thread_refused_by_discord_falls_back_to_a_dm(
    fake_discord: FakeDiscord, discord_bot: HeadshotsClient, face_photo_bytes: list[bytes]
) -> None:
    fake = fake_discord
    alice = Member(fake, discord_bot, 1001, "alice")
    channel = fake.add_text_channel(GUILD_ID)
    # The permission changed between the command and the thread: Discord answers 403 / 50013.
    fake.fail_next("POST", f"/channels/{channel['id']}/threads", status=403)
    thread, _ = await alice.start_session(channel, photo_attachments(fake, face_photo_bytes[:1]))
    assert thread == fake.dm_channel_of(alice.id) and not fake.threads()


async def test_closed_dms_and_no_private_thread_are_explained(
    fake_discord: FakeDiscord, discord_bot: HeadshotsClient
) -> None:
    fake = fake_discord
    alice = Member(fake, discord_bot, 1001, "alice")
    channel = fake.add_text_channel(GUILD_ID)
    fake.bot_permissions[int(channel["id"])] = ALL_PERMISSIONS & ~CREATE_PRIVATE_THREADS
    fake.dms_closed.add(alice.id)
    payload = alice.slash("start", channel)
    await responded(fake, payload)
    consent = fake.message_with(f"hsd:consent:{alice.id}:")
    assert consent is not None
    await alice.click(consent, "hsd:consent")
    text = fake.messages[int(consent["id"])]["content"]
    assert "can't open a private thread in this channel or send you a DM" in text
    assert not await sessions_of(discord_bot, alice)


async def test_public_threads_when_configured_explain_missing_permissions(
    fake_discord: FakeDiscord,
    discord_bot_factory: Callable[..., Awaitable[HeadshotsClient]],
    face_photo_bytes: list[bytes],
) -> None:
    """An operator may choose public threads: the consent says everyone sees them, and a
    channel without the permission for them is explained, not worked around."""
    fake = fake_discord
    bot = await discord_bot_factory(discord_private_threads=False)
    alice = Member(fake, bot, 1001, "alice")
    channel = fake.add_text_channel(GUILD_ID)
    payload = alice.slash(
        "start", channel, app_permissions=ALL_PERMISSIONS & ~CREATE_PUBLIC_THREADS
    )
    text = await reply_text(fake, payload)
    assert "**Create Public Threads**" in text and "admin" in text
    assert not fake.calls("POST", f"/channels/{channel['id']}/threads")

    open_channel = fake.add_text_channel(GUILD_ID, "lobby")
    payload = alice.slash("start", open_channel)
    await responded(fake, payload)
    consent = fake.message_with(f"hsd:consent:{alice.id}:")
    assert consent is not None and "everyone who can read the channel" in consent["content"]
    thread, _ = await alice.start_session(fake.add_text_channel(GUILD_ID, "hall"), [])
    assert thread["type"] == PUBLIC_THREAD


async def test_rate_limited_edit_is_retried(
    fake_discord: FakeDiscord, discord_bot: HeadshotsClient, face_photo_bytes: list[bytes]
) -> None:
    fake = fake_discord
    alice = Member(fake, discord_bot, 1001, "alice")
    channel = fake.add_text_channel(GUILD_ID)
    thread, _ = await alice.start_session(channel, [])
    fake.fail_next("PATCH", f"/channels/{thread['id']}/messages/", status=429)
    photo = fake.add_attachment(face_photo_bytes[0], "one.jpg")
    discord_bot._connection.parse_message_create(  # type: ignore[arg-type]
        fake.user_message(user=alice.user, channel=thread, attachments=[photo])
    )
    await fake.wait_for(lambda: "1 accepted" in tally(fake, thread), what="the tally after a 429")
    statuses = [c.status for c in fake.calls("PATCH", f"/channels/{thread['id']}/messages/")]
    assert statuses == [429, 200]


async def test_bad_photos_get_reasons_and_too_few_block_confirm(
    fake_discord: FakeDiscord,
    discord_bot: HeadshotsClient,
    face_photo_bytes: list[bytes],
    group_photo_bytes: bytes,
) -> None:
    fake = fake_discord
    alice = Member(fake, discord_bot, 1001, "alice")
    channel = fake.add_text_channel(GUILD_ID)
    photos = photo_attachments(fake, face_photo_bytes[:2])
    photos.append(fake.add_attachment(group_photo_bytes, "team.jpg"))
    photos.append(fake.add_attachment(b"GIF89a broken", "fake.jpg", None))
    thread, form = await alice.start_session(channel, photos)
    text = tally(fake, thread)
    assert "2 accepted, 2 rejected" in text
    assert "photo 3 (`team.jpg`): more than one person" in text
    assert "photo 4 (`fake.jpg`):" in text
    payload = await alice.click(form, "hsd:next")
    assert "Not enough usable photos" in await reply_text(fake, payload)
    assert (await sessions_of(discord_bot, alice))[0]["stage"] == "collecting"


async def test_photos_are_numbered_in_the_order_they_were_posted(
    fake_discord: FakeDiscord,
    discord_bot: HeadshotsClient,
    face_photo_bytes: list[bytes],
    group_photo_bytes: bytes,
) -> None:
    # Each message is its own task in discord.py, so a later message can be checked first;
    # here it is even dispatched first. The numbers must follow the thread, not the checks.
    fake = fake_discord
    alice = Member(fake, discord_bot, 1001, "alice")
    channel = fake.add_text_channel(GUILD_ID)
    thread, _ = await alice.start_session(channel, photo_attachments(fake, face_photo_bytes[:2]))
    earlier = fake.user_message(
        user=alice.user, channel=thread, attachments=photo_attachments(fake, face_photo_bytes[2:4])
    )
    later = fake.user_message(
        user=alice.user,
        channel=thread,
        attachments=[fake.add_attachment(group_photo_bytes, "team.jpg")],
    )
    for message in (later, earlier):
        discord_bot._connection.parse_message_create(message)  # type: ignore[arg-type]
    await fake.wait_for(lambda: "4 accepted, 1 rejected" in tally(fake, thread), what="tally")
    assert "photo 5 (`team.jpg`): more than one person" in tally(fake, thread)


async def test_cancel_then_delete_leaves_nothing_of_the_user(
    fake_discord: FakeDiscord, discord_bot: HeadshotsClient, face_photo_bytes: list[bytes]
) -> None:
    fake = fake_discord
    alice = Member(fake, discord_bot, 1001, "alice")
    channel = fake.add_text_channel(GUILD_ID)
    thread, form = await alice.start_session(channel, photo_attachments(fake, face_photo_bytes[:4]))
    await alice.click(form, "hsd:next")
    await alice.click(fake.messages[int(form["id"])], "hsd:confirm")
    job_id = await submitted_job(discord_bot, alice)
    upload_id = (await sessions_of(discord_bot, alice))[0]["upload_id"]

    cancel = alice.slash("cancel", thread)
    assert await followup_text(fake, cancel) == "Cancelled your job: it was taken out of the queue."
    info = await discord_bot.queue.job(job_id)
    assert info is not None and info.state.value == "cancelled"
    assert fake.messages[info.request.target.status_message_id or 0]["content"].startswith("❌")

    delete = alice.slash("delete", channel)
    prompt = await responded(fake, delete)
    assert prompt["data"]["flags"] & 64 and "cannot be undone" in prompt["data"]["content"]
    prompt_message = fake.message_with(f"hsd:forget:{alice.id}:")
    assert prompt_message is not None
    bob = Member(fake, discord_bot, 1002, "bob")
    refused = await bob.click(prompt_message, "hsd:forget")
    assert "not your session" in await reply_text(fake, refused)
    await alice.click(prompt_message, "hsd:forget")
    await fake.wait_for(
        lambda: "Deleted: 1 job," in fake.messages[int(prompt_message["id"])]["content"],
        what="the report in place of the question",
    )
    assert (
        await keys_mentioning(discord_bot.queue.redis, [f"dc:{alice.id}", job_id, upload_id]) == []
    )


async def test_dm_session_works_in_the_dm_channel(
    fake_discord: FakeDiscord, discord_bot: HeadshotsClient, face_photo_bytes: list[bytes]
) -> None:
    fake = fake_discord
    alice = Member(fake, discord_bot, 1001, "alice")
    dm = fake.add_dm_channel(alice.user)
    payload = alice.slash("start", dm, app_permissions=0)
    await responded(fake, payload)
    consent = await fake.wait_for(lambda: fake.message_with("hsd:consent"), what="consent")
    await alice.click(consent, "hsd:consent")
    form = await fake.wait_for(lambda: fake.message_with("hsd:preset", int(dm["id"])), what="form")
    assert not fake.threads()
    photos = photo_attachments(fake, face_photo_bytes[:4])
    discord_bot._connection.parse_message_create(  # type: ignore[arg-type]
        fake.user_message(user=alice.user, channel=dm, attachments=photos)
    )
    await fake.wait_for(lambda: "4 accepted" in tally(fake, dm), what="tally in the DM")
    await alice.click(fake.messages[int(form["id"])], "hsd:next")
    await alice.click(fake.messages[int(form["id"])], "hsd:confirm")
    info = await discord_bot.queue.job(await submitted_job(discord_bot, alice))
    assert info is not None
    assert info.request.target.chat_id == int(dm["id"]) and info.request.target.thread_id is None


async def test_buttons_survive_a_restart_and_sync_happens_only_on_change(
    fake_discord: FakeDiscord,
    discord_bot_factory: Callable[..., Awaitable[HeadshotsClient]],
    face_photo_bytes: list[bytes],
) -> None:
    fake = fake_discord
    first = await discord_bot_factory()
    assert len(fake.calls("PUT", "/applications/")) == 1
    alice = Member(fake, first, 1001, "alice")
    channel = fake.add_text_channel(GUILD_ID)
    thread, form = await alice.start_session(channel, photo_attachments(fake, face_photo_bytes[:4]))
    # A custom-description form opened before the restart is submitted after it.
    opened = await alice.click(fake.messages[int(form["id"])], "hsd:custom")
    modal = fake.interaction_responses(opened)[0]["data"]
    await first.close()

    second = await discord_bot_factory()
    assert len(fake.calls("PUT", "/applications/")) == 1, "an unchanged tree is not synced again"
    alice.bot = second
    submit = feed(
        second,
        fake.modal_submit(
            modal,
            {_text_input_id(modal): "navy turtleneck"},
            user=alice.user,
            channel=thread,
            message=fake.messages[int(form["id"])],
        ),
    )
    await responded(fake, submit)
    (session,) = await sessions_of(second, alice)
    assert session["style"]["custom"] == "navy turtleneck"
    await alice.choose(fake.messages[int(form["id"])], "hsd:preset", "healthcare")
    assert "Style: Healthcare" in fake.messages[int(form["id"])]["content"]
    await alice.click(fake.messages[int(form["id"])], "hsd:next")
    await alice.click(fake.messages[int(form["id"])], "hsd:confirm")
    info = await second.queue.job(await submitted_job(second, alice))
    assert info is not None and info.request.style.preset == "healthcare"


async def test_limits_are_explained(
    fake_discord: FakeDiscord,
    discord_bot_factory: Callable[..., Awaitable[HeadshotsClient]],
    face_photo_bytes: list[bytes],
) -> None:
    fake = fake_discord
    bot = await discord_bot_factory(max_jobs_per_day=0)
    alice = Member(fake, bot, 1001, "alice")
    channel = fake.add_text_channel(GUILD_ID)
    thread, form = await alice.start_session(channel, photo_attachments(fake, face_photo_bytes[:4]))
    await alice.click(form, "hsd:next")
    await alice.click(fake.messages[int(form["id"])], "hsd:confirm")
    limit = await fake.wait_for(
        lambda: next(
            (m for m in fake.live_messages(int(thread["id"])) if "limit" in m["content"]), None
        ),
        what="the limit message",
    )
    assert "today's limit of 0 jobs" in limit["content"]
    # The form comes back so the user can confirm later.
    await fake.wait_for(
        lambda: fake.message_with("hsd:next", int(thread["id"])), what="the form again"
    )
    assert await bot.queue.active_job(alice.ref) is None


async def test_privacy_styles_and_status_answer_privately(
    fake_discord: FakeDiscord, discord_bot: HeadshotsClient
) -> None:
    fake = fake_discord
    alice = Member(fake, discord_bot, 1001, "alice")
    channel = fake.add_text_channel(GUILD_ID)
    privacy = await responded(fake, alice.slash("privacy", channel))
    assert privacy["data"]["flags"] & 64 and "24 hours" in privacy["data"]["content"]
    styles = await responded(fake, alice.slash("styles", channel))
    assert "**Legal**: backgrounds" in styles["data"]["content"]
    status = alice.slash("status", channel)
    assert "Nothing in progress" in await followup_text(fake, status)


pytestmark = pytest.mark.usefixtures("redis_client")


def test_bot_imports_no_generation_stack() -> None:
    """The bot process (and its lazy face checks) must never pull in torch or diffusers."""
    script = (
        "import sys, headshots.bot.discord, headshots.bot.discord.client, "
        "headshots.generation.faces\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'onnxruntime') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


async def test_result_buttons_more_like_and_new_style(
    fake_discord: FakeDiscord,
    discord_bot_factory: Callable[..., Awaitable[HeadshotsClient]],
    face_photo_bytes: list[bytes],
) -> None:
    fake = fake_discord
    bot = await discord_bot_factory(max_active_jobs_per_user=0)
    alice = Member(fake, bot, 1001, "alice")
    channel = fake.add_text_channel(GUILD_ID)
    thread, form = await alice.start_session(channel, photo_attachments(fake, face_photo_bytes[:4]))
    await alice.click(form, "hsd:next")
    await alice.click(fake.messages[int(form["id"])], "hsd:confirm")
    job_id = await submitted_job(bot, alice)
    first = await bot.queue.job(job_id)
    assert first is not None
    # The buttons the worker puts under results (plain custom_ids from headshots.actions).
    results = fake._message_payload(
        int(thread["id"]),
        "Your headshots",
        components=[
            {
                "type": 1,
                "components": [
                    {"type": 2, "style": 2, "label": "x", "custom_id": f"hs:ml:{job_id}:1"},
                    {"type": 2, "style": 2, "label": "y", "custom_id": f"hs:ns:{job_id}"},
                ],
            }
        ],
    )
    fake.messages[int(results["id"])] = results

    await alice.click(results, f"hs:ml:{job_id}:1")
    await alice.click(results, f"hs:ml:{job_id}:1")  # deliberate repeat: a second job

    async def more_like_jobs() -> list[Any]:
        jobs = await bot.queue.user_jobs(alice.ref)
        found = [j for j in jobs if j.request.kind == "more_like"]
        return found if len(found) == 2 else []

    for job in await eventually(more_like_jobs, "two 'more like' jobs"):
        assert job.request.like_rank == 1 and job.request.lora_job_id == job_id
        assert job.request.style == first.request.style
        assert job.request.target.thread_id == int(thread["id"])

    await alice.click(results, f"hs:ns:{job_id}")
    new_form = await fake.wait_for(
        lambda: next(
            (
                m
                for m in fake.live_messages(int(thread["id"]))
                if "**New style**" in m["content"] and int(m["id"]) != int(form["id"])
            ),
            None,
        ),
        what="the new-style form",
    )
    await alice.choose(new_form, "hsd:preset", "creative")
    await alice.click(fake.messages[int(new_form["id"])], "hsd:next")
    await alice.click(fake.messages[int(new_form["id"])], "hsd:confirm")

    async def new_style_job() -> Any:
        jobs = await bot.queue.user_jobs(alice.ref)
        return next((j for j in jobs if j.request.kind == "new_style"), None)

    job = await eventually(new_style_job, "a new-style job")
    assert job.request.lora_job_id == job_id and job.request.upload_id == first.request.upload_id
    assert job.request.style.preset == "creative"


async def test_the_bot_dials_the_gateway_its_configured_api_advertises(
    fake_discord: FakeDiscord, discord_bot: HeadshotsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With HEADSHOTS_DISCORD_API_URL set, the websocket goes where that API's
    ``GET /gateway/bot`` says, not to discord.gg (the token must not leave for another host)."""
    from discord.gateway import DiscordWebSocket

    from headshots.bot.discord import _use_advertised_gateway

    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", DiscordWebSocket.DEFAULT_GATEWAY)
    await _use_advertised_gateway(discord_bot)
    assert fake_discord.calls("GET", "/gateway/bot")
    assert str(DiscordWebSocket.DEFAULT_GATEWAY) == fake_discord.gateway.url


def posted_counts(text: str) -> int:
    """How many photos a tally has counted (accepted and rejected)."""
    found = re.search(r"(\d+) accepted, (\d+) rejected", text)
    return int(found[1]) + int(found[2]) if found else 0


async def test_a_press_while_ten_selfies_are_checked_is_acknowledged_at_once(
    fake_discord: FakeDiscord, discord_bot: HeadshotsClient, face_photo_bytes: list[bytes]
) -> None:
    """The photo check holds the session for seconds; a press meanwhile is deferred at once
    (Discord refuses an initial response after 3 s) and finished when the check is done."""
    fake = fake_discord
    alice = Member(fake, discord_bot, 1001, "alice")
    channel = fake.add_text_channel(GUILD_ID)
    thread, form = await alice.start_session(channel, [])
    fake.attachment_delay_s = 0.4  # ten downloads, one after the other: over 4 s in the check
    selfies = photo_attachments(fake, (face_photo_bytes * 2)[:10])  # the most a message holds
    posted = time.monotonic()
    discord_bot._connection.parse_message_create(  # type: ignore[arg-type]
        fake.user_message(user=alice.user, channel=thread, attachments=selfies)
    )
    await asyncio.sleep(0.5)
    preset = next(c for c in fake.custom_ids(form) if c.startswith("hsd:preset"))
    press = feed(discord_bot, fake.select(form, preset, ["legal"], user=alice.user))

    await responded(fake, press)
    assert (fake.acknowledged_after(press) or 99.0) < 1.0
    await fake.wait_for(
        lambda: "Style: Legal" in fake.messages[int(form["id"])]["content"],
        within=60,
        what="the choice, once the check let go of the session",
    )
    assert time.monotonic() - posted > 3.5, "the check held the session past Discord's 3 s"
    await fake.wait_for(lambda: posted_counts(tally(fake, thread)) == 10, what="the tally")
    assert not fake.refused_callbacks()


async def test_the_fake_refuses_late_and_second_acknowledgements(
    fake_discord: FakeDiscord,
) -> None:
    """The rules the test above relies on: 10062 after 3 s, 40060 for a second answer."""
    import aiohttp

    fake = fake_discord
    user = fake.add_user(1001, "alice")
    channel = fake.add_text_channel(GUILD_ID)
    late, prompt = (fake.slash("help", user=user, channel=channel) for _ in range(2))
    fake._interactions[late["token"]].created_at -= 3.1
    async with aiohttp.ClientSession() as http:

        async def callback(payload: dict[str, Any]) -> tuple[int, Any]:
            url = f"{fake.api_base}/interactions/{payload['id']}/{payload['token']}/callback"
            async with http.post(url, json={"type": 5, "data": {"flags": 64}}) as response:
                return response.status, await response.json()

        assert await callback(late) == (404, {"message": "Unknown interaction", "code": 10062})
        assert (await callback(prompt))[0] == 200
        status, body = await callback(prompt)
        assert (status, body["code"]) == (400, 40060)


def worker_post(fake: FakeDiscord, channel: dict[str, Any], job_id: str) -> dict[str, Any]:
    """What the worker posts with the bot token: an album of files, then the result buttons."""
    album = fake._message_payload(int(channel["id"]), "#1 · AI-generated")
    fake._apply_message_data(album, {}, [UploadedFile("files[0]", "headshot-01.png", "", b"x")])
    fake.messages[int(album["id"])] = album
    button = {"type": 2, "style": 4, "label": "Delete my data", "custom_id": f"hs:dl:{job_id}"}
    sheet = fake._message_payload(
        int(channel["id"]), "Contact sheet", components=[{"type": 1, "components": [button]}]
    )
    fake.messages[int(sheet["id"])] = sheet
    return sheet


async def ordered_session(
    fake: FakeDiscord,
    bot: HeadshotsClient,
    alice: Member,
    channel: dict[str, Any],
    photos: list[bytes],
) -> tuple[dict[str, Any], str]:
    """A session with photos attached to /start and one more posted, confirmed: (place, job)."""
    place, form = await alice.start_session(channel, photo_attachments(fake, photos[:3]))
    bot._connection.parse_message_create(  # type: ignore[arg-type]
        fake.user_message(
            user=alice.user, channel=place, attachments=photo_attachments(fake, photos[3:5])
        )
    )
    await fake.wait_for(lambda: posted_counts(tally(fake, place)) == 5, what="the tally")
    await alice.click(fake.messages[int(form["id"])], "hsd:next")
    await alice.click(fake.messages[int(form["id"])], "hsd:confirm")
    return place, await submitted_job(bot, alice)


async def delete_from_results(fake: FakeDiscord, alice: Member, sheet: dict[str, Any]) -> str:
    """Press "Delete my data" under the results, then "Yes"; the report."""
    await alice.click(sheet, "hs:dl:")
    prompt = fake.message_with(f"hsd:forget:{alice.id}:")
    assert prompt is not None and int(prompt["flags"]) & 64
    await alice.click(prompt, f"hsd:forget:{alice.id}:")
    return str(fake.messages[int(prompt["id"])]["content"])


def seen_by(fake: FakeDiscord, user_id: int, author_id: int) -> list[dict[str, Any]]:
    """Messages of ``author_id`` that ``user_id`` can still see anywhere (the delete report
    aside)."""
    return [
        m
        for m in fake.live_messages()
        if int(m["author"]["id"]) == author_id
        and fake.visible_to(user_id, int(m["channel_id"]))
        and not int(m.get("flags", 0) or 0) & 64
        and not str(m["content"]).startswith("Deleted:")
    ]


async def test_delete_my_data_takes_the_session_thread_with_it(
    fake_discord: FakeDiscord, discord_bot: HeadshotsClient, face_photo_bytes: list[bytes]
) -> None:
    fake = fake_discord
    alice = Member(fake, discord_bot, 1001, "alice")
    channel = fake.add_text_channel(GUILD_ID)
    thread, job_id = await ordered_session(fake, discord_bot, alice, channel, face_photo_bytes)
    sheet = worker_post(fake, thread, job_id)
    assert seen_by(fake, alice.id, alice.id) and seen_by(fake, alice.id, fake.bot_id)

    report = await delete_from_results(fake, alice, sheet)

    assert fake.channels[int(thread["id"])].get("deleted"), "the private thread went whole"
    assert not seen_by(fake, alice.id, alice.id), "no selfie of hers is left in the chat"
    assert not seen_by(fake, alice.id, fake.bot_id), "nor anything the bot posted for her"
    assert report.startswith("Deleted: 1 job,") and "1 session thread with everything" in report
    assert report.endswith("Nothing of yours is left.")
    assert await keys_mentioning(discord_bot.queue.redis, [f"dc:{alice.id}", job_id]) == []
    # The reply lived in the deleted thread: the report comes by DM too.
    dm = fake.dm_channel_of(alice.id)
    assert dm is not None and any(
        "Nothing of yours is left" in m["content"] for m in fake.live_messages(int(dm["id"]))
    )


async def test_without_manage_threads_messages_go_one_by_one_and_the_rest_is_named(
    fake_discord: FakeDiscord, discord_bot: HeadshotsClient, face_photo_bytes: list[bytes]
) -> None:
    """No Manage Threads: the bot deletes its own messages; without Manage Messages too, the
    person's photos stay and the report says where and that they are theirs to delete."""
    fake = fake_discord
    alice = Member(fake, discord_bot, 1001, "alice")
    channel = fake.add_text_channel(GUILD_ID, "general")
    thread, job_id = await ordered_session(fake, discord_bot, alice, channel, face_photo_bytes)
    sheet = worker_post(fake, thread, job_id)
    fake.bot_permissions[int(channel["id"])] = ALL_PERMISSIONS & ~MANAGE_THREADS & ~MANAGE_MESSAGES
    fake.fail_next("DELETE", f"/channels/{thread['id']}/messages/", status=429, times=2)

    report = await delete_from_results(fake, alice, sheet)

    assert not fake.channels[int(thread["id"])].get("deleted")
    assert not seen_by(fake, alice.id, fake.bot_id), "a 429 on the way left nothing of the bot's"
    assert len(seen_by(fake, alice.id, alice.id)) == 1  # her message with two photos
    assert "Still in the chat:" in report
    assert "the 2 photos you sent in your session thread in #general on " in report
    assert "they are yours to delete" in report
    statuses = [c.status for c in fake.calls("DELETE", f"/channels/{thread['id']}/messages/")]
    assert statuses.count(429) == 2, statuses  # retried, not given up on

    # With Manage Messages, her photos go too.
    alice2 = Member(fake, discord_bot, 1003, "carol")
    fake.bot_permissions[int(channel["id"])] = ALL_PERMISSIONS & ~MANAGE_THREADS
    thread2, job2 = await ordered_session(fake, discord_bot, alice2, channel, face_photo_bytes)
    report = await delete_from_results(fake, alice2, worker_post(fake, thread2, job2))
    assert not seen_by(fake, alice2.id, alice2.id) and report.endswith("Nothing of yours is left.")


async def test_delete_in_a_dm_removes_the_bots_messages_and_names_the_persons(
    fake_discord: FakeDiscord, discord_bot: HeadshotsClient, face_photo_bytes: list[bytes]
) -> None:
    fake = fake_discord
    alice = Member(fake, discord_bot, 1001, "alice")
    dm = fake.add_dm_channel(alice.user)
    place, job_id = await ordered_session(fake, discord_bot, alice, dm, face_photo_bytes)
    assert place["id"] == dm["id"]
    worker_post(fake, dm, job_id)

    delete = alice.slash("delete", dm)
    await responded(fake, delete)
    prompt = fake.message_with(f"hsd:forget:{alice.id}:")
    assert prompt is not None
    await alice.click(prompt, f"hsd:forget:{alice.id}:")
    report = str(fake.messages[int(prompt["id"])]["content"])

    assert not seen_by(fake, alice.id, fake.bot_id)
    assert "the 2 photos you sent in our DM on " in report and "yours to delete" in report
    # A bot cannot delete what the other side of a DM wrote: it does not try.
    assert all(c.status == 204 for c in fake.calls("DELETE", f"/channels/{dm['id']}/messages/"))


async def test_without_message_content_selfies_come_attached_to_a_command(
    fake_discord: FakeDiscord, discord_bot: HeadshotsClient, face_photo_bytes: list[bytes]
) -> None:
    """Without the Message Content intent a thread's messages arrive empty: the session says
    to attach selfies to /headshot start or add, and a message that may have held photos gets
    that answer rather than silence."""
    fake = fake_discord
    discord_bot._connection._intents.message_content = False  # as Discord refused the intent
    alice = Member(fake, discord_bot, 1001, "alice")
    channel = fake.add_text_channel(GUILD_ID)
    thread, _ = await alice.start_session(channel, [])
    said = " ".join(str(m["content"]) for m in fake.live_messages(int(thread["id"])))
    assert "attach 4–30 selfies to `/headshot start` (or `/headshot add`)" in said
    assert "Attach 4–30 selfies to `/headshot add`" in tally(fake, thread)

    # Photos posted as a message: Discord delivers it without attachments or text.
    discord_bot._connection.parse_message_create(  # type: ignore[arg-type]
        fake.user_message(user=alice.user, channel=thread)
    )
    await fake.wait_for(
        lambda: any(
            "I can't see photos posted as messages here" in str(m["content"])
            for m in fake.live_messages(int(thread["id"]))
        ),
        what="the hint instead of silence",
    )

    added = alice.slash("add", thread, attachments=photo_attachments(fake, face_photo_bytes[:3]))
    assert "Got 3 files" in await reply_text(fake, added)
    assert "3 accepted" in tally(fake, thread)
    again = alice.slash("start", thread, attachments=photo_attachments(fake, face_photo_bytes[3:4]))
    await responded(fake, again)
    await fake.wait_for(lambda: "4 accepted" in tally(fake, thread), what="start adds here too")

    elsewhere = alice.slash(
        "add", channel, attachments=photo_attachments(fake, face_photo_bytes[:1])
    )
    assert "adds selfies to a session" in await reply_text(fake, elsewhere)


async def test_as_in_my_photos_hides_the_hair_length_on_the_form(
    fake_discord: FakeDiscord, discord_bot: HeadshotsClient
) -> None:
    """The rule Telegram's one-at-a-time questions follow holds on Discord's form too."""
    fake = fake_discord
    alice = Member(fake, discord_bot, 1001, "alice")
    _, form = await alice.start_session(fake.add_text_channel(GUILD_ID), [])
    await alice.click(form, "hsd:more")
    await alice.click(fake.messages[int(form["id"])], "hsd:you")

    def selects() -> list[str]:
        return [c.split(":")[1] for c in fake.custom_ids(fake.messages[int(form["id"])])]

    assert "hair" in selects() and "length" not in selects()
    await alice.choose(fake.messages[int(form["id"])], "hsd:hair", "blonde")
    assert "length" in selects()
    await alice.choose(fake.messages[int(form["id"])], "hsd:length", "long")
    await alice.choose(fake.messages[int(form["id"])], "hsd:hair", "default")
    assert "length" not in selects()
    (session,) = await sessions_of(discord_bot, alice)
    assert session["style"]["attributes"]["hair_length"] is None, "no length left behind"


def test_discord_results_carry_no_originals_button() -> None:
    """Discord keeps attachments byte for byte: the album already is the files."""
    from headshots.actions import result_actions
    from headshots.queue.delivery.discord import action_view

    for team in (False, True):
        view = action_view(result_actions("job1", [1, 2], team=team, missing=0))
        assert view is not None
        ids = [str(getattr(item, "custom_id", "")) for item in view.children]
        assert ids and not [i for i in ids if i.startswith("hs:og:")]


async def test_an_old_originals_button_says_the_files_are_the_originals(
    fake_discord: FakeDiscord, discord_bot: HeadshotsClient, face_photo_bytes: list[bytes]
) -> None:
    fake = fake_discord
    alice = Member(fake, discord_bot, 1001, "alice")
    channel = fake.add_text_channel(GUILD_ID)
    thread, job_id = await ordered_session(fake, discord_bot, alice, channel, face_photo_bytes)
    button = {"type": 2, "style": 2, "label": "Originals", "custom_id": f"hs:og:{job_id}"}
    old = fake._message_payload(
        int(thread["id"]), "Contact sheet", components=[{"type": 1, "components": [button]}]
    )
    fake.messages[int(old["id"])] = old
    before = len(fake.uploads())
    pressed = await alice.click(old, "hs:og:")
    assert "The files above are the originals" in await fake.answer_to(pressed)
    assert len(fake.uploads()) == before, "nothing is sent twice"
