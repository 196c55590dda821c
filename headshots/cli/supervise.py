"""What ``headshots up`` runs: child processes (worker, bots) and the embedded Redis, kept alive.

A child that dies is started again after a delay that doubles with each quick death (1 s, 2 s,
4 s ... up to a minute) and resets once a child has stayed up for a minute: a bot whose first
Bot API call failed comes back without stopping the worker, and a crash loop does not spin.
The embedded Redis is restarted at once, on the same port and data directory (its append-only
file is fsynced on every write), so the running children find it where they left it.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from headshots.errors import HeadshotsError
from headshots.queue.embedded import EmbeddedRedis

logger = logging.getLogger(__name__)

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 60.0
#: A child that ran this long before dying is restarted after the first delay again.
STABLE_AFTER_S = 60.0


@dataclass
class Child:
    """One supervised command."""

    name: str
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    restart_at: float | None = None
    restarts: int = 0


def say(text: str) -> None:
    # The operator's terminal: `up` talks on stderr, children keep stdout/stderr as they are.
    print(f"headshots up: {text}", file=sys.stderr, flush=True)


class Supervisor:
    """Start the children, restart what dies, stop everything on :meth:`stop`."""

    def __init__(
        self,
        commands: Mapping[str, Sequence[str]],
        env: Mapping[str, str],
        *,
        redis: EmbeddedRedis | None = None,
        first_delay_s: float = FIRST_DELAY_S,
        max_delay_s: float = MAX_DELAY_S,
        stable_after_s: float = STABLE_AFTER_S,
    ) -> None:
        self.children = [Child(name, list(command)) for name, command in commands.items()]
        self.env = dict(env)
        self.redis = redis
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.stable_after_s = stable_after_s

    def start(self) -> None:
        for child in self.children:
            self._spawn(child)

    def _spawn(self, child: Child) -> None:
        child.process = subprocess.Popen(child.command, env=self.env)
        child.started_at = time.monotonic()
        child.restart_at = None
        say(f"{child.name} running (pid {child.process.pid})")

    def poll(self) -> None:
        """One round: restart the embedded Redis if it died, then dead or due children."""
        now = time.monotonic()
        if self.redis is not None and not self.redis.running:
            say(f"embedded Redis (pid {self.redis.pid}) died; restarting it on {self.redis.url}")
            try:
                self.redis.start()
            except HeadshotsError as exc:  # e.g. its port taken meanwhile: next round again
                say(f"embedded Redis did not come back: {exc}")
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restarts += 1
                    self._spawn(child)
                continue
            process = child.process
            code = process.poll() if process is not None else None
            if process is None or code is None:
                continue
            if now - child.started_at >= self.stable_after_s:
                child.quick_deaths = 0
            delay = min(self.max_delay_s, self.first_delay_s * 2**child.quick_deaths)
            child.quick_deaths += 1
            child.restart_at = now + delay
            say(f"{child.name} (pid {process.pid}) exited with {code}; "
                f"restarting in {delay:g} s")  # fmt: skip

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every child, wait, and kill what does not stop (Redis is its owner's to stop)."""
        running = [c.process for c in self.children if c.process and c.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
