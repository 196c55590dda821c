"""Delivery: posting progress and results back to the exact chat, topic or thread of a request."""

from __future__ import annotations

from headshots.errors import ConfigurationError
from headshots.queue.delivery.base import OutgoingImage, Sender, split_batches, with_retries
from headshots.settings import Settings

__all__ = ["OutgoingImage", "Sender", "SenderPool", "split_batches", "with_retries"]


class SenderPool:
    """One lazily created sender per platform, shared by every job of a worker process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._senders: dict[str, Sender] = {}

    def get(self, platform: str) -> Sender:
        if platform not in self._senders:
            self._senders[platform] = self._build(platform)
        return self._senders[platform]

    def _build(self, platform: str) -> Sender:
        if platform == "telegram":
            if self.settings.telegram_token is None:
                raise ConfigurationError("HEADSHOTS_TELEGRAM_TOKEN is not set on this worker")
            from headshots.queue.delivery.telegram import TelegramSender, build_telegram_bot

            bot = build_telegram_bot(
                self.settings.telegram_token.get_secret_value(), self.settings.telegram_api_url
            )
            return TelegramSender(bot)
        if platform == "discord":
            if self.settings.discord_token is None:
                raise ConfigurationError("HEADSHOTS_DISCORD_TOKEN is not set on this worker")
            from headshots.queue.delivery.discord import DiscordSender

            return DiscordSender(
                self.settings.discord_token.get_secret_value(),
                api_base=self.settings.discord_api_url,
            )
        if platform == "slack":
            if self.settings.slack_bot_token is None:
                raise ConfigurationError("HEADSHOTS_SLACK_BOT_TOKEN is not set on this worker")
            from headshots.queue.delivery.slack import SlackSender

            token = self.settings.slack_bot_token.get_secret_value()
            return SlackSender(token, api_url=self.settings.slack_api_url)
        if platform == "cli":
            from headshots.queue.delivery.folder import FolderSender

            return FolderSender(self.settings.state_dir / "outbox")
        raise ConfigurationError(f"no sender for platform {platform!r}")

    async def close(self) -> None:
        for sender in self._senders.values():
            await sender.close()
        self._senders.clear()
