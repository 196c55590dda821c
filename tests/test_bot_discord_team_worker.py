"""Team mode end to end on the tiny model: one kit, two members, identical generation settings.

The admin sets the kit; two members submit privately; a real worker trains and generates on the
tiny model; the generation records of both members' jobs (read from Redis) match; their picks
appear in the team channel and the export reaches the admin by DM.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headshots.bot.discord.client import HeadshotsClient
from headshots.queue import constants
from headshots.queue.contracts import JobState
from tests.fake_discord import FakeDiscord
from tests.queue_helpers import wait_for_state
from tests.test_bot_discord import GUILD_ID, followup_text
from tests.test_bot_discord_team import (
    TeamUser,
    confirm_class,
    open_member_session,
    pick_button,
    set_up_kit,
    team_posts,
    zip_files,
)
from tests.test_bot_discord_worker import FINISHED, worker_env

#: What makes two headshots "one shoot": everything but the person's own LoRA.
SHARED_SETTINGS = (
    "preset",
    "subject_class",
    "prompt",
    "negative_prompt",
    "seeds",
    "steps",
    "cfg",
    "scheduler",
    "width",
    "height",
    "aspect_ratio",
    "colour_grade",
    "film_grain",
    "upscale",
)


@pytest.mark.slow
async def test_team_members_share_the_kit_on_the_tiny_model(
    fake_discord: FakeDiscord,
    discord_bot: HeadshotsClient,
    face_photo_bytes: list[bytes],
    tiny_model_path: Path,
    start_worker: Callable[..., Any],
    worker_processes: Any,
) -> None:
    fake = fake_discord
    bot = discord_bot
    channel = fake.add_text_channel(GUILD_ID, "team")
    admin = TeamUser(fake, bot, 2001, "ada", admin=True)
    post = await set_up_kit(admin, channel, review=False, logo=False)
    members = [TeamUser(fake, bot, 2011, "alice"), TeamUser(fake, bot, 2012, "bea")]
    jobs, places = [], []
    for member, photos in zip(members, (face_photo_bytes[:4], face_photo_bytes[1:5]), strict=True):
        place, form = await open_member_session(
            member,
            lambda member=member: member.press(post, f"hsdt:join:{GUILD_ID}"),  # type: ignore[misc]
            photos,
        )
        assert place["type"] == 12, "each member works in a private thread"
        jobs.append(await confirm_class(member, form, "woman"))
        places.append(place)

    fake.expire_interaction_tokens()
    start_worker(
        worker_env(
            bot,
            fake,
            HEADSHOTS_BASE_MODEL=str(tiny_model_path),
            HEADSHOTS_TRAIN_STEPS="2",
            HEADSHOTS_SAMPLE_STEPS="4",
            HEADSHOTS_HF_OFFLINE="true",
            HEADSHOTS_DEVICE="cpu",
            HEADSHOTS_DTYPE="float32",
        )
    )
    for job_id in jobs:
        state = await wait_for_state(bot.queue, job_id, FINISHED, timeout_s=240)
        assert state is JobState.DONE, worker_processes.logs()[-3000:]

    # The recorded generation settings of both members' rank stages are identical.
    records = []
    for job_id in jobs:
        rank = await bot.queue.redis.hget(constants.job_stages_key(job_id), "rank")
        assert rank is not None
        records.append(json.loads(rank)["generation"])
    first, second = ({k: r[k] for k in SHARED_SETTINGS} for r in records)
    assert first == second
    assert "royal blue" in first["prompt"] and first["aspect_ratio"] == "1:1"
    assert first["width"] == first["height"]

    # Each picks a favourite in their own thread; both appear in the team channel (no review).
    for member, job_id, place in zip(members, jobs, places, strict=True):
        buttons = await pick_button(fake, job_id, place)
        assert fake.message_auth[int(buttons["id"])] == f"Bot {fake.token}"
        await member.press(buttons, f"hs:pk:{job_id}:1")
    posts = await fake.wait_for(
        lambda: (found := team_posts(fake, channel)[1:]) and len(found) == 2 and found,
        what="both favourites in the team channel",
    )
    assert ["**Alice** picked" in posts[0]["content"], "**Bea** picked" in posts[1]["content"]] == [
        True,
        True,
    ]
    assert all(not fake.custom_ids(p) for p in posts), "no review buttons when review is off"

    # The export: a ZIP with one file per member and a contact sheet, in the admin's DM only.
    assert "sent you the export" in await followup_text(fake, admin.team("export", channel))
    admin_dm = fake.dm_channel_of(admin.id)
    assert admin_dm is not None
    (archive,) = [f for m in fake.live_messages(int(admin_dm["id"])) for f in zip_files(fake, m)]
    names = sorted(zipfile.ZipFile(io.BytesIO(archive)).namelist())
    assert names == ["acme-corp-contact-sheet.jpg", "alice.jpg", "bea.jpg"]
    assert not [
        c
        for c in fake.calls("POST", f"/channels/{channel['id']}/")
        if any(f.filename.endswith(".zip") for f in c.files)
    ], "the export never goes to the team channel"
