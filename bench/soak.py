"""Soak run: many people on the Telegram, Discord and Slack bots at once while things break;
nothing lost or doubled.

Run: ``.venv/bin/python bench/soak.py [--users 50] [--quick]``. Not a unit test (``--quick`` runs
in the suite from tests/test_bench_soak.py). Everything is on this machine, over loopback:

- the fake Bot API (tests/fake_telegram.py) and the fake Discord REST API with its gateway
  (tests/fake_discord.py, tests/fake_discord_gateway.py) in this process, real HTTP and a real
  websocket;
- ``headshots bot telegram``, ``headshots bot discord`` and two ``headshots worker --queue all``
  processes on the tiny random-weight model, kept alive by ``headshots up``'s
  :class:`Supervisor`, with the embedded Redis (append-only file, fsync always) that ``up`` runs;
- N simulated people: private chats, a shared group, and a team group with a kit (members upload
  privately through the join link); each sends 4-8 real selfies (scikit-image's astronaut, varied
  by crop, flip and brightness), picks a style and orders 4 headshots. Some /cancel, some /delete
  mid-job, some press Confirm twice, some press another person's buttons in the group.
- A share of the private people (``--discord-share``, 0.3) are on Discord instead: ``/headshot
  start`` in the server's channel (a thread each) or, one in three, in a DM; "I agree"; photos
  posted as messages (several at once, then one by one); the style form's selects and buttons
  (the DM ones also describe the look in a modal); Confirm. Events go over the fake gateway; one
  sent while the Discord bot is down reaches nobody, as on Discord.
- Faults on a schedule: SIGKILL the bot mid-upload (the supervisor restarts it), SIGKILL a worker
  mid-training and another mid-generation, SIGKILL Redis once (restarted on its AOF), and make
  the Bot API answer 429 and then 502 to a share of calls for a while (the Discord API too);
  SIGKILL the Discord bot while a person's photos arrive (it reconnects and identifies again).
- A share of the private people (``--slack-share``, 0.1) are on Slack (tests/fake_slack.py: the
  Web API over HTTP, Socket Mode over a websocket, ``headshots bot slack``): ``/headshots
  start`` in a channel, "I agree" and selfies shared as files in their DM with the app, the
  form's selects and buttons, Confirm. They live through the Redis and worker kills; the
  Slack bot itself is not killed and its API has no outage.

People behave like people: when the bot does not answer within a while they repeat what they
did (send the photos again, press the button again, /start again).

It ends by itself and prints one line per figure and a verdict; the exit status is 1 when a job
was lost, a result was posted twice, or keys of deleted people are left in Redis.

Job timeouts are scaled down (``--job-timeout``, default 45 s): arq re-runs a SIGKILLed worker's
job only after its in-progress key expires (timeout + 10 s), which at the production 3600 s would
make a bounded run impossible.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis as sync_redis  # noqa: E402
from PIL import Image, ImageEnhance, ImageOps  # noqa: E402

from headshots.cli.supervise import Supervisor  # noqa: E402
from headshots.queue import constants  # noqa: E402
from headshots.queue.client import arq_job_id  # noqa: E402
from headshots.queue.delivery.slack import slack_number  # noqa: E402
from headshots.queue.embedded import EmbeddedRedis  # noqa: E402
from headshots.queue.teams import team_id_for  # noqa: E402
from tests.fake_discord import ALL_PERMISSIONS, FakeDiscord  # noqa: E402
from tests.fake_slack import APP_TOKEN as SLACK_APP_TOKEN  # noqa: E402
from tests.fake_slack import BOT_TOKEN as SLACK_BOT_TOKEN  # noqa: E402
from tests.fake_slack import FakeSlack, SlackUser  # noqa: E402
from tests.fake_telegram import Call, FakeChat, FakeTelegram, FakeUser  # noqa: E402
from tests.plugins.faces import astronaut_image  # noqa: E402
from tests.plugins.telegram import ChatDriver  # noqa: E402

logger = logging.getLogger("soak")

FINISHED = {"done", "failed", "cancelled"}
#: Eye colour, glasses, hair (as the worker e2e tests answer them).
PERSON = ["Set eyes", "Blue", "No glasses", "As in my photos"]
GROUP = FakeChat.supergroup(-100700, "Office floor")
TEAM_GROUP = FakeChat.supergroup(-100800, "Acme staff")
TEAM_ID = team_id_for("telegram", TEAM_GROUP.id)
ACCEPTED = re.compile(r"(\d+) accepted, (\d+) rejected")
DC_GUILD_ID = 700_000_000_000_000_777


def say(text: str) -> None:
    print(f"soak: {text}", file=sys.stderr, flush=True)


# --- photos ------------------------------------------------------------------------------
def selfie_pool() -> list[Image.Image]:
    """Eight different photos of one real person (the suite's seven, and a mirrored tilt).

    Distinct enough that the bot's near-duplicate check keeps them all (random small crops of
    one photo are "almost the same" to it, rightly).
    """
    base = astronaut_image()
    w, h = base.size
    tilt = base.rotate(8, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128))
    return [
        base,
        ImageOps.mirror(base),
        ImageEnhance.Brightness(base.crop((40, 10, 480, 450))).enhance(1.15).resize((600, 600)),
        ImageEnhance.Brightness(base.crop((0, 0, 430, 512))).enhance(0.8),
        base.crop((60, 0, w, h - 40)),
        tilt,
        ImageEnhance.Contrast(ImageOps.mirror(base.crop((20, 30, 500, 500)))).enhance(1.2),
        ImageOps.mirror(tilt),
    ]


def selfie_set(rng: random.Random, pool: list[Image.Image]) -> list[bytes]:
    """The whole pool in a random order, each re-encoded with its own brightness and quality
    (so no two people upload the same bytes); a person sends the first 4-8."""
    photos = []
    for image in rng.sample(pool, len(pool)):
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.95, 1.05))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=rng.randint(85, 95))
        photos.append(buffer.getvalue())
    return photos


# --- the simulated people -----------------------------------------------------------------
@dataclass
class Person:
    index: int
    user: FakeUser
    kind: str  # private | group | team | admin
    behaviour: str  # normal | cancel | delete | double | intruder
    photos: list[bytes]
    driver: ChatDriver
    #: More photos, sent when the bot says the ones sent are not enough.
    reserve: list[bytes] = field(default_factory=list)
    job_id: str | None = None
    status_id: int | None = None
    ordered_at: float | None = None
    queued_after_s: float | None = None
    queued_at: float | None = None
    deleted: bool = False
    cancel_sent: bool = False
    stuck: str | None = None
    repeats: int = 0


@dataclass
class DiscordPerson:
    """Someone on the Discord bot: ``/headshot start`` in the server's channel (a thread of
    their own) or in a DM, photos posted as messages there, the style form, Confirm."""

    index: int
    user: dict[str, Any]
    start_in: dict[str, Any]  # the guild channel or the person's DM channel
    behaviour: str  # normal | double
    photos: list[bytes]
    reserve: list[bytes] = field(default_factory=list)
    place: dict[str, Any] | None = None  # where the session lives (thread or DM)
    form_id: int | None = None
    job_id: str | None = None
    ordered_at: float | None = None
    queued_after_s: float | None = None
    stuck: str | None = None
    repeats: int = 0

    @property
    def id(self) -> int:
        return int(self.user["id"])

    @property
    def kind(self) -> str:
        return "dm" if self.start_in["type"] == 1 else "guild"

    @property
    def key(self) -> str:
        return f"dc:{self.id}"


@dataclass
class SlackPerson:
    """Someone on the Slack bot: ``/headshots start`` in a channel, the session in their DM with
    the app (selfies shared there as files), the style form, Confirm."""

    index: int
    user: SlackUser
    dm: str
    photos: list[bytes]
    reserve: list[bytes] = field(default_factory=list)
    form_ts: str | None = None
    job_id: str | None = None
    queued_after_s: float | None = None
    stuck: str | None = None
    repeats: int = 0

    @property
    def key(self) -> str:
        return f"sl:{slack_number(self.user.id)}"


@dataclass
class Figures:
    photo_latency: list[float] = field(default_factory=list)
    press_latency: list[float] = field(default_factory=list)
    dc_photo_latency: list[float] = field(default_factory=list)
    dc_press_latency: list[float] = field(default_factory=list)
    sl_photo_latency: list[float] = field(default_factory=list)
    bot_peak_rss_kb: int = 0
    dc_bot_peak_rss_kb: int = 0
    sl_bot_peak_rss_kb: int = 0
    faults: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class Soak:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.rng = random.Random(args.seed)
        self.fake = FakeTelegram()
        self.discord = FakeDiscord()
        self.dc_people: list[DiscordPerson] = []
        self.dc_upload_started = asyncio.Event()
        self.slack = FakeSlack()
        self.sl_people: list[SlackPerson] = []
        self.redis_server = EmbeddedRedis(work / "redis", persist=True)
        self.figures = Figures()
        self.people: list[Person] = []
        self.supervisor: Supervisor | None = None
        self.redis_url = ""
        self.stop_event = threading.Event()
        self.upload_started = asyncio.Event()
        self.kit_ready = asyncio.Event()
        self.bot_restarted = asyncio.Event()
        self.log_dir = work / "logs"

    # --- processes ---------------------------------------------------------------------
    def env(self, tiny_model: Path) -> dict[str, str]:
        # Settings of its own, but the caller's cache of built data (the content policy).
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("HEADSHOTS_") or k == "HEADSHOTS_CACHE_DIR"
        }
        env.update(
            PYTHONPATH=str(ROOT),
            HEADSHOTS_REDIS_URL=self.redis_url,
            HEADSHOTS_STATE_DIR=str(self.work / "state"),
            HEADSHOTS_TELEGRAM_TOKEN=self.fake.token,
            HEADSHOTS_TELEGRAM_API_URL=self.fake.url,
            # The Discord bot and the workers' Discord sender both talk to the fake.
            HEADSHOTS_DISCORD_TOKEN=self.discord.token,
            HEADSHOTS_DISCORD_API_URL=self.discord.api_base,
            # The Slack bot (Socket Mode) and the workers' Slack sender: the fake Slack.
            HEADSHOTS_SLACK_BOT_TOKEN=SLACK_BOT_TOKEN,
            HEADSHOTS_SLACK_APP_TOKEN=SLACK_APP_TOKEN,
            HEADSHOTS_SLACK_API_URL=self.slack.api_url,
            HEADSHOTS_FACE_BACKEND="dlib",
            HEADSHOTS_BASE_MODEL=str(tiny_model),
            HEADSHOTS_TRAIN_STEPS=str(self.args.train_steps),
            HEADSHOTS_SAMPLE_STEPS="4",
            HEADSHOTS_HF_OFFLINE="true",
            HEADSHOTS_DEVICE="cpu",
            HEADSHOTS_DTYPE="float32",
            HEADSHOTS_TRAIN_JOB_TIMEOUT_S=str(self.args.job_timeout),
            HEADSHOTS_GENERATE_JOB_TIMEOUT_S=str(self.args.job_timeout),
            HEADSHOTS_RECOVERY_INTERVAL_S="20",
            HEADSHOTS_QUEUE_REFRESH_S="20",
            # One torch thread per worker: two workers share two cores.
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
        )
        return env

    def command(self, name: str, *args: str) -> list[str]:
        # Through a shell so each child writes its own log file; exec keeps the pid the child's.
        log = self.log_dir / f"{name}.log"
        quoted = " ".join(f"'{a}'" for a in [sys.executable, "-m", "headshots", *args])
        return ["/bin/sh", "-c", f"exec {quoted} >>'{log}' 2>&1"]

    def child(self, name: str) -> Any:
        assert self.supervisor is not None
        return next(c for c in self.supervisor.children if c.name == name)

    def supervise(self) -> None:
        assert self.supervisor is not None
        while not self.stop_event.is_set():
            self.supervisor.poll()
            process = self.child("bot").process
            if process is not None and process.poll() is None:
                self.figures.bot_peak_rss_kb = max(
                    self.figures.bot_peak_rss_kb, peak_rss(process.pid)
                )
            if self.dc_people:
                process = self.child("bot-discord").process
                if process is not None and process.poll() is None:
                    self.figures.dc_bot_peak_rss_kb = max(
                        self.figures.dc_bot_peak_rss_kb, peak_rss(process.pid)
                    )
            if self.sl_people:
                process = self.child("bot-slack").process
                if process is not None and process.poll() is None:
                    self.figures.sl_bot_peak_rss_kb = max(
                        self.figures.sl_bot_peak_rss_kb, peak_rss(process.pid)
                    )
            time.sleep(0.2)

    def kill(self, name: str) -> None:
        process = self.child(name).process
        assert process is not None
        os.kill(process.pid, signal.SIGKILL)

    # --- Redis look-ups (our own observation; tolerate the restart) ----------------------
    def redis(self) -> sync_redis.Redis:
        return sync_redis.Redis.from_url(self.redis_url, socket_timeout=5)

    @staticmethod
    async def _read_through_restart(read: Callable[[], str | None]) -> str | None:
        """``read()`` in a thread, tried again for ~10 s while Redis restarts (None after)."""
        for _ in range(20):
            try:
                return await asyncio.to_thread(read)
            except sync_redis.RedisError:
                await asyncio.sleep(0.5)
        return None

    async def job_state(self, job_id: str) -> str | None:
        def read() -> str | None:
            client = self.redis()
            try:
                raw = client.hget(constants.job_key(job_id), "state")
            finally:
                client.close()
            return raw.decode() if raw else None

        return await self._read_through_restart(read)

    async def active_job(self, user: FakeUser | str) -> str | None:
        """The person's job: the one in their active slot, else (already finished: in a
        throttled group "Queued" can arrive after the results) their only job."""
        key = user if isinstance(user, str) else f"tg:{user.id}"

        def read() -> str | None:
            client = self.redis()
            try:
                raw = client.get(constants.user_active_key(key))
                jobs = client.smembers(constants.user_jobs_key(key))
            finally:
                client.close()
            if raw:
                return str(raw.decode())
            return next(iter(jobs)).decode() if len(jobs) == 1 else None

        return await self._read_through_restart(read)

    # --- one step of a person: act, wait for the bot, repeat when it stays silent --------
    async def step(
        self,
        person: Person,
        act: Callable[[], Any],
        expect: Callable[[Call], bool],
        *,
        what: str,
        timeout: float,  # noqa: ASYNC109 - waits on a log another thread writes
        tries: int = 3,
    ) -> Call:
        for attempt in range(tries):
            mark = self.fake.mark()
            try:
                act()
            except AssertionError as exc:  # the button is gone: nothing to press again
                raise Stuck(f"{what}: {exc}") from exc
            try:
                return await self.fake.wait_for(None, expect, since=mark, timeout=timeout)
            except TimeoutError:
                person.repeats += 1
                say(f"person {person.index}: no answer to {what} (try {attempt + 1}); again")
        raise Stuck(f"{what}: no answer after {tries} tries")

    def said(self, person: Person, contains: str | re.Pattern[str]) -> Callable[[Call], bool]:
        driver = person.driver

        def match(call: Call) -> bool:
            if call.method not in ("sendMessage", "editMessageText") or call.status != 200:
                return False
            if not driver._here(call):
                return False
            text = str(call.params.get("text", ""))
            if isinstance(contains, str):
                return contains in text
            return contains.search(text) is not None

        return match

    def latest(self, person: Person, contains: str) -> dict[str, Any]:
        """The bot's current message in the person's chat containing ``contains``."""
        chat_id = person.driver.chat.id
        for message in reversed(self.fake.bot_messages(chat_id)):
            if contains in str(message.get("text", "")) and (
                person.driver.chat.type == "private"
                or (message.get("reply_to_message") or {}).get("from", {}).get("id")
                == person.user.id
            ):
                return message
        raise Stuck(f"no message with {contains!r}")

    async def press(
        self, person: Person, message: dict[str, Any], label: str, expect: Callable[[Call], bool]
    ) -> Call:
        """Press a button (again when the bot stays silent); times the callback's answer."""
        driver = person.driver

        def act() -> None:
            if pressed and not self.has_button(message, label):
                return  # the bot took the first press (the button is gone): wait for its answer
            data = driver.button(message, label)
            query = driver.press(message, data)
            pressed[query["id"]] = time.monotonic()

        pressed: dict[str, float] = {}

        def refused(call: Call) -> bool:
            return (
                call.method == "answerCallbackQuery"
                and str(call.params.get("callback_query_id")) in pressed
                and "out of date" in str(call.params.get("text"))
            )

        call = await self.step(
            person, act, lambda c: expect(c) or refused(c), what=f"press {label!r}", timeout=20
        )
        self.time_answers(pressed)
        if refused(call):
            raise StaleMenu(str(call.params.get("text")))
        return call

    def time_answers(self, pressed: dict[str, float]) -> None:
        for answer in self.fake.calls("answerCallbackQuery"):
            started = pressed.get(str(answer.params.get("callback_query_id")))
            if started is not None and answer.status == 200:
                self.figures.press_latency.append(answer.at - started)

    # --- the conversation ----------------------------------------------------------------
    async def consent(self, person: Person, start: str = "/start") -> None:
        try:
            await self._consent(person, start)
        except StaleMenu:
            # The bot died after taking the first "I agree" and before answering it; it calls
            # the consent menu out of date and says to /start, so the person does.
            person.repeats += 1
            await self._consent(person, start)

    async def _consent(self, person: Person, start: str) -> None:
        intro = await self.step(
            person,
            lambda: person.driver.text(start),
            self.said(person, "Do you agree"),
            what=start,
            timeout=25,
        )
        expect = "You joined" if person.kind == "team" else "Now send"
        await self.press(person, dict(intro.response), "I agree", self.said(person, expect))

    async def upload(self, person: Person) -> dict[str, Any]:
        """An album first, then the rest one by one (each one's verdict is timed)."""
        first = self.rng.randint(2, min(4, len(person.photos) - 1))
        sent = 0

        async def send(photos: list[bytes]) -> dict[str, Any]:
            nonlocal sent
            total = sent + len(photos)

            def counted(call: Call) -> bool:
                if not self.said(person, ACCEPTED)(call):
                    return False
                found = ACCEPTED.search(str(call.params.get("text", "")))
                assert found is not None
                # A repeated album is counted again by the bot; anything at or over is an answer.
                return int(found[1]) + int(found[2]) >= total

            def act() -> None:
                person.driver.photos(photos)
                pushed_at[0] = time.monotonic()
                if len(photos) > 1 and self.kit_ready.is_set():
                    self.upload_started.set()  # an album is arriving: the bot may die now

            pushed_at = [0.0]
            call = await self.step(person, act, counted, what="photos", timeout=self.args.patience)
            if len(photos) == 1:
                self.figures.photo_latency.append(call.at - pushed_at[0])
            found = ACCEPTED.search(str(call.params.get("text", "")))
            assert found is not None
            sent = int(found[1]) + int(found[2])
            return dict(call.response)

        tally = await send(person.photos[:first])
        for photo in [*person.photos[first:], None, *person.reserve]:
            if photo is None:  # all planned photos sent: more only if the bot asks for them
                if self.has_button(tally, "Done"):
                    return tally
                continue
            tally = await send([photo])
            if photo in person.reserve and self.has_button(tally, "Done"):
                return tally
        return tally

    def has_button(self, message: dict[str, Any], label: str) -> bool:
        current = self.fake.message(int(message["chat"]["id"]), int(message["message_id"]))
        return any(
            label in button["text"]
            for row in current.get("reply_markup", {}).get("inline_keyboard", [])
            for button in row
        )

    async def choose(
        self, person: Person, menu: dict[str, Any], labels: list[str]
    ) -> dict[str, Any]:
        for label in labels:
            menu_id = int(menu["message_id"])

            chat_id = int(menu["chat"]["id"])

            def edited(call: Call, menu_id: int = menu_id, chat_id: int = chat_id) -> bool:
                # Message ids count per chat: the chat must match too.
                return (
                    call.method == "editMessageText"
                    and call.status == 200
                    and int(call.params.get("chat_id", 0)) == chat_id
                    and int(call.params.get("message_id", 0)) == menu_id
                )

            call = await self.press(person, menu, label, edited)
            menu = dict(call.response)
        return menu

    async def order(self, person: Person, summary: dict[str, Any]) -> None:
        driver = person.driver
        ordered_at = time.monotonic()
        if person.behaviour == "double":
            # Two quick presses of Confirm, as an impatient thumb does.
            data = driver.button(summary, "Looks good")
            pressed = {driver.press(summary, data)["id"]: time.monotonic()}
            pressed[driver.press(summary, data)["id"]] = time.monotonic()
            try:
                # In a throttled group "Queued" can take a minute (20 messages a minute).
                call = await self.fake.wait_for(
                    None,
                    self.said(person, "Queued: position"),
                    since=0,
                    timeout=max(30.0, 2 * self.args.patience),
                )
            except TimeoutError:
                person.job_id = await self.active_job(person.user)
                if person.job_id is None:
                    raise Stuck("Confirm pressed twice: no job and no answer") from None
                person.ordered_at = ordered_at
                return
            self.time_answers(pressed)
        else:
            try:
                call = await self.press(
                    person, summary, "Looks good", self.said(person, "Queued: position")
                )
            except Stuck:
                # The bot may have died between submitting and saying so: the person sees
                # the status message change, so the job counts as ordered.
                person.job_id = await self.active_job(person.user)
                if person.job_id is None:
                    raise
                person.ordered_at = ordered_at
                say(f"person {person.index}: ordered, but the bot never said so")
                return
        person.ordered_at = ordered_at
        person.queued_after_s = call.at - ordered_at
        person.queued_at = call.at
        person.status_id = int(call.response["message_id"])
        for _ in range(40):
            person.job_id = await self.active_job(person.user)
            if person.job_id:
                break
            await asyncio.sleep(0.25)
        if person.job_id is None:
            raise Stuck("queued, but no active job in Redis")

    async def wait_for_state(
        self,
        person: Person,
        states: set[str],
        timeout: float,  # noqa: ASYNC109
    ) -> str | None:
        assert person.job_id
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = await self.job_state(person.job_id)
            if state in states or state in FINISHED:
                return state
            await asyncio.sleep(0.3)
        return None

    async def after_order(self, person: Person) -> None:
        if person.behaviour == "cancel":
            await self.wait_for_state(person, {"training"}, timeout=90)
            person.cancel_sent = True
            await self.step(
                person,
                lambda: person.driver.text("/cancel"),
                lambda c: any(
                    self.said(person, text)(c)
                    for text in ("Stopping your job", "Cancelled your job", "nothing to cancel")
                ),
                what="/cancel",
                timeout=20,
            )
        elif person.behaviour == "delete":
            await self.wait_for_state(person, {"training", "generating"}, timeout=90)
            ask = await self.step(
                person,
                lambda: person.driver.text("/delete"),
                self.said(person, "Delete everything I have of you"),
                what="/delete",
                timeout=20,
            )
            person.deleted = True
            await self.press(
                person, dict(ask.response), "Yes, delete", self.said(person, "Deleted:")
            )

    async def intrude(self, person: Person, victim: Person) -> None:
        """Press a button under someone else's menu in the group; the bot must refuse it."""
        for _ in range(100):
            if victim.status_id is not None or victim.stuck:
                break
            try:
                menu = self.latest(victim, "Which")
                break
            except Stuck:
                await asyncio.sleep(0.3)
        else:
            return
        if victim.status_id is not None or victim.stuck:
            return
        current = self.fake.message(GROUP.id, int(menu["message_id"]))
        buttons = [
            b["callback_data"]
            for row in current.get("reply_markup", {}).get("inline_keyboard", [])
            for b in row
            if "callback_data" in b
        ]
        if not buttons:
            return
        query = self.fake.press(person.user, current, buttons[0])
        started = time.monotonic()
        answer = await self.fake.wait_for(
            "answerCallbackQuery",
            lambda c: c.params.get("callback_query_id") == query["id"] and c.status == 200,
            timeout=20,
        )
        self.figures.press_latency.append(answer.at - started)
        if "someone else" not in str(answer.params.get("text")):
            raise Stuck(f"pressing another's button was answered {answer.params.get('text')!r}")

    async def single(self, person: Person) -> None:
        await self.consent(person)
        tally = await self.upload(person)
        menu_call = await self.press(person, tally, "Done", self.said(person, "Which style?"))
        subject = self.rng.choice(["Woman", "Man"])
        # Half take the default path (a style, then its recommended look); half customise.
        labels = ["Legal"]
        if self.rng.random() < 0.5:
            labels = ["Corporate", "Customise", "Corporate", subject, *PERSON]
            labels += ["Office", "Blazer", "Ektar", "4", "Square"]
        summary = await self.choose(person, dict(menu_call.response), labels)
        await self.order(person, summary)
        await self.after_order(person)

    async def member(self, person: Person, kit_ready: asyncio.Event) -> None:
        try:
            await asyncio.wait_for(kit_ready.wait(), self.args.fault_wait)
        except TimeoutError:
            raise Stuck("the team's kit was never saved") from None
        await self.consent(person, f"/start team_{TEAM_ID}")
        tally = await self.upload(person)
        menu_call = await self.press(
            person, tally, "Done", self.said(person, "Start with this look?")
        )
        summary = dict(menu_call.response)
        if self.rng.random() < 0.5:  # the team's look as it is, or Customise: the person
            subject = self.rng.choice(["Woman", "Man"])
            labels = ["Customise", subject, *PERSON]
            summary = await self.choose(person, summary, labels)
        if "Start with this look?" not in str(summary.get("text")):
            raise Stuck(f"member summary: {summary.get('text')!r}")
        await self.order(person, summary)
        await self.after_order(person)

    async def admin(self, person: Person, kit_ready: asyncio.Event) -> None:
        """Set up the team's kit in the group with buttons (no logo, no review)."""
        driver = person.driver
        self.fake.set_admin(TEAM_GROUP, person.user, "creator")
        await self.step(
            person, lambda: driver.text("/team"), self.said(person, "team's name"),
            what="/team", timeout=25,
        )  # fmt: skip
        call = await self.step(
            person, lambda: driver.text("Acme"),
            self.said(person, "Which style for the whole team?"), what="team name", timeout=20,
        )  # fmt: skip
        menu = dict(call.response)
        steps = [
            ("Corporate", "Which background?"),
            ("Office", "What should everyone wear?"),
            ("Style default", "Which colour grade?"),
            ("Ektar", "Which shape?"),
            ("Square", "How many headshots"),
            ("4", "logo"),
            ("No logo", "approve each member's pick"),
            ("No,", "Save this look for the team?"),
        ]
        for label, following in steps:
            menu = dict(
                (await self.press(person, menu, label, self.said(person, following))).response
            )
        await self.press(person, menu, "Save", self.said(person, "Team look saved"))
        kit_ready.set()

    async def run_person(self, person: Person, *extra: Any) -> None:
        await asyncio.sleep(person.index * self.args.stagger)
        try:
            if person.kind == "admin":
                await self.admin(person, *extra)
            elif person.kind == "team":
                await self.member(person, *extra)
            elif person.behaviour == "intruder":
                await self.intrude(person, *extra)
            else:
                await self.single(person)
        except Stuck as exc:
            person.stuck = f"{exc} (last: {self.last_words(person)!r})"
            say(f"person {person.index} ({person.kind}/{person.behaviour}) stuck: {exc}")
        except Exception as exc:  # a broken person must not end the run: it is a finding
            person.stuck = f"{type(exc).__name__}: {exc}"
            say(f"person {person.index} crashed: {exc!r}")

    def last_words(self, person: Person) -> str:
        """What the bot last said or did in the person's chat (for the report)."""
        chat_id = person.driver.chat.id
        for call in reversed(self.fake.calls()):
            if int(call.params.get("chat_id") or 0) == chat_id and call.method != "getFile":
                text = call.params.get("text") or call.params.get("caption") or ""
                return f"{call.method} {call.status} {str(text)[:120]}"
        return "nothing"

    def dump_calls(self) -> None:
        with (self.work / "discord_calls.jsonl").open("w") as out:
            for dc_call in self.discord.calls():
                out.write(json.dumps({
                    "at": round(dc_call.at, 3), "method": dc_call.method, "path": dc_call.path,
                    "status": dc_call.status, "files": len(dc_call.files), "json": dc_call.json,
                }, default=str) + "\n")  # fmt: skip
        with (self.work / "calls.jsonl").open("w") as out:
            for call in self.fake.calls():
                text = call.params.get("text") or call.params.get("caption")
                out.write(json.dumps({
                    "at": round(call.at, 3), "method": call.method, "status": call.status,
                    "chat": call.params.get("chat_id"), "message": call.params.get("message_id"),
                    "text": text, "markup": call.params.get("reply_markup"),
                }, default=str) + "\n")  # fmt: skip

    # --- the Discord people ----------------------------------------------------------------
    async def dc_step(
        self,
        person: DiscordPerson,
        act: Callable[[], Awaitable[bool]],
        expect: Callable[[int], Any],
        *,
        what: str,
        timeout: float,  # noqa: ASYNC109 - polls the fake's state
        tries: int = 3,
    ) -> Any:
        """``act()`` and wait for ``expect(mark)``; again when the bot stays silent.

        ``act`` returns False when the gateway had no bot to give the event to: Discord shows
        "This interaction failed" at once, so the person tries again a second later.
        """
        for attempt in range(tries):
            mark = self.discord.next_id()  # ids grow: anything newer than this is an answer
            for _ in range(60):
                if await act():
                    break
                person.repeats += 1
                await asyncio.sleep(1)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                found = expect(mark)
                if found:
                    return found
                await asyncio.sleep(0.05)
            person.repeats += 1
            say(f"discord person {person.index}: no answer to {what} (try {attempt + 1}); again")
        raise Stuck(f"{what}: no answer after {tries} tries")

    async def dc_component(
        self,
        person: DiscordPerson,
        op: str,
        value: str | None = None,
        *,
        message_id: int | None = None,
        until: Callable[[int], Any] | None = None,
        times: int = 1,
    ) -> Any:
        """Press the button (or pick ``value`` in the select) whose custom_id starts with ``op``
        on the form (or ``message_id``); the press's answer is timed. Returns the callback body,
        or what ``until`` found once the bot has answered."""
        payloads: list[dict[str, Any]] = []
        sent: dict[str, float] = {}

        async def act() -> bool:
            # A press the bot deferred (its lock was busy) edits the form a moment later, and
            # the edit may wait in a rate limit: the next control shows up then, not at once.
            def found() -> tuple[dict[str, Any], list[str]] | None:
                message = self.discord.messages[message_id or person.form_id or 0]
                ids = [c for c in FakeDiscord.custom_ids(message) if c.startswith(op)]
                return (message, ids) if ids else None

            try:
                message, ids = await self.discord.wait_for(found, within=10, what=repr(op))
            except AssertionError:
                raise Stuck(f"no {op!r} on message {message_id or person.form_id}") from None
            delivered = False
            for _ in range(times):
                if value is None:
                    payload = self.discord.click(message, ids[0], user=person.user)
                else:
                    payload = self.discord.select(message, ids[0], [value], user=person.user)
                payloads.append(payload)
                sent[payload["token"]] = time.monotonic()
                delivered = await self.discord.gateway.interaction(payload) or delivered
            return delivered

        answered: list[dict[str, Any]] = []

        def expect(mark: int) -> Any:
            if not answered:
                for payload in payloads:
                    responses = self.discord.interaction_responses(payload)
                    if responses:
                        started = sent[payload["token"]]
                        self.figures.dc_press_latency.append(time.monotonic() - started)
                        answered.append(responses[0])
                        break
            if not answered:
                return None
            return until(mark) if until is not None else answered[0]

        return await self.dc_step(person, act, expect, what=f"{op} {value or ''}", timeout=20)

    def dc_newest(self, prefix: str, mark: int, channel_id: int | None = None) -> Any:
        message = self.discord.message_with(prefix, channel_id)
        return message if message is not None and int(message["id"]) > mark else None

    async def dc_start(self, person: DiscordPerson) -> None:
        """``/headshot start`` (no photos yet), "I agree", until the style form is there."""
        dm = person.kind == "dm"

        async def start() -> bool:
            payload = self.discord.slash(
                "start",
                user=person.user,
                channel=person.start_in,
                app_permissions=0 if dm else ALL_PERMISSIONS,
            )
            return await self.discord.gateway.interaction(payload)

        def answered(mark: int) -> Any:
            # A person whose "I agree" was recorded by a bot that died before it answered is
            # not asked again: the style form is the answer then.
            return self.dc_newest(f"hsd:consent:{person.id}:", mark) or self.dc_newest(
                f"hsd:preset:{person.id}:", mark
            )

        first = await self.dc_step(person, start, answered, what="/headshot start", timeout=25)
        if f"hsd:preset:{person.id}:" in json.dumps(first.get("components")):
            form = first
        else:
            form = await self.dc_component(
                person,
                "hsd:consent",
                message_id=int(first["id"]),
                until=lambda mark: self.discord.message_with(f"hsd:preset:{person.id}:"),
            )
        person.form_id = int(form["id"])
        person.place = self.discord.channels[int(form["channel_id"])]

    def dc_tally(self, person: DiscordPerson) -> re.Match[str] | None:
        assert person.place is not None
        for message in reversed(self.discord.live_messages(int(person.place["id"]))):
            if str(message["content"]).startswith("**Photos**"):
                return ACCEPTED.search(str(message["content"]))
        return None

    async def send_photos(
        self,
        person: DiscordPerson | SlackPerson,
        send: Callable[[list[bytes]], Awaitable[int]],
    ) -> None:
        """Several photos in one message first, then one per message, then the reserve until
        four are accepted; ``send`` sends some and returns how many are accepted so far."""
        first = self.rng.randint(2, min(4, len(person.photos) - 1))
        accepted = await send(person.photos[:first])
        for photo in person.photos[first:]:
            accepted = await send([photo])
        for photo in person.reserve:  # more only if too few were accepted
            if accepted >= 4:
                break
            accepted = await send([photo])

    async def dc_upload(self, person: DiscordPerson) -> None:
        """Several photos in one message first, then one message per photo (timed)."""
        assert person.place is not None
        place = person.place
        sent = 0

        async def send(photos: list[bytes]) -> int:
            nonlocal sent
            total = sent + len(photos)
            pushed_at = [0.0]

            async def post() -> bool:
                attachments = [
                    self.discord.add_attachment(data, f"selfie{n}.jpg")
                    for n, data in enumerate(photos, 1)
                ]
                message = self.discord.user_message(
                    user=person.user, channel=place, attachments=attachments
                )
                pushed_at[0] = time.monotonic()
                if len(photos) > 1:
                    self.dc_upload_started.set()  # photos are arriving: the bot may die now
                await self.discord.gateway.message(message)
                # Nothing tells the person a message reached no bot: they wait, then post again.
                return True

            def counted(mark: int) -> re.Match[str] | None:
                found = self.dc_tally(person)
                return found if found and int(found[1]) + int(found[2]) >= total else None

            found = await self.dc_step(
                person, post, counted, what="photos", timeout=self.args.patience
            )
            if len(photos) == 1:
                self.figures.dc_photo_latency.append(time.monotonic() - pushed_at[0])
            sent = int(found[1]) + int(found[2])
            return int(found[1])

        await self.send_photos(person, send)

    async def dc_order(self, person: DiscordPerson) -> None:
        assert person.place is not None
        place_id = int(person.place["id"])

        def queued(mark: int) -> Any:
            for message in self.discord.live_messages(place_id):
                if int(message["id"]) > mark and str(message["content"]).startswith("Queued"):
                    return message
            return None

        ordered_at = time.monotonic()
        times = 2 if person.behaviour == "double" else 1
        try:
            await self.dc_component(person, "hsd:confirm", until=queued, times=times)
            person.queued_after_s = time.monotonic() - ordered_at
        except Stuck:
            # The bot may have died between submitting and saying so.
            person.job_id = await self.active_job(person.key)
            if person.job_id is None:
                raise
            say(f"discord person {person.index}: ordered, but the bot never said so")
        person.ordered_at = ordered_at
        for _ in range(40):
            person.job_id = person.job_id or await self.active_job(person.key)
            if person.job_id:
                return
            await asyncio.sleep(0.25)
        raise Stuck("queued, but no active job in Redis")

    async def dc_describe(self, person: DiscordPerson, text: str) -> None:
        """ "Describe it yourself": the button opens a modal, the person types and submits."""
        opened = await self.dc_component(person, "hsd:custom")
        if int(opened.get("type", 0)) != 9:
            raise Stuck(f"hsd:custom opened no modal: {opened}")
        modal = opened["data"]
        inputs = [
            str(c["custom_id"])
            for row in modal["components"]
            for c in (row.get("components", []) if row.get("type") == 1 else [row["component"]])
        ]
        submitted: list[dict[str, Any]] = []
        edited = self.discord.messages.get(person.form_id or 0, {}).get("edited_timestamp")

        async def submit() -> bool:
            assert person.place is not None
            payload = self.discord.modal_submit(
                modal,
                dict.fromkeys(inputs, text),
                user=person.user,
                channel=person.place,
                message=self.discord.messages[person.form_id or 0],
            )
            submitted.append(payload)
            return await self.discord.gateway.interaction(payload)

        def taken(mark: int) -> Any:
            for payload in submitted:
                responses = self.discord.interaction_responses(payload)
                if responses:
                    return responses[0]
            return None

        answer = await self.dc_step(person, submit, taken, what="description", timeout=20)
        # 7: the form was updated with it; 6: deferred, then the form is edited, or a refusal
        # follows privately.
        if int(answer.get("type", 0)) not in (6, 7):
            raise Stuck(f"description refused: {answer}")
        tokens = {payload["token"] for payload in submitted}
        for _ in range(80):
            form = self.discord.messages.get(person.form_id or 0, {})
            if form.get("edited_timestamp") != edited:
                return
            refusals = [
                m
                for m in self.discord.messages.values()
                if m.get("interaction_token") in tokens and m.get("content")
            ]
            if refusals:
                raise Stuck(f"description refused: {refusals[0]['content']}")
            await asyncio.sleep(0.25)

    async def dc_single(self, person: DiscordPerson) -> None:
        try:
            await self.dc_start(person)
        except Stuck:
            # The bot died between the consent and the form: the person starts over.
            person.repeats += 1
            await self.dc_start(person)
        await self.dc_upload(person)
        await self.dc_component(person, "hsd:preset", "corporate")
        await self.dc_component(person, "hsd:class", self.rng.choice(["woman", "man"]))
        if person.kind == "dm":  # one in three describes the look in a modal as well
            await self.dc_describe(person, "navy blazer, bright office at golden hour")
        await self.dc_component(person, "hsd:more")
        await self.dc_component(person, "hsd:count", "4")
        await self.dc_component(person, "hsd:next")
        await self.dc_order(person)

    async def run_dc_person(self, person: DiscordPerson) -> None:
        await asyncio.sleep(person.index * self.args.stagger)
        try:
            await self.dc_single(person)
        except Stuck as exc:
            person.stuck = str(exc)
            say(f"discord person {person.index} ({person.kind}/{person.behaviour}) stuck: {exc}")
        except Exception as exc:  # a broken person must not end the run: it is a finding
            person.stuck = f"{type(exc).__name__}: {exc}"
            say(f"discord person {person.index} crashed: {exc!r}")

    # --- the Slack people ------------------------------------------------------------------
    def sl_newest(self, person: SlackPerson, prefix: str, after: int) -> dict[str, Any] | None:
        """The first bot message in the DM, posted after the ``after``-th, with ``prefix``."""
        for message in self.slack.bot_messages(person.dm)[after:]:
            if any(a.startswith(prefix) for a in self.slack.action_ids(message)):
                return message
        return None

    async def sl_step(
        self,
        person: SlackPerson,
        act: Callable[[], Awaitable[Any]],
        expect: Callable[[int], Any],
        *,
        what: str,
        timeout: float,  # noqa: ASYNC109 - polls the fake's state
        tries: int = 3,
    ) -> Any:
        """``act()`` and wait for ``expect(messages in the DM before)``; again when silent."""
        for attempt in range(tries):
            before = len(self.slack.bot_messages(person.dm))
            await act()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                found = expect(before)
                if found:
                    return found
                await asyncio.sleep(0.05)
            person.repeats += 1
            say(f"slack person {person.index}: no answer to {what} (try {attempt + 1}); again")
        raise Stuck(f"{what}: no answer after {tries} tries")

    def sl_form(self, person: SlackPerson) -> dict[str, Any]:
        assert person.form_ts is not None
        return self.slack.message(person.dm, person.form_ts)

    async def sl_control(self, person: SlackPerson, prefix: str, value: str | None = None) -> None:
        """Press the form's button (or pick ``value`` in its select) until the form changes."""
        form = self.sl_form(person)
        if not any(a.startswith(prefix) for a in self.slack.action_ids(form)):
            raise Stuck(f"no {prefix!r} on the form")
        edited = form.get("edited")

        async def act() -> None:
            form = self.sl_form(person)
            if value is None:
                await self.slack.press(person.user, form, prefix)
            else:
                await self.slack.pick(person.user, form, prefix, value)

        def changed(before: int) -> bool:
            return self.sl_form(person).get("edited") != edited

        await self.sl_step(person, act, changed, what=f"{prefix} {value or ''}", timeout=20)

    async def sl_start(self, person: SlackPerson, channel: str) -> None:
        uid = person.user.id

        async def start() -> None:
            await self.slack.slash(person.user, channel, "start")

        def asked(before: int) -> Any:
            # Consent given before (a repeated /start) goes straight to the form.
            return self.sl_newest(person, f"hss:consent:{uid}:", before) or self.sl_newest(
                person, f"hss:set.preset:{uid}:", before
            )

        first = await self.sl_step(person, start, asked, what="/headshots start", timeout=25)
        if f"hss:set.preset:{uid}:" not in json.dumps(first.get("blocks")):

            async def agree() -> None:
                await self.slack.press(person.user, {**first, "channel": person.dm}, "hss:consent")

            first = await self.sl_step(
                person, agree, lambda before: self.sl_newest(person, f"hss:set.preset:{uid}:", 0),
                what="I agree", timeout=25,
            )  # fmt: skip
        person.form_ts = str(first["ts"])

    def sl_tally(self, person: SlackPerson) -> re.Match[str] | None:
        for message in reversed(self.slack.bot_messages(person.dm)):
            if str(message["text"]).startswith("*Photos*"):
                return ACCEPTED.search(str(message["text"]))
        return None

    async def sl_upload(self, person: SlackPerson) -> None:
        """Several files in one message first, then one file per message (timed)."""
        sent = 0

        async def send(photos: list[bytes]) -> int:
            nonlocal sent
            total, shared_at = sent + len(photos), [0.0]

            async def share() -> None:
                shared_at[0] = time.monotonic()
                await self.slack.send_files(person.user, person.dm, photos)

            def counted(before: int) -> re.Match[str] | None:
                found = self.sl_tally(person)
                return found if found and int(found[1]) + int(found[2]) >= total else None

            found = await self.sl_step(
                person, share, counted, what="photos", timeout=self.args.patience
            )
            if len(photos) == 1:
                self.figures.sl_photo_latency.append(time.monotonic() - shared_at[0])
            sent = int(found[1]) + int(found[2])
            return int(found[1])

        await self.send_photos(person, send)

    async def sl_single(self, person: SlackPerson, channel: str) -> None:
        await self.sl_start(person, channel)
        await self.sl_upload(person)
        await self.sl_control(person, "hss:set.preset", "corporate")
        await self.sl_control(person, "hss:set.subject_class", self.rng.choice(["woman", "man"]))
        await self.sl_control(person, "hss:page:")  # the next page: the count is there
        await self.sl_control(person, "hss:set.count", "4")
        await self.sl_control(person, "hss:next")

        def queued(before: int) -> Any:
            for message in self.slack.bot_messages(person.dm)[before:]:
                if str(message["text"]).startswith("Queued"):
                    return message
            return None

        ordered_at = time.monotonic()

        async def confirm() -> None:
            await self.slack.press(person.user, self.sl_form(person), "hss:confirm")

        try:
            await self.sl_step(person, confirm, queued, what="Looks good", timeout=30, tries=1)
            person.queued_after_s = time.monotonic() - ordered_at
        except Stuck:
            say(f"slack person {person.index}: ordered, but the bot never said so")
        for _ in range(40):
            person.job_id = person.job_id or await self.active_job(person.key)
            if person.job_id:
                return
            await asyncio.sleep(0.25)
        raise Stuck("queued, but no active job in Redis")

    async def run_sl_person(self, person: SlackPerson, channel: str) -> None:
        await asyncio.sleep(person.index * self.args.stagger)
        try:
            await self.sl_single(person, channel)
        except Stuck as exc:
            person.stuck = str(exc)
            say(f"slack person {person.index} stuck: {exc}")
        except Exception as exc:  # a broken person must not end the run: it is a finding
            person.stuck = f"{type(exc).__name__}: {exc}"
            say(f"slack person {person.index} crashed: {exc!r}")

    def sl_figures(self) -> dict[str, list[SlackPerson]]:
        """Delivered / duplicated / cancelled / lost / failed among the Slack people."""
        found: dict[str, list[SlackPerson]] = {
            k: [] for k in ("delivered", "duplicated", "cancelled", "lost", "failed")
        }
        client = self.redis()
        try:
            for p in self.sl_people:
                if not p.job_id:
                    continue
                raw: bytes | None = client.hget(constants.job_key(p.job_id), "state")  # type: ignore[assignment]
                state = raw.decode() if raw else None
                jobs: int = client.scard(constants.user_jobs_key(p.key))  # type: ignore[assignment]
                needle = f":{p.job_id}"
                messages = self.slack.bot_messages(p.dm)
                sheets = [
                    m for m in messages
                    if any(a.startswith("hs:") and needle in a for a in self.slack.action_ids(m))
                ]  # fmt: skip
                albums = [m for m in messages if len(m.get("files") or []) > 1]
                if len(sheets) > 1 or jobs > 1 or len(albums) > 1:
                    found["duplicated"].append(p)
                if sheets:
                    found["delivered"].append(p)
                elif state == "cancelled":
                    found["cancelled"].append(p)
                else:
                    found["lost"].append(p)
                    if state == "failed":
                        found["failed"].append(p)
        finally:
            client.close()
        return found

    # --- faults --------------------------------------------------------------------------
    def running_worker(self, job_id: str, part: str) -> str | None:
        """The worker whose log shows it started ``job_id``'s ``part`` last."""
        needle = arq_job_id(job_id, part)
        best: tuple[int, str] | None = None
        for name in ("worker-a", "worker-b"):
            text = (self.log_dir / f"{name}.log").read_text(errors="replace")
            at = text.rfind(needle)
            if at >= 0 and (best is None or at > best[0]):
                best = (at, name)
        return best[1] if best else None

    async def kill_worker_during(self, state: str, part: str, skip: set[str]) -> str | None:
        deadline = time.monotonic() + self.args.fault_wait
        while time.monotonic() < deadline:
            for person in self.people:
                if person.job_id is None or person.job_id in skip or person.behaviour != "normal":
                    continue
                if await self.job_state(person.job_id) == state:
                    name = self.running_worker(person.job_id, part)
                    if name is None:
                        continue
                    self.kill(name)
                    self.figures.faults.append(f"SIGKILL {name} while job {person.job_id} {state}")
                    say(self.figures.faults[-1])
                    return person.job_id
            await asyncio.sleep(0.2)
        self.figures.faults.append(f"no job reached {state} in time: worker not killed")
        return None

    async def outages(self) -> None:
        """The Bot API answers 429 while people upload, then 502 while results go out."""
        try:
            await asyncio.wait_for(self.kit_ready.wait(), self.args.fault_wait)
        except TimeoutError:
            self.figures.faults.append("the kit was never saved: no Bot API outage")
            return
        await asyncio.sleep(2)
        self.outage(429)
        await asyncio.sleep(self.args.outage_s + 1)
        deadline = time.monotonic() + self.args.fault_wait
        while time.monotonic() < deadline:
            states = [await self.job_state(p.job_id) for p in self.people if p.job_id]
            if any(state in ("generating", "delivering") for state in states):
                break
            await asyncio.sleep(0.3)
        self.outage(502)

    def outage(self, status: int) -> None:
        self.fake.fail_for(self.args.outage_s, status, every=2)
        apis = "Bot API"
        if self.dc_people:
            self.discord.fail_for(self.args.outage_s, status, every=2)
            apis = "Bot API and Discord API"
        self.figures.faults.append(
            f"{apis} {status} on every 2nd call for {self.args.outage_s:g} s"
        )
        say(self.figures.faults[-1])

    async def dc_faults(self) -> None:
        """SIGKILL the Discord bot while a person's photos are arriving (supervisor restarts it)."""
        if not self.dc_people:
            return
        try:
            await asyncio.wait_for(self.dc_upload_started.wait(), self.args.fault_wait)
        except TimeoutError:
            self.figures.faults.append("no Discord upload started: Discord bot not killed")
            return
        await asyncio.sleep(0.1)
        self.kill("bot-discord")
        self.figures.faults.append("SIGKILL Discord bot mid-upload")
        say(self.figures.faults[-1])
        # Later the gateway drops the (new) connection, as Discord does now and then: the bot
        # must try to RESUME, be refused, and IDENTIFY again.
        gateway = self.discord.gateway
        try:
            await self.discord.wait_for(
                lambda: gateway.identified(), within=self.args.fault_wait, what="the Discord bot"
            )
        except AssertionError:
            self.figures.faults.append("the Discord bot never came back: no gateway drop")
            return
        await asyncio.sleep(10)
        await gateway.drop_connections()
        self.figures.faults.append("Discord gateway dropped the bot's connection")
        say(self.figures.faults[-1])

    async def faults(self) -> None:
        # 1. The bot, while a person's album is arriving (once the team's kit is saved: a kill
        # between saving the kit and posting its Join button leaves the team without one and
        # the admin's retry is told the setup expired; reported, not fixed here).
        try:
            await asyncio.wait_for(self.kit_ready.wait(), self.args.fault_wait)
            self.upload_started.clear()
            await asyncio.wait_for(self.upload_started.wait(), self.args.fault_wait)
            await asyncio.sleep(0.1)
            self.kill("bot")
            self.figures.faults.append("SIGKILL bot mid-upload")
            say(self.figures.faults[-1])
        except TimeoutError:
            self.figures.faults.append("no upload started: bot not killed")
        # 2. A worker mid-training, then 3. Redis, then 4. a worker mid-generation.
        killed = await self.kill_worker_during("training", "train", set())
        await asyncio.sleep(2)
        os.kill(self.redis_server.pid or 0, signal.SIGKILL)
        self.figures.faults.append("SIGKILL Redis (restarted on its AOF)")
        say(self.figures.faults[-1])
        await asyncio.sleep(3)
        await self.kill_worker_during("generating", "generate", {killed} if killed else set())

    # --- the run ---------------------------------------------------------------------------
    def cast(self) -> None:
        n = self.args.users
        team = max(2, n * 3 // 10)  # admin + members
        group = max(2, n // 5)
        behaviours = ["cancel", "delete", "double"]
        pool = selfie_pool()
        for index in range(n):
            user = FakeUser(id=50_000 + index, first_name=f"P{index}", username=f"p{index}")
            if index < team:
                kind = "admin" if index == 0 else "team"
                chat = TEAM_GROUP if index == 0 else FakeChat.private(user)
            elif index < team + group:
                kind, chat = "group", GROUP
            else:
                kind, chat = "private", FakeChat.private(user)
            behaviour = "normal"
            if kind != "admin":
                if index % 5 == 3:
                    behaviour = behaviours[(index // 5) % len(behaviours)]
                elif index % 7 == 5:
                    behaviour = "double"
            if kind == "group" and index == team + group - 1:
                behaviour = "intruder"
            photos = selfie_set(self.rng, pool)
            count = self.rng.randint(4, 8)
            self.people.append(
                Person(
                    index, user, kind, behaviour, photos[:count],
                    ChatDriver(self.fake, chat, user), reserve=photos[count:],
                )
            )  # fmt: skip
        self.cast_discord()
        self.cast_slack()

    def cast_slack(self) -> None:
        """Move a share of the private people still on Telegram (the plain ones first) to
        Slack; each types ``/headshots start`` in the workspace's channel."""
        wanted = round(self.args.users * self.args.slack_share)
        private = [p for p in self.people if p.kind == "private"]
        private.sort(key=lambda p: (p.behaviour not in ("normal", "double"), p.index))
        for person in private[:wanted]:
            self.people.remove(person)
            user = self.slack.add_user(f"s{person.index}")
            self.sl_people.append(
                SlackPerson(
                    person.index, user, self.slack.dm_of(user.id), person.photos,
                    reserve=person.reserve,
                )
            )  # fmt: skip

    def cast_discord(self) -> None:
        """Move a share of the private people to Discord (the plain ones first): two in three
        start in the server's channel (a thread each), one in three in a DM."""
        wanted = round(self.args.users * self.args.discord_share)
        private = [p for p in self.people if p.kind == "private"]
        private.sort(key=lambda p: (p.behaviour not in ("normal", "double"), p.index))
        chosen = private[:wanted]
        if not chosen:
            return
        self.discord.gateway.add_guild(DC_GUILD_ID, "Office floor")
        channel = self.discord.add_text_channel(DC_GUILD_ID, "headshots")
        for n, person in enumerate(chosen):
            self.people.remove(person)
            user = self.discord.add_user(60_000 + person.index, f"d{person.index}")
            start_in = self.discord.add_dm_channel(user) if n % 3 == 2 else channel
            behaviour = person.behaviour if person.behaviour == "double" else "normal"
            self.dc_people.append(
                DiscordPerson(
                    person.index, user, start_in, behaviour, person.photos,
                    reserve=person.reserve,
                )
            )  # fmt: skip

    async def run(self) -> int:
        started = time.monotonic()
        self.log_dir.mkdir(parents=True)
        from headshots.generation.safety import save_random_checker
        from headshots.generation.tiny import save_tiny_model

        tiny_model = save_tiny_model(self.work / "tiny-model", seed=0)
        # The output check runs as in production, on a random-weight checker that flags nothing
        # (the real one would come from the hub).
        checker = save_random_checker(self.work / "safety-checker")
        self.fake.start()
        await self.discord.start()
        await self.slack.start()
        self.redis_url = self.redis_server.start()
        env = self.env(tiny_model)
        env["HEADSHOTS_SAFETY_CHECKER"] = str(checker)
        self.cast()
        commands = {
            "bot": self.command("bot", "bot", "telegram"),
            "worker-a": self.command("worker-a", "worker", "--queue", "all"),
            "worker-b": self.command("worker-b", "worker", "--queue", "all"),
        }
        if self.dc_people:
            commands["bot-discord"] = self.command("bot-discord", "bot", "discord")
        if self.sl_people:
            commands["bot-slack"] = self.command("bot-slack", "bot", "slack")
        self.supervisor = Supervisor(commands, env, redis=self.redis_server)
        self.supervisor.start()
        watcher = threading.Thread(target=self.supervise, name="supervise", daemon=True)
        watcher.start()
        try:
            await self.wait_ready()
            say(
                f"ready after {time.monotonic() - started:.1f} s; {len(self.people)} people on "
                f"Telegram, {len(self.dc_people)} on Discord, {len(self.sl_people)} on Slack"
            )
            kit_ready = self.kit_ready
            intruder_victim = next(p for p in self.people if p.kind == "group")
            tasks = []
            for person in self.people:
                extra: tuple[Any, ...] = ()
                if person.kind in ("admin", "team"):
                    extra = (kit_ready,)
                elif person.behaviour == "intruder":
                    extra = (intruder_victim,)
                tasks.append(asyncio.create_task(self.run_person(person, *extra)))
            tasks += [asyncio.create_task(self.run_dc_person(p)) for p in self.dc_people]
            slack_channel = self.slack.add_channel("headshots")
            tasks += [
                asyncio.create_task(self.run_sl_person(p, slack_channel)) for p in self.sl_people
            ]
            fault_task = asyncio.gather(self.faults(), self.outages(), self.dc_faults())
            budget_left = max(10.0, started + self.args.budget - time.monotonic())
            _, pending = await asyncio.wait(tasks, timeout=budget_left)
            for task in pending:  # bounded: a person still waiting is reported as stuck
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for person in self.people:
                if person.stuck is None and person.job_id is None and person.kind != "admin":
                    if person.behaviour != "intruder":
                        person.stuck = person.stuck or "never ordered"
            for dc_person in self.dc_people:
                if dc_person.stuck is None and dc_person.job_id is None:
                    dc_person.stuck = "never ordered"
            for sl_person in self.sl_people:
                if sl_person.stuck is None and sl_person.job_id is None:
                    sl_person.stuck = "never ordered"
            await self.settle(deadline=started + self.args.budget)
            fault_task.cancel()
            await asyncio.gather(fault_task, return_exceptions=True)
            await asyncio.sleep(2)  # a late duplicate would show now
            self.dump_calls()
            return self.report(time.monotonic() - started)
        finally:
            self.stop_event.set()
            watcher.join(5)
            self.supervisor.stop()
            self.redis_server.stop()
            self.fake.stop()
            await self.discord.stop()
            await self.slack.stop()

    async def wait_ready(self) -> None:
        """Until the bot polls and both workers beat into the registry."""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            client = self.redis()
            try:
                workers = client.zcard(constants.workers_key("train"))
            finally:
                client.close()
            discord_up = not self.dc_people or self.discord.gateway.identified()
            slack_up = not self.sl_people or self.slack.is_connected
            if workers >= 2 and self.fake.calls("getUpdates") and discord_up and slack_up:
                return
            await asyncio.sleep(0.3)
        raise RuntimeError(f"bot or workers did not start; see {self.log_dir}")

    async def settle(self, deadline: float) -> None:
        """Until every ordered job that was not deleted has finished (or the budget is spent)."""
        while time.monotonic() < deadline:
            waiting = []
            for person in self.people:
                if person.job_id and not person.deleted:
                    if await self.job_state(person.job_id) not in FINISHED:
                        waiting.append(person.job_id)
            for other in [*self.dc_people, *self.sl_people]:
                if other.job_id and await self.job_state(other.job_id) not in FINISHED:
                    waiting.append(other.job_id)
            if not waiting:
                return
            await asyncio.sleep(1)
        say(f"budget spent with {len(waiting)} job(s) unfinished")

    # --- the figures ----------------------------------------------------------------------
    def sheets(self, job_id: str) -> list[Call]:
        return [
            c
            for c in self.fake.calls("sendPhoto")
            if c.status == 200
            and f":{job_id}" in json.dumps(c.params.get("reply_markup"))
            and int(c.params["chat_id"]) != TEAM_GROUP.id
        ]

    def dc_sheets(self, person: DiscordPerson) -> list[dict[str, Any]]:
        """The result messages (the ones carrying the job's result buttons) in the place."""
        assert person.place is not None and person.job_id
        needle = f":{person.job_id}"
        return [
            m
            for m in self.discord.live_messages(int(person.place["id"]))
            if any(c.startswith("hs:") and needle in c for c in FakeDiscord.custom_ids(m))
        ]

    def dc_figures(self) -> dict[str, list[DiscordPerson]]:
        """Delivered / duplicated / cancelled / lost / failed among the Discord people."""
        found: dict[str, list[DiscordPerson]] = {
            k: [] for k in ("delivered", "duplicated", "cancelled", "lost", "failed")
        }
        client = self.redis()
        try:
            for p in self.dc_people:
                if not p.job_id:
                    continue
                raw: bytes | None = client.hget(constants.job_key(p.job_id), "state")  # type: ignore[assignment]
                state = raw.decode() if raw else None
                jobs: int = client.scard(constants.user_jobs_key(p.key))  # type: ignore[assignment]
                if state == "failed":
                    error: bytes | None = client.hget(constants.job_key(p.job_id), "error")  # type: ignore[assignment]
                    self.figures.failures.append(
                        f"{p.job_id} (Discord): {error.decode() if error else '?'}"
                    )
                sheets = self.dc_sheets(p)
                # Two result posts, or two jobs from one order (a doubled Confirm), is a double.
                if len(sheets) > 1 or jobs > 1:
                    found["duplicated"].append(p)
                if sheets:
                    found["delivered"].append(p)
                elif state == "cancelled":
                    found["cancelled"].append(p)
                else:
                    found["lost"].append(p)
                    if state == "failed":
                        found["failed"].append(p)
        finally:
            client.close()
        return found

    def keys_left(self, person: Person) -> list[str]:
        user_key = f"tg:{person.user.id}"
        needles = [user_key.encode(), *([person.job_id.encode()] if person.job_id else [])]
        client = self.redis()
        try:
            found = [
                k.decode() for k in client.scan_iter(count=1000) if any(n in k for n in needles)
            ]
            for key in client.scan_iter(match=f"{constants.KEY_PREFIX}team:*:members"):
                if client.hexists(key, user_key):
                    found.append(f"{key.decode()}[{user_key}]")
            if person.job_id and client.zscore(constants.LIVE_JOBS_KEY, person.job_id) is not None:
                found.append(f"{constants.LIVE_JOBS_KEY}[{person.job_id}]")
        finally:
            client.close()
        return found

    def report(self, elapsed: float) -> int:
        ordered = [p for p in self.people if p.job_id]
        states = {}
        client = self.redis()
        try:
            for p in ordered:
                raw = client.hget(constants.job_key(p.job_id or ""), "state")
                states[p.job_id] = raw.decode() if raw else None
                if states[p.job_id] == "failed":  # why, for the report: the run's logs may be gone
                    error = client.hget(constants.job_key(p.job_id or ""), "error")
                    events = client.lrange(constants.job_events_key(p.job_id or ""), -6, -1)
                    self.figures.failures.append(
                        f"{p.job_id}: {error.decode() if error else '?'}; last events: "
                        + " | ".join(e.decode()[:300] for e in events)
                    )
        finally:
            client.close()
        delivered, duplicated, lost, cancelled, deleted, failed = [], [], [], [], [], []
        first_status: list[float] = []
        for p in ordered:
            assert p.job_id
            sheets = self.sheets(p.job_id)
            if len(sheets) > 1:
                duplicated.append(p)
            if sheets:
                delivered.append(p)
            albums = sum(
                len(c.params.get("media") or [])
                for c in self.fake.calls("sendMediaGroup")
                if c.status == 200 and int(c.params["chat_id"]) == p.user.id
            )
            # The contact sheet names how many headshots the albums carried (the default
            # path orders the style's own count, not always 4).
            shown = sum(
                int(found.group(1))
                for sheet in sheets
                if (found := re.search(r"Contact sheet: (\d+) ", str(sheet.params.get("caption"))))
            )
            if p.kind in ("private", "team") and sheets and albums > shown:
                duplicated.append(p)
            if p.deleted:
                deleted.append(p)
            elif states[p.job_id] == "cancelled":
                cancelled.append(p)
            elif not sheets:
                lost.append(p)
                if states[p.job_id] == "failed":
                    failed.append(p)
            edits = [
                c.at
                for c in self.fake.calls("editMessageText")
                if c.status == 200
                and int(c.params["chat_id"]) == p.driver.chat.id
                and int(c.params["message_id"]) == p.status_id
                and c.at > (p.queued_at or 0)
            ]
            if edits and p.ordered_at is not None:
                first_status.append(min(edits) - p.ordered_at)
        keys_left = {p.index: self.keys_left(p) for p in self.people if p.deleted}
        left = sum(len(v) for v in keys_left.values())
        stuck = [p for p in self.people if p.stuck]
        queued = [p.queued_after_s for p in ordered if p.queued_after_s is not None]
        dc = self.dc_figures()
        dc_ordered = [p for p in self.dc_people if p.job_id]
        dc_stuck = [p for p in self.dc_people if p.stuck]
        dc_queued = [p.queued_after_s for p in dc_ordered if p.queued_after_s is not None]
        sl = self.sl_figures()
        sl_ordered = [p for p in self.sl_people if p.job_id]
        sl_stuck = [p for p in self.sl_people if p.stuck]
        sl_queued = [p.queued_after_s for p in sl_ordered if p.queued_after_s is not None]
        lost_ids = [p.job_id for p in lost] + [p.job_id for p in dc["lost"]]
        lost_ids += [p.job_id for p in sl["lost"]]
        duplicated_ids = [p.job_id for p in duplicated] + [p.job_id for p in dc["duplicated"]]
        duplicated_ids += [p.job_id for p in sl["duplicated"]]
        dc_guild = sum(p.kind == "guild" for p in self.dc_people)
        sl_acks = [delay for delay, _ in self.slack.acks.values()]

        def pct(values: list[float], q: float) -> str:
            if not values:
                return "n/a"
            ordered_values = sorted(values)
            return f"{ordered_values[min(len(values) - 1, int(q * len(values)))]:.2f}"

        lines = [
            f"people: {len(self.people) + len(self.dc_people) + len(self.sl_people)} "
            f"(Telegram {len(self.people)}: "
            f"team {sum(p.kind in ('admin', 'team') for p in self.people)}, "
            f"group {sum(p.kind == 'group' for p in self.people)}, "
            f"private {sum(p.kind == 'private' for p in self.people)}; "
            f"Discord {len(self.dc_people)}: server channel {dc_guild}, "
            f"DM {len(self.dc_people) - dc_guild}; Slack {len(self.sl_people)})",
            f"faults: {'; '.join(self.figures.faults)}",
            f"Bot API calls failed on purpose: {self.fake.outage_failures}",
            f"Discord API calls failed on purpose: {self.discord.outage_failures}",
            f"Discord events sent while no bot was connected (lost, as on Discord): "
            f"{len(self.discord.gateway.lost_events)}; gateway IDENTIFYs "
            f"{self.discord.gateway.identifies}, RESUMEs refused {self.discord.gateway.resumes}",
            f"jobs ordered: {len(ordered) + len(dc_ordered) + len(sl_ordered)} "
            f"(Discord {len(dc_ordered)}, Slack {len(sl_ordered)})",
            f"jobs delivered: {len(delivered) + len(dc['delivered']) + len(sl['delivered'])} "
            f"(Discord {len(dc['delivered'])}, Slack {len(sl['delivered'])})",
            f"jobs cancelled: {len(cancelled) + len(dc['cancelled']) + len(sl['cancelled'])}",
            f"jobs deleted: {len(deleted)}",
            f"jobs failed (counted as lost): {len(failed) + len(dc['failed']) + len(sl['failed'])}"
            + "".join(f"\n  {line}" for line in self.figures.failures),
            f"lost: {len(lost_ids)}" + (f" {lost_ids}" if lost_ids else ""),
            f"duplicated: {len(duplicated_ids)}" + (f" {duplicated_ids}" if duplicated_ids else ""),
            f"keys left for deleted people: {left}" + (f" {keys_left}" if left else ""),
            f"people stuck before the end: {len(stuck) + len(dc_stuck) + len(sl_stuck)}"
            + "".join(f"\n  person {p.index} ({p.kind}/{p.behaviour}): {p.stuck}" for p in stuck)
            + "".join(
                f"\n  Discord person {p.index} ({p.kind}/{p.behaviour}): {p.stuck}"
                for p in dc_stuck
            )
            + "".join(f"\n  Slack person {p.index}: {p.stuck}" for p in sl_stuck),
            f"times a person had to repeat themselves: "
            f"{sum(p.repeats for p in [*self.people, *self.dc_people, *self.sl_people])} "
            f"(Discord {sum(p.repeats for p in self.dc_people)}, "
            f"Slack {sum(p.repeats for p in self.sl_people)})",
            f"photo verdict latency p50/p95: {pct(self.figures.photo_latency, 0.5)} / "
            f"{pct(self.figures.photo_latency, 0.95)} s "
            f"({len(self.figures.photo_latency)} photos)",
            f"button press latency p50/p95: {pct(self.figures.press_latency, 0.5)} / "
            f"{pct(self.figures.press_latency, 0.95)} s "
            f"({len(self.figures.press_latency)} presses)",
            f"order to queued message p50/p95: {pct(queued, 0.5)} / {pct(queued, 0.95)} s",
            f"order to first status update p50/p95: {pct(first_status, 0.5)} / "
            f"{pct(first_status, 0.95)} s",
            f"Discord photo verdict latency p50/p95: {pct(self.figures.dc_photo_latency, 0.5)} / "
            f"{pct(self.figures.dc_photo_latency, 0.95)} s "
            f"({len(self.figures.dc_photo_latency)} photos)",
            f"Discord interaction answer latency p50/p95: "
            f"{pct(self.figures.dc_press_latency, 0.5)} / "
            f"{pct(self.figures.dc_press_latency, 0.95)} s "
            f"({len(self.figures.dc_press_latency)} interactions)",
            f"Discord order to queued message p50/p95: {pct(dc_queued, 0.5)} / "
            f"{pct(dc_queued, 0.95)} s",
            f"Slack photo verdict latency p50/p95: {pct(self.figures.sl_photo_latency, 0.5)} / "
            f"{pct(self.figures.sl_photo_latency, 0.95)} s "
            f"({len(self.figures.sl_photo_latency)} photos)",
            f"Slack envelope ack latency p50/p95: {pct(sl_acks, 0.5)} / {pct(sl_acks, 0.95)} s "
            f"({len(sl_acks)} envelopes)",
            f"Slack order to queued message p50/p95: {pct(sl_queued, 0.5)} / "
            f"{pct(sl_queued, 0.95)} s",
            f"bot peak RSS: {self.figures.bot_peak_rss_kb / 1024:.0f} MB (Discord bot "
            f"{self.figures.dc_bot_peak_rss_kb / 1024:.0f} MB, Slack bot "
            f"{self.figures.sl_bot_peak_rss_kb / 1024:.0f} MB)",
            f"bot restarts: {self.child('bot').restarts}, Discord bot restarts: "
            f"{self.child('bot-discord').restarts if self.dc_people else 0}, Slack bot restarts: "
            f"{self.child('bot-slack').restarts if self.sl_people else 0}, worker restarts: "
            f"{self.child('worker-a').restarts + self.child('worker-b').restarts}",
            f"wall time: {elapsed:.0f} s (load average {os.getloadavg()[0]:.1f})",
        ]
        for line in lines:
            print(line, flush=True)
        bad = bool(lost_ids or duplicated_ids or left)
        print(f"verdict: {'FAIL' if bad else 'PASS'} (lost {len(lost_ids)}, duplicated "
              f"{len(duplicated_ids)}, keys left {left})", flush=True)  # fmt: skip
        return 1 if bad else 0


class Stuck(Exception):
    """A simulated person could not go on (the bot never answered, a button was missing)."""


class StaleMenu(Stuck):
    """The bot answered a press with "this menu is out of date"."""


def peak_rss(pid: int) -> int:
    """VmHWM of ``pid`` in kB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="10 people, one of each fault")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--train-steps", type=int, default=4)
    parser.add_argument("--job-timeout", type=int, default=45)
    parser.add_argument("--outage-s", type=float, default=6.0)
    parser.add_argument(
        "--patience", type=float, default=60.0, help="seconds a person waits for a photo's verdict"
    )
    parser.add_argument("--stagger", type=float, default=0.5, help="seconds between arrivals")
    parser.add_argument("--budget", type=float, default=1500, help="seconds before giving up")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument(
        "--discord-share", type=float, default=0.3, help="share of the people on Discord"
    )
    parser.add_argument(
        "--slack-share", type=float, default=0.1, help="share of the people on Slack"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.users = 10
        args.train_steps = 2
        args.outage_s = 4.0
        args.stagger = 0.3
        # Both worker kills can land on the same worker: each killed job comes back after
        # timeout + 10 s, and a job queued behind them waits for both (a run took 162 s so).
        # The budget only bounds a run that would otherwise hang: a passing one ends sooner.
        args.budget = 240
        args.patience = 15.0
        # Under load (other suites on these 2 cores) a worker's first job loads the pipeline
        # and trains in up to ~35 s; a SIGKILLed job comes back after timeout + 10 s.
        args.job_timeout = 45
    args.fault_wait = 80 if args.quick else args.budget / 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="headshots-soak-"))
    say(f"work directory {work}")
    try:
        return asyncio.run(Soak(args, work).run())
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
