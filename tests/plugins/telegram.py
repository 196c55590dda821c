"""Shared pytest fixtures for the telegram front-end tests (and the worker's Telegram delivery).

``fake_telegram``: a started :class:`tests.fake_telegram.FakeTelegram` (a local Bot API server
over real HTTP, in its own thread); point a bot or ``HEADSHOTS_TELEGRAM_API_URL`` at its ``url``
with ``HEADSHOTS_TELEGRAM_TOKEN=fake_telegram.token``. Usable from sync and async tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from headshots.settings import Settings
from tests.fake_telegram import Call, FakeChat, FakeTelegram, FakeUser


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegram]:
    server = FakeTelegram().start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class RunningBot:
    application: Any
    services: Any
    settings: Settings
    _stack: AsyncExitStack

    async def stop(self) -> None:
        """Stop polling and shut down, as a crash-free exit would (state stays in Redis)."""
        await self._stack.aclose()


@pytest.fixture
async def telegram_bot(
    fake_telegram: FakeTelegram,
    settings_factory: Callable[..., Settings],
    redis_url: str,
    redis_client: Any,
    style_policy_built: None,
) -> AsyncIterator[Callable[..., Awaitable[RunningBot]]]:
    """Start the real bot (polling the fake over HTTP) in the test's event loop.

    Call it (``bot = await telegram_bot(**settings_overrides)``) once per bot instance; every
    instance is stopped at teardown. The flushed ``redis_client`` comes with it.
    """
    from telegram.ext import AIORateLimiter

    from headshots.bot.conversation.flow import Services
    from headshots.bot.telegram.app import build_application, polling

    running: list[RunningBot] = []

    async def start(*, quiet_period_s: float = 0.3, **overrides: Any) -> RunningBot:
        settings = settings_factory(
            telegram_token=fake_telegram.token, telegram_api_url=fake_telegram.url, **overrides
        )
        services = Services(settings, redis_url)
        # Telegram's group limit (20/min) would make a two-member group test take minutes;
        # retries on 429 stay on, as in production.
        limiter = AIORateLimiter(overall_max_rate=0, group_max_rate=0, max_retries=3)
        application = build_application(
            settings,
            redis_url,
            services=services,
            rate_limiter=limiter,
            quiet_period_s=quiet_period_s,
        )
        stack = AsyncExitStack()
        await stack.enter_async_context(polling(application, poll_timeout_s=1))
        bot = RunningBot(application, services, settings, stack)
        running.append(bot)
        return bot

    yield start
    for bot in reversed(running):
        await bot.stop()


class ChatDriver:
    """One user in one chat (or forum topic), talking to the bot through the fake server."""

    def __init__(
        self, fake: FakeTelegram, chat: FakeChat, user: FakeUser, thread_id: int | None = None
    ) -> None:
        self.fake = fake
        self.chat = chat
        self.user = user
        self.thread_id = thread_id

    def _here(self, call: Call) -> bool:
        params = call.params
        if int(params.get("chat_id", 0)) != self.chat.id:
            return False
        response = call.response if isinstance(call.response, dict) else {}
        if self.chat.type != "private":
            # In groups the bot answers a member by replying to one of their messages.
            replied = response.get("reply_to_message") or {}
            if replied.get("from", {}).get("id") != self.user.id:
                return False
        if self.thread_id is None:
            return True
        return params.get("message_thread_id", response.get("message_thread_id")) == self.thread_id

    async def said(
        self,
        contains: str,
        *,
        since: int = 0,
        methods: tuple[str, ...] = ("sendMessage", "editMessageText"),
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """The bot's message here containing ``contains``, sent or edited after ``since``."""
        call = await self.fake.wait_for(
            None,
            lambda c: (
                c.method in methods
                and self._here(c)
                and c.status == 200
                and contains in str(c.params.get("text", ""))
            ),
            since=since,
            timeout=timeout,
        )
        return dict(call.response)

    def text(self, text: str) -> dict[str, Any]:
        return self.fake.send_text(self.chat, self.user, text, thread_id=self.thread_id)

    def photos(self, photos: list[bytes], *, reply_to: int | None = None) -> list[dict[str, Any]]:
        if len(photos) == 1:
            return [
                self.fake.send_photo(
                    self.chat, self.user, photos[0], thread_id=self.thread_id, reply_to=reply_to
                )
            ]
        return self.fake.send_album(
            self.chat, self.user, photos, thread_id=self.thread_id, reply_to=reply_to
        )

    def press(self, message: dict[str, Any], data: str) -> dict[str, Any]:
        return self.fake.press(self.user, message, data)

    def button(self, message: dict[str, Any], label_part: str) -> str:
        """The callback_data of the button whose label contains ``label_part``."""
        current = self.fake.message(int(message["chat"]["id"]), int(message["message_id"]))
        for row in current.get("reply_markup", {}).get("inline_keyboard", []):
            for button in row:
                if label_part in button["text"]:
                    return str(button["callback_data"])
        raise AssertionError(f"no button {label_part!r} under {current.get('text')!r}")

    def press_label(self, message: dict[str, Any], label_part: str) -> dict[str, Any]:
        return self.press(message, self.button(message, label_part))

    async def choose(self, message: dict[str, Any], label_part: str, expect: str) -> dict[str, Any]:
        """Press the button labelled ``label_part``; the bot's next message with ``expect``."""
        mark = self.fake.mark()
        self.press_label(message, label_part)
        return await self.said(expect, since=mark)
