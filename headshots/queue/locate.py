"""Which Redis a command talks to: the configured one, the running embedded one, or a new one."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import redis

from headshots.queue.embedded import EmbeddedRedis
from headshots.settings import Settings

logger = logging.getLogger(__name__)


def _url_file(settings: Settings) -> Path:
    return settings.state_dir / "redis" / "url"


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def redis_for(settings: Settings, *, announce: bool = False) -> Iterator[str]:
    """Yield a Redis URL: ``HEADSHOTS_REDIS_URL``, else the embedded Redis that ``headshots up``
    runs (its URL is kept in the state directory), else a new embedded one for this command.

    With ``announce`` the new embedded server's URL is written for other commands to find.
    """
    with redis_server_for(settings, announce=announce) as (url, _server):
        yield url


@contextlib.contextmanager
def redis_server_for(
    settings: Settings, *, announce: bool = False
) -> Iterator[tuple[str, EmbeddedRedis | None]]:
    """:func:`redis_for`, and the embedded server this command started (None otherwise)."""
    if settings.redis_url:
        yield settings.redis_url, None
        return
    url_file = _url_file(settings)
    if url_file.exists():
        url = url_file.read_text().strip()
        if _answers(url):
            yield url, None
            return
    server = EmbeddedRedis(settings.state_dir / "redis")
    url = server.start()
    try:
        if announce:
            url_file.write_text(url)
        yield url, server
    finally:
        if announce:
            url_file.unlink(missing_ok=True)
        server.stop()
