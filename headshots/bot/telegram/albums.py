"""Answer a burst of photos (an album, or several sent quickly) with one message.

Telegram delivers an album as separate updates sharing ``media_group_id``, with no count and no
end marker. Each photo is checked as it arrives; the tally is written once the conversation has
been quiet for ``delay_s`` and no photo of it is still being processed. The flush is scheduled
on the event loop (``call_later``), never slept on inside a handler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable

logger = logging.getLogger(__name__)

Flush = Callable[[], Awaitable[None]]


class QuietPeriod:
    """Per-key debounce: ``begin``/``end`` around each item, ``flush`` runs after the last."""

    def __init__(self, delay_s: float = 1.0) -> None:
        self.delay_s = delay_s
        self._busy: dict[Hashable, int] = {}
        #: Per key: the scheduled flush's timer and the flush itself.
        self._timers: dict[Hashable, tuple[asyncio.TimerHandle, Flush]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def begin(self, key: Hashable) -> None:
        """An item of ``key`` is being processed: hold back its flush."""
        self._busy[key] = self._busy.get(key, 0) + 1
        pending = self._timers.pop(key, None)
        if pending is not None:
            pending[0].cancel()

    def end(self, key: Hashable, flush: Flush) -> None:
        """An item of ``key`` is done; schedule ``flush`` if it was the last one in flight."""
        remaining = self._busy.get(key, 1) - 1
        if remaining > 0:
            self._busy[key] = remaining
            return
        self._busy.pop(key, None)
        self.schedule(key, flush)

    def schedule(self, key: Hashable, flush: Flush) -> None:
        previous = self._timers.pop(key, None)
        if previous is not None:
            previous[0].cancel()
        loop = asyncio.get_running_loop()
        self._timers[key] = (loop.call_later(self.delay_s, self._fire, key, flush), flush)

    def _fire(self, key: Hashable, flush: Flush) -> None:
        self._timers.pop(key, None)
        if self._busy.get(key):
            return  # another item started meanwhile; its end() reschedules
        task = asyncio.get_running_loop().create_task(self._run(key, flush))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _run(key: Hashable, flush: Flush) -> None:
        try:
            await flush()
        except Exception:
            logger.exception("flushing %r failed", key)

    def forget(self, predicate: Callable[[Hashable], bool]) -> None:
        """Drop pending flushes of the keys matching ``predicate`` (e.g. after /delete)."""
        for key in [k for k in self._timers if predicate(k)]:
            self._timers.pop(key)[0].cancel()

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Run every pending flush now and wait for them (a stopping bot still answers).

        Called once no more items arrive (the bot stopped taking updates): a tally that was
        only waiting for its quiet period is written instead of being dropped with the process.
        """
        for key, (timer, flush) in list(self._timers.items()):
            timer.cancel()
            self._fire(key, flush)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)

    async def close(self) -> None:
        for timer, _ in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
