"""No configured secret reaches a log line, at DEBUG, from any logger or process."""

from __future__ import annotations

import asyncio
import inspect
import io
import logging
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from headshots.logs import REDACTED, RedactSecrets, configured_secrets, install_redaction
from headshots.queue.client import QueueClient
from headshots.queue.contracts import ChatTarget, JobState
from headshots.settings import Settings
from tests.fake_discord import FakeDiscord
from tests.fake_telegram import FakeTelegram
from tests.plugins.queue import ROOT, parent_env, settings_env
from tests.queue_helpers import make_request, wait_for_state

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def test_secrets_are_redacted_from_messages_arguments_and_tracebacks() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_token=SecretStr(TOKEN),
        discord_token=SecretStr("discord-secret-token-value"),
        redis_url="redis://:hunter2-redis-password@redis.internal:6379/0",
    )
    assert set(configured_secrets(settings)) >= {
        TOKEN,
        "discord-secret-token-value",
        "hunter2-redis-password",
    }
    stream = io.StringIO()
    logger = logging.Logger("probe", logging.DEBUG)
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    install_redaction(settings, root=logger)
    logger.debug("Set Bot API URL: https://api.telegram.org/bot%s", TOKEN)
    logger.info("url-encoded: %s", TOKEN.replace(":", "%3A"))
    logger.warning("redis at redis://:hunter2-redis-password@redis.internal")
    try:
        raise RuntimeError(f"GET https://api.telegram.org/bot{TOKEN}/getMe failed")
    except RuntimeError:
        logger.exception("start-up failed with discord-secret-token-value", stack_info=True)
    written = stream.getvalue()
    for secret in (TOKEN, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "hunter2", "discord-secret"):
        assert secret not in written
    assert written.count(REDACTED) >= 6
    assert "Traceback" in written and "RuntimeError" in written  # the rest stays readable
    assert RedactSecrets([]).filter(logging.makeLogRecord({"msg": "x"}))


async def _run_for(
    args: list[str],
    env: dict[str, str],
    log: Path,
    until: Callable[[], bool | Awaitable[bool]] | None,
) -> str:
    """Run ``headshots -v ARGS`` until ``until()`` holds (None: until it exits); its output.
    ``until`` may be a coroutine function (a look into Redis)."""
    full_env = parent_env()
    full_env.update(env, PYTHONPATH=str(ROOT))
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "headshots", "-v", *args],
            env=full_env,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not (await _holds(until) if until is not None else process.poll() is not None):
            assert until is None or process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            await asyncio.sleep(0.2)  # the fake Discord server answers from this event loop
    finally:
        process.terminate()
        process.wait(20)
    return log.read_text(errors="replace")


async def _holds(until: Callable[[], bool | Awaitable[bool]]) -> bool:
    held = until()
    return await held if inspect.isawaitable(held) else held


async def test_telegram_bot_at_debug_logs_no_token(
    fake_telegram: FakeTelegram,
    settings_factory: Callable[..., Settings],
    redis_client: Any,
    tmp_path: Path,
) -> None:
    settings = settings_factory(
        telegram_token=fake_telegram.token, telegram_api_url=fake_telegram.url
    )
    output = await _run_for(
        ["bot", "telegram"],
        settings_env(settings),
        tmp_path / "bot.log",
        lambda: bool(fake_telegram.calls("getUpdates")),
    )
    assert "DEBUG" in output and "Set Bot API URL" in output
    assert fake_telegram.token not in output and REDACTED in output


async def test_discord_bot_at_debug_logs_no_token(
    fake_discord: FakeDiscord,
    settings_factory: Callable[..., Settings],
    redis_client: Any,
    tmp_path: Path,
) -> None:
    settings = settings_factory(
        discord_token=fake_discord.token, discord_api_url=fake_discord.api_base
    )
    output = await _run_for(
        ["bot", "discord"],
        settings_env(settings),
        tmp_path / "bot.log",
        lambda: bool(fake_discord.calls("GET", "/users/@me")),
    )
    assert "DEBUG" in output
    assert fake_discord.token not in output


async def test_worker_delivery_at_debug_logs_no_token(
    fake_telegram: FakeTelegram,
    settings_factory: Callable[..., Settings],
    redis_client: Any,
    tmp_path: Path,
) -> None:
    settings = settings_factory(
        telegram_token=fake_telegram.token,
        telegram_api_url=fake_telegram.url,
        stages="tests.stub_stages:build",
        log_level="DEBUG",
    )
    assert settings.redis_url
    client = await QueueClient.connect(settings, settings.redis_url)
    try:
        request = await make_request(client, user_id=5150, platform="telegram", count=2)
        request = request.model_copy(
            update={"target": ChatTarget(platform="telegram", chat_id=5150, user_id=5150)}
        )
        submission = await client.submit(request)

        async def done() -> bool:
            # Stopped once the job is recorded done: a worker stopped right after the album
            # was sent could leave it "delivering" on a loaded machine.
            info = await client.job(submission.job_id)
            return info is not None and info.state is JobState.DONE

        output = await _run_for(
            ["worker", "--queue", "all"],
            settings_env(settings),
            tmp_path / "worker.log",
            done,
        )
        assert fake_telegram.calls("sendMediaGroup")
        assert await wait_for_state(client, submission.job_id, {JobState.DONE}) is JobState.DONE
    finally:
        await client.close()
    assert "DEBUG" in output and REDACTED in output
    assert fake_telegram.token not in output
