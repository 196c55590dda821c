"""Team mode on Slack: the fake Slack, a real Redis and a stub-stage worker process.

An admin (a workspace admin, or a member of the configured user group) sets the look in their
DM; the preview and a Join button go to the channel; a member joins, sends selfies in their
DM, picks a favourite that is posted in the channel; an admin approves it and exports the ZIP
into the channel.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import Any

from headshots.queue.contracts import JobState
from headshots.queue.delivery.slack import slack_number
from headshots.queue.teams import TeamStore, team_id_for
from tests.fake_slack import APP_TOKEN, BOT_TOKEN, TEAM_ID, FakeSlack
from tests.plugins.queue import settings_env
from tests.queue_helpers import wait_for_state
from tests.test_bot_slack import SlackPerson

FINISHED = {JobState.DONE, JobState.FAILED, JobState.CANCELLED}
TEAM = team_id_for("slack", slack_number(TEAM_ID))


async def test_admins_set_the_look_members_join_pick_and_the_export_lands_in_the_channel(
    fake_slack: FakeSlack,
    slack_bot_factory: Any,
    face_photo_bytes: list[bytes],
    start_worker: Callable[..., Any],
) -> None:
    fake = fake_slack
    app = await slack_bot_factory(slack_team_admin_group="photo-admins")
    channel = fake.add_channel("team")
    ada = SlackPerson(fake, app, fake.add_user("ada", admin=True), channel)
    carol = SlackPerson(fake, app, fake.add_user("carol"), channel)
    bob = SlackPerson(fake, app, fake.add_user("bob"), channel)
    alice = SlackPerson(fake, app, fake.add_user("alice"), channel)
    fake.usergroups["S0ADMINS"] = ("photo-admins", [carol.who.id])

    # Bob is neither a workspace admin nor in the group: refused, nothing stored.
    mark = await bob.command("team setup")
    await bob.handled(mark)
    assert "Only workspace admins and owners and members of @photo-admins" in bob.answers(mark)
    # Carol is in the group: the editor opens in her DM; Ada (a workspace admin) saves one.
    mark = await carol.command("team setup")
    await carol.handled(mark)
    assert fake.with_action(f"hssk:set.preset:{carol.who.id}:", carol.dm) is not None
    await ada.command("team")
    ada.form = await fake.wait_for(lambda: fake.with_action(f"hssk:set.preset:{ada.who.id}:"))
    assert ada.form["channel"] == ada.dm, "the editor is the admin's own"
    await ada.click("hssk:more")
    mark = ada.mark()
    await fake.acked(await fake.pick(ada.who, ada.current(), "hssk:set.review", "on"))
    await ada.handled(mark)
    await ada.click("hssk:save")
    post = await fake.wait_for(lambda: fake.with_action("hsst:join:", channel), what="Join")
    assert [m for m in fake.bot_messages(channel) if m.get("files")], "the preview picture"
    teams = TeamStore(app.services.client.redis, app.services.client.store, app.settings)
    kit = (await teams.require(TEAM)).kit
    assert kit.review

    # Alice joins with the button: consent and selfies in her DM, only the class to answer.
    await alice.click("hsst:join", post)
    alice.form = await fake.wait_for(
        lambda: fake.with_action(f"hss:consent:{alice.who.id}:", alice.dm), what="consent"
    )
    assert "joining" in alice.form["text"]
    await alice.agree()
    await alice.send_photos(face_photo_bytes[:4])
    await alice.choose("subject_class", "woman")
    assert "The team's look:" in await alice.summary()
    await alice.confirm()
    (job,) = await app.services.client.user_jobs(alice.user)
    assert job.request.team_id == TEAM and job.request.style == kit.style_for("woman")

    env = settings_env(app.settings)
    env.update(HEADSHOTS_SLACK_BOT_TOKEN=BOT_TOKEN, HEADSHOTS_SLACK_APP_TOKEN=APP_TOKEN)
    start_worker({**env, "HEADSHOTS_STAGES": "tests.stub_stages:build"})
    state = await wait_for_state(app.services.client, job.job_id, FINISHED, timeout_s=90)
    assert state is JobState.DONE
    results = await fake.wait_for(
        lambda: fake.with_action(f"hs:pk:{job.job_id}:", alice.dm), what="pick buttons", within=60
    )
    assert any(m.get("files") for m in fake.bot_messages(alice.dm)), "the album in her DM"

    # Alice picks #2: posted in the channel with review buttons; Bob may not approve it.
    await alice.click(f"hs:pk:{job.job_id}:2", results)
    pick = await fake.wait_for(lambda: fake.with_action("hsst:review", channel), what="the pick")
    assert "picked" in pick["text"]
    assert "Only workspace admins" in await bob.click("hsst:review", pick)
    await ada.click("hsst:review", pick)
    assert "Approved by" in fake.message(channel, str(pick["ts"]))["text"]
    labels = {m.display_name: label for m, label in await teams.progress(TEAM)}
    assert labels == {"alice": "approved"}

    # The export: a ZIP shared in the channel, and the admin hears where it is.
    mark = await ada.command("team export")
    await ada.handled(mark)
    assert "posted in the team's channel" in ada.answers(mark)
    (zipped,) = [
        fake.file_data[f["id"]]
        for m in fake.bot_messages(channel)
        for f in m.get("files") or []
        if f["name"].endswith(".zip")
    ]
    names = zipfile.ZipFile(io.BytesIO(zipped)).namelist()
    assert "alice.jpg" in names and any(n.endswith("contact-sheet.jpg") for n in names)
