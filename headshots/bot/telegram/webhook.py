"""Webhook mode: an aiohttp server that feeds Telegram's POSTs to the application.

python-telegram-bot's own webhook server needs tornado (an extra we do not install); aiohttp is
already a dependency, and this is all a webhook takes: check the secret header, parse, enqueue.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import signal
from urllib.parse import urlsplit

from aiohttp import web
from telegram import Update

from headshots.bot.telegram.handlers import AnyApplication
from headshots.errors import ConfigurationError
from headshots.queue.delivery.base import STARTUP_ATTEMPTS, with_retries
from headshots.queue.delivery.telegram import classify_telegram_error
from headshots.settings import Settings

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def secret_token(token: str) -> str:
    """A stable secret for the webhook, derived from the bot token (never the token itself)."""
    return hashlib.sha256(b"headshots-webhook:" + token.encode()).hexdigest()


def listen_address(settings: Settings) -> tuple[str, int]:
    host, _, port = settings.telegram_webhook_listen.rpartition(":")
    if not host or not port.isdigit():
        listen = settings.telegram_webhook_listen
        raise ConfigurationError(
            f"HEADSHOTS_TELEGRAM_WEBHOOK_LISTEN must be host:port, not {listen!r}"
        )
    return host, int(port)


def webhook_app(application: AnyApplication, secret: str, path: str) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.headers.get(SECRET_HEADER, ""), secret):
            return web.Response(status=403)
        try:
            update = Update.de_json(await request.json(), application.bot)
        except ValueError:
            return web.Response(status=400)
        await application.update_queue.put(update)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post(path, receive)
    return app


async def serve_webhook(
    application: AnyApplication, settings: Settings, stop: asyncio.Event
) -> None:
    """Register the webhook with Telegram and serve it until ``stop`` is set."""
    if not settings.telegram_webhook_url or settings.telegram_token is None:
        raise ConfigurationError("webhook mode needs HEADSHOTS_TELEGRAM_WEBHOOK_URL and a token")
    secret = secret_token(settings.telegram_token.get_secret_value())
    path = urlsplit(settings.telegram_webhook_url).path or "/"
    host, port = listen_address(settings)
    runner = web.AppRunner(webhook_app(application, secret, path), handle_signals=False)
    await with_retries(
        application.initialize,
        classify_telegram_error,
        attempts=STARTUP_ATTEMPTS,
        what="Telegram start-up (getMe)",
    )
    if application.post_init is not None:
        await application.post_init(application)
    try:
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        await with_retries(
            lambda: application.bot.set_webhook(
                settings.telegram_webhook_url, secret_token=secret, allowed_updates=Update.ALL_TYPES
            ),
            classify_telegram_error,
            attempts=STARTUP_ATTEMPTS,
            what="Telegram setWebhook",
        )
        await application.start()
        logger.info("webhook listening on %s:%d%s", host, port, path)
        await stop.wait()
        await application.stop()
        if application.post_stop is not None:
            await application.post_stop(application)
    finally:
        await runner.cleanup()
        if application.post_shutdown is not None:
            await application.post_shutdown(application)
        await application.shutdown()


async def run_webhook(application: AnyApplication, settings: Settings) -> None:
    """Serve the webhook until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve_webhook(application, settings, stop)
