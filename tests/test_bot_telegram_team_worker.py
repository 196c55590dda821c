"""Team mode end to end on the tiny model: one kit, two members, identical generation settings.

The admin sets a brand colour, a logo, a reference portrait and review in a forum topic; two
members join through the deep link, send their selfies privately and confirm; a real worker on
the tiny model (with a tiny ControlNet) trains and generates both. Their recorded generation
settings and control images must be the same; their picks appear in the topic; the export
reaches the admin privately (after the admin starts the private chat).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headshots.queue import constants
from headshots.queue.contracts import JobState, UserRef
from tests.fake_telegram import FakeChat, FakeTelegram
from tests.plugins.telegram import ChatDriver
from tests.queue_helpers import wait_for_state
from tests.test_bot_telegram import ALICE, BOB, StartBot
from tests.test_bot_telegram_team import (
    CAROL,
    GROUP,
    TEAM_ID,
    TOPIC,
    assert_no_selfies,
    join_and_submit,
    join_link,
    logo_png,
    pick,
    result_bytes,
    set_up_kit,
    stored_selfies,
)
from tests.test_bot_telegram_worker import FINISHED, tiny_env, worker_env

#: What makes two headshot sets look like one shoot (the rank stage's generation record).
SHARED = ("prompt", "negative_prompt", "seeds", "steps", "cfg", "width", "height", "colour_grade")


@pytest.mark.slow
async def test_team_kit_members_favourites_and_export_on_the_tiny_model(
    telegram_bot: StartBot,
    fake_telegram: FakeTelegram,
    face_photo_bytes: list[bytes],
    tiny_model_path: Path,
    tiny_controlnet_path: Path,
    start_worker: Callable[..., Any],
    worker_processes: Any,
    redis_client: Any,
) -> None:
    from tests.plugins.faces import astronaut_image, to_png

    bot = await telegram_bot(controlnet_sd15_pose=str(tiny_controlnet_path))
    fake_telegram.set_admin(GROUP, ALICE, "creator")
    fake_telegram.never_started.add(ALICE.id)  # the admin never opened a private chat
    admin = ChatDriver(fake_telegram, GROUP, ALICE, TOPIC)
    preview = await set_up_kit(
        admin,
        name="Acme Corp",
        background=("Brand colour", "1f6feb"),
        answers=["Style default", "Ektar", "Square", "4"],
        logo=logo_png(),
        review=True,
        reference=to_png(astronaut_image()),
    )
    link = join_link(preview)
    assert "royal blue (#1f6feb)" in preview.params["caption"]
    team = await bot.services.teams.require(TEAM_ID)
    assert team.has_logo and team.kit.logo_placement == "corner"
    assert team.kit.background.colours == ["#1f6feb"] and team.kit.count == 4
    assert team.has_reference and team.kit.reference_hint == "pose"
    assert "Reference photo: everyone framed like it" in preview.params["caption"]

    # Two members join through the deep link and submit privately.
    members = {
        BOB.id: ChatDriver(fake_telegram, FakeChat.private(BOB), BOB),
        CAROL.id: ChatDriver(fake_telegram, FakeChat.private(CAROL), CAROL),
    }
    photos = {BOB.id: face_photo_bytes[:4], CAROL.id: face_photo_bytes[3:7]}
    jobs = {}
    for user_id, member in members.items():
        assert link.endswith(f"start=team_{TEAM_ID}")
        jobs[user_id] = await join_and_submit(bot, member, photos[user_id], "Woman")
    client = bot.services.client
    selfies = [*face_photo_bytes]
    for user_id, job_id in jobs.items():
        info = await client.job(job_id)
        assert info is not None
        selfies += await stored_selfies(bot, members[user_id].user, info.request.upload_id)

    env = tiny_env(tiny_model_path) | {"HEADSHOTS_CONTROLNET_SD15_POSE": str(tiny_controlnet_path)}
    start_worker(worker_env(bot, fake_telegram, **env))
    for job_id in jobs.values():
        state = await wait_for_state(client, job_id, FINISHED, timeout_s=240)
        assert state is JobState.DONE, worker_processes.logs()[-3000:]

    # The same generation settings for both: only their own LoRA differs.
    records = []
    for job_id in jobs.values():
        raw = await redis_client.hget(constants.job_stages_key(job_id), "rank")
        records.append(json.loads(raw)["generation"])
    for field in SHARED:
        assert records[0][field] == records[1][field], field
    assert "royal blue" in records[0]["prompt"] and records[0]["colour_grade"] == "ektar"
    assert list(records[0]["seeds"][:4]) == [team.kit.seed + n for n in range(4)]
    assert records[0]["width"] == records[0]["height"]
    # One reference portrait, the whole team framed alike: the same control image for both.
    controls = []
    for user_id, job_id in jobs.items():
        raw = await redis_client.hget(constants.job_stages_key(job_id), "generate")
        control = json.loads(raw)["generation"]["control"]
        assert control["hint"] == "pose" and control["keypoints"]["body"][0] is not None
        owner = UserRef(platform="telegram", user_id=user_id)
        controls.append((control, await client.read_blob(owner, control["image"])))
    assert controls[0][0]["keypoints"] == controls[1][0]["keypoints"]
    assert controls[0][0]["reference_sha256"] == controls[1][0]["reference_sha256"]
    assert controls[0][1] == controls[1][1], "byte-identical control images"

    # Each member picks privately; the pick (and only it) appears in the topic; Alice approves.
    for user_id, member in members.items():
        posted = await pick(member, jobs[user_id], 1)
        assert posted.params["message_thread_id"] == TOPIC
        assert posted.files["photo"] == await result_bytes(bot, member.user, jobs[user_id], 1)
        assert member.user.first_name in posted.params["caption"]
        mark = fake_telegram.mark()
        admin.press_label(dict(posted.response), "Approve")
        await member.said("approved", since=mark)
    group_photos = [
        c for c in fake_telegram.calls("sendPhoto") if int(c.params["chat_id"]) == GROUP.id
    ]
    assert len(group_photos) == 3, "the kit preview and the two picks, nothing else"
    albums = fake_telegram.calls("sendMediaGroup")
    assert all(int(c.params["chat_id"]) in members for c in albums), "results stay private"

    # Export: Alice never started the bot, so she gets a link first; then the ZIP privately.
    mark = fake_telegram.mark()
    admin.text("/team export")
    refused = await admin.said("start a chat with me", since=mark)
    assert f"https://t.me/headshots_test_bot?start=export_{TEAM_ID}" in refused["text"]
    assert [c.status for c in fake_telegram.calls_since(mark, "sendDocument")] == [403]
    alice = ChatDriver(fake_telegram, FakeChat.private(ALICE), ALICE)
    mark = fake_telegram.mark()
    alice.text(f"/start export_{TEAM_ID}")
    document = await fake_telegram.wait_for(
        "sendDocument", lambda c: int(c.params["chat_id"]) == ALICE.id, since=mark, timeout=60
    )
    assert document.status == 200 and document.filenames["document"] == "acme-corp-headshots.zip"
    with zipfile.ZipFile(io.BytesIO(document.files["document"])) as archive:
        names = sorted(archive.namelist())
    assert names == [
        "acme-corp-contact-sheet.jpg",
        "bob.jpg",
        "carol.jpg",
        "profile-pictures/bob.jpg",
        "profile-pictures/carol.jpg",
    ]
    assert all(int(c.params["chat_id"]) == ALICE.id for c in fake_telegram.calls("sendDocument")), (
        "exports go to the admin only"
    )

    # No member's selfie reached the group or the admin, in any form.
    assert_no_selfies(fake_telegram, [GROUP.id, ALICE.id], selfies)
    for user_id in members:
        member_ref = UserRef(platform="telegram", user_id=user_id)
        assert (await client.active_job(member_ref)) is None
