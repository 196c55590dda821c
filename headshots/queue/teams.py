"""Team mode: one brand kit per group or server, its members, their favourites — in Redis.

A team is a Telegram group or a Discord server. Its admin sets a :class:`BrandKit`; every
member's job is built from the kit (:meth:`BrandKit.style_for`), so the whole team's headshots
share prompt, negative prompt, seed schedule, steps, cfg, crop and grade: only the member's own
LoRA (and the man/woman/person class they pick) differ. Members send selfies privately; only the
favourite each member picks is copied into the team's namespace and posted in the group.

Keys (see :mod:`headshots.queue.constants`): the team hash, its members hash, and a per-user set
of teams so that a member's ``/delete`` also removes their photo from every team. They live and
expire together (every write extends them all, the logo and the reference portrait), and a
``/delete`` also scans the platform's teams, so nothing of a person is left in a team whatever
their TTLs did. Writes of a person's records check their delete epoch
(:mod:`headshots.queue.guarded`): a handler that was running when they deleted cannot write them
back.
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
from redis.exceptions import WatchError

from headshots.errors import LimitReached, NotFound, UserError
from headshots.queue import constants, guarded
from headshots.queue.contracts import (
    PLATFORM_SHORT,
    AspectRatio,
    ChatTarget,
    ControlHint,
    PersonAttributes,
    Platform,
    ReferenceChoice,
    StyleChoice,
    SubjectClass,
    UserRef,
)
from headshots.queue.store import BlobStore
from headshots.settings import Settings

if TYPE_CHECKING:
    from headshots.style.brand import KitLook

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
    #: How every member is framed like the kit's reference portrait (``reference.png`` in the
    #: team's store); ``None``: no reference photo.
    reference_hint: ControlHint | None = None

    def look(self) -> KitLook:
        """What the preview image shows of this kit."""
        from headshots.style.brand import KitLook
        from headshots.style.presets import load_presets

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
        self,
        subject_class: SubjectClass,
        attributes: PersonAttributes | None = None,
        reference: ReferenceChoice | None = None,
    ) -> StyleChoice:
        """The :class:`StyleChoice` of every member's job: the class and the person's own
        features (eyes, glasses, hair) are theirs, everything else is the kit's.

        ``reference``: the kit's reference photo as copied into the member's own store (the
        same bytes for everyone, so every member gets the same control image).
        """
        from headshots.style.brand import background_phrase

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
            reference=reference,
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
    #: The kit's reference portrait is stored (``BrandKit.reference_hint`` says how it frames).
    has_reference: bool = False


def team_id_for(platform: Platform, chat_or_guild_id: int) -> str:
    """``tg-100123`` / ``dc987``: safe in deep links (``start=team_<id>``) and Redis keys."""
    return f"{PLATFORM_SHORT[platform]}{chat_or_guild_id}".replace("-", "m")


def team_store_key(team_id: str) -> str:
    """The pseudo user key the team's blobs (logo, favourites) live under in the blob store."""
    return f"team:{team_id}"


LOGO_PATH = "logo.png"
REFERENCE_PATH = "reference.png"
#: The team's own files that live as long as the kit (favourites keep the results' retention).
KIT_FILES = (LOGO_PATH, REFERENCE_PATH)


def favourite_path(member_key: str) -> str:
    return f"favourites/{member_key.replace(':', '_')}.png"


# A member record, written only while its person was not deleted since the writer read them:
# KEYS[1] delete marker, KEYS[2] members hash, KEYS[3] the person's set of teams;
# ARGV[1] epoch seen, ARGV[2] member key, ARGV[3] record, ARGV[4] ttl, ARGV[5] team id,
# ARGV[6] "1" when the record may be created (a join), else it must still be there
_WRITE_MEMBER = (
    guarded.UNLESS_FORGOTTEN
    + """
if ARGV[6] ~= '1' and redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[4])
return 1
"""
)


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
        fields = {
            "platform": platform,
            "kit": kit.model_dump_json(),
            "target": target.model_dump_json(),
            "admins": json.dumps(sorted(admins)),
            "updated": str(time.time()),
        }
        admin = UserRef(platform=platform, user_id=admin_id).key
        pairs = [part for pair in fields.items() for part in pair]
        if not await guarded.write_for(self.redis, admin, "HSET", key, *pairs, ttl_s=self._ttl):
            raise NotFound("Your data was deleted meanwhile: run the team setup again.")
        await self._touch(team_id)
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
            has_reference=raw.get("reference") == "1",
        )

    async def require(self, team_id: str) -> Team:
        team = await self.get(team_id)
        if team is None:
            raise NotFound("This team has no brand kit yet: a team admin has to set it up first.")
        return team

    async def set_logo(self, team_id: str, png: bytes | None) -> None:
        await self._set_file(team_id, "logo", LOGO_PATH, png)

    async def logo(self, team_id: str) -> bytes | None:
        return await self._file(team_id, LOGO_PATH)

    async def set_reference(self, team_id: str, png: bytes | None) -> None:
        """Store (or with ``None`` remove) the kit's reference portrait: checked like a
        member's reference (one person, the output check) before it gets here."""
        await self._set_file(team_id, "reference", REFERENCE_PATH, png)

    async def reference(self, team_id: str) -> bytes | None:
        return await self._file(team_id, REFERENCE_PATH)

    async def _set_file(self, team_id: str, flag: str, path: str, png: bytes | None) -> None:
        key = constants.team_key(team_id)
        if png is None:
            await self.store.delete(team_store_key(team_id), path)
            await self.redis.hset(key, flag, "0")
            return
        await self.store.put(team_store_key(team_id), path, png, self._ttl)
        await self.redis.hset(key, flag, "1")
        await self._touch(team_id)

    async def _file(self, team_id: str, path: str) -> bytes | None:
        try:
            return await self.store.get(team_store_key(team_id), path)
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
        # Not stored when they deleted their data meanwhile (the next step says "join first").
        await self._write_member(team_id, member, create=True)
        return member

    async def member(self, team_id: str, user_key: str) -> Member | None:
        key = constants.team_members_key(team_id)
        raw = await guarded.read_seen(self.redis, user_key, key, "HGET", user_key)
        return Member.model_validate_json(raw) if isinstance(raw, bytes | str) and raw else None

    async def members(self, team_id: str) -> list[Member]:
        raw = await self.redis.hgetall(constants.team_members_key(team_id))
        found = [Member.model_validate_json(v) for v in raw.values()]
        return sorted(found, key=lambda m: m.joined_at)

    async def save_member(self, team_id: str, member: Member) -> bool:
        """Update a member's record; False (nothing written) when it is gone: they deleted
        their data, or the team was deleted, since it was read."""
        return await self._write_member(team_id, member, create=False)

    async def _write_member(self, team_id: str, member: Member, *, create: bool) -> bool:
        marker, epoch = await guarded.seen(self.redis, member.user_key)
        written = await self.redis.eval(  # type: ignore[misc]
            _WRITE_MEMBER,
            3,
            marker,
            constants.team_members_key(team_id),
            constants.user_teams_key(member.user_key),
            epoch,
            member.user_key,
            member.model_dump_json(),
            str(self._ttl),
            team_id,
            "1" if create else "0",
        )
        if not written:
            logger.info("team %s: %s is gone, record not written", team_id, member.user_key)
            return False
        await self._touch(team_id)
        return True

    async def _touch(self, team_id: str) -> None:
        """Give every key of the team the same TTL again: kit, members, each member's set of
        teams, the logo and the reference. (Favourites keep the results' retention: they are
        results.)"""
        members = await self.redis.hkeys(constants.team_members_key(team_id))
        async with self.redis.pipeline(transaction=False) as pipe:
            # EXPIRE never creates a key: a record deleted meanwhile stays deleted.
            pipe.expire(constants.team_key(team_id), self._ttl)
            pipe.expire(constants.team_members_key(team_id), self._ttl)
            for member_key in members:
                name = member_key.decode() if isinstance(member_key, bytes) else str(member_key)
                pipe.expire(constants.user_teams_key(name), self._ttl)
            await pipe.execute()
        for path in KIT_FILES:
            await self.store.expire(team_store_key(team_id), path, self._ttl)

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
        if not await self.save_member(team_id, member):
            raise NotFound("Join the team first (the Join button in the team's chat).")
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
        team = await self.require(team_id)
        await self.store.put(team_store_key(team_id), path, image, self.settings.results_ttl_s)
        member.favourite_job, member.favourite_rank, member.favourite_path = job_id, rank, path
        member.state = "picked" if team.kit.review else "approved"
        # The copy first, then the record: a delete that came in between refuses the record,
        # and the copy goes again; a later one finds both (the path is fixed per member).
        if not await self.save_member(team_id, member):
            await self.store.delete(team_store_key(team_id), path)
            raise NotFound("That headshot is not part of your team run.")
        return member

    async def review(self, team_id: str, user_key: str, *, approve: bool) -> Member:
        member = await self.member(team_id, user_key)
        if member is None or member.favourite_path is None:
            raise NotFound("That member has not picked a favourite yet.")
        member.state = "approved" if approve else "redo"
        if not await self.save_member(team_id, member):
            raise NotFound("That member is no longer in the team.")
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
        from headshots.generation.provenance import Provenance
        from headshots.style.brand import (
            ExportEntry,
            export_headshot,
            safe_filename,
            team_zip,
            with_logo_mark,
        )

        team = await self.require(team_id)
        logo = await self.logo(team_id) if team.kit.logo_placement == "corner" else None
        chosen: list[tuple[str, bytes]] = []
        for member in await self.members(team_id):
            if member.state != "approved":
                continue
            data = await self.favourite(team_id, member)
            if data is None:
                continue
            # team_zip numbers a second "Alex" (alex-2): file names stay unique.
            chosen.append((safe_filename(member.display_name, member.user_key), data))
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

    async def remove_person_everywhere(self, user_key: str) -> int:
        """A person's ``/delete``: they leave every team they joined or run (member record,
        favourite, admin entry); returns in how many teams something of theirs was.

        The teams are found by their own set of teams *and* by scanning the teams of their
        platform: that set may be older than a team's records (a Redis that lost writes, or
        records written before their TTLs moved together).
        """
        team_ids = {
            t.decode() if isinstance(t, bytes) else str(t)
            for t in await self.redis.smembers(constants.user_teams_key(user_key))
        }
        platform_short = user_key.partition(":")[0]
        pattern = constants.team_pattern(platform_short)
        async for raw_key in self.redis.scan_iter(match=pattern, count=500):
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            team_ids.add(constants.parse_team_key(key))
        found = 0
        for team_id in sorted(team_ids):
            found += await self._remove_person(team_id, user_key)
        await self.redis.delete(constants.user_teams_key(user_key))
        return found

    async def _remove_person(self, team_id: str, user_key: str) -> int:
        members_key = constants.team_members_key(team_id)
        raw = await self.redis.hget(members_key, user_key)
        paths = {favourite_path(user_key)}  # fixed per member: gone even without the record
        if raw:
            recorded = Member.model_validate_json(raw).favourite_path
            paths |= {recorded} if recorded else set()
        removed = False
        for path in sorted(paths):
            removed |= await self.store.delete(team_store_key(team_id), path)
        removed |= bool(await self.redis.hdel(members_key, user_key))
        removed |= await self._remove_admin(team_id, user_key)
        return int(removed)

    async def _remove_admin(self, team_id: str, user_key: str) -> bool:
        """Take the person out of the team's admins (a transaction: another admin may be
        saving the kit at the same moment)."""
        _, _, id_text = user_key.partition(":")
        if not id_text.lstrip("-").isdigit():
            return False
        user_id, key = int(id_text), constants.team_key(team_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.hget(key, "admins")
                    admins = list(json.loads(raw)) if raw else []
                    if user_id not in admins:
                        return False
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(key, "admins", json.dumps([a for a in admins if a != user_id]))
                    await pipe.execute()
                    return True
                except WatchError:
                    continue
