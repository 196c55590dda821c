"""One conversation, three front ends: scripts that run unchanged through Telegram, Discord, Slack.

Each script plays people through a :class:`Person` (what a person does: start, agree, send
photos, answer a question, describe the look, confirm, press a result button) and checks what
the core decided (texts, the submitted job). ``TelegramPerson``, ``DiscordPerson`` and
``SlackPerson`` (:mod:`tests.test_bot_slack`) do the same things through the fake servers and
the real bots, so the front ends cannot drift. What differs per platform (who intrudes how,
how an admin sets the look) is a method of :class:`Platform`.
Also here: the core's pure parts (style steps, the tally) and the selfie-check limiter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

import pytest

from headshots.bot.conversation import photos, style
from headshots.errors import NotFound
from headshots.queue.contracts import ChatTarget, PersonAttributes, StyleChoice, UserRef
from headshots.queue.delivery.slack import slack_number
from headshots.queue.teams import BrandKit, KitBackground, TeamStore, team_id_for
from headshots.style.policy import review_description
from tests.fake_discord import FakeDiscord
from tests.fake_slack import TEAM_ID as SLACK_TEAM
from tests.fake_slack import FakeSlack
from tests.fake_telegram import FakeChat, FakeTelegram, FakeUser
from tests.plugins.telegram import ChatDriver, RunningBot
from tests.test_bot_discord import GUILD_ID, photo_attachments, responded
from tests.test_bot_discord_team import TeamUser
from tests.test_bot_slack import SlackPerson

BAD_DESCRIPTION = "naked on a beach"
GOOD_DESCRIPTION = "navy turtleneck,   rooftop at golden hour"


def plain(text: str) -> str:
    return text.replace("**", "").replace("`", "")


class Person(Protocol):
    """What a person does in a conversation, whichever front end they use."""

    user: UserRef

    async def start(self) -> str: ...
    async def agree(self) -> None: ...
    async def send_photos(self, photos: list[bytes]) -> str: ...
    async def finish_upload(self) -> None: ...
    async def choose(self, step: str, value: str) -> None: ...
    async def describe(self, text: str) -> str: ...
    async def summary(self) -> str: ...
    async def quick(self) -> str: ...
    async def press(self, action: str) -> str: ...
    async def send_reference(self, photo: bytes, expect: str) -> None: ...
    async def customise(self) -> None: ...
    async def confirm(self) -> str: ...
    async def press_result(self, data: str) -> str: ...
    def where(self) -> tuple[int, int | None]: ...


# --- Telegram ---------------------------------------------------------------------------------
class TelegramPerson:
    def __init__(self, bot: RunningBot, fake: FakeTelegram, chat: FakeChat, who: FakeUser) -> None:
        self.bot, self.fake = bot, fake
        self.driver = ChatDriver(fake, chat, who, TOPIC if chat.is_forum else None)
        self.user = UserRef(platform="telegram", user_id=who.id)
        self.menu: dict[str, Any] = {}
        self.tally: dict[str, Any] = {}
        #: Buttons pressed so far (the default path's promise: four to Confirm).
        self.taps = 0

    async def start(self, payload: str = "") -> str:
        mark = self.fake.mark()
        self.driver.text(f"/start {payload}".strip())
        self.menu = await self.driver.said("", since=mark)
        return plain(str(self.menu["text"]))

    async def agree(self) -> None:
        mark = self.fake.mark()
        self.taps += 1
        self.driver.press_label(self.menu, "I agree")
        await self.driver.said("Now send", since=mark)

    async def send_photos(self, photos: list[bytes]) -> str:
        mark = self.fake.mark()
        self.driver.photos(photos)
        self.tally = await self.driver.said("accepted", since=mark, timeout=60)
        return plain(str(self.tally["text"]))

    async def finish_upload(self) -> None:
        mark = self.fake.mark()
        self.taps += 1
        self.driver.press_label(self.tally, "Done")
        self.menu = await self.driver.said("?", since=mark)

    async def _press(self, data: str) -> str:
        """Press ``data`` under the menu; the callback's answer, the menu updated."""
        mark = self.fake.mark()
        self.taps += 1
        query = self.driver.press(self.menu, data)
        answer = await self.fake.wait_for(
            "answerCallbackQuery", lambda c: c.params["callback_query_id"] == query["id"]
        )
        if not answer.params.get("text"):  # answered at once, before the menu's edit
            menu_id = int(self.menu["message_id"])
            await self.fake.wait_for(
                "editMessageText",
                lambda c: int(c.params["message_id"]) == menu_id and c.status == 200,
                since=mark,
            )
        edits = [
            c
            for c in self.fake.calls_since(mark, "editMessageText")
            if int(c.params["message_id"]) == int(self.menu["message_id"]) and c.status == 200
        ]
        if edits:
            self.menu = dict(edits[-1].response)
        return plain(str(answer.params.get("text", "")))

    async def choose(self, step: str, value: str) -> None:
        await self._press(f"s:{self.user.user_id}:{step}:{value}")

    async def describe(self, text: str) -> str:
        if "Describe the look" not in str(self.menu["text"]):
            await self.choose("preset", style.CUSTOM)
        mark = self.fake.mark()
        self.driver.text(text)
        reply = await self.driver.said("", since=mark)
        if "?" in str(reply["text"]):  # the next question: the description was taken
            self.menu = reply
            return ""
        return plain(str(reply["text"]))

    async def summary(self) -> str:
        return plain(str(self.menu["text"]))

    async def quick(self) -> str:
        return await self._press(f"f:{self.user.user_id}:q")

    async def press(self, action: str) -> str:
        from headshots.bot.telegram.surface import ACTIONS

        return await self._press(f"f:{self.user.user_id}:{ACTIONS[(action, '')][1]}")

    async def send_reference(self, photo: bytes, expect: str) -> None:
        """Send one photo while the bot asks for a reference; wait for ``expect`` in reply."""
        mark = self.fake.mark()
        self.driver.photos([photo])
        reply = await self.driver.said(expect, since=mark, timeout=60)
        if "Start with this look?" in str(reply["text"]):
            self.menu = reply

    def labels(self) -> list[str]:
        """The buttons under the menu."""
        rows = (self.menu.get("reply_markup") or {}).get("inline_keyboard", [])
        return [str(button["text"]) for row in rows for button in row]

    async def customise(self) -> None:
        """Customise under the recommended look: the questions, one at a time."""
        await self._press(f"f:{self.user.user_id}:change")

    async def confirm(self) -> str:
        mark = self.fake.mark()
        self.taps += 1
        self.driver.press(self.menu, f"f:{self.user.user_id}:ok")
        return plain(str((await self.driver.said("Queued", since=mark))["text"]))

    async def press_result(self, data: str) -> str:
        from telegram import InlineKeyboardButton, InlineKeyboardMarkup

        chat = self.driver.chat.id
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("result", callback_data=data)]])
        posted = await self.bot.application.bot.send_message(
            chat, "Your headshots", reply_markup=keyboard, message_thread_id=self.driver.thread_id
        )
        query = self.fake.press(self.user_of(), self.fake.message(chat, posted.message_id), data)
        answer = await self.fake.wait_for(
            "answerCallbackQuery", lambda c: c.params["callback_query_id"] == query["id"]
        )
        return plain(str(answer.params.get("text", "")))

    def user_of(self) -> FakeUser:
        return self.driver.user

    def where(self) -> tuple[int, int | None]:
        return self.driver.chat.id, self.driver.thread_id


# --- Discord ----------------------------------------------------------------------------------
class DiscordPerson:
    def __init__(self, fake: FakeDiscord, member: TeamUser, channel: dict[str, Any]) -> None:
        self.fake, self.member, self.channel = fake, member, channel
        self.user = member.ref
        self.form: dict[str, Any] = {}
        self.place: dict[str, Any] = {}
        self.sent = 0
        self.taps = 0

    async def _wait(self, probe: Callable[[], Any], what: str) -> Any:
        return await self.fake.wait_for(probe, what=what, within=30)

    def _answer(self, payload: dict[str, Any]) -> str:
        responses = self.fake.interaction_responses(payload)
        content = str((responses[0].get("data") or {}).get("content", "")) if responses else ""
        followups = [
            m
            for m in self.fake.messages.values()
            if m.get("interaction_token") == payload["token"] and m.get("content")
        ]
        return plain(content or (str(followups[-1]["content"]) if followups else ""))

    async def start(self, join: bool = False) -> str:
        sub = "join" if join else "start"
        payload = (
            self.member.team(sub, self.channel) if join else self.member.slash(sub, self.channel)
        )
        await responded(self.fake, payload)
        prompt = await self._wait(
            lambda: self.fake.message_with(f"hsd:consent:{self.member.id}:"), "the consent prompt"
        )
        self.form = prompt
        return plain(str(prompt["content"]))

    async def agree(self) -> None:
        self.taps += 1
        await self.member.press(self.form, "hsd:consent")
        self.form = await self._wait(
            lambda: self.fake.message_with(f"hsd:class:{self.member.id}:"), "the style form"
        )
        self.place = self.fake.channels[int(self.form["channel_id"])]

    def _tally(self) -> str:
        for message in self.fake.live_messages(int(self.place["id"])):
            if str(message["content"]).startswith("**Photos**"):
                return plain(str(message["content"]))
        return ""

    async def send_photos(self, photos: list[bytes]) -> str:
        self.sent += len(photos)
        self.member.bot._connection.parse_message_create(  # type: ignore[arg-type]
            self.fake.user_message(
                user=self.member.user,
                channel=self.place,
                attachments=photo_attachments(self.fake, photos),
            )
        )

        def counted() -> str | None:
            text = self._tally()
            head = text.split(":")[1] if ":" in text else ""
            numbers = [int(w) for w in head.replace(",", " ").split() if w.isdigit()]
            return text if sum(numbers[:2]) == self.sent else None

        return str(await self._wait(counted, "the tally"))

    async def finish_upload(self) -> None:
        """The form is there from the start: nothing to press."""

    def _current(self) -> dict[str, Any]:
        return self.fake.messages[int(self.form["id"])]

    async def _click(self, op: str) -> str:
        self.taps += 1
        payload = await self.member.press(self._current(), op)
        return self._answer(payload)

    async def choose(self, step: str, value: str) -> None:
        from headshots.bot.discord.surface import STYLE_OPS

        op = f"hsd:{STYLE_OPS[step]}:"
        for page in ("more", "you", "hairstyle", "look", "more"):
            if any(c.startswith(op) for c in self.fake.custom_ids(self._current())):
                break
            if any(c.startswith(f"hsd:{page}:") for c in self.fake.custom_ids(self._current())):
                await self._click(f"hsd:{page}:")
        self.taps += 1
        await self.member.pick(self._current(), op, value)

    async def describe(self, text: str) -> str:
        """The reply to the description ("" when it was taken: the form is updated instead)."""
        opened = await self.member.press(self._current(), "hsd:custom")
        submitted = await self.member.submit_modal(opened, [text], self._current())
        taken = self.fake.interaction_responses(submitted)[0]["type"] == 7
        return "" if taken else self._answer(submitted)

    async def summary(self) -> str:
        if not any(c.startswith("hsd:confirm") for c in self.fake.custom_ids(self._current())):
            await self._click("hsd:next")
        return plain(str(self._current()["content"]))

    async def quick(self) -> str:
        return await self._click("hsd:quick")

    async def press(self, action: str) -> str:
        return await self._click(f"hsd:{action}")

    async def send_reference(self, photo: bytes, expect: str) -> None:
        mark = len(self.fake.messages)
        self.member.bot._connection.parse_message_create(  # type: ignore[arg-type]
            self.fake.user_message(
                user=self.member.user,
                channel=self.place,
                attachments=photo_attachments(self.fake, [photo]),
            )
        )

        def seen() -> bool:
            texts = [str(self._current()["content"])]
            texts += [str(m.get("content")) for m in list(self.fake.messages.values())[mark:]]
            return any(expect in plain(text) for text in texts)

        await self._wait(seen, expect)

    def labels(self) -> list[str]:
        rows = self._current().get("components") or []
        return [str(c.get("label", "")) for row in rows for c in row.get("components", [])]

    async def customise(self) -> None:
        """The form is the customising: its selects are there before the summary."""

    async def confirm(self) -> str:
        await self._click("hsd:confirm")
        status = await self._wait(
            lambda: next(
                (
                    m
                    for m in self.fake.live_messages(int(self.place["id"]))
                    if str(m["content"]).startswith("Queued")
                ),
                None,
            ),
            "the status message",
        )
        return plain(str(status["content"]))

    async def press_result(self, data: str) -> str:
        button = {"type": 2, "style": 2, "label": "result", "custom_id": data}
        message = self.fake._message_payload(
            int((self.place or self.channel)["id"]),
            "Your headshots",
            components=[{"type": 1, "components": [button]}],
        )
        self.fake.messages[int(message["id"])] = message
        return self._answer(await self.member.press(message, data))

    def where(self) -> tuple[int, int | None]:
        thread = self.place
        parent = thread.get("parent_id")
        return (int(parent), int(thread["id"])) if parent else (int(thread["id"]), None)


# --- the people of a test, on one platform --------------------------------------------------
ALICE = FakeUser(id=3001, first_name="Alice")
BOB = FakeUser(id=3002, first_name="Bob")
TOPIC = 5
GROUP = FakeChat.supergroup(-100700, "Studio", forum=True)


class Platform:
    """The platform's bot, started on demand, and its people: privately, in a group, admins."""

    def __init__(
        self,
        name: str,
        telegram_bot: Any,
        fake_telegram: FakeTelegram,
        discord_bot_factory: Any,
        fake_discord: FakeDiscord,
        slack_bot_factory: Any = None,
        fake_slack: FakeSlack | None = None,
    ) -> None:
        self.name, self.fake_t, self.fake_d = name, fake_telegram, fake_discord
        self._start_telegram, self._start_discord = telegram_bot, discord_bot_factory
        self._start_slack, self.fake_s = slack_bot_factory, fake_slack
        self.channel = fake_discord.add_text_channel(GUILD_ID, "studio")
        self.client: Any = None

    async def start(self, **settings: Any) -> None:
        if self.name == "telegram":
            self.telegram = await self._start_telegram(**settings)
            self.client = self.telegram.services.client
        elif self.name == "slack":
            self.slack = await self._start_slack(**settings)
            self.client = self.slack.services.client
            self.slack_channel = self.fake.add_channel("studio")
        else:
            self.bot = await self._start_discord(**settings)
            self.client = self.bot.queue

    @property
    def fake(self) -> FakeSlack:
        assert self.fake_s is not None
        return self.fake_s

    def person(self, who: FakeUser, *, group: bool = False, admin: bool = False) -> Any:
        if self.name == "telegram":
            chat = GROUP if group else FakeChat.private(who)
            if admin:
                self.fake_t.set_admin(GROUP, who)
            return TelegramPerson(self.telegram, self.fake_t, chat, who)
        if self.name == "slack":
            user = self.fake.add_user(who.first_name.lower(), admin=admin)
            channel = self.slack_channel if group else ""
            return SlackPerson(self.fake, self.slack, user, channel)
        member = TeamUser(self.fake_d, self.bot, who.id, who.first_name.lower(), admin=admin)
        return DiscordPerson(self.fake_d, member, self.channel)

    @property
    def team_id(self) -> str:
        if self.name == "telegram":
            return team_id_for("telegram", GROUP.id)
        if self.name == "slack":
            return team_id_for("slack", slack_number(SLACK_TEAM))
        return team_id_for("discord", GUILD_ID)

    @property
    def team_chat_id(self) -> int:
        """Where the team's look and picks are posted."""
        if self.name == "telegram":
            return GROUP.id
        if self.name == "slack":
            return slack_number(self.slack_channel)
        return int(self.channel["id"])

    def teams(self) -> TeamStore:
        settings = {
            "telegram": lambda: self.telegram.settings,
            "slack": lambda: self.slack.settings,
        }
        return TeamStore(
            self.client.redis,
            self.client.store,
            settings.get(self.name, lambda: self.bot.settings)(),
        )

    async def intrude(self, intruder: Any, owner: Any) -> str:
        """``intruder`` presses "I agree" under ``owner``'s consent question; what they hear."""
        if self.name == "telegram":
            query = intruder.driver.press_label(owner.menu, "I agree")
            answer = await self.fake_t.wait_for(
                "answerCallbackQuery", lambda c: c.params["callback_query_id"] == query["id"]
            )
            return str(answer.params["text"])
        if self.name == "slack":
            return str(await intruder.click("hss:consent", owner.form))
        intruded = await intruder.member.press(owner.form, "hsd:consent")
        return str(owner._answer(intruded))

    async def refused_setup(self, member: Any) -> str:
        """A member who is no admin asks to set the team's look; what they hear."""
        if self.name == "telegram":
            mark = self.fake_t.mark()
            member.driver.text("/team setup")
            return str((await member.driver.said("Only", since=mark))["text"])
        if self.name == "slack":
            mark = await member.command("team setup")
            await member.handled(mark)
            return str(member.answers(mark))
        refused = member.member.team("setup", self.channel)
        await responded(self.fake_d, refused)
        return str(member._answer(refused))

    async def set_kit(self, admin: Any) -> None:
        if self.name == "telegram":
            await telegram_kit(admin)
        elif self.name == "slack":
            await slack_kit(admin)
        else:
            await discord_kit(admin, self)

    async def choose_all(self, person: Any, preset: str, subject: str) -> None:
        """Choose a style and a subject class, every other question left at its default.

        One question at a time (Telegram), the class is asked once the person customises."""
        await person.choose("preset", preset)
        if self.name != "telegram":
            await person.choose("subject_class", subject)
            return
        await person.customise()
        for step, value in [("preset", preset), ("subject_class", subject)]:
            await person.choose(step, value)
        for step in (style.FEATURES, "background", "attire", "colour_grade"):
            await person.choose(step, "default")
        for step in ("count", "aspect_ratio"):
            await person.choose(step, "8" if step == "count" else "default")


@pytest.fixture(params=["telegram", "discord", "slack"])
async def platform(
    request: pytest.FixtureRequest,
    telegram_bot: Any,
    fake_telegram: FakeTelegram,
    discord_bot_factory: Any,
    fake_discord: FakeDiscord,
    slack_bot_factory: Any,
    fake_slack: FakeSlack,
) -> Platform:
    return Platform(
        request.param, telegram_bot, fake_telegram, discord_bot_factory, fake_discord,
        slack_bot_factory, fake_slack,
    )  # fmt: skip


async def submitted(platform: Platform, person: Person, kind: str = "full") -> Any:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        jobs = [j for j in await platform.client.user_jobs(person.user) if j.request.kind == kind]
        if jobs:
            return jobs
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {kind} job of {person.user.key}")


# --- the scripts ------------------------------------------------------------------------------
async def test_single_person(
    platform: Platform, face_photo_bytes: list[bytes], group_photo_bytes: bytes
) -> None:
    """Consent, a tally with a refused photo, the person's features, a refused and an accepted
    description, the summary, quick drafts unavailable, confirm; then "make N more" once."""
    await platform.start(max_active_jobs_per_user=0)
    alice = platform.person(ALICE)
    assert "Do you agree" in await alice.start()
    await alice.agree()
    tally = await alice.send_photos([*face_photo_bytes[:4], group_photo_bytes])
    assert "4 accepted, 1 rejected" in tally and "more than one person" in tally
    await alice.finish_upload()
    refusal = await alice.describe(BAD_DESCRIPTION)
    assert review_description(BAD_DESCRIPTION).refusal == refusal
    assert await alice.describe(GOOD_DESCRIPTION) == ""
    await alice.customise()
    if platform.name == "telegram":  # the questions again, from the style: keep the words
        await alice.choose("preset", style.KEEP)
    answers = [("subject_class", "woman")]
    if platform.name == "telegram":
        answers.append((style.FEATURES, style.SET_FEATURES))
    answers += [
        ("eye_colour", "blue"),
        ("glasses", "wear"),
        ("hair_colour", "blonde"),
        ("hair_length", "long"),
        ("colour_grade", "ektar"),
        ("count", "4"),
        ("aspect_ratio", "1:1"),
    ]
    for step, value in answers:
        await alice.choose(step, value)
    summary = await alice.summary()
    assert "Photos: 4 accepted." in summary
    assert "Eyes: blue · Glasses: yes · Hair: long, blonde" in summary
    assert "Description: navy turtleneck, rooftop, golden hour" in summary
    assert "Colour: Ektar (saturated)" in summary and "Images: 4, shape 1:1" in summary
    assert not any("Quick draft" in label for label in alice.labels()), "none configured"
    assert "Queued: position" in await alice.confirm()

    (job,) = await submitted(platform, alice)
    assert job.request.style == StyleChoice(
        subject_class="woman",
        colour_grade="ektar",
        count=4,
        aspect_ratio="1:1",
        custom="navy turtleneck, rooftop, golden hour",
        attributes=PersonAttributes(
            eye_colour="blue", glasses="wear", hair_colour="blonde", hair_length="long"
        ),
    )
    assert (job.request.target.chat_id, job.request.target.thread_id) == alice.where()

    # "Make 3 more": the same style and model, three images, new seeds; twice is one job.
    assert "Making 3 more" in await alice.press_result(f"hs:mm:{job.job_id}:3")
    await alice.press_result(f"hs:mm:{job.job_id}:3")
    (more,) = await submitted(platform, alice, "new_style")
    assert more.request.lora_job_id == job.job_id and more.request.nonce
    assert more.request.style == job.request.style.model_copy(update={"count": 3})
    bob = platform.person(BOB)
    assert "not your job" in await bob.press_result(f"hs:mm:{job.job_id}:3")
    assert len(await submitted(platform, alice, "new_style")) == 1


async def _alice_picks_legal(platform: Platform, face_photo_bytes: list[bytes]) -> Any:
    """Consent, four photos, Done, Legal: three of the four taps of the default path."""
    alice = platform.person(ALICE)
    await alice.start()
    await alice.agree()
    await alice.send_photos(face_photo_bytes[:4])
    await alice.finish_upload()
    await alice.choose("preset", "legal")
    return alice


async def test_default_path_is_four_taps(platform: Platform, face_photo_bytes: list[bytes]) -> None:
    """Consent, Done, a style, Looks good: the recommended look, nothing else asked."""
    await platform.start()
    alice = await _alice_picks_legal(platform, face_photo_bytes)
    summary = await alice.summary()
    assert "Style: Legal" in summary and "Colour: style default (" in summary
    assert "Hair: as in my photos" in summary and "shape style default (4:5)" in summary
    assert any("Looks good" in label for label in alice.labels())
    assert any("Customise" in label for label in alice.labels())
    # No ControlNet configured: nothing is said of a reference photo.
    assert not any("reference" in label.lower() for label in alice.labels())
    await alice.confirm()
    assert alice.taps <= 4, alice.taps
    (job,) = await submitted(platform, alice)
    assert job.request.style == StyleChoice(preset="legal")


async def _bob_joins_acme(platform: Platform) -> tuple[BrandKit, Any, str]:
    """Alice's team Acme has a kit (Legal, 4 images); Bob opens its join link."""
    await platform.start()
    kit = BrandKit(team_name="Acme", preset="legal", count=4)
    channel = platform.team_chat_id
    target = ChatTarget(platform=platform.name, chat_id=channel, user_id=ALICE.id)  # type: ignore[arg-type]
    await platform.teams().save_kit(platform.team_id, platform.name, kit, target, ALICE.id)  # type: ignore[arg-type]
    bob = platform.person(BOB)
    if platform.name == "telegram":
        intro = await bob.start(f"team_{platform.team_id}")
    else:
        intro = await bob.start(join=True)
    return kit, bob, intro


async def test_default_path_of_a_team_member(
    platform: Platform, face_photo_bytes: list[bytes]
) -> None:
    """A member's default path is the team's look: consent, Done (or Continue), Looks good."""
    kit, bob, _intro = await _bob_joins_acme(platform)
    await bob.agree()
    await bob.send_photos(face_photo_bytes[:4])
    await bob.finish_upload()
    assert "The team's look:" in await bob.summary()
    await bob.confirm()
    assert bob.taps <= 4, bob.taps
    (job,) = await submitted(platform, bob)
    assert job.request.style == kit.style_for("person", PersonAttributes())


async def test_quick_draft_when_configured(
    platform: Platform, face_photo_bytes: list[bytes]
) -> None:
    await platform.start(lcm_lora="latent-consistency/lcm-lora-sdv1-5")
    alice = await _alice_picks_legal(platform, face_photo_bytes)
    await alice.summary()
    assert any("Quick draft" in label for label in alice.labels())
    await alice.quick()
    assert "Quality: quick draft" in await alice.summary()
    await alice.confirm()
    (job,) = await submitted(platform, alice)
    assert job.request.style.quick and job.request.style.preset == "legal"


async def test_reference_photo_when_configured(
    platform: Platform, face_photo_bytes: list[bytes]
) -> None:
    """Use a reference photo: a photo without a face is refused, a real portrait (not the
    person's own) is checked, stored and carried by the job; pose or outline by a tap."""
    import hashlib
    import io

    import numpy as np
    from PIL import Image

    from tests.plugins.faces import astronaut_image, to_png

    await platform.start(
        controlnet_sd15_pose="lllyasviel/control_v11p_sd15_openpose",
        controlnet_sd15_canny="lllyasviel/control_v11p_sd15_canny",
    )
    alice = await _alice_picks_legal(platform, face_photo_bytes)
    await alice.summary()
    assert "🖼 Use a reference photo" in alice.labels()
    await alice.press("reference")
    gradient = np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (320, 1))
    no_face = to_png(Image.fromarray(gradient).convert("RGB"))
    await alice.send_reference(no_face, "can't use this photo as a reference")
    await alice.send_reference(to_png(astronaut_image()), "Reference photo:")
    summary = await alice.summary()
    assert "Reference photo: framed like your photo, by its pose" in summary
    said = await alice.press("refhint")
    assert "by its outline (edges)" in await alice.summary(), (said, alice.labels())
    await alice.confirm()
    (job,) = await submitted(platform, alice)
    reference = job.request.style.reference
    assert reference is not None and reference.hint == "canny"
    stored = await platform.client.read_blob(alice.user, reference.path)
    assert hashlib.sha256(stored).hexdigest() == reference.sha256
    assert Image.open(io.BytesIO(stored)).format == "PNG"
    # /delete takes it with everything else of the person's.
    await platform.client.forget(alice.user)
    with pytest.raises(NotFound):
        await platform.client.read_blob(alice.user, reference.path)


CAROL = FakeUser(id=3003, first_name="Carol")


async def set_kit_with_reference(platform: Platform, admin: Any, reference: bytes) -> None:
    """The admin sets a look with a reference portrait, the way each front end takes it:
    Telegram's question as a reply, Discord's ``/team setup reference:``, Slack's file in the
    DM after "Send a reference photo"; then saves it (the preview goes to the team)."""
    if platform.name == "telegram":
        fake, uid = admin.fake, admin.user.user_id
        mark = fake.mark()
        admin.driver.text("/team")
        await admin.driver.said("team's name", since=mark)
        admin.driver.text("Acme")
        await admin.driver.said("Which style", since=mark)
        answers = [("preset", "legal", "Which background"), ("background", "office", "wear")]
        answers += [("attire", "default", "colour grade"), ("colour_grade", "default", "shape")]
        answers += [("aspect_ratio", "1:1", "How many"), ("count", "4", "logo")]
        answers += [("logo", "none", "reference portrait")]
        for step, value, next_question in answers:
            mark = fake.mark()
            menu = fake.bot_messages(admin.driver.chat.id)[-1]
            fake.press(admin.driver.user, menu, f"tk:{uid}:{step}:{value}")
            await admin.driver.said(next_question, since=mark)
        mark = fake.mark()
        admin.driver.photos([reference])
        await admin.driver.said("approve each member", since=mark, timeout=60)
        for step, value in (("review", "off"), ("confirm", "save")):
            mark = fake.mark()
            menu = fake.bot_messages(admin.driver.chat.id)[-1]
            fake.press(admin.driver.user, menu, f"tk:{uid}:{step}:{value}")
            await fake.wait_for(
                None, lambda c: c.method in ("sendMessage", "editMessageText"), since=mark
            )
        await fake.wait_for("sendPhoto", lambda c: int(c.params["chat_id"]) == GROUP.id)
    elif platform.name == "discord":
        fake, member = admin.fake, admin.member
        attachment = fake.add_attachment(reference, "reference.png", "image/png")
        options = {"reference": attachment}
        await responded(fake, member.team("setup", platform.channel, attachment_options=options))
        editor = await fake.wait_for(lambda: fake.message_with(f"hsdk:preset:{member.id}:"))
        for _ in range(2):  # the third page: the reference and its hint
            await member.press(fake.messages[int(editor["id"])], "hsdk:more")
        assert "Reference photo: a new one" in str(fake.messages[int(editor["id"])]["content"])
        await member.press(fake.messages[int(editor["id"])], "hsdk:save")
        await fake.wait_for(lambda: fake.message_with(f"hsdt:join:{GUILD_ID}"), what="preview")
    else:
        fake, uid = admin.fake, admin.who.id
        await admin.command("team setup")
        admin.form = await fake.wait_for(
            lambda: fake.with_action(f"hssk:set.preset:{uid}:", admin.dm)
        )
        await admin.click("hssk:reference")
        assert "Send the reference portrait here" in str(admin.current()["text"])
        mark = admin.mark()
        await fake.acked(await fake.send_files(admin.who, admin.dm, [reference], mime="image/png"))
        await admin.handled(mark)
        assert "Reference photo: a new one" in str(admin.current()["text"])
        await admin.click("hssk:save")
        await fake.wait_for(lambda: fake.with_action("hsst:join:", admin.channel), what="preview")


async def test_team_kit_reference_frames_every_member(
    platform: Platform, face_photo_bytes: list[bytes]
) -> None:
    """One reference portrait, the whole team framed alike: the admin adds it to the look; each
    member's job carries a copy of the same bytes in their own store (their retention, their
    delete), so every member gets the same control image; the team's copy goes with the team."""
    import hashlib
    import io

    from PIL import Image

    from headshots.generation.control import DlibLandmarks, make_control_image
    from tests.plugins.faces import astronaut_image, to_png

    await platform.start(controlnet_sd15_pose="lllyasviel/control_v11p_sd15_openpose")
    portrait = to_png(astronaut_image())
    admin = platform.person(ALICE, group=True, admin=True)
    await set_kit_with_reference(platform, admin, portrait)
    teams = platform.teams()
    team = await teams.require(platform.team_id)
    assert team.has_reference and team.kit.reference_hint == "pose"
    kept = await teams.reference(platform.team_id)
    assert kept is not None

    jobs = []
    for who, photos_of in ((BOB, face_photo_bytes[:4]), (CAROL, face_photo_bytes[2:6])):
        member = platform.person(who)
        if platform.name == "telegram":
            await member.start(f"team_{platform.team_id}")
        else:
            await member.start(join=True)
        await member.agree()
        await member.send_photos(photos_of)
        await member.finish_upload()
        summary = await member.summary()
        assert "Reference photo: everyone framed like it, by pose" in summary, summary
        assert not any("Use a reference photo" in label for label in member.labels())
        await member.confirm()
        (job,) = await submitted(platform, member)
        jobs.append((member, job))

    references = [job.request.style.reference for _, job in jobs]
    assert all(r is not None and r.hint == "pose" for r in references)
    assert len({r.sha256 for r in references if r is not None}) == 1
    assert references[0] is not None and references[0].sha256 == hashlib.sha256(kept).hexdigest()
    controls = []
    landmarks = DlibLandmarks()
    for member, job in jobs:
        reference = job.request.style.reference
        assert reference is not None
        stored = await platform.client.read_blob(member.user, reference.path)
        control = make_control_image(
            Image.open(io.BytesIO(stored)), "pose", (512, 512), landmarks=landmarks
        )
        controls.append(control.image.tobytes())
    assert controls[0] == controls[1], "every member gets the same control image"

    # A member's /delete takes their copy only; deleting the team takes the team's.
    (bob, bob_job), (carol, carol_job) = jobs
    await platform.client.forget(bob.user)
    with pytest.raises(NotFound):
        await platform.client.read_blob(bob.user, bob_job.request.style.reference.path)
    assert await platform.client.read_blob(carol.user, carol_job.request.style.reference.path)
    await teams.delete_team(platform.team_id)
    assert await teams.reference(platform.team_id) is None


async def test_group_members_apart(platform: Platform, face_photo_bytes: list[bytes]) -> None:
    """Two people in one group (a forum topic) or channel (their threads): each has their
    own conversation; one cannot answer the other's consent; each job goes where they are."""
    await platform.start()
    alice, bob = platform.person(ALICE, group=True), platform.person(BOB, group=True)
    await alice.start()
    assert "not your session" in await platform.intrude(bob, alice)
    await alice.agree()
    await bob.start()
    await bob.agree()
    assert "4 accepted, 0 rejected" in await alice.send_photos(face_photo_bytes[:4])
    assert "4 accepted, 0 rejected" in await bob.send_photos(face_photo_bytes[2:6])
    for person, subject in ((alice, "woman"), (bob, "man")):
        await person.finish_upload()
        await platform.choose_all(person, "corporate", subject)
        await person.summary()
        status = await person.confirm()
        if platform.name == "telegram":
            assert status.startswith(f"{person.driver.user.first_name}: Queued")
    for person, subject in ((alice, "woman"), (bob, "man")):
        (job,) = await submitted(platform, person)
        assert job.request.style.subject_class == subject
        assert (job.request.target.chat_id, job.request.target.thread_id) == person.where()
    assert alice.where() != bob.where() or platform.name == "telegram"


async def test_team_admin_sets_the_look(platform: Platform) -> None:
    """Only an admin opens the team look; the saved kit is the same whichever front end."""
    await platform.start()
    admin, member = platform.person(ALICE, group=True, admin=True), platform.person(BOB, group=True)
    admins = {"telegram": "group", "discord": "server", "slack": "workspace"}[platform.name]
    assert f"Only {admins} admins" in await platform.refused_setup(member)
    await platform.set_kit(admin)
    team = await platform.teams().require(platform.team_id)
    assert team.kit == BrandKit(
        team_name="Acme",
        preset="legal",
        background=KitBackground(kind="colour", colours=["#1f6feb"]),
        colour_grade="ektar",
        aspect_ratio="1:1",
        count=4,
        review=True,
    )


async def telegram_kit(admin: TelegramPerson) -> None:
    """The look, one question at a time: typed answers as replies, the rest as buttons."""
    fake, uid = admin.fake, admin.user.user_id
    mark = fake.mark()
    admin.driver.text("/team")
    await admin.driver.said("team's name", since=mark)
    answers = [("", "Acme"), ("preset", "legal"), ("background", "colour"), ("", "#1F6FEB")]
    answers += [("attire", "default"), ("colour_grade", "ektar"), ("aspect_ratio", "1:1")]
    answers += [("count", "4"), ("logo", "none"), ("review", "on"), ("confirm", "save")]
    for step, value in answers:
        mark = fake.mark()
        if step:
            menu = fake.bot_messages(admin.driver.chat.id)[-1]
            fake.press(admin.driver.user, menu, f"tk:{uid}:{step}:{value}")
        else:
            admin.driver.text(value)
        await fake.wait_for(
            None, lambda c: c.method in ("sendMessage", "editMessageText"), since=mark
        )
    await fake.wait_for("sendPhoto", lambda c: int(c.params["chat_id"]) == GROUP.id)


async def discord_kit(admin: DiscordPerson, platform: Platform) -> None:
    fake, member = admin.fake, admin.member
    await responded(fake, member.team("setup", platform.channel))
    editor = await fake.wait_for(lambda: fake.message_with(f"hsdk:preset:{member.id}:"))
    opened = await member.press(editor, "hsdk:name")
    await member.submit_modal(opened, ["Acme"], editor)
    await member.pick(fake.messages[int(editor["id"])], "hsdk:preset", "legal")
    opened = await member.pick(fake.messages[int(editor["id"])], "hsdk:bg", "colour")
    await member.submit_modal(opened, ["#1F6FEB"], editor)
    await member.pick(fake.messages[int(editor["id"])], "hsdk:grade", "ektar")
    await member.press(fake.messages[int(editor["id"])], "hsdk:more")
    await member.pick(fake.messages[int(editor["id"])], "hsdk:aspect", "1:1")
    await member.pick(fake.messages[int(editor["id"])], "hsdk:count", "4")
    await member.pick(fake.messages[int(editor["id"])], "hsdk:review", "on")
    await member.press(fake.messages[int(editor["id"])], "hsdk:save")
    await fake.wait_for(lambda: fake.message_with(f"hsdt:join:{GUILD_ID}"), what="the preview")


async def slack_kit(admin: SlackPerson) -> None:
    """The look in the admin's DM: a form of selects, modals for the name and the colour."""
    fake, uid = admin.fake, admin.who.id
    await admin.command("team setup")
    editor = await fake.wait_for(lambda: fake.with_action(f"hssk:set.preset:{uid}:", admin.dm))
    admin.form = editor

    async def modal(opened_by: str, typed: str, value: str = "") -> None:
        mark = admin.mark()
        if value:
            await fake.acked(await fake.pick(admin.who, admin.current(), opened_by, value))
        else:
            await fake.acked(await fake.press(admin.who, admin.current(), opened_by))
        (opened,) = await admin.handled(mark, "views.open")
        await fake.acked(await fake.submit(admin.who, opened.response["view"], [typed]))
        await admin.handled(mark)

    async def pick(prefix: str, value: str) -> None:
        mark = admin.mark()
        await fake.acked(await fake.pick(admin.who, admin.current(), prefix, value))
        await admin.handled(mark)

    await modal("hssk:name", "Acme")
    await pick("hssk:set.preset", "legal")
    await modal("hssk:set.background", "#1F6FEB", "colour")
    await pick("hssk:set.colour_grade", "ektar")
    await admin.click("hssk:more")
    await pick("hssk:set.aspect_ratio", "1:1")
    await pick("hssk:set.count", "4")
    await pick("hssk:set.review", "on")
    await admin.click("hssk:save")
    await fake.wait_for(lambda: fake.with_action("hsst:join:", admin.channel), what="the preview")


async def test_team_member_answers_for_themselves(
    platform: Platform, face_photo_bytes: list[bytes]
) -> None:
    """A member joins, uploads privately, answers only about themselves; the kit does the rest."""
    kit, bob, intro = await _bob_joins_acme(platform)
    assert "joining Acme" in intro
    await bob.agree()
    await bob.send_photos(face_photo_bytes[:4])
    await bob.finish_upload()
    await bob.customise()  # the team's look is the default: Customise asks about the person
    steps = [("subject_class", "woman"), ("eye_colour", "green"), ("glasses", "none")]
    if platform.name == "telegram":
        steps.insert(1, (style.FEATURES, style.SET_FEATURES))
    for step, value in steps:
        await bob.choose(step, value)
    if platform.name == "telegram":
        await bob.choose("hair_colour", "default")  # one tap: hair as in the photos
    summary = await bob.summary()
    assert "The team's look:" in summary and "Team: Acme" in summary
    assert "You: Woman · Eyes: green · Glasses: no · Hair: as in my photos" in summary
    await bob.confirm()
    (job,) = await submitted(platform, bob)
    features = PersonAttributes(eye_colour="green", glasses="none")
    assert job.request.style == kit.style_for("woman", features)
    assert job.request.team_id == platform.team_id


# --- the core's pure parts --------------------------------------------------------------------
def test_person_questions_are_asked_once_and_skippable() -> None:
    after_class = style.next_step("subject_class", {})
    assert after_class == style.FEATURES, "one compact question first"
    assert style.current(style.FEATURES, {}) == style.DEFAULT, "as in my photos, preselected"
    assert style.next_step(style.FEATURES, {}) == "eye_colour", "set them: each is asked"
    assert style.next_step(style.FEATURES, {}, skip=True) == "background"
    mine = style.apply({}, "eye_colour", "blue")
    assert next(o.value for o in style.options(style.FEATURES, mine)) == style.KEEP
    assert style.apply(mine, style.FEATURES, style.DEFAULT)["attributes"] == {}
    assert style.next_step("preset", {}, steps=style.BRIEF_STEPS) is None, "then the summary"
    chosen = style.apply({}, "hair_colour", style.DEFAULT)
    assert style.next_step("glasses", chosen) == "hair_colour"
    assert style.next_step("hair_colour", chosen) == "background", "one tap skips the length"
    chosen = style.apply(chosen, "hair_colour", "red")
    assert style.next_step("hair_colour", chosen) == "hair_length"
    # Features known from an earlier job are not asked one by one: the compact question shows
    # them with "Keep" first.
    assert style.next_step("subject_class", chosen, skip=True) == style.FEATURES
    assert style.next_step(style.FEATURES, chosen, skip=True) == "background"
    assert style.next_step(None, {}, steps=style.TEAM_STEPS) == "subject_class"
    assert style.lines({"colour_grade": "ektar"})[-2] == "Colour: Ektar (saturated)"
    assert style.lines({})[-2] == "Colour: style default (Film Portra)", "not a choice"
    with pytest.raises(ValueError):
        style.apply({}, "eye_colour", "purple")


def test_tally_lists_refused_photos_and_set_notes(settings_factory: Callable[..., Any]) -> None:
    from headshots.bot.conversation.state import Conversation
    from headshots.generation.faces.selfie_check import SelfieVerdict, SetVerdict

    conversation = Conversation(next_index=3, places=[(20, 0), (10, 0)], names={"1": "late.jpg"})
    conversation.verdicts = [SelfieVerdict(i, False, ["blurry"]).to_json() for i in (1, 2)]
    verdict = SetVerdict(
        usable=False,
        accepted=[],
        rejected={2: ["blurry"], 1: ["blurry"]},
        reasons=["only 0 usable photos, need at least 4"],
        notes=["you wear glasses in photos 1 and 3 only"],
    )
    text = photos.tally(conversation, verdict, settings_factory(), form=False)
    # Photo 2 (sent second) is stored as index 1, the file named late.jpg.
    assert "photo 1, blurry; photo 2 (`late.jpg`): blurry" in text
    lines = text.splitlines()
    assert lines.index("ℹ️ you wear glasses in photos 1 and 3 only") == 1
    assert "Only 0 usable photos, need at least 4." in lines


async def test_one_limiter_bounds_every_selfie_check(
    settings_factory: Callable[..., Any], face_photo_bytes: list[bytes]
) -> None:
    """However many photos arrive at once, at most HEADSHOTS_CHECK_CONCURRENCY are checked."""
    from headshots.bot.conversation.photos import FaceWork

    faces = FaceWork(settings_factory(check_concurrency=2, face_backend="dlib"))
    running = peak = 0

    async def fetch(data: bytes) -> bytes:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        return data

    async def checked(data: bytes, index: int) -> bool:
        nonlocal running
        verdict, _ = await faces.check(lambda: fetch(data), index)
        running -= 1
        return verdict.accepted

    try:
        results = await asyncio.gather(*(checked(face_photo_bytes[i % 4], i) for i in range(8)))
    finally:
        faces.close()
    assert all(results) and peak == 2
