"""The Slack front end against the fake Slack: Web API over HTTP, envelopes over Socket Mode.

:class:`SlackPerson` is what a person does (a slash command, a button, a select, a modal, files
shared in the DM with the app); ``tests/test_bot_conversation.py`` runs its scripts with it.
"""

from __future__ import annotations

from typing import Any

from headshots.queue.contracts import UserRef
from headshots.queue.delivery.slack import slack_number, ts_of
from tests.fake_slack import BOT_USER, FakeSlack, SlackUser

REPLIES = ("chat.postMessage", "chat.postEphemeral")


def plain(text: str) -> str:
    return text.replace("*", "").replace("`", "")


class SlackPerson:
    def __init__(self, fake: FakeSlack, app: Any, who: SlackUser, channel: str = "") -> None:
        self.fake, self.app, self.who = fake, app, who
        self.dm = fake.dm_of(who.id)
        #: Where the person types commands (a channel, or the DM).
        self.channel = channel or self.dm
        self.user = UserRef(platform="slack", user_id=slack_number(who.id))
        self.form: dict[str, Any] = {}
        self.sent = 0
        self.taps = 0

    # --- plumbing ---------------------------------------------------------------------------
    def mark(self) -> int:
        return len(self.fake.calls)

    async def handled(self, mark: int, *methods: str) -> list[Any]:
        """Once the bot handled what came in: its calls of ``methods`` since ``mark``."""
        await self.app.bot.settled()
        wanted = methods or (*REPLIES, "chat.update", "views.open")
        return [c for c in self.fake.calls[mark:] if c.method in wanted]

    def answers(self, mark: int) -> str:
        """What was said to this person since ``mark`` (replies, not edits)."""
        said = [
            str(c.args.get("text", ""))
            for c in self.fake.calls[mark:]
            if c.method in REPLIES and c.args.get("user", self.who.id) == self.who.id
        ]
        return plain("\n".join(said))

    async def command(self, text: str) -> int:
        mark = self.mark()
        await self.fake.acked(await self.fake.slash(self.who, self.channel, text))
        return mark

    def current(self) -> dict[str, Any]:
        return self.fake.message(self.dm, str(self.form["ts"]))

    async def click(
        self, prefix: str, message: dict[str, Any] | None = None, *, view: bool = False
    ) -> str:
        """Press a button; what the person was told (empty when only the menu changed)."""
        self.taps += 1
        mark = self.mark()
        target = message or self.current()
        await self.fake.acked(await self.fake.press(self.who, target, prefix, view=view))
        await self.handled(mark)
        return self.answers(mark)

    # --- the Person protocol of tests/test_bot_conversation.py ------------------------------
    async def start(self, join: bool = False) -> str:
        await self.command("team join" if join else "start")
        self.form = await self.fake.wait_for(
            lambda: self.fake.with_action(f"hss:consent:{self.who.id}:", self.dm), what="consent"
        )
        return plain(str(self.form["text"]))

    async def agree(self) -> None:
        await self.click("hss:consent")
        self.form = await self.fake.wait_for(
            lambda: self.fake.with_action(f"hss:set.subject_class:{self.who.id}:", self.dm),
            what="the style form",
        )

    def tally(self) -> str:
        for message in self.fake.bot_messages(self.dm):
            if str(message["text"]).startswith("*Photos*"):
                return plain(str(message["text"]))
        return ""

    async def send_photos(self, photos: list[bytes]) -> str:
        self.sent += len(photos)
        await self.fake.acked(await self.fake.send_files(self.who, self.dm, photos))

        def counted() -> str | None:
            text = self.tally()
            head = text.split(":")[1] if ":" in text else ""
            numbers = [int(w) for w in head.replace(",", " ").split() if w.isdigit()]
            return text if sum(numbers[:2]) == self.sent else None

        return str(await self.fake.wait_for(counted, what="the tally", within=60))

    async def finish_upload(self) -> None:
        """The form is there from the start: nothing to press."""

    async def choose(self, step: str, value: str) -> None:
        select = f"hss:set.{step}:"
        for page in ("more", "you", "hairstyle", "look", "more"):
            if any(a.startswith(select) for a in self.fake.action_ids(self.current())):
                break
            buttons = self.current()["blocks"][-1].get("elements", [])
            if any(b.get("value") == page for b in buttons):
                await self.click(next(b["action_id"] for b in buttons if b.get("value") == page))
        self.taps += 1
        mark = self.mark()
        await self.fake.acked(await self.fake.pick(self.who, self.current(), select, value))
        await self.handled(mark)

    async def describe(self, text: str) -> str:
        """The reply to the description ("" when it was taken: the form is updated instead)."""
        mark = self.mark()
        await self.fake.acked(await self.fake.press(self.who, self.current(), "hss:custom"))
        (opened,) = await self.handled(mark, "views.open")
        mark = self.mark()
        await self.fake.acked(await self.fake.submit(self.who, opened.response["view"], [text]))
        calls = await self.handled(mark)
        return "" if any(c.method == "chat.update" for c in calls) else self.answers(mark)

    async def summary(self) -> str:
        if not any(a.startswith("hss:confirm") for a in self.fake.action_ids(self.current())):
            await self.click("hss:next")
        return plain(str(self.current()["text"]))

    async def quick(self) -> str:
        return await self.click("hss:quick")

    async def press(self, action: str) -> str:
        return await self.click(f"hss:{action}")

    async def send_reference(self, photo: bytes, expect: str) -> None:
        mark = self.mark()
        await self.fake.acked(await self.fake.send_files(self.who, self.dm, [photo]))

        def seen() -> bool:
            return expect in plain(str(self.current()["text"])) or expect in self.answers(mark)

        await self.fake.wait_for(seen, what=expect, within=60)

    def labels(self) -> list[str]:
        buttons = self.current()["blocks"][-1].get("elements", [])
        return [str(b["text"]["text"]) for b in buttons if b.get("type") == "button"]

    async def customise(self) -> None:
        """The form is the customising: its selects are there before the summary."""

    async def confirm(self) -> str:
        await self.click("hss:confirm")
        status = await self.fake.wait_for(
            lambda: next(
                (m for m in self.fake.bot_messages(self.dm) if str(m["text"]).startswith("Queued")),
                None,
            ),
            what="the status message",
        )
        return plain(str(status["text"]))

    async def press_result(self, data: str) -> str:
        """A result button the worker posted in the DM, pressed."""
        button = {"type": "button", "action_id": data, "value": data, "text": {"text": "result"}}
        message = self.fake._post(
            self.dm,
            {"user": BOT_USER, "text": "Your headshots", "blocks": [
                {"type": "actions", "block_id": "r", "elements": [button]}
            ]},
        )  # fmt: skip
        return await self.click(data, {**message, "channel": self.dm})

    def where(self) -> tuple[int, int | None]:
        return slack_number(self.dm), None


async def test_a_person_from_consent_to_the_queue(
    fake_slack: FakeSlack,
    slack_bot_factory: Any,
    face_photo_bytes: list[bytes],
    group_photo_bytes: bytes,
) -> None:
    """Consent, selfies shared as files (fetched with the bot token, checked at once), a style
    from the form's select, the summary, Looks good: one status message, updated in place."""
    app = await slack_bot_factory()
    alice = SlackPerson(fake_slack, app, fake_slack.add_user("alice"))
    assert "Do you agree" in await alice.start()
    await alice.agree()
    tally = await alice.send_photos([*face_photo_bytes[:4], group_photo_bytes])
    assert "4 accepted, 1 rejected" in tally and "more than one person" in tally
    await alice.choose("preset", "legal")
    assert "Style: Legal" in await alice.summary()
    assert "Queued" in await alice.confirm()
    (job,) = await app.services.client.user_jobs(alice.user)
    assert job.request.target.platform == "slack"
    assert (job.request.target.chat_id, job.request.target.thread_id) == alice.where()
    status = fake_slack.message(alice.dm, ts_of(job.request.target.status_message_id or 0))
    assert status["text"].startswith("Queued")


async def test_files_are_fetched_with_the_bot_token_or_refused_unread(
    fake_slack: FakeSlack, slack_bot_factory: Any, face_photo_bytes: list[bytes]
) -> None:
    """Files before /start get a hint; after consent a PDF is refused from its type alone,
    photos are downloaded with the bot token (without it Slack serves its sign-in page)."""
    app = await slack_bot_factory()
    alice = SlackPerson(fake_slack, app, fake_slack.add_user("alice"))
    mark = alice.mark()
    await fake_slack.send_files(alice.who, alice.dm, face_photo_bytes[:1])
    await fake_slack.wait_for(lambda: alice.answers(mark), what="the hint")
    assert "/headshots start" in alice.answers(mark) and not fake_slack.downloads
    await alice.start()
    await alice.agree()
    alice.sent += 1
    await fake_slack.send_files(alice.who, alice.dm, [b"%PDF-1.4"], mime="application/pdf")
    tally = await alice.send_photos(face_photo_bytes[:2])
    assert "2 accepted, 1 rejected" in tally and "not a photo (application/pdf)" in tally
    assert len(fake_slack.downloads) == 2 and all(ok for _, ok in fake_slack.downloads)
    assert all(delay < 3 for delay, _ in fake_slack.acks.values())


async def test_commands_answer_privately_and_delete_clears_the_dm(
    fake_slack: FakeSlack, slack_bot_factory: Any, face_photo_bytes: list[bytes], redis_client: Any
) -> None:
    from tests.queue_helpers import keys_mentioning

    app = await slack_bot_factory()
    channel = fake_slack.add_channel("general")
    alice = SlackPerson(fake_slack, app, fake_slack.add_user("alice"), channel)
    for command, said in (
        ("help", "/headshots start"),
        ("privacy", "my messages in our DM"),
        ("status", "Nothing in progress"),
        ("cancel", "nothing to cancel"),
        ("frobnicate", "don't know that command"),
    ):
        mark = await alice.command(command)
        await alice.handled(mark)
        assert said in alice.answers(mark), command
        (reply,) = [c for c in fake_slack.calls[mark:] if c.method in REPLIES]
        assert reply.method == "chat.postEphemeral" and reply.args["channel"] == channel

    # /headshots start in a channel: the session is in the DM with the app.
    assert "Do you agree" in await alice.start()
    assert "our DM" in alice.answers(0)
    await alice.agree()
    await alice.send_photos(face_photo_bytes[:4])
    mark = await alice.command("status")
    await alice.handled(mark)
    assert "Upload in progress: 4 photos accepted" in alice.answers(mark)

    mark = await alice.command("delete")
    await alice.handled(mark)
    question = fake_slack.with_action(f"hss:forget:{alice.who.id}", alice.dm)
    assert question is not None, "the question is asked in the DM"
    await alice.click("hss:forget", question)
    report = fake_slack.message(alice.dm, str(question["ts"]))
    assert "Deleted" in report["text"] or "deleted" in report["text"]
    assert "4 photos" in report["text"] and "yours to delete" in report["text"]
    left = fake_slack.bot_messages(alice.dm)
    assert [m["ts"] for m in left] == [question["ts"]], "the bot's other messages are gone"
    assert await keys_mentioning(redis_client, [alice.user.key]) == []


async def test_app_home_shows_the_job_and_offers_delete(
    fake_slack: FakeSlack, slack_bot_factory: Any, face_photo_bytes: list[bytes]
) -> None:
    app = await slack_bot_factory()
    alice = SlackPerson(fake_slack, app, fake_slack.add_user("alice"))
    await alice.start()
    await alice.agree()
    await alice.send_photos(face_photo_bytes[:4])
    await alice.choose("preset", "legal")
    await alice.summary()
    await alice.confirm()
    event = {"type": "app_home_opened", "user": alice.who.id, "channel": alice.dm, "tab": "home"}
    await fake_slack.event(event)
    home = await fake_slack.wait_for(lambda: fake_slack.home.get(alice.who.id), what="the home")
    text = str(home["blocks"])
    assert "Your job is queued: position 1" in text and "No results yet" in text
    assert "`/headshots cancel` stops it" in text
    await alice.click("hssh:delete", home, view=True)
    assert fake_slack.with_action(f"hss:forget:{alice.who.id}", alice.dm) is not None


async def test_doctor_checks_the_bot_token_with_auth_test(
    fake_slack: FakeSlack, settings_factory: Any
) -> None:
    import asyncio

    from headshots.cli.core import _check_slack
    from tests.fake_slack import APP_TOKEN, BOT_TOKEN

    def checked(**tokens: Any) -> tuple[bool, str]:
        found: list[tuple[bool, str]] = []
        settings = settings_factory(slack_api_url=fake_slack.api_url, **tokens)
        _check_slack(settings, lambda name, ok, detail, required: found.append((ok, detail)))
        return found[0]

    ok, detail = await asyncio.to_thread(
        checked, slack_bot_token=BOT_TOKEN, slack_app_token=APP_TOKEN
    )
    assert ok and detail == "auth.test: Fake as headshots"
    ok, detail = await asyncio.to_thread(
        checked, slack_bot_token="xoxb-wrong", slack_app_token=APP_TOKEN
    )
    assert not ok and "invalid_auth" in detail and "xoxb-wrong" not in detail
    ok, detail = await asyncio.to_thread(checked, slack_bot_token=BOT_TOKEN)
    assert not ok and "HEADSHOTS_SLACK_APP_TOKEN" in detail


def test_forget_takes_a_slack_member_id() -> None:
    from headshots.cli.core import _normalise_user

    assert _normalise_user("sl:U024BE7LH") == f"sl:{slack_number('U024BE7LH')}"
    assert _normalise_user("slack:u024be7lh") == f"sl:{slack_number('U024BE7LH')}"


def test_slack_tokens_are_redacted_from_every_log_record(settings_factory: Any) -> None:
    import logging

    from headshots.logs import RedactSecrets, configured_secrets
    from tests.fake_slack import APP_TOKEN, BOT_TOKEN

    settings = settings_factory(slack_bot_token=BOT_TOKEN, slack_app_token=APP_TOKEN)
    redaction = RedactSecrets(configured_secrets(settings))
    record = logging.LogRecord("x", logging.INFO, "", 0, "%s then %s", (BOT_TOKEN, APP_TOKEN), None)
    redaction.filter(record)
    assert record.getMessage() == "[redacted] then [redacted]"
