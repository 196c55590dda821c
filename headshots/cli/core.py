"""Commands that run and inspect the service: up, worker, bot, status, forget, doctor."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis

from headshots.cli.supervise import Supervisor
from headshots.errors import ConfigurationError
from headshots.queue import constants, registry
from headshots.queue.client import QueueClient
from headshots.queue.contracts import PLATFORM_SHORT
from headshots.queue.locate import redis_for, redis_server_for
from headshots.queue.progress import events, position_eta
from headshots.settings import Settings

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = subparsers.add_parser("up", help="run everything on this machine (Redis, workers, bots)")
    up.add_argument("--no-worker", action="store_true", help="run only the bots")
    up.set_defaults(func=cmd_up)

    worker = subparsers.add_parser("worker", help="run a GPU worker")
    worker.add_argument("--queue", choices=["train", "generate", "all"], default="all")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.set_defaults(func=cmd_worker)

    bot = subparsers.add_parser("bot", help="run a chat front end")
    bot.add_argument("platform", choices=["telegram", "discord", "slack"])
    bot.add_argument("--sync", action="store_true", help="discord: sync slash commands, then exit")
    bot.add_argument("--guild", type=int, default=None, help="discord: sync to one server only")
    bot.set_defaults(func=cmd_bot)

    status = subparsers.add_parser("status", help="queues, workers, or one job")
    status.add_argument("job", nargs="?", help="a job id")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    forget = subparsers.add_parser("forget", help="delete every key and file of a user")
    forget.add_argument(
        "user", help="user key: tg:12345, dc:67890, sl:U024BE7LH (platform names too)"
    )
    forget.set_defaults(func=cmd_forget)

    doctor = subparsers.add_parser("doctor", help="what is configured or missing")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(func=cmd_doctor)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from headshots.queue.worker import run_workers

    parts = ["train", "generate"] if args.queue == "all" else [args.queue]
    with redis_for(settings) as url:
        asyncio.run(run_workers(settings, url, parts, burst=args.burst))
    return 0


def cmd_bot(args: argparse.Namespace, settings: Settings) -> int:
    if args.platform == "telegram":
        if settings.telegram_token is None:
            raise ConfigurationError("set HEADSHOTS_TELEGRAM_TOKEN to run the Telegram bot")
        from headshots.bot import telegram

        with redis_for(settings) as url:
            telegram.run(settings, url)
        return 0
    if args.platform == "slack":
        from headshots.bot import slack

        with redis_for(settings) as url:
            slack.run(settings, url)
        return 0
    if settings.discord_token is None:
        raise ConfigurationError("set HEADSHOTS_DISCORD_TOKEN to run the Discord bot")
    from headshots.bot import discord

    if args.sync:
        count = asyncio.run(discord.sync_commands(settings, args.guild))
        print(f"synced {count} command(s)")
        return 0
    with redis_for(settings) as url:
        discord.run(settings, url)
    return 0


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    """Run Redis (embedded unless configured), a worker for both queues, and each bot."""
    commands: list[list[str]] = []
    if not args.no_worker:
        commands.append([sys.executable, "-m", "headshots", "worker", "--queue", "all"])
    if settings.telegram_token is not None:
        commands.append([sys.executable, "-m", "headshots", "bot", "telegram"])
    if settings.discord_token is not None:
        commands.append([sys.executable, "-m", "headshots", "bot", "discord"])
    if settings.slack_bot_token is not None and settings.slack_app_token is not None:
        commands.append([sys.executable, "-m", "headshots", "bot", "slack"])
    elif settings.slack_bot_token is not None or settings.slack_app_token is not None:
        print(
            "headshots: Slack needs both HEADSHOTS_SLACK_BOT_TOKEN and HEADSHOTS_SLACK_APP_TOKEN; "
            "not starting the Slack bot",
            file=sys.stderr,
        )
    if len(commands) == (0 if args.no_worker else 1):
        print(
            "headshots: no bot token is set (HEADSHOTS_TELEGRAM_TOKEN / HEADSHOTS_DISCORD_TOKEN / "
            "HEADSHOTS_SLACK_BOT_TOKEN and _APP_TOKEN); running the worker only",
            file=sys.stderr,
        )
    with redis_server_for(settings, announce=True) as (url, server):
        env = {**os.environ, "HEADSHOTS_REDIS_URL": url}
        supervisor = Supervisor({" ".join(cmd[3:]): cmd for cmd in commands}, env, redis=server)
        print(f"headshots up: Redis at {url}; {len(commands)} process(es); Ctrl-C stops all")
        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        supervisor.start()
        try:
            while not stopping:
                supervisor.poll()
                time.sleep(0.5)
        finally:
            supervisor.stop()
        return 0


def _normalise_user(user: str) -> str:
    platform, _, ident = user.partition(":")
    names = {**PLATFORM_SHORT, **{short: short for short in PLATFORM_SHORT.values()}}
    short = names.get(platform)  # "telegram:" or "tg:"
    if short == "sl" and ident.isalnum() and not ident.isdigit():
        # Slack shows member ids (U024BE7LH); keys hold their number (see delivery/slack.py).
        from headshots.queue.delivery.slack import slack_number

        ident = str(slack_number(ident.upper()))
    if short is None or not ident.isdigit():
        raise ConfigurationError(
            f"user must look like tg:12345, dc:67890 or sl:U024BE7LH, got {user!r}"
        )
    return f"{short}:{ident}"


def cmd_forget(args: argparse.Namespace, settings: Settings) -> int:
    user_key = _normalise_user(args.user)

    async def forget(url: str) -> None:
        client = await QueueClient.connect(settings, url)
        try:
            report = await client.forget(user_key)
        finally:
            await client.close()
        print(
            f"forgot {user_key}: {report.jobs} job(s), {report.keys} key(s), {report.blobs} file(s)"
        )

    with redis_for(settings) as url:
        asyncio.run(forget(url))
    return 0


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "-"


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    async def status(url: str) -> dict[str, Any]:
        client = await QueueClient.connect(settings, url)
        try:
            if args.job:
                info = await client.job(args.job)
                if info is None:
                    return {"missing": f"no job {args.job}"}
                return {
                    "job": info.job_id,
                    "state": info.state.value,
                    "user": info.user_key,
                    "kind": info.request.kind,
                    "style": info.request.style.preset,
                    "error": info.error,
                    "timestamps": {k: _when(v) for k, v in info.timestamps.items()},
                    "position": info.position.position if info.position else None,
                    "eta": position_eta(info.position) if info.position else None,
                    "results": len(info.results),
                    "events": [
                        e.model_dump(mode="json") for e in await events(client.redis, info.job_id)
                    ],
                }
            report: dict[str, Any] = {"redis": url}
            for part, queue in constants.QUEUES.items():
                workers = await registry.live_workers(client.redis, part)
                report[part] = {
                    "queued": int(await client.redis.zcard(queue)),
                    "workers": [{"name": n, "seen_s_ago": round(age, 1)} for n, age in workers],
                }
            return report
        finally:
            await client.close()

    with redis_for(settings) as url:
        report = asyncio.run(status(url))
    if args.json:
        print(json.dumps(report, indent=2))
    elif "job" in report:
        print(f"job {report['job']}: {report['state']} ({report['kind']}, {report['style']})")
        if report.get("position"):
            print(f"  position {report['position']}, ETA {report['eta']}")
        for name, when in report["timestamps"].items():
            print(f"  {name:<11} {when}")
        if report.get("error"):
            print(f"  error: {report['error']}")
        for event in report["events"][-5:]:
            print(f"  · {event['stage']}: {event['text']}")
    elif "missing" in report:
        print(report["missing"], file=sys.stderr)
        return 1
    else:
        print(f"Redis: {report['redis']}")
        for part in constants.QUEUES:
            names = [w["name"] for w in report[part]["workers"]]
            workers = f"{len(names)} worker(s): {', '.join(names)}" if names else "no live worker"
            print(f"  {part:<9} {report[part]['queued']} queued · {workers}")
    return 1 if "missing" in report else 0


#: The way out for every "not cached while offline" line of doctor.
_FETCH_HINT = (
    "run `headshots models fetch` with the same settings on a host with network (it fills "
    "HEADSHOTS_MODEL_DIR; copy that folder here)"
)


def _hub_cached(settings: Settings, name: str) -> bool:
    """Whether Hugging Face id ``name`` is in our model cache (huggingface_hub's layout)."""
    return (settings.models_path / "hub" / f"models--{name.replace('/', '--')}").is_dir()


def _check_output_check(settings: Settings, check: Any) -> None:
    """Say loudly when generated images would reach chats without the NSFW output check."""
    from pathlib import Path

    from headshots.generation.safety import checker_setting

    base = Path(settings.base_model).expanduser()
    name = checker_setting(settings, base if base.is_dir() else None)
    if name is None:
        check(
            "output check",
            False,
            "OFF (HEADSHOTS_SAFETY_CHECKER=none): generated images of real people's faces are "
            "delivered WITHOUT an NSFW check; set it to 'auto' or a checker folder",
            False,
        )
        print(
            "headshots doctor: WARNING: no output check is configured; flagged images would "
            "be delivered",
            file=sys.stderr,
        )
        return
    local = Path(name).expanduser()
    if local.is_dir():
        check("output check", True, f"safety checker from {local}")
        return
    cached = _hub_cached(settings, name)
    where = "cached" if cached else "downloaded when a worker starts"
    ok = cached or not settings.hf_offline
    detail = f"safety checker {name} ({where})"
    if not ok:
        detail = (
            f"safety checker {name} is not cached and HEADSHOTS_HF_OFFLINE=1: workers will not "
            f"start (they would fail every job). Either {_FETCH_HINT} or point "
            "HEADSHOTS_SAFETY_CHECKER at a local checker folder; or set "
            "HEADSHOTS_SAFETY_CHECKER=none, which starts workers WITHOUT an NSFW check: "
            "generated images of real people's faces then reach chats unchecked"
        )
    check("output check", ok, detail)


def _check_adapters(settings: Settings, check: Any) -> None:
    """Say whether the instant FaceID preview and quick (LCM) drafts can run here."""
    from pathlib import Path

    from headshots.errors import ModelMissing
    from headshots.generation.faces.insightface_backend import (
        insightface_pack_dir,
        pack_is_present,
    )
    from headshots.generation.models import detect_family
    from headshots.generation.preview import adapter_location, describe_faceid_file
    from headshots.generation.stages import describe_lcm_lora, quick_unavailable

    base = Path(settings.base_model).expanduser()
    family = detect_family(base) if (base / "model_index.json").is_file() else None

    def hub_problem(name: str, what: str) -> str | None:
        if _hub_cached(settings, name) or not settings.hf_offline:
            return None
        return f"{what} {name} is not cached and HEADSHOTS_HF_OFFLINE=1 ({_FETCH_HINT})"

    if not settings.ip_adapter_faceid:
        check(
            "faceid",
            False,
            "not configured (set HEADSHOTS_IP_ADAPTER_FACEID): no instant preview",
            False,
        )
    else:
        backend = settings.face_backend
        if backend == "auto":
            pack = insightface_pack_dir(settings.models_path, settings.insightface_pack)
            backend = "insightface" if pack_is_present(pack) else "dlib"
        try:
            detail = describe_faceid_file(settings.ip_adapter_faceid)
            location = adapter_location(settings.ip_adapter_faceid)[0]
            hub = None if Path(location).is_dir() else hub_problem(location, "the adapter")
            problems = [hub] if hub else []
            if backend != "insightface":
                problems.append(
                    f"not available with the {backend} backend (needs insightface's 512-d "
                    "ArcFace embeddings)"
                )
            if family not in (None, "sd15"):
                problems.append(f"only wired for SD1.5 base models, not {family}")
            check("faceid", not problems, "; ".join([*problems, detail]), False)
        except ModelMissing as exc:
            check("faceid", False, f"unusable: {exc}", False)
    if family == "flux2-klein":
        # klein drafts with its own 4 steps when the folder holds the step-distilled variant.
        index = json.loads((base / "model_index.json").read_text())
        distilled = bool(index.get("is_distilled"))
        detail = (
            "the step-distilled FLUX.2 [klein]: 4 steps, no LCM-LoRA needed"
            if distilled
            else "not available: this FLUX.2 [klein] is the undistilled base (50 steps)"
        )
        check("quick drafts", distilled, detail, False)
        return
    reason = quick_unavailable(settings)
    lcm = settings.lcm_lora or ""
    if reason is None and not Path(lcm).expanduser().exists():
        reason = hub_problem(lcm, "the LCM-LoRA")
    if reason is not None:
        check("quick drafts", False, f"not available: {reason} (the chat says so)", False)
    else:
        try:
            check("quick drafts", True, describe_lcm_lora(settings.lcm_lora or "", family), False)
        except ModelMissing as exc:
            check("quick drafts", False, f"unusable: {exc}", False)


def _check_reference(settings: Settings, check: Callable[..., None]) -> None:
    """Say which reference-photo hints the chats offer, and whether their ControlNets load."""
    from pathlib import Path

    from headshots.generation.controlnet import controlnet_env
    from headshots.model_family import (
        CONTROL_HINTS,
        KLEIN_NO_CONTROLNET,
        ModelFamily,
        configured_controlnet,
        local_family,
    )

    family = local_family(settings)
    if family == "flux2-klein":
        check("reference photo", False, f"not offered: {KLEIN_NO_CONTROLNET}", False)
        return
    families: tuple[ModelFamily, ...] = (family,) if family else ("sd15", "sdxl")
    found: list[str] = []
    problems: list[str] = []
    for fam in families:
        for hint in CONTROL_HINTS:
            name = configured_controlnet(settings, fam, hint)
            if name is None:
                continue
            local = Path(name).expanduser()
            if local.is_dir():
                if not (local / "config.json").is_file():
                    problems.append(f"{controlnet_env(fam, hint)}={local} has no config.json")
                    continue
            elif settings.hf_offline and not _hub_cached(settings, name):
                problems.append(
                    f"{fam} {hint} ControlNet {name} is not cached and HEADSHOTS_HF_OFFLINE=1 "
                    f"({_FETCH_HINT})"
                )
                continue
            found.append(f"{fam} {hint}: {name}")
    if not found and not problems:
        names = ", ".join(controlnet_env(f, h) for f in families for h in CONTROL_HINTS)
        check("reference photo", False, f"not offered: no ControlNet set ({names})", False)
        return
    detail = "; ".join([*problems, *found])
    check("reference photo", not problems, detail, False)


def _check_pose_model(settings: Settings, check: Callable[..., None]) -> None:
    """Whether a reference photo's body comes from the operator's pose model or the face."""
    if settings.pose_model is None:
        check(
            "body pose", True, "from the face (dlib); HEADSHOTS_POSE_MODEL adds a body model", False
        )
        return
    from headshots.errors import ModelMissing
    from headshots.generation.body_pose import BodyPoseModel

    try:
        model = BodyPoseModel.load(settings.pose_model)
    except (ModelMissing, ConfigurationError) as exc:
        check("body pose", False, str(exc), False)
        return
    height, width = model.input_size
    check(
        "body pose", True, f"{settings.pose_model} (COCO heatmaps, {width}x{height} input)", False
    )


def _check_slack(settings: Settings, check: Callable[..., None]) -> None:
    """``auth.test`` with the bot token, and whether Socket Mode has its app-level token."""
    from headshots.bot.slack import check_auth

    if settings.slack_app_token is None:
        check("slack", False, "HEADSHOTS_SLACK_APP_TOKEN (xapp-) is not set: no Socket Mode", False)
        return
    try:
        who = asyncio.run(check_auth(settings))
    except Exception as exc:  # a refused token, or Slack out of reach: the finding either way
        check("slack", False, f"auth.test failed: {exc}", False)
        return
    check("slack", True, f"auth.test: {who}", False)


def _describe_family(settings: Settings) -> tuple[bool, str]:
    """(known, what to say): the base model's family, its licence and the GPU memory it needs."""
    from headshots.errors import ConfigurationError, ModelMissing
    from headshots.generation.models import FAMILY_FACTS, resolve_model

    try:
        # Offline: doctor reads what is on disk, it never downloads.
        family = resolve_model(settings.model_copy(update={"hf_offline": True})).family
    except (ModelMissing, ConfigurationError) as exc:
        return False, f"unknown: {exc}"
    facts = FAMILY_FACTS[family]
    return True, f"{family} ({facts.title}); licence: {facts.licence}; GPU memory: {facts.vram}"


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    checks: list[tuple[str, bool, str, bool]] = []  # name, ok, detail, required for `up`

    def check(name: str, ok: bool, detail: str, required: bool = True) -> None:
        checks.append((name, ok, detail, required))

    tokens = (
        ("telegram", settings.telegram_token),
        ("discord", settings.discord_token),
        ("slack", settings.slack_bot_token and settings.slack_app_token),
    )
    check(
        "chat tokens",
        any(t is not None for _, t in tokens),
        ", ".join(n for n, t in tokens if t is not None)
        or "none set: set HEADSHOTS_TELEGRAM_TOKEN, HEADSHOTS_DISCORD_TOKEN and/or "
        "HEADSHOTS_SLACK_BOT_TOKEN with HEADSHOTS_SLACK_APP_TOKEN",
        required=False,
    )
    if settings.slack_bot_token is not None:
        _check_slack(settings, check)
    try:
        with redis_for(settings) as url:
            client = redis.Redis.from_url(url, socket_connect_timeout=2)
            try:
                client.ping()
            finally:
                client.close()
            check("redis", True, url if settings.redis_url else f"embedded ({url})")
    except Exception as exc:  # any failure to reach Redis is the finding, whatever its type
        check("redis", False, f"cannot reach Redis: {exc}")
    for module, what, required in (
        ("torch", "worker extra (pip install 'headshots[worker]')", True),
        ("diffusers", "worker extra", True),
        ("peft", "worker extra", True),
        ("dlib", "faces extra (pip install 'headshots[faces]')", False),
        ("insightface", "faces extra", False),
        ("onnxruntime", "faces extra", False),
    ):
        found = importlib.util.find_spec(module) is not None
        check(module, found, "installed" if found else f"missing: {what}", required)
    if importlib.util.find_spec("torch") is not None:
        import torch

        device = (
            "cuda"
            if torch.cuda.is_available()
            else "mps"
            if torch.backends.mps.is_available()
            else "cpu"
        )
        check(
            "torch device",
            True,
            device + ("" if device != "cpu" else " (slow: no GPU found)"),
            False,
        )
    models = settings.models_path
    check(
        "model cache",
        True,
        f"{models} ({'exists' if models.exists() else 'will be created'})",
        False,
    )
    base = settings.base_model
    local = os.path.isdir(base)
    cached = not local and _hub_cached(settings, base)
    if local:
        where = "local folder"
    elif cached:
        where = "Hugging Face id, cached"
    elif settings.hf_offline:
        where = f"Hugging Face id, not cached and HEADSHOTS_HF_OFFLINE=1: {_FETCH_HINT}"
    else:
        where = "Hugging Face id; downloaded on first use, or ahead with `headshots models fetch`"
    check(
        "base model",
        local or cached or not settings.hf_offline,
        f"{base} ({where})",
    )
    if local or cached:
        check("model family", *_describe_family(settings), False)
    pack = models / "insightface" / "models" / settings.insightface_pack
    check(
        "face models",
        True,
        f"insightface pack {'found' if pack.exists() else 'missing'} at {pack}; "
        f"backend setting: {settings.face_backend}",
        False,
    )
    _check_output_check(settings, check)
    _check_adapters(settings, check)
    _check_reference(settings, check)
    _check_pose_model(settings, check)
    if args.json:
        print(
            json.dumps(
                [{"check": n, "ok": ok, "detail": d, "required": r} for n, ok, d, r in checks],
                indent=2,
            )
        )
    else:
        for name, ok, detail, required in checks:
            mark = "ok " if ok else ("ERR" if required else "-- ")
            print(f"[{mark}] {name:<13} {detail}")
    failed = [n for n, ok, _, required in checks if required and not ok]
    if failed:
        print(f"headshots up would not work: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
