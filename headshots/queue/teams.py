"""Team mode: one brand kit per group or server, its members, their favourites — in Redis.

A team is a Telegram group or a Discord server. Its admin sets a :class:`BrandKit`; every
member's job is built from the kit (:meth:`BrandKit.style_for`), so the whole team's headshots
share prompt, negative prompt, seed schedule, steps, cfg, crop and grade: only the member's own
LoRA (and the man/woman/person class they pick) differ. Members send selfies privately; only the
favourite each member picks is copied into the team's namespace and posted in the group.

Keys (see :mod:`headshots.queue.constants`): the team hash, its members hash, and a per-user set
of teams so that a member's ``/delete`` also removes their photo from every team.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator
from redis.asyncio import Redis

from headshots.errors import LimitReached, NotFound, UserError
from headshots.queue import constants
from headshots.queue.contracts import (
    PLATFORM_SHORT,
    AspectRatio,
    ChatTarget,
    PersonAttributes,
    Platform,
    StyleChoice,
    SubjectClass,
)
from headshots.queue.store import BlobStore
from headshots.settings import Settings

if TYPE_CHECKING:
    from headshots.generation.brand import KitLook

logger = logging.getLogger(__name__)

BackgroundKind = Literal["colour", "gradient", "office", "blurred_office"]
LogoPlacement = Literal["none", "corner"]
MemberState = Literal["joined", "waiting", "training", "done", "picked", "approved", "redo"]

_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")


def normalise_hex(value: str) -> str:
    """``#rrggbb`` from ``#rgb``/``rrggbb``/...; raises :class:`UserError` for anything else."""
    match = _HEX.match(value.strip())
    if not match:
        raise UserError(f"{value.strip()!r} is not a colour: send it as hex, like #1F6FEB.")
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(ch * 2 for ch in digits)
    return "#" + digits.lower()


class KitBackground(BaseModel):
    kind: BackgroundKind = "office"
    colours: list[str] = Field(default_factory=list)

    @field_validator("colours")
    @classmethod
    def _hex_colours(cls, value: list[str]) -> list[str]:
        return [normalise_hex(v) for v in value]

    def model_post_init(self, __context: Any) -> None:
        needed = {"colour": 1, "gradient": 2}.get(self.kind, 0)
        if len(self.colours) < needed:
            raise UserError(
                "A brand colour background needs one hex colour, a gradient two "
                "(e.g. #1F6FEB #0B1F3A)."
            )


class BrandKit(BaseModel):
    """The look the admin fixed for the whole team."""

    team_name: str = Field(default="Our team", max_length=80)
    preset: str = "corporate"
    background: KitBackground = Field(default_factory=KitBackground)
    attire: str | None = None
    colour_grade: str | None = None
    aspect_ratio: AspectRatio = "4:5"
    count: int = Field(default=8, ge=1, le=20)
    #: One seed schedule for everybody: the set looks like one shoot.
    seed: int = Field(default=424242, ge=0, lt=2**31)
    logo_placement: LogoPlacement = "none"
    #: Admin approves each member's favourite before it counts as final.
    review: bool = False

    def look(self) -> KitLook:
        """What the preview image shows of this kit."""
        from headshots.generation.brand import KitLook
        from headshots.generation.presets import load_presets

        preset = load_presets().get(self.preset)
        return KitLook(
            team_name=self.team_name,
            background_kind=self.background.kind,
            background_colours=tuple(self.background.colours),
            aspect_ratio=self.aspect_ratio,
            colour_grade=self.colour_grade or (preset.colour_grade if preset else "none"),
            logo_placement=self.logo_placement,
            preset_title=preset.title if preset else self.preset,
        )

    def style_for(
        self, subject_class: SubjectClass, attributes: PersonAttributes | None = None
    ) -> StyleChoice:
        """The :class:`StyleChoice` of every member's job: the class and the person's own
        features (eyes, glasses, hair) are theirs, everything else is the kit's."""
        from headshots.generation.brand import background_phrase

        return StyleChoice(
            preset=self.preset,
            subject_class=subject_class,
            background=background_phrase(self.background.kind, self.background.colours),
            attire=self.attire,
            colour_grade=self.colour_grade,
            count=self.count,
            aspect_ratio=self.aspect_ratio,
            seed=self.seed,
            attributes=attributes or PersonAttributes(),
        )


class Member(BaseModel):
    user_key: str
    display_name: str
    joined_at: float
    state: MemberState = "joined"
    job_ids: list[str] = Field(default_factory=list)
    subject_class: SubjectClass | None = None
    favourite_job: str | None = None
    favourite_rank: int | None = None
    favourite_path: str | None = None
    #: Where this member's own messages go (their DM or private thread), for redos.
    private_target: ChatTarget | None = None


@dataclass(frozen=True)
class Team:
    team_id: str
    platform: Platform
    kit: BrandKit
    #: Where favourites and the preview go (the group, forum topic or channel).
    target: ChatTarget
    admins: list[int]
    has_logo: bool


def team_id_for(platform: Platform, chat_or_guild_id: int) -> str:
    """``tg-100123`` / ``dc987``: safe in deep links (``start=team_<id>``) and Redis keys."""
    return f"{PLATFORM_SHORT[platform]}{chat_or_guild_id}".replace("-", "m")


def team_store_key(team_id: str) -> str:
    """The pseudo user key the team's blobs (logo, favourites) live under in the blob store."""
    return f"team:{team_id}"


LOGO_PATH = "logo.png"


def favourite_path(member_key: str) -> str:
    return f"favourites/{member_key.replace(':', '_')}.png"


class TeamStore:
    def __init__(self, redis: Redis, store: BlobStore, settings: Settings) -> None:
        self.redis = redis
        self.store = store
        self.settings = settings

    @property
    def _ttl(self) -> int:
        # A kit holds no personal data but should not outlive the teams' models forever.
        return self.settings.lora_ttl_s

    # --- the kit ----------------------------------------------------------------------------
    async def save_kit(
        self, team_id: str, platform: Platform, kit: BrandKit, target: ChatTarget, admin_id: int
    ) -> Team:
        key = constants.team_key(team_id)
        raw = await self.redis.hgetall(key)
        admins = set(json.loads(raw[b"admins"])) if raw.get(b"admins") else set()
        admins.add(admin_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "platform": platform,
                    "kit": kit.model_dump_json(),
                    "target": target.model_dump_json(),
                    "admins": json.dumps(sorted(admins)),
                    "updated": str(time.time()),
                },
            )
            pipe.expire(key, self._ttl)
            await pipe.execute()
        team = await self.get(team_id)
        assert team is not None
        return team

    async def get(self, team_id: str) -> Team | None:
        raw = {
            k.decode(): v.decode()
            for k, v in (await self.redis.hgetall(constants.team_key(team_id))).items()
        }
        if "kit" not in raw:
            return None
        return Team(
            team_id=team_id,
            platform=raw["platform"],  # type: ignore[arg-type]
            kit=BrandKit.model_validate_json(raw["kit"]),
            target=ChatTarget.model_validate_json(raw["target"]),
            admins=list(json.loads(raw.get("admins", "[]"))),
            has_logo=raw.get("logo") == "1",
        )

    async def require(self, team_id: str) -> Team:
        team = await self.get(team_id)
        if team is None:
            raise NotFound("This team has no brand kit yet: a team admin has to set it up first.")
        return team

    async def set_logo(self, team_id: str, png: bytes | None) -> None:
        key = constants.team_key(team_id)
        if png is None:
            await self.store.delete(team_store_key(team_id), LOGO_PATH)
            await self.redis.hset(key, "logo", "0")
            return
        await self.store.put(team_store_key(team_id), LOGO_PATH, png, self._ttl)
        await self.redis.hset(key, "logo", "1")

    async def logo(self, team_id: str) -> bytes | None:
        try:
            return await self.store.get(team_store_key(team_id), LOGO_PATH)
        except NotFound:
            return None

    # --- members ------------------------------------------------------------------------------
    async def join(self, team_id: str, user_key: str, display_name: str) -> Member:
        await self.require(team_id)
        key = constants.team_members_key(team_id)
        existing = await self.redis.hget(key, user_key)
        if existing:
            return Member.model_validate_json(existing)
        if await self.redis.hlen(key) >= self.settings.team_max_members:
            raise LimitReached(
                f"This team is full ({self.settings.team_max_members} members). "
                "Ask the admin to make room."
            )
        member = Member(user_key=user_key, display_name=display_name[:80], joined_at=time.time())
        await self.save_member(team_id, member)
        await self.redis.sadd(constants.user_teams_key(user_key), team_id)
        await self.redis.expire(constants.user_teams_key(user_key), self._ttl)
        return member

    async def member(self, team_id: str, user_key: str) -> Member | None:
        raw = await self.redis.hget(constants.team_members_key(team_id), user_key)
        return Member.model_validate_json(raw) if raw else None

    async def members(self, team_id: str) -> list[Member]:
        raw = await self.redis.hgetall(constants.team_members_key(team_id))
        found = [Member.model_validate_json(v) for v in raw.values()]
        return sorted(found, key=lambda m: m.joined_at)

    async def save_member(self, team_id: str, member: Member) -> None:
        key = constants.team_members_key(team_id)
        await self.redis.hset(key, member.user_key, member.model_dump_json())
        await self.redis.expire(key, self._ttl)

    async def record_job(self, team_id: str, user_key: str, job_id: str) -> Member:
        """Count a job against the member's quota; raises :class:`LimitReached` past it."""
        member = await self.member(team_id, user_key)
        if member is None:
            raise NotFound("Join the team first (the Join button in the team's chat).")
        if job_id in member.job_ids:
            return member
        if len(member.job_ids) >= self.settings.team_jobs_per_member:
            raise LimitReached(
                f"You have used this team's {self.settings.team_jobs_per_member} runs. "
                "Ask the admin if you need another."
            )
        member.job_ids.append(job_id)
        member.state = "waiting"
        await self.save_member(team_id, member)
        return member

    async def unrecord_job(self, team_id: str, user_key: str, job_id: str) -> None:
        """Give a run back when its submission was refused (e.g. the per-user daily limit)."""
        member = await self.member(team_id, user_key)
        if member is None or job_id not in member.job_ids:
            return
        member.job_ids.remove(job_id)
        if member.state == "waiting":
            member.state = "done" if member.job_ids else "joined"
        await self.save_member(team_id, member)

    async def set_state(self, team_id: str, user_key: str, state: MemberState) -> None:
        member = await self.member(team_id, user_key)
        if member is not None:
            member.state = state
            await self.save_member(team_id, member)

    async def pick_favourite(
        self, team_id: str, user_key: str, job_id: str, rank: int, image: bytes
    ) -> Member:
        """Copy the member's chosen headshot into the team (nothing else of theirs goes there)."""
        member = await self.member(team_id, user_key)
        if member is None or job_id not in member.job_ids:
            raise NotFound("That headshot is not part of your team run.")
        path = favourite_path(user_key)
        await self.store.put(team_store_key(team_id), path, image, self.settings.results_ttl_s)
        member.favourite_job, member.favourite_rank, member.favourite_path = job_id, rank, path
        team = await self.require(team_id)
        member.state = "picked" if team.kit.review else "approved"
        await self.save_member(team_id, member)
        return member

    async def review(self, team_id: str, user_key: str, *, approve: bool) -> Member:
        member = await self.member(team_id, user_key)
        if member is None or member.favourite_path is None:
            raise NotFound("That member has not picked a favourite yet.")
        member.state = "approved" if approve else "redo"
        await self.save_member(team_id, member)
        return member

    async def favourite(self, team_id: str, member: Member) -> bytes | None:
        if member.favourite_path is None:
            return None
        try:
            return await self.store.get(team_store_key(team_id), member.favourite_path)
        except NotFound:
            return None

    async def progress(self, team_id: str) -> list[tuple[Member, str]]:
        """Each member with where they stand: joined, waiting, in training, generating, done,
        picked (awaiting review), approved, redo requested, failed or cancelled."""
        rows = []
        for member in await self.members(team_id):
            label: str = member.state
            if member.state in ("waiting", "training", "done") and member.job_ids:
                state = await self.redis.hget(constants.job_key(member.job_ids[-1]), "state")
                job_state = state.decode() if state else "gone"
                label = {
                    "queued": "waiting",
                    "checking": "in training",
                    "training": "in training",
                    "generating": "generating",
                    "delivering": "generating",
                    "done": "done, not picked yet",
                }.get(job_state, job_state)
            elif member.state == "picked":
                label = "picked, awaiting approval"
            elif member.state == "redo":
                label = "redo requested"
            rows.append((member, label))
        return rows

    async def export(self, team_id: str, *, max_bytes: int) -> list[bytes]:
        """ZIP part(s) of every chosen (and, with review on, approved) headshot at the kit's
        size, named after the member, plus profile versions when the logo is on and a contact
        sheet of the whole team. Raises :class:`NotFound` when nobody has picked one yet."""
        from headshots.generation.brand import (
            ExportEntry,
            export_headshot,
            safe_filename,
            team_zip,
            with_logo_mark,
        )
        from headshots.generation.provenance import Provenance

        team = await self.require(team_id)
        logo = await self.logo(team_id) if team.kit.logo_placement == "corner" else None
        chosen: list[tuple[str, bytes]] = []
        used: set[str] = set()
        for member in await self.members(team_id):
            if member.state != "approved":
                continue
            data = await self.favourite(team_id, member)
            if data is None:
                continue
            name = safe_filename(member.display_name, member.user_key.replace(":", "-"))
            if name in used:  # two "Alex"es stay two files
                name = f"{name}-{member.user_key.replace(':', '-')}"
            used.add(name)
            chosen.append((name, data))
        if not chosen:
            raise NotFound(
                "Nobody's headshot is ready for export yet (members pick a favourite first)."
            )

        def build() -> list[bytes]:
            entries = []
            for name, data in chosen:
                image = export_headshot(data, team.kit.aspect_ratio)
                profile = with_logo_mark(image, logo) if logo is not None else None
                entries.append(ExportEntry(name=name, image=image, profile=profile))
            return team_zip(
                entries,
                team_name=team.kit.team_name,
                max_bytes=max_bytes,
                # Signed like the results (C2PA) when the operator configured a certificate.
                provenance=Provenance.from_settings(self.settings),
            )

        # Pillow work on a whole team's photos: off the event loop of the bot that asked.
        return await asyncio.to_thread(build)

    async def is_admin(self, team_id: str, user_id: int) -> bool:
        team = await self.get(team_id)
        return team is not None and user_id in team.admins

    # --- deletion -------------------------------------------------------------------------
    async def delete_team(self, team_id: str) -> int:
        """The kit, members list and the team's copies of favourites; returns keys removed."""
        members = await self.members(team_id)
        removed = await self.store.delete_user(team_store_key(team_id))
        for member in members:
            await self.redis.srem(constants.user_teams_key(member.user_key), team_id)
        removed += int(
            await self.redis.delete(
                constants.team_key(team_id), constants.team_members_key(team_id)
            )
        )
        async for key in self.redis.scan_iter(match=f"{constants.team_key(team_id)}:*", count=500):
            removed += int(await self.redis.delete(key))
        return removed

    async def remove_member_everywhere(self, user_key: str) -> int:
        """A member's ``/delete``: their membership and favourite leave every team."""
        teams = [t.decode() for t in await self.redis.smembers(constants.user_teams_key(user_key))]
        for team_id in teams:
            member = await self.member(team_id, user_key)
            if member is not None and member.favourite_path:
                await self.store.delete(team_store_key(team_id), member.favourite_path)
            await self.redis.hdel(constants.team_members_key(team_id), user_key)
        await self.redis.delete(constants.user_teams_key(user_key))
        return len(teams)
