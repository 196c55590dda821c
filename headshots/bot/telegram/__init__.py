"""The Telegram front end: ``headshots bot telegram`` calls :func:`run`.

Polling by default; webhook mode when ``HEADSHOTS_TELEGRAM_WEBHOOK_URL`` is set (listening on
``HEADSHOTS_TELEGRAM_WEBHOOK_LISTEN``). ``HEADSHOTS_TELEGRAM_API_URL`` points the bot at another
Bot API server (a self-hosted one, or the tests' fake).
"""

from __future__ import annotations

import asyncio

from headshots.queue.delivery.base import STARTUP_ATTEMPTS
from headshots.settings import Settings

__all__ = ["run"]


def run(settings: Settings, redis_url: str) -> None:
    """Run the bot until interrupted (SIGINT/SIGTERM)."""
    from telegram import Update

    from headshots.bot.telegram.app import build_application
    from headshots.bot.telegram.webhook import run_webhook

    application = build_application(settings, redis_url)
    if settings.telegram_webhook_url:
        asyncio.run(run_webhook(application, settings))
    else:
        # python-telegram-bot's own bootstrap retries: getMe and deleteWebhook at start-up
        # are tried again on network errors instead of killing the bot on the first one.
        application.run_polling(
            allowed_updates=Update.ALL_TYPES, bootstrap_retries=STARTUP_ATTEMPTS
        )
