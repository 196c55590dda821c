"""Every Redis key, channel, queue name and job name in one place (as arq keeps its own)."""

from __future__ import annotations

KEY_PREFIX = "hs:"

#: arq queue names; each is also the Redis sorted-set key arq keeps the queue in.
TRAIN_QUEUE = "headshots:train"
GENERATE_QUEUE = "headshots:generate"
QUEUES = {"train": TRAIN_QUEUE, "generate": GENERATE_QUEUE}
#: Seconds between a worker process's heartbeats (our registry and arq's health record).
WORKER_HEALTH_INTERVAL_S = 30


def workers_key(part: str) -> str:
    """Sorted set: live worker processes of ``part`` (``host:pid``), scored by last heartbeat."""
    return f"{KEY_PREFIX}workers:{part}"


#: arq function names.
TRAIN_JOB = "run_train_job"
GENERATE_JOB = "run_generate_job"

#: arq's own key prefixes (arq.constants), used by ``forget`` and queue-position look-ups.
ARQ_JOB_PREFIX = "arq:job:"
ARQ_RESULT_PREFIX = "arq:result:"
ARQ_IN_PROGRESS_PREFIX = "arq:in-progress:"
ARQ_RETRY_PREFIX = "arq:retry:"
ARQ_ABORT_KEY = "arq:abort"

#: Pub/sub channel that carries every job's progress events (one channel, many jobs).
PROGRESS_CHANNEL = KEY_PREFIX + "progress"


def job_key(job_id: str) -> str:
    """Hash: state, timestamps, request, target, error."""
    return f"{KEY_PREFIX}job:{job_id}"


def job_events_key(job_id: str) -> str:
    """List of JSON progress events, oldest first."""
    return f"{KEY_PREFIX}job:{job_id}:events"


def job_stages_key(job_id: str) -> str:
    """Hash: stage name -> JSON record of that stage's outputs (what makes re-runs skip it)."""
    return f"{KEY_PREFIX}job:{job_id}:stages"


def job_cancel_key(job_id: str) -> str:
    """String flag that long loops poll between steps."""
    return f"{KEY_PREFIX}job:{job_id}:cancel"


def job_status_key(job_id: str) -> str:
    """Hash: last status text shown in the chat and when (throttles edits)."""
    return f"{KEY_PREFIX}job:{job_id}:status"


def job_delivered_key(job_id: str) -> str:
    """Set of delivery item ids already sent (no duplicate results on a re-run)."""
    return f"{KEY_PREFIX}job:{job_id}:delivered"


def user_prefix(user_key: str) -> str:
    return f"{KEY_PREFIX}user:{user_key}:"


def user_jobs_key(user_key: str) -> str:
    """Set of this user's job ids (``forget`` walks it)."""
    return f"{user_prefix(user_key)}jobs"


def user_active_key(user_key: str) -> str:
    """String: the job id holding this user's active-job slot."""
    return f"{user_prefix(user_key)}active"


def user_chat_log_key(user_key: str) -> str:
    """Hash: what this user's sessions left in chats (places, messages), for ``/delete``."""
    return f"{user_prefix(user_key)}chat-log"


#: String: the deployment's random salt for abuse counters (made once, never deleted).
ABUSE_SALT_KEY = f"{KEY_PREFIX}abuse:salt"


def abuse_daily_key(user_digest: str, day: str) -> str:
    """Counter of jobs started on ``day`` (YYYYMMDD, UTC) by the user whose salted hash this is.

    Deliberately *not* under :func:`user_prefix`: ``/delete`` must not reset the daily limit.
    It holds no id, only a salted hash, and expires at the end of the day.
    """
    return f"{KEY_PREFIX}abuse:daily:{day}:{user_digest}"


def forgotten_key(user_digest: str) -> str:
    """String: a random token, set by ``/delete`` for :data:`FORGOTTEN_TTL_S` (the person's
    "delete epoch"). A write for the person that started before the delete sees a token it did
    not read and is refused (:mod:`headshots.queue.guarded`). Like the abuse counter it holds no
    id, only a salted hash, so it is not "something of yours left" after a delete.
    """
    return f"{KEY_PREFIX}forgotten:{user_digest}"


#: Seconds a delete marker lives: longer than any chat handler that was running at the delete.
FORGOTTEN_TTL_S = 600


def user_state_key(user_key: str, scope: str) -> str:
    """Hash: a chat front end's conversation state for this user in one chat (``scope``)."""
    return f"{user_prefix(user_key)}chat:{scope}"


def user_state_pattern(platform_short: str) -> str:
    """SCAN pattern of every :func:`user_state_key` of one platform (``tg``, ``dc``)."""
    return f"{KEY_PREFIX}user:{platform_short}:*:chat:*"


def parse_user_state_key(key: str) -> tuple[str, str]:
    """(user key, scope) of a :func:`user_state_key`."""
    user_key, _, scope = key.removeprefix(f"{KEY_PREFIX}user:").partition(":chat:")
    return user_key, scope


#: Sorted set: job id -> time of its last state change, for every job not yet finished.
#: The recovery sweep walks it to find jobs arq lost or gave up on.
LIVE_JOBS_KEY = f"{KEY_PREFIX}jobs:live"
#: String, short-lived: the worker that runs the recovery sweep this round.
RECOVERY_LOCK_KEY = f"{KEY_PREFIX}recovery-lock"


def queue_refresh_lock_key(part: str) -> str:
    """String, short-lived: the worker that refreshes ``part``'s waiting jobs this round."""
    return f"{KEY_PREFIX}refresh-lock:{part}"


def stage_durations_key(stage: str) -> str:
    """List of recent durations (seconds) of a stage, newest first, for ETAs."""
    return f"{KEY_PREFIX}stats:duration:{stage}"


#: Hash part -> seconds: what a worker expects a job's part to take before any has been
#: measured (written when it starts; see headshots/generation/estimate.py).
ESTIMATE_KEY = f"{KEY_PREFIX}stats:estimate"


def user_teams_key(user_key: str) -> str:
    """Set of team ids the user joined (their ``/delete`` leaves every team)."""
    return f"{user_prefix(user_key)}teams"


def team_key(team_id: str) -> str:
    """Hash: platform, brand kit, target chat, admins, logo flag."""
    return f"{KEY_PREFIX}team:{team_id}"


def team_members_key(team_id: str) -> str:
    """Hash: member user key -> JSON member record (state, jobs, favourite)."""
    return f"{KEY_PREFIX}team:{team_id}:members"


def team_pattern(platform_short: str) -> str:
    """SCAN pattern of every team key (and its members key) of one platform (``tg``, ``dc``)."""
    return f"{KEY_PREFIX}team:{platform_short}*"


def parse_team_key(key: str) -> str:
    """The team id of a :func:`team_key` or :func:`team_members_key`."""
    return key.removeprefix(f"{KEY_PREFIX}team:").partition(":")[0]


def discord_commands_hash_key(application_id: int | None) -> str:
    """String: hash of the slash-command tree last synced (sync only when it changes)."""
    return f"{KEY_PREFIX}discord:commands-hash:{application_id}"


BLOB_PREFIX = KEY_PREFIX + "blob:"
BLOB_EXPIRY_KEY = KEY_PREFIX + "blob-expiry"
