"""The job pipeline end to end: chat-side submit -> real Redis -> real arq worker processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headshots.errors import LimitReached, NotFound
from headshots.queue.client import QueueClient
from headshots.queue.contracts import JobState, UserRef
from headshots.queue.progress import events
from headshots.settings import Settings
from tests.plugins.queue import ROOT, parent_env, settings_env
from tests.queue_helpers import keys_mentioning, make_request, wait_for_state

FINISHED = {JobState.DONE, JobState.FAILED, JobState.CANCELLED}


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(
        stages="tests.stub_stages:build",
        train_job_timeout_s=6,
        generate_job_timeout_s=6,
    )


@pytest.fixture
async def client(settings: Settings, queue_client_factory: Any) -> QueueClient:
    client: QueueClient = await queue_client_factory(settings)
    return client


def worker_env(settings: Settings, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = settings_env(settings)
    env["STUB_RUN_LOG"] = str(tmp_path / "runs.log")
    env.update(extra)
    return env


async def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def run_log(tmp_path: Path) -> list[tuple[str, str]]:
    path = tmp_path / "runs.log"
    if not path.exists():
        return []
    return [tuple(line.split()) for line in path.read_text().splitlines()]  # type: ignore[misc]


async def test_job_runs_to_done_and_leaves_progress(
    client: QueueClient, settings: Settings, start_worker: Any, tmp_path: Path
) -> None:
    request = await make_request(client, count=3)
    submission = await client.submit(request)
    assert submission.created and submission.position.position == 1
    start_worker(worker_env(settings, tmp_path))

    assert await wait_for_state(client, submission.job_id, FINISHED) is JobState.DONE
    states = [e.state for e in await events(client.redis, submission.job_id)]
    for expected in ("queued", "checking", "training", "generating", "delivering", "done"):
        assert JobState(expected) in states
    assert any(e.percent == 100 for e in await events(client.redis, submission.job_id))

    info = await client.job(submission.job_id)
    assert info is not None and len(info.results) == 3
    assert await client.active_job(request.user) is None, "the active-job slot must be freed"
    # Delivered into the CLI outbox: three images, the contact sheet, status edits.
    outbox = settings.state_dir / "outbox" / str(request.target.chat_id)
    assert sorted(p.name for p in outbox.glob("headshot-*.png")) == [
        "headshot-01.png",
        "headshot-02.png",
        "headshot-03.png",
    ]
    messages = [json.loads(line) for line in (outbox / "messages.jsonl").read_text().splitlines()]
    texts = [m.get("text", "") for m in messages]
    assert any("Training" in t for t in texts) and texts[-1].startswith("Done")
    sheet = [m for m in messages if m.get("file") == "contact-sheet.jpg"]
    assert sheet and f"hs:ns:{submission.job_id}" in sheet[0]["buttons"]


async def test_waiting_jobs_see_the_line_move(
    client: QueueClient, settings: Settings, start_worker: Any, tmp_path: Path
) -> None:
    # One worker, one training slot: three people queue up; each finished job moves the
    # others up, and their status messages say so before they start.
    submissions = []
    for user_id in (11, 12, 13):
        submissions.append(await client.submit(await make_request(client, user_id=user_id)))
    assert [s.position.position for s in submissions] == [1, 2, 3]
    start_worker(worker_env(settings, tmp_path))
    for submission in submissions:
        assert await wait_for_state(client, submission.job_id, FINISHED) is JobState.DONE

    def status_texts(user_id: int) -> list[str]:
        outbox = settings.state_dir / "outbox" / str(user_id) / "messages.jsonl"
        lines = [json.loads(line) for line in outbox.read_text().splitlines()]
        return [str(m.get("text", "")) for m in lines if m.get("text")]

    last = status_texts(13)
    queued = [t for t in last if t.startswith("Queued: position")]
    assert queued and queued[0].startswith("Queued: position 2, ETA"), last
    assert not any("No worker" in t for t in queued), last  # this one was online
    assert last.index(queued[0]) < next(i for i, t in enumerate(last) if "Checking" in t)
    assert status_texts(13)[-1].startswith("Done"), last


async def test_a_cancel_ahead_moves_the_line_while_a_job_runs(
    client: QueueClient, settings: Settings, start_worker: Any, tmp_path: Path
) -> None:
    running = await client.submit(await make_request(client, user_id=21))
    leaving_request = await make_request(client, user_id=22)
    leaving = await client.submit(leaving_request)
    waiting = await client.submit(await make_request(client, user_id=23))
    assert waiting.position.position == 3
    start_worker(
        worker_env(
            settings,
            tmp_path,
            STUB_STEPS="400",
            STUB_STEP_S="0.05",
            HEADSHOTS_QUEUE_REFRESH_S="0.5",
        )
    )
    await wait_for_state(client, running.job_id, {JobState.TRAINING})
    await client.cancel(leaving_request.user, leaving.job_id)

    outbox = settings.state_dir / "outbox" / "23" / "messages.jsonl"

    def told_position_2() -> bool:
        return outbox.exists() and "Queued: position 2," in outbox.read_text()

    await wait_until(told_position_2)
    # Told while the first job still trains: by the periodic refresh, not by a job's end.
    info = await client.job(running.job_id)
    assert info is not None and info.state is JobState.TRAINING
    await client.cancel(UserRef(platform="cli", user_id=21), running.job_id)


async def test_same_request_twice_is_one_job(client: QueueClient) -> None:
    request = await make_request(client)
    first = await client.submit(request)
    second = await client.submit(request)
    assert first.job_id == second.job_id
    assert first.created and not second.created
    assert await client.redis.zcard("headshots:train") == 1
    assert len(await client.user_jobs(request.user)) == 1


async def test_limits_hold_in_redis(
    settings_factory: Callable[..., Settings], redis_client: Any
) -> None:
    settings = settings_factory(max_jobs_per_day=2)
    assert settings.redis_url
    first_client = await QueueClient.connect(settings, settings.redis_url)
    second_client = await QueueClient.connect(settings, settings.redis_url)  # another bot process
    try:
        first = await make_request(first_client, user_id=7)
        await first_client.submit(first)
        with pytest.raises(LimitReached, match="already have a job"):
            await second_client.submit(await make_request(second_client, user_id=7))
        await second_client.cancel(first.user)
        await second_client.submit(await make_request(second_client, user_id=7))
        await second_client.cancel(first.user)
        with pytest.raises(LimitReached, match="limit of 2 jobs"):
            await first_client.submit(await make_request(first_client, user_id=7))
        # Another user is not affected.
        await first_client.submit(await make_request(first_client, user_id=8))
    finally:
        await first_client.close()
        await second_client.close()


async def test_cancel_queued_job_frees_slot(client: QueueClient) -> None:
    request = await make_request(client)
    submission = await client.submit(request)
    info = await client.cancel(request.user)
    assert info.state is JobState.CANCELLED
    assert await client.redis.zcard("headshots:train") == 0
    assert await client.active_job(request.user) is None
    again = await client.submit(await make_request(client))
    assert again.created and again.job_id != submission.job_id
    with pytest.raises(NotFound):
        await client.cancel(request.user, "nonexistent")


async def test_cancel_running_job(
    client: QueueClient, settings: Settings, start_worker: Any, tmp_path: Path
) -> None:
    request = await make_request(client)
    submission = await client.submit(request)
    start_worker(worker_env(settings, tmp_path, STUB_STEPS="200", STUB_STEP_S="0.02"))
    await wait_for_state(client, submission.job_id, {JobState.TRAINING})
    await client.cancel(request.user)
    assert await wait_for_state(client, submission.job_id, FINISHED) is JobState.CANCELLED
    assert await client.active_job(request.user) is None
    stages = [stage for _, stage in run_log(tmp_path)]
    assert "generate" not in stages


async def job_in_a_hanging_stage(
    client: QueueClient, settings: Settings, start_worker: Any, tmp_path: Path
) -> tuple[Any, Any, dict[str, str], subprocess.Popen[bytes]]:
    """(request, submission, worker env, worker): a job whose worker hangs in its training
    stage (no cancel checks there), for the test to SIGKILL."""
    request = await make_request(client)
    submission = await client.submit(request)
    env = worker_env(settings, tmp_path, STUB_HANG_ONCE=str(tmp_path / "hang-marker"))
    worker = start_worker(env)
    await wait_for_state(client, submission.job_id, {JobState.TRAINING})
    deadline = time.monotonic() + 30
    while not (tmp_path / "hang-marker").exists():
        assert time.monotonic() < deadline, "the worker never reached the hanging stage"
        await asyncio.sleep(0.1)
    return request, submission, env, worker


async def test_worker_killed_mid_job_resumes_on_another(
    client: QueueClient, settings: Settings, start_worker: Any, tmp_path: Path
) -> None:
    _, submission, env, first = await job_in_a_hanging_stage(
        client, settings, start_worker, tmp_path
    )
    first.send_signal(signal.SIGKILL)
    first.wait()

    start_worker(env)  # arq re-runs the job once the dead worker's in-progress key expires
    assert await wait_for_state(client, submission.job_id, FINISHED, timeout_s=90) is JobState.DONE
    runs = [stage for job, stage in run_log(tmp_path) if job == submission.job_id]
    assert runs.count("check") == 1, f"finished stage re-ran: {runs}"
    assert runs.count("train") == 2, runs
    assert runs.count("generate") == 1 and runs.count("rank") == 1


async def test_a_cancelled_job_whose_worker_dies_still_ends_cancelled(
    client: QueueClient, settings: Settings, start_worker: Any, tmp_path: Path
) -> None:
    # Found by bench/soak.py: /cancel took a running job out of arq's queue; its worker was
    # then SIGKILLed, arq had nothing to run again, and the job stayed "training" for good.
    request, submission, env, first = await job_in_a_hanging_stage(
        client, settings, start_worker, tmp_path
    )
    info = await client.cancel(request.user)
    assert info.state is JobState.TRAINING  # running: flagged, left to its worker
    first.send_signal(signal.SIGKILL)
    first.wait()

    start_worker(env)  # arq re-runs it once the dead worker's in-progress key expires
    state = await wait_for_state(client, submission.job_id, FINISHED, timeout_s=60)
    assert state is JobState.CANCELLED
    assert await client.active_job(request.user) is None
    runs = [stage for job, stage in run_log(tmp_path) if job == submission.job_id]
    assert "generate" not in runs, runs


async def test_forget_leaves_no_key_of_the_user(
    client: QueueClient, settings: Settings, start_worker: Any, tmp_path: Path
) -> None:
    request = await make_request(client, user_id=777001)
    submission = await client.submit(request)
    start_worker(worker_env(settings, tmp_path))
    assert await wait_for_state(client, submission.job_id, FINISHED) is JobState.DONE
    queued = await client.submit(await make_request(client, user_id=777001, count=2))
    other = await make_request(client, user_id=555)
    other_job = await client.submit(other)
    assert await keys_mentioning(client.redis, ["777001", submission.job_id])

    env = parent_env()
    env.update(settings_env(settings))
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "headshots", "forget", "cli:777001"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "forgot cli:777001" in done.stdout
    leftovers = await keys_mentioning(client.redis, ["777001", submission.job_id, queued.job_id])
    assert leftovers == [], leftovers
    # Someone else's data is untouched.
    assert await client.job(other_job.job_id) is not None
    assert await client.list_selfies(other.user, other.upload_id)


async def test_forget_during_a_stage_leaves_nothing_behind(
    client: QueueClient, settings: Settings, start_worker: Any, tmp_path: Path
) -> None:
    # /delete while the worker is inside a long GPU call that cannot be interrupted: what the
    # stage writes when the call returns (the LoRA, its record, progress) must not survive.
    request = await make_request(client, user_id=777002)
    submission = await client.submit(request)
    start_worker(worker_env(settings, tmp_path, STUB_BLIND_S="1.5"))
    await wait_until(lambda: (submission.job_id, "train-blind") in run_log(tmp_path))
    assert (await client.forget(request.user)).jobs == 1
    await wait_until(lambda: (submission.job_id, "train-writing") in run_log(tmp_path))
    await asyncio.sleep(1.0)  # the worker writes, finds the record gone and cleans up
    assert await keys_mentioning(client.redis, ["777002", submission.job_id]) == []
    assert not await client.store.list(request.user.key, "")


async def test_reuse_requests_find_the_job_that_trained(client: QueueClient) -> None:
    from headshots.queue import constants
    from headshots.queue.worker import find_train_job

    full = await make_request(client, user_id=31)
    new_style = full.model_copy(update={"kind": "new_style", "lora_job_id": full.job_id()})
    more_like = full.model_copy(
        update={"kind": "more_like", "lora_job_id": new_style.job_id(), "like_rank": 2}
    )
    stranger = full.model_copy(
        update={"user": full.user.model_copy(update={"user_id": 32}), "lora_job_id": full.job_id()}
    )
    for request in (full, new_style, more_like):
        await client.redis.hset(
            constants.job_key(request.job_id()),
            mapping={"user": request.user.key, "request": request.model_dump_json()},
        )
    assert await find_train_job(client.redis, more_like) == full.job_id()
    assert await find_train_job(client.redis, new_style) == full.job_id()
    # Another user's job is never followed (the LoRA look-up then finds nothing of theirs).
    assert await find_train_job(
        client.redis, stranger.model_copy(update={"kind": "new_style"})
    ) == (full.job_id())


async def test_worker_outlives_a_redis_restart(
    settings_factory: Callable[..., Settings], start_worker: Any, tmp_path: Path
) -> None:
    # Found by bench/soak.py: arq's poll loop raised when Redis went away, and the first worker
    # task to end stopped the whole process (exit 0, its running job cancelled).
    from headshots.queue import constants
    from headshots.queue.embedded import EmbeddedRedis

    server = EmbeddedRedis(tmp_path / "redis", persist=True)
    url = server.start()
    try:
        settings = settings_factory(
            redis_url=url,
            stages="tests.stub_stages:build",
            train_job_timeout_s=6,
            generate_job_timeout_s=6,
        )
        worker = start_worker(worker_env(settings, tmp_path))
        client = await QueueClient.connect(settings, url)
        try:
            deadline = time.monotonic() + 60
            while not await client.redis.zcard(constants.workers_key("train")):
                assert time.monotonic() < deadline, "the worker never registered"
                await asyncio.sleep(0.1)
            os.kill(server.pid or 0, signal.SIGKILL)
            await asyncio.sleep(2)  # several polls fail while it is down
            server.start()  # the same port and append-only file, as `headshots up` does
            await asyncio.sleep(1)
            assert worker.poll() is None, "the worker exited when Redis went away"
            submission = await client.submit(await make_request(client))
            state = await wait_for_state(client, submission.job_id, FINISHED, timeout_s=60)
            assert state is JobState.DONE
        finally:
            await client.close()
    finally:
        server.stop()


async def test_a_worker_whose_output_check_cannot_load_takes_no_job(
    settings_factory: Callable[..., Settings],
    worker_processes: Any,
    tiny_model_path: Path,
    tmp_path: Path,
) -> None:
    # Found by bench/soak.py: with the checker unloadable (``auto`` offline, or a folder gone),
    # the worker took every job, trained and generated, and failed it at the output check.
    # Now it says why and exits before taking one; the job waits for a worker that can run it.
    from headshots.queue import constants

    missing = tmp_path / "no-checker-here"
    settings = settings_factory(
        base_model=str(tiny_model_path),
        safety_checker=str(missing),
        hf_offline=True,
        device="cpu",
        dtype="float32",
    )
    client = await QueueClient.connect(settings, settings.redis_url or "")
    try:
        submission = await client.submit(await make_request(client))
        worker = worker_processes.start(settings_env(settings))
        returncode = await asyncio.to_thread(worker.wait, 120)
        log = worker_processes.logs()
        assert returncode == 1, log
        assert f"safety checker folder {missing} does not exist" in log, log
        assert "HEADSHOTS_SAFETY_CHECKER" in log, log  # says what to set
        info = await client.job(submission.job_id)
        assert info is not None and info.state is JobState.QUEUED, info
        assert await client.redis.zcard(constants.workers_key("train")) == 0
        assert await client.redis.zcard(constants.TRAIN_QUEUE) == 1  # still waiting, not failed
    finally:
        await client.close()
