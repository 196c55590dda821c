"""Redis connections: one URL (``redis://``, ``rediss://``, ``redis+sentinel://``) for all.

Every bot and worker talks to Redis through :func:`connect`, with a read timeout as well as a
connect timeout (:class:`RedisTimeouts`): a frozen Redis (stopped, swapping, a network that
drops packets) used to hang every handler until it woke. A command that gets no answer raises
:class:`StoreTimeout`, a refused or dropped connection :class:`StoreDisconnected` once its
retries are spent; both are :class:`~headshots.errors.StoreUnavailable`, so the bots' error
handlers tell the person to try again in a minute instead of leaving them without an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from arq.connections import ArqRedis, RedisSettings
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from headshots.errors import ConfigurationError, StoreUnavailable
from headshots.settings import Settings

logger = logging.getLogger(__name__)


def _default(name: str) -> Any:
    """The default of setting ``name`` (``HEADSHOTS_<NAME>``)."""
    return Settings.model_fields[name].default


class StoreTimeout(StoreUnavailable, RedisTimeoutError):
    """Redis did not answer one command within the read timeout.

    Also redis-py's own ``TimeoutError``: code that already handles that (arq, our worker's
    poll loop) keeps working unchanged.
    """


class StoreDisconnected(StoreUnavailable, RedisConnectionError):
    """Redis refused or dropped the connection, and the retries did not help."""


@dataclass(frozen=True)
class RedisTimeouts:
    """How long one Redis command may take, and how a broken connection is retried.

    A command gives up after :attr:`deadline_s` at most (8.75 s by default), however it
    waits: on Redis, on a new connection, or behind other commands in the pool. So a person
    hears "busy" within 10 s even when many people write at once while Redis is frozen. Only
    connection errors are retried: a command that timed out may still run when Redis wakes,
    and an INCR or RPUSH must not run twice.
    """

    # The defaults are the settings' (one place says what they are).
    connect_s: float = _default("redis_connect_timeout_s")
    read_s: float = _default("redis_read_timeout_s")
    retries: int = _default("redis_retries")
    backoff_s: float = _default("redis_retry_backoff_s")
    backoff_max_s: float = _default("redis_retry_backoff_max_s")
    health_check_interval_s: float = _default("redis_health_check_interval_s")

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisTimeouts:
        return cls(
            connect_s=settings.redis_connect_timeout_s,
            read_s=settings.redis_read_timeout_s,
            retries=settings.redis_retries,
            backoff_s=settings.redis_retry_backoff_s,
            backoff_max_s=settings.redis_retry_backoff_max_s,
            health_check_interval_s=settings.redis_health_check_interval_s,
        )

    @property
    def deadline_s(self) -> float:
        """The longest one command may take: a connection, the retries' back-offs, an answer."""
        backoff = self._backoff()  # redis-py counts failures from 1
        waits = sum(backoff.compute(failures) for failures in range(1, self.retries + 1))
        return self.connect_s + waits + self.read_s

    def _backoff(self) -> ExponentialBackoff:
        # redis-py's first back-off is base * 2: halve it so the first wait is backoff_s.
        return ExponentialBackoff(cap=self.backoff_max_s, base=self.backoff_s / 2)

    def client_options(self) -> dict[str, Any]:
        """redis-py connection keyword arguments."""
        return {
            "socket_connect_timeout": self.connect_s,
            "socket_timeout": self.read_s,
            "retry": Retry(self._backoff(), self.retries, supported_errors=(RedisConnectionError,)),
            # Without this list redis-py's commands never use the retry above.
            "retry_on_error": [RedisConnectionError],
            "health_check_interval": self.health_check_interval_s,
            # redis-py names itself to the server (CLIENT SETINFO) on every new connection, a
            # round trip made while holding the pool's lock: with Redis frozen, each waiting
            # command's new connection queued behind the last one's timeout (the third of
            # three took 10 s, in CI the frozen-Redis test missed its 10 s).
            "lib_name": None,
            "lib_version": None,
        }


@contextlib.asynccontextmanager
async def _store_errors(deadline_s: float | None) -> AsyncIterator[None]:
    """Redis' failures as :class:`StoreUnavailable`, and a deadline on the whole command."""
    try:
        async with asyncio.timeout(deadline_s):
            yield
    except StoreUnavailable:
        raise
    except RedisTimeoutError as exc:
        raise StoreTimeout(f"Redis did not answer in time: {exc}") from exc
    except TimeoutError as exc:  # the command's deadline (RedisTimeouts.deadline_s)
        raise StoreTimeout("Redis did not answer in time") from exc
    except RedisConnectionError as exc:
        raise StoreDisconnected(f"Redis connection failed: {exc}") from exc


class StoreRedis(ArqRedis):
    """arq's client whose connection failures are :class:`StoreUnavailable` (see module), and
    whose commands give up after ``deadline_s`` (:attr:`RedisTimeouts.deadline_s`).

    redis-py bounds each read, not a whole command: a command that waits for the pool's lock
    (another command is opening a connection) or opens one itself could take several read
    timeouts. Cancelling at the deadline is safe: redis-py drops a connection whose answer was
    not read, so a late answer never reaches the next command.
    """

    deadline_s: float | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        async with _store_errors(self.deadline_s):
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = _StorePipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.deadline_s = self.deadline_s
        return pipe


class _StorePipeline(Pipeline):
    deadline_s: float | None = None

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        async with _store_errors(self.deadline_s):
            return await super().execute(raise_on_error)

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        async with _store_errors(self.deadline_s):  # WATCH and the reads before MULTI
            return await super().immediate_execute_command(*args, **options)  # type: ignore[no-untyped-call]


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


def _client(settings: RedisSettings, timeouts: RedisTimeouts) -> StoreRedis:
    """The client arq's ``create_pool`` would build, with our timeouts and error types."""
    options: dict[str, Any] = {
        "db": settings.database,
        "username": settings.username,
        "password": settings.password,
        "encoding": "utf8",
        **timeouts.client_options(),
    }
    if settings.sentinel:
        sentinel = Sentinel(settings.host, ssl=settings.ssl, **options)  # type: ignore[no-untyped-call]
        client = sentinel.master_for(settings.sentinel_master, redis_class=StoreRedis)
        assert isinstance(client, StoreRedis)
    else:
        client = StoreRedis(
            host=settings.host,  # type: ignore[arg-type]  # a str unless sentinel
            port=settings.port,
            unix_socket_path=settings.unix_socket_path,
            ssl=settings.ssl,
            ssl_keyfile=settings.ssl_keyfile,
            ssl_certfile=settings.ssl_certfile,
            ssl_cert_reqs=settings.ssl_cert_reqs,
            ssl_ca_certs=settings.ssl_ca_certs,
            ssl_ca_data=settings.ssl_ca_data,
            ssl_check_hostname=settings.ssl_check_hostname,
            max_connections=settings.max_connections,
            **options,
        )
    client.deadline_s = timeouts.deadline_s
    return client


#: Tries and pause of the first connection (a Redis that is still starting up).
CONNECT_TRIES = 3
CONNECT_RETRY_DELAY_S = 1.0


async def connect(url: str, timeouts: RedisTimeouts | None = None) -> StoreRedis:
    """A Redis client for ``url`` (arq's, see :class:`StoreRedis`) that has answered a PING;
    raises :class:`StoreUnavailable` when it cannot connect."""
    settings = redis_settings_from_url(url)
    for attempt in range(1, CONNECT_TRIES + 1):
        client = _client(settings, timeouts or RedisTimeouts())
        try:
            await client.ping()
            return client
        except Exception as exc:  # redis raises several unrelated types for "cannot connect"
            await client.aclose()
            if attempt == CONNECT_TRIES:
                raise StoreUnavailable(f"cannot reach Redis at {_redact(url)}: {exc}") from exc
            logger.warning("Redis at %s: %s; trying again", _redact(url), exc)
            await asyncio.sleep(CONNECT_RETRY_DELAY_S)
    raise AssertionError("unreachable")  # pragma: no cover


def _redact(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(parsed.password, "***")
    return url
