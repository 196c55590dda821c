"""Team mode on Discord against the fake REST server, a real Redis and a stub-stage worker.

An admin sets the brand kit in a channel; members join, send selfies in their own private
thread (or a DM), pick a favourite that is posted in the team channel; admins approve or ask
for a redo, export a ZIP by DM, and delete the team.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from PIL import Image

from headshots.bot.discord.client import HeadshotsClient
from headshots.queue import constants
from headshots.queue.contracts import JobState
from headshots.queue.teams import TeamStore, team_id_for
from tests.fake_discord import ALL_PERMISSIONS, FakeDiscord
from tests.queue_helpers import keys_mentioning, wait_for_state
from tests.test_bot_discord import (
    GUILD_ID,
    Member,
    eventually,
    feed,
    followup_text,
    photo_attachments,
    responded,
    sessions_of,
)
from tests.test_bot_discord_worker import FINISHED, worker_env

TEAM_ID = team_id_for("discord", GUILD_ID)
MANAGE_GUILD = 1 << 5
ADMINISTRATOR = 1 << 3
NOT_ADMIN = ALL_PERMISSIONS & ~(MANAGE_GUILD | ADMINISTRATOR)


class TeamUser(Member):
    """A server member with given permissions and roles (an admin has Manage Server)."""

    def __init__(
        self,
        fake: FakeDiscord,
        bot: HeadshotsClient,
        user_id: int,
        name: str,
        *,
        admin: bool = False,
        roles: list[int] | None = None,
    ) -> None:
        super().__init__(fake, bot, user_id, name)
        self.permissions = ALL_PERMISSIONS if admin else NOT_ADMIN
        self.roles = roles or []

    def team(self, sub: str, channel: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """``/headshot team <sub>`` in ``channel``."""
        return feed(
            self.bot,
            self.fake.slash(
                sub,
                user=self.user,
                channel=channel,
                subgroup="team",
                member_permissions=self.permissions,
                roles=self.roles,
                **kwargs,
            ),
        )

    async def press(self, message: dict[str, Any], custom_id: str) -> dict[str, Any]:
        """Press the button ``custom_id`` (exact, or the first starting with it)."""
        ids = self.fake.custom_ids(message)
        chosen = custom_id if custom_id in ids else next(c for c in ids if c.startswith(custom_id))
        payload = feed(
            self.bot,
            self.fake.click(
                message,
                chosen,
                user=self.user,
                member_permissions=self.permissions,
                roles=self.roles,
            ),
        )
        await responded(self.fake, payload)
        return payload

    async def pick(self, message: dict[str, Any], op: str, value: str) -> dict[str, Any]:
        custom_id = next(c for c in self.fake.custom_ids(message) if c.startswith(op))
        payload = feed(
            self.bot,
            self.fake.select(
                message,
                custom_id,
                [value],
                user=self.user,
                member_permissions=self.permissions,
                roles=self.roles,
            ),
        )
        await responded(self.fake, payload)
        return payload

    async def submit_modal(
        self, opened: dict[str, Any], values: list[str], message: dict[str, Any]
    ) -> dict[str, Any]:
        """Fill the modal the bot opened for ``opened`` (its text inputs in order) and submit."""
        modal = self.fake.interaction_responses(opened)[0]
        assert modal["type"] == 9, modal
        ids = [
            str(c["custom_id"])
            for row in modal["data"]["components"]
            for c in (row.get("components", []) if row.get("type") == 1 else [row["component"]])
        ]
        payload = feed(
            self.bot,
            self.fake.modal_submit(
                modal["data"],
                dict(zip(ids, values, strict=False)),
                user=self.user,
                channel=self.fake.channels[int(message["channel_id"])],
                message=self.fake.messages[int(message["id"])],
                member_permissions=self.permissions,
            ),
        )
        await responded(self.fake, payload)
        return payload


def logo_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (300, 120), (220, 20, 60, 255)).save(buffer, format="PNG")
    return buffer.getvalue()


async def set_up_kit(
    admin: TeamUser,
    channel: dict[str, Any],
    *,
    review: bool,
    count: str = "4",
    logo: bool = True,
) -> dict[str, Any]:
    """Run the kit editor as ``admin``: brand colour, 1:1, ``count``, logo corner; the post."""
    fake = admin.fake
    options = {"logo": fake.add_attachment(logo_png(), "logo.png", "image/png")} if logo else {}
    await responded(fake, admin.team("setup", channel, attachment_options=options))
    editor = await fake.wait_for(
        lambda: fake.message_with(f"hsdk:preset:{admin.id}:"), what="the kit editor"
    )
    assert int(editor["flags"]) & 64, "the editor is private to the admin"
    opened = await admin.pick(editor, "hsdk:bg", "colour")
    await admin.submit_modal(opened, ["#1F6FEB"], editor)
    editor = fake.messages[int(editor["id"])]
    await admin.press(editor, "hsdk:more")
    await admin.pick(fake.messages[int(editor["id"])], "hsdk:aspect", "1:1")
    await admin.pick(fake.messages[int(editor["id"])], "hsdk:count", count)
    await admin.pick(fake.messages[int(editor["id"])], "hsdk:logo", "corner")
    await admin.pick(fake.messages[int(editor["id"])], "hsdk:review", "on" if review else "off")
    opened = await admin.press(fake.messages[int(editor["id"])], "hsdk:name")
    await admin.submit_modal(opened, ["Acme Corp"], editor)
    await admin.press(fake.messages[int(editor["id"])], "hsdk:save")
    return dict(
        await fake.wait_for(
            lambda: fake.message_with(f"hsdt:join:{GUILD_ID}", int(channel["id"])),
            what="the kit preview with a Join button",
        )
    )


async def open_member_session(
    member: TeamUser, join: Callable[[], Awaitable[Any]], photos: list[bytes]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Join (via ``join``), consent, post selfies in the private place; (place, form)."""
    fake = member.fake
    await join()
    consent = await fake.wait_for(
        lambda: fake.message_with(f"hsd:consent:{member.id}:"), what="the consent prompt"
    )
    await member.press(consent, "hsd:consent")
    form = await fake.wait_for(
        lambda: fake.message_with(f"hsd:class:{member.id}:"), what="the team form"
    )
    assert not fake.custom_ids(form)[0].startswith("hsd:preset"), "the kit fixes the style"
    assert all(
        not c.startswith(("hsd:preset", "hsd:bg", "hsd:attire", "hsd:custom", "hsd:more"))
        for c in fake.custom_ids(form)
    )
    place = fake.channels[int(form["channel_id"])]
    member.bot._connection.parse_message_create(  # type: ignore[arg-type]
        fake.user_message(
            user=member.user, channel=place, attachments=photo_attachments(fake, photos)
        )
    )
    await fake.wait_for(
        lambda: any(
            f"{len(photos)} accepted" in str(m["content"])
            for m in fake.live_messages(int(place["id"]))
        ),
        what="the tally",
    )
    return place, form


async def confirm_class(member: TeamUser, form: dict[str, Any], subject: str) -> str:
    """Choose the subject class, continue, confirm; the submitted job id."""
    fake = member.fake
    await member.pick(form, "hsd:class", subject)
    await member.press(fake.messages[int(form["id"])], "hsd:next")
    summary = fake.messages[int(form["id"])]
    assert summary["content"].startswith("**Summary**")
    assert "Team: **Acme Corp**" in summary["content"]
    assert "Brand colour: royal blue (#1f6feb)" in summary["content"]
    await member.press(summary, "hsd:confirm")

    async def probe() -> str | None:
        for session in await sessions_of(member.bot, member):
            if session.get("job_id") and session.get("team_id"):
                return str(session["job_id"])
        return None

    return str(await eventually(probe, "a submitted team job"))


async def pick_button(fake: FakeDiscord, job_id: str, place: dict[str, Any]) -> dict[str, Any]:
    return dict(
        await fake.wait_for(
            lambda: fake.message_with(f"hs:pk:{job_id}:", int(place["id"])),
            what=f"the Pick buttons of {job_id}",
            within=60,
        )
    )


def team_posts(fake: FakeDiscord, channel: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in fake.live_messages(int(channel["id"])) if m.get("attachments")]


async def test_only_admins_set_the_kit_and_everyone_can_see_it(
    fake_discord: FakeDiscord,
    discord_bot_factory: Callable[..., Awaitable[HeadshotsClient]],
) -> None:
    fake = fake_discord
    bot = await discord_bot_factory(discord_team_admin_role="Headshot admins")
    channel = fake.add_text_channel(GUILD_ID, "team")
    admin = TeamUser(fake, bot, 2001, "ada", admin=True)
    member = TeamUser(fake, bot, 2002, "max")

    # A member without Manage Server cannot open the editor; nothing is stored.
    refused = member.team("setup", channel)
    await responded(fake, refused)
    text = await fake.answer_to(refused)
    assert "Only server admins (**Manage Server**)" in text and "Headshot admins" in text
    assert not fake.message_with("hsdk:")
    shown = member.team("show", channel)
    await responded(fake, shown)
    assert "no team look yet" in await fake.answer_to(shown)

    post = await set_up_kit(admin, channel, review=True)
    teams = TeamStore(bot.queue.redis, bot.queue.store, bot.settings)
    team = await teams.get(TEAM_ID)
    assert team is not None and team.admins == [admin.id]
    kit = team.kit
    assert (kit.team_name, kit.background.kind, kit.background.colours) == (
        "Acme Corp",
        "colour",
        ["#1f6feb"],
    )
    assert (kit.aspect_ratio, kit.count, kit.logo_placement, kit.review) == (
        "1:1",
        4,
        "corner",
        True,
    )
    assert team.target.chat_id == int(channel["id"]) and team.target.thread_id is None
    logo = await teams.logo(TEAM_ID)
    assert logo is not None and Image.open(io.BytesIO(logo)).format == "PNG"
    # The preview: one JPEG posted with the bot token, a Join button under it.
    (preview,) = fake.message_files[int(post["id"])]
    assert Image.open(io.BytesIO(preview.data)).format == "JPEG"
    assert fake.message_auth[int(post["id"])] == f"Bot {fake.token}"
    assert "Acme Corp" in post["content"]

    # A bad hex colour is explained; the editor belongs to its admin only.
    await responded(fake, admin.team("setup", channel))
    editor = await fake.wait_for(
        lambda: next(
            (
                m
                for m in reversed(fake.live_messages(int(channel["id"])))
                if f"hsdk:preset:{admin.id}:" in json.dumps(m.get("components", []))
                and int(m["id"]) > int(post["id"])
            ),
            None,
        ),
        what="a second editor",
    )
    assert "**Acme Corp**" in editor["content"], "the editor starts from the saved kit"
    intruded = await member.press(editor, "hsdk:save")
    assert "Only server admins" in await fake.answer_to(intruded)
    opened = await admin.pick(editor, "hsdk:bg", "gradient")
    bad = await admin.submit_modal(opened, ["blue-ish", "#000"], editor)
    assert "is not a colour" in await followup_or_answer(fake, bad)
    assert (await teams.require(TEAM_ID)).kit.background.kind == "colour"

    # The configured role counts as team admin (by name, through the guild's role cache).
    role_id = 880_000_000_000_000_001
    guild = bot._connection._get_or_create_unavailable_guild(GUILD_ID)
    bot._connection._add_guild(guild)  # what the gateway's GUILD_CREATE does
    guild._add_role(
        discord.Role(
            guild=guild,
            state=bot._connection,
            data={"id": str(role_id), "name": "Headshot admins", "permissions": "0"},  # type: ignore[typeddict-item]
        )
    )
    lead = TeamUser(fake, bot, 2003, "lena", roles=[role_id])
    await responded(fake, lead.team("setup", channel))
    await fake.wait_for(lambda: fake.message_with(f"hsdk:preset:{lead.id}:"), what="lead's editor")

    # Everyone can see the kit; only admins export or delete.
    shown = member.team("show", channel)
    await fake.wait_for(
        lambda: any(
            m.get("attachments") and "Acme Corp" in m["content"]
            for m in fake.messages.values()
            if m.get("interaction_token") == shown["token"]
        ),
        what="the kit shown privately",
    )
    for sub in ("export", "delete"):
        refused = member.team(sub, channel)
        await responded(fake, refused)
        assert "Only server admins" in await fake.answer_to(refused)
    assert await teams.get(TEAM_ID) is not None


async def followup_or_answer(fake: FakeDiscord, payload: dict[str, Any]) -> str:
    """What the user saw for ``payload``: an ephemeral answer or followup."""
    await responded(fake, payload)
    return await fake.answer_to(payload)


async def test_members_pick_privately_admins_review_redo_export_and_delete(
    fake_discord: FakeDiscord,
    discord_bot: HeadshotsClient,
    face_photo_bytes: list[bytes],
    start_worker: Callable[..., Any],
) -> None:
    fake = fake_discord
    bot = discord_bot
    channel = fake.add_text_channel(GUILD_ID, "team")
    admin = TeamUser(fake, bot, 2001, "ada", admin=True)
    alice = TeamUser(fake, bot, 2011, "alice")
    bob = TeamUser(fake, bot, 2012, "bob")
    post = await set_up_kit(admin, channel, review=True)
    teams = TeamStore(bot.queue.redis, bot.queue.store, bot.settings)
    kit = (await teams.require(TEAM_ID)).kit

    # Alice joins with the button: a private thread in the team channel.
    alice_place, alice_form = await open_member_session(
        alice, lambda: alice.press(post, f"hsdt:join:{GUILD_ID}"), face_photo_bytes[:4]
    )
    assert alice_place["type"] == 12 and alice_place["parent_id"] == channel["id"]
    assert alice_place["thread_metadata"]["invitable"] is False
    # Bob joins with the command while private threads are refused: his session is a DM.
    fake.fail_next("POST", f"/channels/{channel['id']}/threads", status=403)

    async def bob_joins() -> None:
        await responded(fake, bob.team("join", channel))

    bob_place, bob_form = await open_member_session(bob, bob_joins, face_photo_bytes[1:5])
    assert bob_place["type"] == 1

    # A member cannot steer the look: other selects are refused even with a forged id.
    forged = fake._message_payload(
        int(alice_place["id"]),
        "forged",
        components=[
            {
                "type": 1,
                "components": [
                    {
                        "type": 3,
                        "custom_id": fake.custom_ids(alice_form)[0].replace(":class:", ":preset:"),
                        "options": [{"label": "Legal", "value": "legal"}],
                    }
                ],
            }
        ],
    )
    fake.messages[int(forged["id"])] = forged
    sneaky = await alice.pick(forged, "hsd:preset", "legal")
    assert "fixed the look" in await fake.answer_to(sneaky)

    alice_job = await confirm_class(alice, alice_form, "woman")
    bob_job = await confirm_class(bob, bob_form, "man")
    for member, job_id, place, subject in (
        (alice, alice_job, alice_place, "woman"),
        (bob, bob_job, bob_place, "man"),
    ):
        info = await bot.queue.job(job_id)
        assert info is not None and info.request.team_id == TEAM_ID
        assert info.request.style == kit.style_for(subject)  # type: ignore[arg-type]
        assert (info.request.target.thread_id or info.request.target.chat_id) == int(place["id"])
        record = await teams.member(TEAM_ID, member.ref.key)
        assert record is not None and record.job_ids == [job_id]
        assert record.subject_class == subject and record.private_target is not None
        assert record.private_target.status_message_id is None

    fake.expire_interaction_tokens()
    start_worker(worker_env(bot, fake, HEADSHOTS_STAGES="tests.stub_stages:build"))
    for job_id in (alice_job, bob_job):
        assert await wait_for_state(bot.queue, job_id, FINISHED, timeout_s=90) is JobState.DONE
    alice_results = await pick_button(fake, alice_job, alice_place)
    bob_results = await pick_button(fake, bob_job, bob_place)
    assert fake.message_with(f"hs:pk:{alice_job}", int(channel["id"])) is None

    # Only the owner picks; the pick is posted in the team channel with review buttons.
    stolen = await bob.press(alice_results, f"hs:pk:{alice_job}:2")
    assert "not your job" in await fake.answer_to(stolen)
    before = len(team_posts(fake, channel))
    await alice.press(alice_results, f"hs:pk:{alice_job}:2")
    alice_post = await fake.wait_for(
        lambda: fake.message_with(f"hsdt:ok:{alice.id}:{alice_job}:2", int(channel["id"])),
        what="Alice's favourite in the team channel",
    )
    assert len(team_posts(fake, channel)) == before + 1
    assert "**Alice** picked" in alice_post["content"]
    assert fake.message_auth[int(alice_post["id"])] == f"Bot {fake.token}"
    info = await bot.queue.job(alice_job)
    assert info is not None
    chosen = next(r for r in info.results if int(r["rank"]) == 2)
    (posted,) = fake.message_files[int(alice_post["id"])]
    assert posted.data == await bot.queue.read_blob(alice.ref, str(chosen["path"]))
    refused = await bob.press(alice_post, "hsdt:ok")
    assert "Only server admins" in await fake.answer_to(refused)

    # Bob picks; the admin asks for a redo: a new-style job on his LoRA, the next seed, his DM.
    await bob.press(bob_results, f"hs:pk:{bob_job}:1")
    bob_post = await fake.wait_for(
        lambda: fake.message_with(f"hsdt:redo:{bob.id}:{bob_job}:1", int(channel["id"])),
        what="Bob's favourite",
    )
    await admin.press(bob_post, "hsdt:redo")

    async def redo_job() -> Any:
        jobs = await bot.queue.user_jobs(bob.ref)
        return next((j for j in jobs if j.request.kind == "new_style"), None)

    redo = await eventually(redo_job, "the redo job")
    assert redo.request.lora_job_id == bob_job and redo.request.team_id == TEAM_ID
    assert redo.request.style.seed == kit.seed + 1000
    assert redo.request.style.model_copy(update={"seed": kit.seed}) == kit.style_for("man")
    assert redo.request.target.chat_id == int(bob_place["id"])
    assert any("asked for a redo" in m["content"] for m in fake.live_messages(int(bob_place["id"])))
    await fake.wait_for(
        lambda: "Redo requested by Ada" in fake.messages[int(bob_post["id"])]["content"],
        what="the redo noted on the post",
    )
    assert await wait_for_state(bot.queue, redo.job_id, FINISHED, timeout_s=60) is JobState.DONE
    redo_results = await pick_button(fake, redo.job_id, bob_place)
    await bob.press(redo_results, f"hs:pk:{redo.job_id}:3")
    new_post = await fake.wait_for(
        lambda: fake.message_with(f"hsdt:ok:{bob.id}:{redo.job_id}:3", int(channel["id"])),
        what="Bob's new favourite",
    )
    await admin.press(new_post, "hsdt:ok")
    # Alice changes her mind before the review: her old post's buttons no longer count.
    await alice.press(alice_results, f"hs:pk:{alice_job}:3")
    alice_new = await fake.wait_for(
        lambda: fake.message_with(f"hsdt:ok:{alice.id}:{alice_job}:3", int(channel["id"])),
        what="Alice's second pick",
    )
    stale = await admin.press(alice_post, "hsdt:ok")
    assert "no longer this member's pick" in await fake.answer_to(stale)
    await admin.press(alice_new, "hsdt:ok")
    assert "Approved by Ada" in fake.messages[int(alice_new["id"])]["content"]
    labels = {m.display_name: label for m, label in await teams.progress(TEAM_ID)}
    assert labels == {"Alice": "approved", "Bob": "approved"}
    status = admin.team("status", channel)
    text = await followup_text(fake, status)
    assert "• Alice – approved" in text and "• Bob – approved" in text
    own = await followup_text(fake, bob.team("status", channel))
    assert "You: approved" in own and "Alice" not in own

    # Export: a closed DM is explained; then the ZIP arrives in the admin's DM.
    fake.fail_next(
        "POST",
        "/users/@me/channels",
        status=403,
        body={"message": "Cannot send messages to this user", "code": 50007},
    )
    assert "couldn't send you the export" in await followup_text(
        fake, admin.team("export", channel)
    )
    assert "sent you the export" in await followup_text(fake, admin.team("export", channel))
    admin_dm = fake.dm_channel_of(admin.id)
    assert admin_dm is not None
    (zipped,) = [f for m in fake.live_messages(int(admin_dm["id"])) for f in zip_files(fake, m)]
    names = sorted(zipfile.ZipFile(io.BytesIO(zipped)).namelist())
    assert names == [
        "acme-corp-contact-sheet.jpg",
        "alice.jpg",
        "bob.jpg",
        "profile-pictures/alice.jpg",
        "profile-pictures/bob.jpg",
    ]

    # Privacy: no selfie (as sent, or as stored) was ever uploaded anywhere by the bot, and the
    # team channel and the admin's DM hold nothing but the bot's kit, picks and export.
    selfies = set(face_photo_bytes[:5])
    for member in (alice, bob):
        for session in await sessions_of(bot, member):
            for path in await bot.queue.list_selfies(member.ref, session["upload_id"]):
                selfies.add(await bot.queue.read_blob(member.ref, path))
    assert not [f.filename for _, f in fake.uploads() if f.data in selfies]
    for place in (channel, admin_dm):
        for message in fake.live_messages(int(place["id"])):
            assert int(message["author"]["id"]) == fake.bot_id
            assert "**Photos**" not in message["content"]
            assert not any(a["filename"].startswith("selfie") for a in message["attachments"])

    # Deleting the team: only an admin, after confirming; no team key is left.
    await responded(fake, admin.team("delete", channel))
    confirm = fake.message_with(f"hsdt:delete:{admin.id}:{GUILD_ID}")
    assert confirm is not None
    assert int(confirm["flags"]) & 64 and "cannot be undone" in confirm["content"]
    await admin.press(confirm, "hsdt:delete")
    assert "Deleted the team" in fake.messages[int(confirm["id"])]["content"]
    assert await teams.get(TEAM_ID) is None
    team_keys = [
        key.decode() async for key in bot.queue.redis.scan_iter(match=f"*{TEAM_ID}*", count=1000)
    ]
    assert team_keys == []
    assert await bot.queue.redis.smembers(constants.user_teams_key(alice.ref.key)) == set()
    after = await alice.press(post, f"hsdt:join:{GUILD_ID}")
    assert "no team look" in await followup_or_answer(fake, after)
    # What still mentions the team is the members' own data (their jobs and sessions): their
    # own delete removes it, and then nothing anywhere mentions the team.
    for member in (alice, bob):
        await bot.queue.forget(member.ref)
    assert await keys_mentioning(bot.queue.redis, [TEAM_ID]) == []


def zip_files(fake: FakeDiscord, message: dict[str, Any]) -> list[bytes]:
    return [
        f.data
        for f in fake.message_files.get(int(message["id"]), [])
        if f.filename.endswith(".zip")
    ]
