"""An outage window, shared by the fake servers: for a while, every n-th call fails."""

from __future__ import annotations

import itertools
import time


class OutageWindow:
    """``open(seconds, status, every)``; each call asks :meth:`failing_status` whether it fails."""

    def __init__(self) -> None:
        self._window: tuple[float, int, int] | None = None  # (ends at, status, every)
        self._calls = itertools.count(1)
        #: Calls answered with an error so far.
        self.failures = 0

    def open(self, seconds: float, status: int, every: int) -> None:
        self._window = (time.monotonic() + seconds, status, max(1, every))

    def failing_status(self) -> int | None:
        """The status this call fails with, or ``None`` (no window, or not its turn)."""
        if self._window is None:
            return None
        ends_at, status, every = self._window
        if time.monotonic() >= ends_at:
            self._window = None
            return None
        if next(self._calls) % every:
            return None
        self.failures += 1
        return status
