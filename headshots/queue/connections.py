"""Redis connections: one URL (``redis://``, ``rediss://``, ``redis+sentinel://``) for all."""

from __future__ import annotations

import logging
from urllib.parse import urlparse

from arq.connections import ArqRedis, RedisSettings, create_pool

from headshots.errors import ConfigurationError, StoreUnavailable

logger = logging.getLogger(__name__)


def redis_settings_from_url(url: str) -> RedisSettings:
    """arq connection settings for ``url``.

    Sentinel: ``redis+sentinel://host1:26379,host2:26379/<master-name>[/<db>]`` (arq supports
    Sentinel but not Cluster).
    """
    parsed = urlparse(url)
    if parsed.scheme in ("redis", "rediss", "unix"):
        return RedisSettings.from_dsn(url)
    if parsed.scheme == "redis+sentinel":
        hosts: list[tuple[str, int]] = []
        for part in parsed.netloc.rsplit("@", 1)[-1].split(","):
            host, _, port = part.partition(":")
            hosts.append((host, int(port or 26379)))
        path = [p for p in parsed.path.split("/") if p]
        if not path:
            raise ConfigurationError(
                "HEADSHOTS_REDIS_URL: a Sentinel URL needs the master name, "
                "e.g. redis+sentinel://host:26379/mymaster"
            )
        return RedisSettings(
            host=hosts,  # type: ignore[arg-type]  # arq accepts a host list with sentinel=True
            sentinel=True,
            sentinel_master=path[0],
            database=int(path[1]) if len(path) > 1 else 0,
            password=parsed.password,
        )
    raise ConfigurationError(f"HEADSHOTS_REDIS_URL: unsupported scheme {parsed.scheme!r}")


async def connect(url: str) -> ArqRedis:
    """An arq Redis pool for ``url``; raises :class:`StoreUnavailable` when it cannot connect."""
    settings = redis_settings_from_url(url)
    settings.conn_retries = 2
    settings.conn_retry_delay = 1
    try:
        return await create_pool(settings)
    except Exception as exc:  # redis raises several unrelated types for "cannot connect"
        raise StoreUnavailable(f"cannot reach Redis at {_redact(url)}: {exc}") from exc


def _redact(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(parsed.password, "***")
    return url
