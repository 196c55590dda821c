"""Logging that never shows a secret: every configured secret is redacted from every record.

python-telegram-bot puts the bot token in request URLs (``Set Bot API URL: …/bot<token>`` at
DEBUG), HTTP libraries log URLs, and an exception's text can carry either. Silencing loggers
one by one misses the next one, so the entry points install :class:`RedactSecrets` on the
root handlers: whatever logger a record comes from, a secret in its message, its arguments or
its traceback is replaced before anything is written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import quote, urlsplit

from headshots.settings import Settings

REDACTED = "[redacted]"
#: Shorter strings are not redacted: they would match ordinary text.
_MIN_SECRET_CHARS = 6


def configured_secrets(settings: Settings) -> list[str]:
    """Every secret in ``settings``: its ``SecretStr`` fields and passwords inside URLs."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if hasattr(value, "get_secret_value"):
            found.append(value.get_secret_value())
        elif isinstance(value, str) and "://" in value:
            password = urlsplit(value).password
            if password:
                found.append(password)
    return [secret for secret in found if secret]


class RedactSecrets(logging.Filter):
    """Replace each secret (as written, and URL-encoded) in a record with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        forms = {form for secret in secrets for form in (secret, quote(secret, safe=""))}
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted(
            (form for form in forms if len(form) >= _MIN_SECRET_CHARS), key=len, reverse=True
        )

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install_redaction(settings: Settings, root: logging.Logger | None = None) -> RedactSecrets:
    """Put one :class:`RedactSecrets` on every handler of the root logger; returns it."""
    redaction = RedactSecrets(configured_secrets(settings))
    for handler in (root or logging.getLogger()).handlers:
        handler.addFilter(redaction)
    return redaction
