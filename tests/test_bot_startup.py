"""A failed first call does not kill a bot: start-up retries with a growing delay."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import discord
import pytest

from headshots.errors import DeliveryFailed
from tests.fake_discord import FakeDiscord
from tests.fake_telegram import FakeTelegram
from tests.plugins.queue import settings_env
from tests.test_bot_telegram import bot_process


async def test_telegram_bot_survives_failed_first_calls(
    fake_telegram: FakeTelegram,
    settings_factory: Callable[..., Any],
    redis_client: Any,
    tmp_path: Path,
) -> None:
    settings = settings_factory(
        telegram_token=fake_telegram.token, telegram_api_url=fake_telegram.url
    )
    for _ in range(2):  # the probe: one failed getMe used to end the process
        fake_telegram.fail_next("getMe", 502)
    log = tmp_path / "bot.log"
    bot = bot_process(settings_env(settings), log)
    try:
        await fake_telegram.wait_for("setMyCommands", timeout=60)
        assert bot.poll() is None, log.read_text()
        assert len(fake_telegram.calls("getMe")) >= 3
    finally:
        bot.terminate()
        bot.wait(20)


class _Connected(Exception):
    """Raised where the bot would open the gateway (the fake has none): login got through."""


async def test_discord_start_up_retries_server_errors_not_a_bad_token(
    fake_discord: FakeDiscord,
    settings_factory: Callable[..., Any],
    redis_url: str,
    redis_client: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from headshots.bot.discord import _serve

    async def connect(self: discord.Client, *, reconnect: bool = True) -> None:
        raise _Connected

    monkeypatch.setattr(discord.Client, "connect", connect)
    settings = settings_factory(discord_token=fake_discord.token)
    fake_discord.fail_next("GET", "/users/@me", status=503, times=2)
    started = time.monotonic()
    with pytest.raises(DeliveryFailed) as failure:
        await _serve(settings, redis_url, fake_discord.token)
    assert isinstance(failure.value.__cause__, _Connected)  # logged in on the third try
    logins = fake_discord.calls("GET", "/users/@me")
    assert [call.status for call in logins] == [503, 503, 200]
    assert time.monotonic() - started >= 3  # waited 1 s, then 2 s
    assert sum("Discord start-up failed" in r.message for r in caplog.records) == 2

    # A wrong token is not retried: no retry can fix it.
    fake_discord.fail_next("GET", "/users/@me", status=401, body={"message": "401: Unauthorized"})
    with pytest.raises(DeliveryFailed, match="after 1 attempt") as refused:
        await _serve(settings, redis_url, "not-the-token")
    assert isinstance(refused.value.__cause__, discord.LoginFailure)
