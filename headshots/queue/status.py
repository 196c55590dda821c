"""The one status message per job: edited on state changes, throttled, never with unchanged text."""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis

from headshots.errors import HeadshotsError
from headshots.queue import constants, guarded
from headshots.queue.contracts import ChatTarget
from headshots.queue.delivery import SenderPool
from headshots.queue.progress import decode_hash

logger = logging.getLogger(__name__)


class StatusReporter:
    def __init__(
        self, redis: Redis, senders: SenderPool, *, min_interval_s: float, ttl_s: int
    ) -> None:
        self.redis = redis
        self.senders = senders
        self.min_interval_s = min_interval_s
        self.ttl_s = ttl_s

    async def update(
        self, job_id: str, target: ChatTarget, text: str, *, force: bool = False
    ) -> None:
        """Show ``text`` in the job's status message.

        ``force`` marks a state change: it is always shown. Percent updates within a state are
        dropped when the last edit is younger than ``min_interval_s`` (Telegram answers rapid
        edits with 429). Failures are logged, never raised: a status line must not fail a job.
        """
        key = constants.job_status_key(job_id)
        if not await guarded.job_exists(self.redis, job_id):
            return  # forgotten: the chat was told so, a late "training 40%" would contradict it
        last = decode_hash(await self.redis.hgetall(key))
        if last.get("text") == text:
            return  # Telegram rejects an edit with the same text ("message is not modified")
        now = time.time()
        if not force and now - float(last.get("at", 0.0)) < self.min_interval_s:
            return
        message_id = int(last["message_id"]) if last.get("message_id") else target.status_message_id
        try:
            sender = self.senders.get(target.platform)
            if message_id is not None:
                await sender.edit_text(target, message_id, text)
            else:
                message_id = await sender.send_text(target, text)
        except HeadshotsError as exc:
            logger.warning("status update of job %s failed: %s", job_id, exc)
            return
        fields = ("text", text, "at", now, "message_id", message_id)
        await guarded.write(self.redis, job_id, "HSET", key, *fields, ttl_s=self.ttl_s)
