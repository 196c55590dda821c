"""``/delete`` leaves nothing: not in teams whatever their TTLs, not after a handler in flight."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from PIL import Image
from redis.asyncio import Redis

from headshots.bot.conversation.state import Conversation, Place, Store
from headshots.errors import NotFound
from headshots.queue import constants
from headshots.queue.chat_log import ChatLog, Posted
from headshots.queue.client import QueueClient
from headshots.queue.contracts import ChatTarget, UserRef
from headshots.queue.teams import LOGO_PATH, BrandKit, TeamStore, team_id_for, team_store_key
from headshots.settings import Settings
from tests.queue_helpers import jpeg, keys_mentioning

T = TypeVar("T")
DAY_S = 86400
GROUP = ChatTarget(platform="telegram", chat_id=-100900, user_id=1)
ADMIN = UserRef(platform="telegram", user_id=99)
MEMBER = UserRef(platform="telegram", user_id=11)


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 50), (20, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
async def client(settings_factory: Callable[..., Settings], queue_client_factory: Any) -> Any:
    return await queue_client_factory(settings_factory())


def teams_of(client: QueueClient) -> TeamStore:
    return TeamStore(client.redis, client.store, client.settings)


async def let_days_pass(redis: Redis, days: float) -> None:
    """What ``days`` do to the keyspace: every TTL shrinks by them, what runs out is gone."""
    age_ms = int(days * DAY_S * 1000)
    async for key in redis.scan_iter(count=1000):
        left_ms = await redis.pttl(key)
        if left_ms < 0:  # no TTL (the salt, the local store's expiry index)
            continue
        if left_ms <= age_ms:
            await redis.delete(key)
        else:
            await redis.pexpire(key, left_ms - age_ms)


def in_a_task(work: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
    """``work`` as a chat update runs: in an asyncio task of its own."""

    async def run() -> T:
        return await work()

    return asyncio.get_running_loop().create_task(run())


# --- item 5: team records, whatever the TTLs ----------------------------------------------
async def test_a_member_who_deletes_on_day_31_leaves_every_team_record(client: QueueClient) -> None:
    teams = teams_of(client)
    team_id = team_id_for("telegram", GROUP.chat_id)
    await teams.save_kit(team_id, "telegram", BrandKit(team_name="Acme"), GROUP, admin_id=99)
    await teams.set_logo(team_id, png())
    await teams.join(team_id, MEMBER.key, "Ann")  # day 0
    await teams.join(team_id, "tg:12", "Bob")
    await teams.record_job(team_id, MEMBER.key, "job-1")

    await let_days_pass(client.redis, 29)
    # Day 29: Ann picks her favourite; the team's records are written again.
    await teams.pick_favourite(team_id, MEMBER.key, "job-1", 1, png())
    ttls = [
        await client.redis.ttl(key)
        for key in (
            constants.team_key(team_id),
            constants.team_members_key(team_id),
            constants.user_teams_key(MEMBER.key),
            constants.user_teams_key("tg:12"),
            f"{constants.BLOB_PREFIX}{team_store_key(team_id)}:{LOGO_PATH}",
        )
    ]
    assert max(ttls) - min(ttls) <= 5, f"every team key's TTL moves together: {ttls}"

    await let_days_pass(client.redis, 2)  # day 31
    assert [m.user_key for m in await teams.members(team_id)] == [MEMBER.key, "tg:12"]
    report = await client.forget(MEMBER)
    assert report is not None
    assert await keys_mentioning(client.redis, [MEMBER.key, "tg_11"]) == []
    assert [m.user_key for m in await teams.members(team_id)] == ["tg:12"]

    # An admin's delete takes their id out of the team; the kit stays for the others.
    await client.forget(ADMIN)
    team = await teams.require(team_id)
    assert team.admins == [] and team.kit.team_name == "Acme"

    # A member whose set of teams is gone altogether (a Redis that lost writes) is found too.
    await client.redis.delete(constants.user_teams_key("tg:12"))
    await client.forget("tg:12")
    assert await keys_mentioning(client.redis, ["tg:12", "tg_12"]) == []
    assert await teams.members(team_id) == []


# --- item 8: a handler in flight writes nothing back ---------------------------------------
async def test_a_conversation_saved_after_the_delete_is_not_written_back(
    client: QueueClient,
) -> None:
    store = Store(client)
    chat_log = ChatLog(client.redis, ttl_s=3600)
    place = Place(GROUP.chat_id, is_group=True)
    await store.save(MEMBER, place, Conversation(owner_id=11, place=place, stage="collecting"))
    loaded, deleted = asyncio.Event(), asyncio.Event()

    async def handler() -> None:  # a photo arrives: load, work on it, save
        conversation = await store.load(MEMBER, place)
        assert conversation is not None
        loaded.set()
        await deleted.wait()  # meanwhile the person sends /delete in another chat
        conversation.next_index += 1
        await client.add_selfie(MEMBER, "up1", 1, jpeg())
        await store.save(MEMBER, place, conversation)
        await store.put(MEMBER, "session-pointer", {"team_id": "x"})
        # The bot's reply, posted after the delete, is not recorded for a later /delete.
        await chat_log.add(MEMBER, Posted(chat_id=GROUP.chat_id, message_id=7))

    async def delete() -> None:
        await loaded.wait()
        await client.forget(MEMBER)
        deleted.set()

    running = in_a_task(handler)
    await in_a_task(delete)
    await running
    assert await keys_mentioning(client.redis, [MEMBER.key, "tg_11"]) == []

    # /start right after /delete is a new conversation, and it is kept.
    async def start_again() -> None:
        assert await store.load(MEMBER, place) is None
        await store.save(MEMBER, place, Conversation(owner_id=11, place=place))
        await store.record_consent(MEMBER)

    await in_a_task(start_again)
    assert await store.load(MEMBER, place) is not None and await store.consented(MEMBER)
    # The delete marker holds no id, and does not outlive in-flight handlers by much.
    [marker] = [k async for k in client.redis.scan_iter(match="hs:forgotten:*")]
    assert MEMBER.key.encode() not in marker
    assert 0 < await client.redis.ttl(marker) <= constants.FORGOTTEN_TTL_S


class PausingStore:
    """The blob store, pausing after each put until the test lets it go on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.put_done, self.go_on = asyncio.Event(), asyncio.Event()

    async def put(self, *args: Any) -> None:
        await self.inner.put(*args)
        self.put_done.set()
        await self.go_on.wait()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_team_writes_in_flight_lose_to_the_delete(client: QueueClient) -> None:
    teams = teams_of(client)
    team_id = team_id_for("telegram", GROUP.chat_id)
    await teams.save_kit(team_id, "telegram", BrandKit(), GROUP, admin_id=ADMIN.user_id)
    await teams.join(team_id, MEMBER.key, "Ann")
    await teams.record_job(team_id, MEMBER.key, "job-1")
    paused = PausingStore(client.store)
    admin_read = asyncio.Event()

    async def member_picks() -> None:  # the copy is stored, then the person deletes
        member_teams = TeamStore(client.redis, paused, client.settings)  # type: ignore[arg-type]
        with pytest.raises(NotFound):
            await member_teams.pick_favourite(team_id, MEMBER.key, "job-1", 1, png())

    async def admin_saves_the_kit() -> None:
        await Store(client).raw(ADMIN, "kit")  # the admin's kit draft is read first
        admin_read.set()
        await paused.go_on.wait()
        with pytest.raises(NotFound):
            await teams.save_kit(team_id, "telegram", BrandKit(), GROUP, admin_id=ADMIN.user_id)

    async def both_delete() -> None:
        await paused.put_done.wait()
        await admin_read.wait()
        await client.forget(MEMBER)
        await client.forget(ADMIN)
        paused.go_on.set()

    handlers = [in_a_task(member_picks), in_a_task(admin_saves_the_kit)]
    await in_a_task(both_delete)
    await asyncio.gather(*handlers)
    assert await keys_mentioning(client.redis, [MEMBER.key, "tg_11"]) == []
    assert (await teams.require(team_id)).admins == []

    # Joining (and setting the kit up) again after the delete works.
    async def join_again() -> None:
        await Store(client).raw(MEMBER, "team")
        await teams.join(team_id, MEMBER.key, "Ann")
        await teams.record_job(team_id, MEMBER.key, "job-2")
        await teams.save_kit(team_id, "telegram", BrandKit(), GROUP, admin_id=ADMIN.user_id)

    await in_a_task(join_again)
    member = await teams.member(team_id, MEMBER.key)
    assert member is not None and member.job_ids == ["job-2"]
    assert (await teams.require(team_id)).admins == [ADMIN.user_id]
