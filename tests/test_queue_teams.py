"""Team mode's core: brand kit, members, favourites, export, deletion — on real Redis."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from headshots.errors import LimitReached, NotFound, UserError
from headshots.queue.client import QueueClient
from headshots.queue.contracts import ChatTarget
from headshots.queue.teams import BrandKit, KitBackground, TeamStore, team_id_for
from headshots.settings import Settings
from headshots.style.presets import build_prompt_spec
from tests.queue_helpers import keys_mentioning


def png(colour: tuple[int, int, int], size: tuple[int, int] = (400, 500)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
async def client(settings_factory: Callable[..., Settings], queue_client_factory: Any) -> Any:
    return await queue_client_factory(settings_factory(team_max_members=3, team_jobs_per_member=2))


def teams_of(client: QueueClient) -> TeamStore:
    return TeamStore(client.redis, client.store, client.settings)


GROUP = ChatTarget(platform="telegram", chat_id=-100555, thread_id=7, user_id=1)


def test_kit_background_validation_and_identical_settings_for_members() -> None:
    assert KitBackground(kind="colour", colours=["1F6FEB"]).colours == ["#1f6feb"]
    assert KitBackground(kind="gradient", colours=["#abc", "#000000"]).colours == [
        "#aabbcc",
        "#000000",
    ]
    with pytest.raises(UserError, match="hex"):
        KitBackground(kind="colour", colours=["blue-ish"])
    with pytest.raises(UserError, match="gradient two"):
        KitBackground(kind="gradient", colours=["#112233"])

    kit = BrandKit(team_name="Acme", background=KitBackground(kind="colour", colours=["#1f6feb"]))
    specs = [
        build_prompt_spec(kit.style_for("woman"), job_id="member-a", native_resolution=512),
        build_prompt_spec(kit.style_for("woman"), job_id="member-b", native_resolution=512),
        build_prompt_spec(kit.style_for("man"), job_id="member-c", native_resolution=512),
    ]
    a, b, c = (s.to_record() for s in specs)
    assert a == b, "two members of one class get exactly the same generation settings"
    for field in ("negative_prompt", "seeds", "steps", "cfg", "width", "height", "colour_grade"):
        assert a[field] == c[field], field
    assert "royal blue studio backdrop" in a["prompt"]
    assert "ohwx man" in c["prompt"] and "ohwx woman" in a["prompt"]


async def test_kit_members_quota_favourites_and_export(client: QueueClient) -> None:
    teams = teams_of(client)
    team_id = team_id_for("telegram", -100555)
    assert team_id == "tgm100555"
    with pytest.raises(NotFound, match="admin has to set it up"):
        await teams.join(team_id, "tg:1", "Ann")
    kit = BrandKit(team_name="Acme Corp", review=True, logo_placement="corner")
    team = await teams.save_kit(team_id, "telegram", kit, GROUP, admin_id=99)
    assert team.admins == [99] and team.target == GROUP
    assert await teams.is_admin(team_id, 99) and not await teams.is_admin(team_id, 1)
    await teams.set_logo(team_id, png((255, 0, 0), (64, 64)))

    await teams.join(team_id, "tg:1", "Zoë O'Neil")
    await teams.join(team_id, "tg:2", "Bob")
    await teams.join(team_id, "tg:2", "Bob")  # joining twice is one membership
    await teams.join(team_id, "tg:3", "Cy")
    with pytest.raises(LimitReached, match="full"):
        await teams.join(team_id, "tg:4", "Dee")

    await teams.record_job(team_id, "tg:1", "job-a1")
    await teams.record_job(team_id, "tg:1", "job-a2")
    await teams.record_job(team_id, "tg:1", "job-a2")  # a re-submission is not another run
    with pytest.raises(LimitReached, match="2 runs"):
        await teams.record_job(team_id, "tg:1", "job-a3")
    await teams.record_job(team_id, "tg:2", "job-b1")

    with pytest.raises(NotFound):
        await teams.pick_favourite(team_id, "tg:2", "job-a1", 1, png((1, 1, 1)))
    picked = await teams.pick_favourite(team_id, "tg:1", "job-a2", 3, png((10, 120, 200)))
    assert picked.state == "picked" and picked.favourite_rank == 3
    await teams.pick_favourite(team_id, "tg:2", "job-b1", 1, png((200, 120, 10)))
    with pytest.raises(NotFound, match="ready"):
        await teams.export(team_id, max_bytes=50_000_000)  # review on: nothing approved yet
    await teams.review(team_id, "tg:1", approve=True)
    await teams.review(team_id, "tg:2", approve=False)
    labels = {m.user_key: label for m, label in await teams.progress(team_id)}
    assert labels == {"tg:1": "approved", "tg:2": "redo requested", "tg:3": "joined"}

    (archive,) = await teams.export(team_id, max_bytes=50_000_000)
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        names = sorted(zipped.namelist())
        assert names == [
            "acme-corp-contact-sheet.jpg",
            "profile-pictures/zoe-oneil.jpg",
            "zoe-oneil.jpg",
        ]
        exported = Image.open(io.BytesIO(zipped.read("zoe-oneil.jpg")))
        assert exported.size == (819, 1024)  # the kit's 4:5 at the export size
        profile = Image.open(io.BytesIO(zipped.read("profile-pictures/zoe-oneil.jpg"))).convert(
            "RGB"
        )
        # The logo is a small mark in the corner; the middle (the face) is untouched.
        assert profile.getpixel((profile.width - 40, profile.height - 40))[0] > 200
        assert profile.getpixel((profile.width // 2, profile.height // 2)) == exported.convert(
            "RGB"
        ).getpixel((exported.width // 2, exported.height // 2))


async def test_export_splits_under_the_upload_limit(client: QueueClient) -> None:
    import numpy as np

    teams = teams_of(client)
    team_id = team_id_for("discord", 42)
    await teams.save_kit(
        team_id, "discord", BrandKit(), GROUP.model_copy(update={"platform": "discord"}), 5
    )
    rng = np.random.default_rng(0)
    for n in range(3):
        await teams.join(team_id, f"dc:{n}", f"Member {n}")
        await teams.record_job(team_id, f"dc:{n}", f"job{n}")
        noisy = Image.fromarray(rng.integers(0, 255, (500, 400, 3), dtype=np.uint8))
        buffer = io.BytesIO()
        noisy.save(buffer, format="PNG")
        await teams.pick_favourite(team_id, f"dc:{n}", f"job{n}", 1, buffer.getvalue())
    parts = await teams.export(team_id, max_bytes=500_000)
    assert len(parts) > 1 and all(len(p) <= 500_000 for p in parts)
    names = [n for p in parts for n in zipfile.ZipFile(io.BytesIO(p)).namelist()]
    assert sorted(n for n in names if n.startswith("member")) == [
        f"member-{n}.jpg" for n in range(3)
    ]


async def test_member_delete_and_team_delete_leave_nothing(client: QueueClient) -> None:
    teams = teams_of(client)
    team_id = team_id_for("telegram", -100777)
    await teams.save_kit(team_id, "telegram", BrandKit(), GROUP, admin_id=99)
    await teams.set_logo(team_id, png((0, 0, 255), (32, 32)))
    for user in ("tg:11", "tg:12"):
        await teams.join(team_id, user, user)
        await teams.record_job(team_id, user, f"job-{user}")
        await teams.pick_favourite(team_id, user, f"job-{user}", 1, png((9, 9, 9)))

    await client.forget("tg:11")  # the member's own /delete
    assert await keys_mentioning(client.redis, ["tg:11", "tg_11"]) == []
    assert [m.user_key for m in await teams.members(team_id)] == ["tg:12"]

    await teams.delete_team(team_id)
    assert await keys_mentioning(client.redis, [team_id]) == []
    assert await teams.get(team_id) is None
    assert await client.redis.smembers("hs:user:tg:12:teams") == set()


async def test_the_kit_reference_lives_and_goes_with_the_team(client: QueueClient) -> None:
    """The reference portrait: stored with the kit, its TTL moved with every team write (a
    member's action on "day 31" keeps it), in each member's job as the same bytes, and gone
    with the team."""
    import asyncio

    from headshots.queue.contracts import ReferenceChoice
    from headshots.queue.teams import REFERENCE_PATH, team_store_key

    teams = teams_of(client)
    team_id = team_id_for("telegram", -100888)
    kit = BrandKit(team_name="Acme", reference_hint="pose")
    team = await teams.save_kit(team_id, "telegram", kit, GROUP, admin_id=99)
    assert not team.has_reference and await teams.reference(team_id) is None
    portrait = png((120, 90, 60))
    await teams.set_reference(team_id, portrait)
    assert (await teams.require(team_id)).has_reference
    assert await teams.reference(team_id) == portrait

    # Nearly expired, then a member acts: every team key, the reference among them, lives on.
    await client.store.expire(team_store_key(team_id), REFERENCE_PATH, 1)
    await teams.join(team_id, "tg:21", "Bea")
    await asyncio.sleep(1.5)
    assert await teams.reference(team_id) == portrait

    choice = ReferenceChoice.of(portrait, "pose")
    styles = [kit.style_for(c, None, choice) for c in ("woman", "man")]
    assert {s.reference for s in styles} == {choice}
    assert BrandKit().style_for("woman").reference is None

    await teams.set_reference(team_id, None)
    assert not (await teams.require(team_id)).has_reference
    assert await teams.reference(team_id) is None
    await teams.set_reference(team_id, portrait)
    await teams.delete_team(team_id)
    assert await teams.reference(team_id) is None
    assert await keys_mentioning(client.redis, [team_id]) == []


def test_colour_names_and_preview() -> None:
    from headshots.style.brand import KitLook, colour_name, render_kit_preview

    assert colour_name("#1f6feb") == "royal blue"
    assert colour_name("#0b1f3a") == "dark navy"
    assert colour_name("#000080") == "navy blue"
    assert colour_name("#ffffff") == "white"
    look = KitLook(
        "Acme", "gradient", ("#1f6feb", "#0b1f3a"), "4:5", "film_portra", "corner", "Corporate"
    )
    preview = Image.open(io.BytesIO(render_kit_preview(look, png((255, 0, 0), (50, 50)))))
    assert preview.format == "JPEG" and preview.width == 640 and preview.height == 800 + 56

    # With a reference portrait: an inset of it at the kit's crop, bottom left.
    plain = Image.open(io.BytesIO(render_kit_preview(look))).convert("RGB")
    framed = render_kit_preview(look, None, png((0, 200, 0), (900, 600)))
    inset = Image.open(io.BytesIO(framed)).convert("RGB")
    assert inset.size == plain.size
    r, g, b = inset.getpixel((60, 700))  # inside the inset: the portrait's green
    assert g > 150 and r < 80 and b < 80, (r, g, b)
    assert plain.getpixel((inset.width - 60, 100)) == inset.getpixel((inset.width - 60, 100))


async def test_a_refused_submission_gives_the_run_back(client: QueueClient) -> None:
    teams = teams_of(client)
    team_id = team_id_for("discord", 9)
    await teams.save_kit(
        team_id, "discord", BrandKit(), GROUP.model_copy(update={"platform": "discord"}), 1
    )
    await teams.join(team_id, "dc:1", "Ann")
    await teams.record_job(team_id, "dc:1", "j1")
    await teams.record_job(team_id, "dc:1", "j2")
    await teams.unrecord_job(team_id, "dc:1", "j2")
    member = await teams.record_job(team_id, "dc:1", "j3")
    assert member.job_ids == ["j1", "j3"]


async def test_export_is_signed_when_the_operator_configured_c2pa(
    client: QueueClient, operator_certificate: tuple[Path, Path]
) -> None:
    from headshots.generation.provenance import read_c2pa

    chain, key = operator_certificate
    settings = client.settings.model_copy(update={"c2pa_cert": chain, "c2pa_key": key})
    teams = TeamStore(client.redis, client.store, settings)
    team_id = team_id_for("telegram", -100777)
    await teams.save_kit(team_id, "telegram", BrandKit(team_name="Acme"), GROUP, admin_id=99)
    await teams.join(team_id, "tg:1", "Ann")
    await teams.record_job(team_id, "tg:1", "job-a1")
    await teams.pick_favourite(team_id, "tg:1", "job-a1", 1, png((10, 120, 200)))
    (archive,) = await teams.export(team_id, max_bytes=50_000_000)
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        for name in zipped.namelist():
            assert read_c2pa(zipped.read(name)) is not None, name
