"""Jobs arq gives up on or loses are ended or resumed, never left "training" (real workers)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headshots.queue import constants
from headshots.queue.client import QueueClient, arq_job_id
from headshots.queue.contracts import JobState
from headshots.queue.delivery import SenderPool
from headshots.queue.progress import events, set_state
from headshots.queue.recovery import GAVE_UP_TEXT, LOST_TEXT, recover_lost_jobs
from headshots.queue.status import StatusReporter
from headshots.settings import Settings
from tests.plugins.queue import settings_env
from tests.queue_helpers import make_request, wait_for_state

FINISHED = {JobState.DONE, JobState.FAILED, JobState.CANCELLED}


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    # arq re-runs a dead worker's job once its in-progress key expires: timeout + 10 s.
    return settings_factory(
        stages="tests.stub_stages:build",
        train_job_timeout_s=1,
        generate_job_timeout_s=1,
        job_max_tries=2,
    )


@pytest.fixture
async def client(settings: Settings, queue_client_factory: Any) -> QueueClient:
    client: QueueClient = await queue_client_factory(settings)
    return client


def _chat(settings: Settings, user_id: int) -> list[str]:
    outbox = settings.state_dir / "outbox" / str(user_id) / "messages.jsonl"
    return [str(json.loads(line).get("text", "")) for line in outbox.read_text().splitlines()]


async def test_a_job_that_kills_its_worker_every_time_fails_and_frees_the_slot(
    client: QueueClient, settings: Settings, start_worker: Any
) -> None:
    request = await make_request(client, user_id=31)
    submission = await client.submit(request)
    env = {**settings_env(settings), "STUB_KILL_ALWAYS": "1"}
    started = time.monotonic()
    # Each worker dies in the train stage; arq retries on the next one until max_tries (2).
    while True:
        worker: subprocess.Popen[bytes] = start_worker(env)
        while worker.poll() is None:
            info = await client.job(submission.job_id)
            if info is not None and info.finished:
                break
            time.sleep(0.2)
        info = await client.job(submission.job_id)
        if info is not None and info.finished:
            break
        assert time.monotonic() - started < 90, "arq never gave up"
    assert info.state is JobState.FAILED
    assert info.error and "arq gave up after 2 tries" in info.error
    assert await client.active_job(request.user) is None  # the slot is free at once
    assert _chat(settings, 31)[-1] == GAVE_UP_TEXT.format(tries=2)
    assert any(e.stage == "recovery" for e in await events(client.redis, submission.job_id))
    await client.submit(await make_request(client, user_id=31))  # not "already in progress"


async def test_a_half_job_is_queued_again_and_finishes(
    client: QueueClient, settings: Settings, start_worker: Any
) -> None:
    # A crash right after a submit kept the queue entry but lost arq's job record.
    submission = await client.submit(await make_request(client, user_id=32))
    await client.redis.delete(constants.ARQ_JOB_PREFIX + arq_job_id(submission.job_id, "train"))
    start_worker(settings_env(settings))
    assert await wait_for_state(client, submission.job_id, FINISHED, timeout_s=60) is JobState.DONE
    texts = [e.text for e in await events(client.redis, submission.job_id)]
    assert "re-queued: the queue had lost this job's data" in texts


async def test_the_sweep_resumes_a_lost_job_and_stops_a_job_lost_too_often(
    client: QueueClient, settings: Settings, start_worker: Any, tmp_path: Path
) -> None:
    status = StatusReporter(client.redis, SenderPool(settings), min_interval_s=0, ttl_s=3600)
    # Our record says training, and arq holds nothing of the job (a restart lost it).
    request = await make_request(client, user_id=33)
    lost = await client.submit(request)
    await client.redis.zrem(constants.TRAIN_QUEUE, arq_job_id(lost.job_id, "train"))
    await client.redis.delete(constants.ARQ_JOB_PREFIX + arq_job_id(lost.job_id, "train"))
    await set_state(client.redis, lost.job_id, JobState.TRAINING, text="training")
    assert await recover_lost_jobs(client.redis, status, lost_after_s=60) == []  # too fresh
    assert await recover_lost_jobs(client.redis, status, lost_after_s=0) == [lost.job_id]
    start_worker(settings_env(settings))
    assert await wait_for_state(client, lost.job_id, FINISHED, timeout_s=60) is JobState.DONE
    assert not await client.redis.zscore(constants.LIVE_JOBS_KEY, lost.job_id)

    again = await client.submit(await make_request(client, user_id=34))
    for _ in range(3):  # lost every time it is re-queued
        await client.redis.delete(constants.ARQ_JOB_PREFIX + arq_job_id(again.job_id, "train"))
        await client.redis.zrem(constants.TRAIN_QUEUE, arq_job_id(again.job_id, "train"))
        await recover_lost_jobs(client.redis, status, lost_after_s=0)
    info = await client.job(again.job_id)
    assert info is not None and info.state is JobState.FAILED
    assert await client.active_job(info.request.user) is None
    assert _chat(settings, 34)[-1] == LOST_TEXT
    await status.senders.close()
