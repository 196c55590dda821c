"""Redis connections: a frozen Redis gets people an answer in seconds, not when it wakes."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from headshots.errors import OperationalError, StoreUnavailable
from headshots.queue.client import QueueClient
from headshots.queue.connections import RedisTimeouts, StoreTimeout, connect
from headshots.queue.contracts import UserRef
from headshots.queue.embedded import EmbeddedRedis
from headshots.settings import Settings
from tests.fake_telegram import FakeChat, FakeTelegram, FakeUser
from tests.plugins.telegram import ChatDriver

USER = UserRef(platform="telegram", user_id=31)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own: it gets frozen, the session's shared one must not."""
    server = EmbeddedRedis(tmp_path / "frozen-redis", persist=False)
    server.start()
    try:
        yield server
    finally:
        assert server.pid is not None
        os.kill(server.pid, signal.SIGCONT)
        server.stop()


async def _timed(call: Any) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        await call
    except BaseException as exc:
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


def test_settings_reach_the_redis_client(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(redis_read_timeout_s=1.5, redis_retries=5)
    options = RedisTimeouts.from_settings(settings).client_options()
    assert options["socket_timeout"] == 1.5 and options["socket_connect_timeout"] == 2.0
    assert options["health_check_interval"] == 30.0
    assert options["retry"]._retries == 5


async def test_a_frozen_redis_fails_fast_with_our_error_then_works_again(
    own_redis: EmbeddedRedis, settings_factory: Callable[..., Settings]
) -> None:
    # Default timeouts: they are what promises an answer within 10 s.
    settings = settings_factory(redis_url=own_redis.url)
    client = await QueueClient.connect(settings, own_redis.url)
    # A second client whose idle connection is due for a PING health check: that path must
    # not add its own retries on top of the command's.
    idle = await connect(own_redis.url, RedisTimeouts(health_check_interval_s=0.01))
    try:
        await client.save_chat_state(USER, "chat", {"stage": "collecting"})
        await idle.ping()
        await asyncio.sleep(0.05)
        assert own_redis.pid is not None
        os.kill(own_redis.pid, signal.SIGSTOP)

        async def transaction() -> None:
            async with client.redis.pipeline(transaction=True) as pipe:
                pipe.set("hs:probe", "1")
                pipe.expire("hs:probe", 60)
                await pipe.execute()

        outcomes = await asyncio.gather(
            _timed(client.load_chat_state(USER, "chat")),
            _timed(transaction()),
            _timed(idle.get("hs:probe")),
        )
        for error, elapsed in outcomes:
            assert isinstance(error, StoreUnavailable), error
            assert isinstance(error, OperationalError)  # the bots answer it with "busy"
            assert elapsed < 10.0, elapsed
        assert isinstance(outcomes[0][0], StoreTimeout)

        os.kill(own_redis.pid, signal.SIGCONT)
        assert await client.load_chat_state(USER, "chat") == {"stage": "collecting"}
        await transaction()
        assert await idle.get("hs:probe") == b"1"
    finally:
        await client.close()
        await idle.aclose()


def test_a_command_s_deadline_covers_connect_backoffs_and_read() -> None:
    # 2 s to connect, back-offs 0.25 + 0.5 + 1.0 (capped), 5 s to read: under the 10 s promise.
    assert RedisTimeouts().deadline_s == pytest.approx(8.75)
    assert RedisTimeouts(retries=0, connect_s=0.5, read_s=1).deadline_s == pytest.approx(1.5)


@pytest.mark.parametrize("database", [0, 1])
async def test_many_commands_at_once_on_a_frozen_redis_each_give_up_by_the_deadline(
    own_redis: EmbeddedRedis, database: int
) -> None:
    # Each command beyond the pool's one idle connection opens a new one, under the pool's
    # lock. Database 1 needs a SELECT on each (a password an AUTH): without the deadline the
    # n-th command waited n read timeouts. Database 0 without a password needs no round trip.
    timeouts = RedisTimeouts(connect_s=0.5, read_s=1.0, retries=0)
    client = await connect(f"{own_redis.url.rsplit('/', 1)[0]}/{database}", timeouts)
    try:
        keys = [f"hs:probe:{n}" for n in range(6)]
        for key in keys:
            await client.set(key, key)
        assert own_redis.pid is not None
        os.kill(own_redis.pid, signal.SIGSTOP)
        outcomes = await asyncio.gather(*(_timed(client.get(key)) for key in keys))
        for error, elapsed in outcomes:
            assert isinstance(error, StoreTimeout), error
            assert elapsed < timeouts.deadline_s + 0.5, elapsed
        os.kill(own_redis.pid, signal.SIGCONT)
        # No connection cut off at the deadline hands its late answer to a later command.
        values = [key.encode() for key in keys]
        assert [await client.get(key) for key in reversed(keys)] == values[::-1]
        async with client.pipeline(transaction=True) as pipe:
            pipe.get(keys[0])
            pipe.get(keys[1])
            assert await pipe.execute() == values[:2]
    finally:
        await client.aclose()  # the fixture wakes Redis


async def test_a_refused_connection_is_retried_with_backoff_then_reported(
    own_redis: EmbeddedRedis,
) -> None:
    client = await connect(own_redis.url, RedisTimeouts(retries=2, backoff_s=0.2))
    try:
        own_redis.stop()
        error, elapsed = await _timed(client.get("hs:probe"))
        assert isinstance(error, StoreUnavailable), error
        assert 0.2 + 0.4 <= elapsed < 5.0, elapsed  # two back-offs: 0.2 s, then 0.4 s
        own_redis.start()
        assert await client.get("hs:probe") is None
    finally:
        await client.aclose()


async def test_people_hear_busy_within_10_s_while_redis_is_frozen(
    own_redis: EmbeddedRedis,
    fake_telegram: FakeTelegram,
    settings_factory: Callable[..., Settings],
) -> None:
    from telegram.ext import AIORateLimiter

    from headshots.bot.conversation import texts
    from headshots.bot.conversation.flow import Services
    from headshots.bot.telegram.app import build_application, polling

    settings = settings_factory(
        redis_url=own_redis.url,
        telegram_token=fake_telegram.token,
        telegram_api_url=fake_telegram.url,
    )
    application = build_application(
        settings,
        own_redis.url,
        services=Services(settings, own_redis.url),
        rate_limiter=AIORateLimiter(overall_max_rate=0, group_max_rate=0, max_retries=3),
    )
    people = [
        ChatDriver(fake_telegram, FakeChat.private(user), user)
        for user in (FakeUser(id=2001, first_name="Ann"), FakeUser(id=2002, first_name="Bo"))
    ]
    async with polling(application, poll_timeout_s=1):
        mark = fake_telegram.mark()
        people[0].text("/status")
        await people[0].said(texts.NOTHING_GOING_ON, since=mark)

        assert own_redis.pid is not None
        os.kill(own_redis.pid, signal.SIGSTOP)
        try:
            mark, started = fake_telegram.mark(), time.monotonic()
            for person in people:
                person.text("/status")
            for person in people:
                await person.said(texts.OPERATIONAL, since=mark, timeout=10)
            assert time.monotonic() - started < 10
        finally:
            os.kill(own_redis.pid, signal.SIGCONT)

        mark = fake_telegram.mark()
        people[1].text("/status")
        await people[1].said(texts.NOTHING_GOING_ON, since=mark)


def test_the_reply_to_a_store_error_promises_nothing() -> None:
    from headshots.bot.conversation import texts
    from headshots.bot.discord.handlers import user_text

    error = StoreTimeout("Redis did not answer in time")
    assert user_text(error) == texts.OPERATIONAL
    assert "try again in a minute" in texts.OPERATIONAL
    # After a Redis that lost its data nothing is kept: no reply may say otherwise.
    assert "kept" not in texts.ERROR and "kept" not in texts.OPERATIONAL
