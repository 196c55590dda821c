"""What every handler needs, created once per process and passed in (no globals)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from headshots.bot.telegram.albums import QuietPeriod
from headshots.bot.telegram.state import Conversations
from headshots.errors import ConfigurationError
from headshots.queue.client import QueueClient
from headshots.queue.teams import TeamStore
from headshots.settings import Settings

if TYPE_CHECKING:
    from headshots.generation.faces import FaceAnalyzer

logger = logging.getLogger(__name__)

T = TypeVar("T")


class BotServices:
    """Settings, the queue client and team store (connected in ``post_init``), the face check."""

    def __init__(self, settings: Settings, redis_url: str, *, quiet_period_s: float = 1.0) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.tally = QuietPeriod(quiet_period_s)
        self._client: QueueClient | None = None
        self._conversations: Conversations | None = None
        self._teams: TeamStore | None = None
        self._analyzer: FaceAnalyzer | None = None
        self._analyzer_lock = asyncio.Lock()
        # One thread for all face work: dlib's detector aborts the process when two threads
        # use it at once, and checks are CPU-bound anyway. It never runs on the event loop.
        self._face_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faces")

    async def connect(self) -> None:
        if self._client is None:
            self._client = await QueueClient.connect(self.settings, self.redis_url)
            self._conversations = Conversations(self._client)
            self._teams = TeamStore(self._client.redis, self._client.store, self.settings)

    async def close(self) -> None:
        await self.tally.close()
        self._face_thread.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            await self._client.close()
            self._client = None
            self._conversations = None
            self._teams = None

    @property
    def client(self) -> QueueClient:
        if self._client is None:
            raise ConfigurationError("the bot's queue client is not connected (post_init not run)")
        return self._client

    @property
    def conversations(self) -> Conversations:
        if self._conversations is None:
            raise ConfigurationError("the bot's queue client is not connected (post_init not run)")
        return self._conversations

    @property
    def teams(self) -> TeamStore:
        if self._teams is None:
            raise ConfigurationError("the bot's queue client is not connected (post_init not run)")
        return self._teams

    async def analyzer(self) -> FaceAnalyzer:
        """The face analyzer, loaded in a thread on first use (not at start-up: it is heavy)."""
        if self._analyzer is None:
            async with self._analyzer_lock:
                if self._analyzer is None:
                    from headshots.generation.faces import load_analyzer

                    self._analyzer = await self.in_face_thread(load_analyzer, self.settings)
        return self._analyzer

    async def in_face_thread(
        self, function: Callable[..., T], *args: object, **kwargs: object
    ) -> T:
        """Run blocking face work (detection, embedding, JPEG re-encoding) off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._face_thread, functools.partial(function, *args, **kwargs)
        )
