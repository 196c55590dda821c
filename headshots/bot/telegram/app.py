"""Build the python-telegram-bot ``Application`` from settings, and run it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from telegram import Update
from telegram.error import BadRequest, NetworkError, TimedOut
from telegram.ext import AIORateLimiter, Application, BaseRateLimiter

from headshots.bot.conversation.flow import Services
from headshots.bot.telegram.handlers import COMMANDS, AnyApplication, TelegramBot, register
from headshots.bot.telegram.surface import TelegramFront
from headshots.errors import ConfigurationError
from headshots.settings import Settings

logger = logging.getLogger(__name__)

#: Albums of full-size photos take longer than PTB's 20 s default to upload.
MEDIA_WRITE_TIMEOUT_S = 120.0


class RetryingRateLimiter(AIORateLimiter):
    """``AIORateLimiter`` that also tries again when the Bot API answers 5xx or is unreachable.

    PTB's limiter retries only 429s, so one 502 (Telegram under load) made a handler's reply
    vanish: a selfie tally never arrived and the person had to guess. A 5xx or a refused
    connection means the request was not carried out, so sending it again cannot post twice.
    Time-outs are not retried: the message may have gone out. ``getUpdates`` never comes here
    (PTB exempts it), its own loop retries.
    """

    def __init__(
        self, *, transient_attempts: int = 4, first_delay_s: float = 0.5, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.transient_attempts = transient_attempts
        self.first_delay_s = first_delay_s

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        for attempt in range(1, self.transient_attempts + 1):
            try:
                return await super().process_request(
                    callback, args, kwargs, endpoint, data, rate_limit_args
                )
            except (BadRequest, TimedOut):
                raise
            except NetworkError as exc:
                if attempt == self.transient_attempts:
                    raise
                delay = self.first_delay_s * 2 ** (attempt - 1)
                logger.warning(
                    "Bot API %s failed (%s); retry %d in %.1fs", endpoint, exc, attempt, delay
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")


def api_urls(settings: Settings) -> tuple[str, str] | None:
    """``(base_url, base_file_url)`` for another Bot API server, or ``None`` for Telegram's."""
    if not settings.telegram_api_url:
        return None
    base = settings.telegram_api_url.rstrip("/")
    return f"{base}/bot", f"{base}/file/bot"


def build_application(
    settings: Settings,
    redis_url: str,
    *,
    services: Services | None = None,
    rate_limiter: BaseRateLimiter[Any] | None = None,
    quiet_period_s: float = 1.0,
) -> AnyApplication:
    """The bot, its handlers registered; the queue client connects in ``post_init``."""
    if settings.telegram_token is None:
        raise ConfigurationError("set HEADSHOTS_TELEGRAM_TOKEN to run the Telegram bot")
    services = services or Services(settings, redis_url)

    background: set[asyncio.Task[None]] = set()

    async def post_init(application: AnyApplication) -> None:
        await services.connect()
        await services.prepare_policy()
        await application.bot.set_my_commands(COMMANDS)
        task = asyncio.create_task(bot.write_owed_tallies(application.bot))
        background.add(task)
        task.add_done_callback(background.discard)
        logger.info("telegram bot @%s ready", application.bot.username)
        if not application.bot.can_read_all_group_messages:
            logger.info(
                "group privacy mode is on: in groups, members must reply to the bot's messages "
                "(BotFather /setprivacy turns it off)"
            )

    async def post_stop(application: AnyApplication) -> None:
        # Stopped taking updates, still able to send: tallies waiting for their quiet period
        # go out now (a restart for a deploy must not leave an album unanswered).
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await bot.tally.drain()

    async def post_shutdown(application: AnyApplication) -> None:
        await bot.tally.close()
        await services.close()

    builder = (
        Application.builder()
        .token(settings.telegram_token.get_secret_value())
        # A 429 is retried after Telegram's retry_after, a 5xx after a short back-off, rather
        # than failing the handler.
        .rate_limiter(rate_limiter or RetryingRateLimiter(max_retries=3))
        .media_write_timeout(MEDIA_WRITE_TIMEOUT_S)
        # Safe: conversation state is locked per person and place (see conversation.state).
        .concurrent_updates(True)
        .post_init(post_init)
        .post_stop(post_stop)
        .post_shutdown(post_shutdown)
    )
    urls = api_urls(settings)
    if urls is not None:
        builder = builder.base_url(urls[0]).base_file_url(urls[1])
    if settings.telegram_webhook_url:
        builder = builder.updater(None)
    application: AnyApplication = builder.build()
    bot = TelegramBot(services, TelegramFront(application.bot), quiet_period_s=quiet_period_s)
    register(application, bot)
    return application


@asynccontextmanager
async def polling(
    application: AnyApplication, *, poll_timeout_s: float = 10.0
) -> AsyncIterator[AnyApplication]:
    """Run ``application`` with long polling inside the current event loop (as run_polling does).

    ``run_polling`` owns the loop and the signals; this is for embedding (tests, ``headshots
    up``-style supervisors).
    """
    updater = application.updater
    if updater is None:
        raise ConfigurationError("this application was built for webhooks, not polling")
    await application.initialize()
    if application.post_init is not None:
        await application.post_init(application)
    try:
        await updater.start_polling(
            timeout=int(poll_timeout_s),
            allowed_updates=Update.ALL_TYPES,
            drop_pending_updates=False,
        )
        await application.start()
        try:
            yield application
        finally:
            if updater.running:
                await updater.stop()
            if application.running:
                await application.stop()
                if application.post_stop is not None:
                    await application.post_stop(application)
    finally:
        if application.post_shutdown is not None:
            await application.post_shutdown(application)
        await application.shutdown()
