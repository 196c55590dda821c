"""What one worker process builds once and shares with its arq workers, jobs and deliveries.

Its own module so that delivery (``deliver``) and the worker (``worker``) both depend on it
instead of on each other.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from arq.connections import ArqRedis

from headshots.generation.context import Retention, StageSet
from headshots.queue.delivery import SenderPool
from headshots.queue.status import StatusReporter
from headshots.queue.store import BlobStore
from headshots.settings import Settings


@dataclass
class WorkerResources:
    """Built once per worker process and shared by its arq workers (and their jobs)."""

    settings: Settings
    redis: ArqRedis
    store: BlobStore
    stages: StageSet
    senders: SenderPool
    status: StatusReporter
    loop: asyncio.AbstractEventLoop
    #: One GPU: the train and generate workers of one process take turns.
    gpu_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def ttl_for(self, retention: Retention) -> int:
        return {
            Retention.SELFIE: self.settings.selfie_ttl_s,
            Retention.LORA: self.settings.lora_ttl_s,
            Retention.RESULT: self.settings.results_ttl_s,
        }[retention]
