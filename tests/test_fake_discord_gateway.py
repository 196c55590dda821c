"""The fake Discord gateway with the bot's real start-up path (``headshots bot discord``'s).

``_run_client`` logs in over REST, asks ``GET /gateway/bot`` where to connect (the API is the
fake), opens the websocket and identifies; interactions and messages dispatched over the socket
get their answers over REST; a dropped socket is reconnected (RESUME refused, IDENTIFY again) and
what was dispatched meanwhile is lost, as on Discord.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import discord
import pytest

from headshots.bot.discord import _run_client
from headshots.queue.client import QueueClient
from headshots.settings import Settings
from tests.fake_discord import FakeDiscord
from tests.test_bot_discord import GUILD_ID, photo_attachments, responded, tally


@pytest.fixture
async def gateway_bot(
    fake_discord: FakeDiscord,
    redis_client: Any,
    redis_url: str,
    settings_factory: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[QueueClient]:
    """The bot as ``headshots bot discord`` runs it, connected to the fake's gateway."""
    # _run_client points discord.py's class-wide gateway at the fake: undone after the test.
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket,
        "DEFAULT_GATEWAY",
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
    )
    fake_discord.gateway.add_guild(GUILD_ID, "Office")
    settings = settings_factory(
        discord_token=fake_discord.token, discord_api_url=fake_discord.api_base
    )
    queue = await QueueClient.connect(settings, redis_url)
    task = asyncio.create_task(_run_client(settings, queue, fake_discord.token))
    try:
        await fake_discord.gateway.wait_identified(1)
        yield queue
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await queue.close()


async def test_bot_answers_over_the_gateway_and_reconnects_after_a_drop(
    fake_discord: FakeDiscord, gateway_bot: QueueClient
) -> None:
    fake, gateway = fake_discord, fake_discord.gateway
    assert fake.calls("GET", "/gateway/bot"), "the bot never asked the API for its gateway"
    (first,) = gateway.connections
    assert first.intents & (1 << 15), "the Message Content intent is asked for"
    assert first.heartbeats >= 1, "discord.py beats at once after HELLO"
    channel = fake.add_text_channel(GUILD_ID)
    alice = fake.add_user(1001, "alice")

    styles = fake.slash("styles", user=alice, channel=channel)
    assert await gateway.interaction(styles)
    answer = await responded(fake, styles)
    assert answer["type"] in (4, 5), answer

    # The gateway drops the socket: what is dispatched before the bot is back reaches nobody.
    await gateway.drop_connections()
    missed = fake.slash("styles", user=alice, channel=channel)
    assert not await gateway.interaction(missed)
    assert gateway.lost_events[-1] == ("INTERACTION_CREATE", missed)
    await gateway.wait_identified(2)
    assert gateway.resumes >= 1, "discord.py tries to RESUME first"
    # In a 429 window every 2nd REST call is refused; discord.py waits retry_after and retries.
    fake.fail_for(120, 429, every=2)
    answers = []
    for _ in range(3):
        again = fake.slash("styles", user=alice, channel=channel)
        assert await gateway.interaction(again)
        answers.append((await responded(fake, again))["type"])
    fake.fail_for(0)  # the window closes
    assert fake.outage_failures >= 1 and all(a in (4, 5) for a in answers)
    refused = [c for c in fake.calls("POST", "/interactions/") if c.status == 429]
    assert refused, "the window refused no interaction callback"
    assert not fake.interaction_responses(missed)


async def test_photos_posted_as_a_message_arrive_over_the_gateway(
    fake_discord: FakeDiscord, gateway_bot: QueueClient, face_photo_bytes: list[bytes]
) -> None:
    fake, gateway = fake_discord, fake_discord.gateway
    bob = fake.add_user(1002, "bob")
    dm = fake.add_dm_channel(bob)
    start = fake.slash("start", user=bob, channel=dm, app_permissions=0)
    assert await gateway.interaction(start)
    await responded(fake, start)
    consent = await fake.wait_for(lambda: fake.message_with("hsd:consent:1002:"), what="consent")
    click = fake.click(consent, fake.custom_ids(consent)[0], user=bob, channel=dm)
    assert await gateway.interaction(click)
    await fake.wait_for(lambda: fake.message_with("hsd:preset", int(dm["id"])), what="form")

    # Every REST call answers 502 until one has been refused (whenever the check gets there):
    # the tally still arrives, discord.py retries a 5xx after a second.
    fake.fail_for(120, 502, every=1)
    posted = fake.user_message(
        user=bob, channel=dm, attachments=photo_attachments(fake, face_photo_bytes[:4])
    )
    assert await gateway.message(posted)
    await fake.wait_for(lambda: fake.outage_failures >= 1, what="a refused call", within=60)
    fake.fail_for(0)
    await fake.wait_for(lambda: "4 accepted" in tally(fake, dm), what="the tally", within=60)
    assert not [c for c in fake.calls("GET", "/attachments/") if c.status != 200], (
        "attachment downloads (the CDN) are outside the outage"
    )


async def test_a_restarted_bot_writes_the_tally_it_owed(
    fake_discord: FakeDiscord,
    redis_client: Any,
    redis_url: str,
    settings_factory: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    face_photo_bytes: list[bytes],
) -> None:
    # The first bot stores the photos but cannot write their tally (as if its process died
    # right then); the next one to connect writes it (``Flow.refresh_due_tallies``).
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket,
        "DEFAULT_GATEWAY",
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
    )
    fake, gateway = fake_discord, fake_discord.gateway
    settings = settings_factory(discord_token=fake.token, discord_api_url=fake.api_base)
    queue = await QueueClient.connect(settings, redis_url)
    first = asyncio.create_task(_run_client(settings, queue, fake.token))
    second: asyncio.Task[None] | None = None
    try:
        await gateway.wait_identified(1)
        carol = fake.add_user(1003, "carol")
        dm = fake.add_dm_channel(carol)
        start = fake.slash("start", user=carol, channel=dm, app_permissions=0)
        assert await gateway.interaction(start)
        await responded(fake, start)
        consent = await fake.wait_for(
            lambda: fake.message_with("hsd:consent:1003:"), what="consent"
        )
        click = fake.click(consent, fake.custom_ids(consent)[0], user=carol, channel=dm)
        assert await gateway.interaction(click)
        await fake.wait_for(lambda: fake.message_with("hsd:preset", int(dm["id"])), what="form")

        edits = f"/channels/{dm['id']}/messages/"
        fake.fail_next("PATCH", edits, status=400)
        posted = fake.user_message(
            user=carol, channel=dm, attachments=photo_attachments(fake, face_photo_bytes[:4])
        )
        assert await gateway.message(posted)
        await fake.wait_for(
            lambda: [c for c in fake.calls("PATCH", edits) if c.status == 400],
            what="the refused tally",
            within=60,
        )
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        assert "4 accepted" not in tally(fake, dm)

        second = asyncio.create_task(_run_client(settings, queue, fake.token))
        await gateway.wait_identified(2)
        await fake.wait_for(lambda: "4 accepted" in tally(fake, dm), what="the owed tally")
    finally:
        for task in (first, second):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await queue.close()
