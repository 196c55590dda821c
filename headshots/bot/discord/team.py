"""Team mode on Discord: one brand kit per server, members' private sessions, favourites.

- A server admin (live check: **Manage Server**, or the role ``discord_team_admin_role``, by
  name or id) runs ``/headshot team setup`` in a text channel. That channel becomes the team's
  channel (``Team.target``): the kit preview with a Join button, and later each member's chosen
  headshot, are posted there with the bot token. Using the channel itself (not a thread in it)
  keeps one obvious place, and members' private threads hang off the same channel.
- Join (button or ``/headshot team join``) opens the member's own session: a private thread in
  the team channel (or a DM when Discord refuses the thread), reusing the single-user flow for
  consent, selfie checks and the tally. The style form only asks man / woman / person; on
  Confirm the job is built from the kit (``BrandKit.style_for``), counted against the member's
  quota (``TeamStore.record_job``) and submitted with ``team_id``.
- The worker puts "Pick #N" buttons under a team member's results; a pick copies that one image
  into the team (``TeamStore.pick_favourite``) and posts it in the team channel, with Approve /
  Redo for admins when the kit asks for review.
- Privacy: nothing a member uploads leaves their private thread or DM; the team channel and the
  admin only ever get the one picture the member picked. (Discord lets members holding
  **Manage Threads** open private threads; a member who minds uses the DM: run
  ``/headshot team join`` where the bot may not create private threads.)

Redis: the kit and members live in :class:`TeamStore`; the kit an admin is still editing is
their own chat state ``dc-kit:<guild id>`` (their ``/headshot delete`` removes it).
"""

from __future__ import annotations

import asyncio
import io
import logging
import secrets
from typing import TYPE_CHECKING

import discord

from headshots.bot.discord import team_views, texts, threads
from headshots.bot.discord.replies import reply
from headshots.bot.discord.session import Session, user_ref
from headshots.errors import LimitReached, NotFound, UserError
from headshots.generation.brand import normalise_logo
from headshots.generation.presets import load_presets
from headshots.queue.client import JobInfo
from headshots.queue.contracts import ChatTarget, JobRequest, UserRef
from headshots.queue.teams import BrandKit, KitBackground, Team, TeamStore, team_id_for

if TYPE_CHECKING:
    from headshots.actions import Action
    from headshots.bot.discord.flow import Flow

logger = logging.getLogger(__name__)

#: Discord's default upload limit when the interaction does not say.
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
#: Room for the multipart envelope around a file of an upload.
UPLOAD_OVERHEAD = 64 * 1024
MAX_LOGO_UPLOAD_BYTES = 8 * 1024 * 1024


def _ref(user: discord.abc.User) -> UserRef:
    return user_ref(user.id, user.display_name)


def _draft_scope(guild_id: int) -> str:
    return f"dc-kit:{guild_id}"


def _draft_logo_path(guild_id: int) -> str:
    return f"team-drafts/{guild_id}/logo.png"


def is_team_admin(interaction: discord.Interaction, role: str | None) -> bool:
    """Whether the user may change the kit now: Manage Server, or the configured team role."""
    user = interaction.user
    if interaction.guild_id is None or not isinstance(user, discord.Member):
        return False
    # The interaction carries the member's resolved permissions: no member cache needed.
    permissions = interaction.permissions
    if permissions.manage_guild or permissions.administrator:
        return True
    if role:
        wanted = role.strip().lstrip("@").lower()
        # Role names need the guild's role cache (the ``guilds`` intent fills it); ids too,
        # because discord.py resolves a member's role ids through that cache.
        return any(str(r.id) == wanted or r.name.lower() == wanted for r in user.roles)
    return False


def _preview(kit: BrandKit, logo: bytes | None) -> bytes:
    from headshots.generation.brand import render_kit_preview

    return render_kit_preview(kit.look(), logo)


def _file(data: bytes, filename: str) -> discord.File:
    return discord.File(io.BytesIO(data), filename=filename)


class TeamFlow:
    """Team-mode handlers of one bot; the session machinery is the single-user :class:`Flow`."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.client = flow.client
        self.queue = flow.queue
        self.settings = flow.settings
        self.teams = TeamStore(flow.queue.redis, flow.queue.store, flow.settings)

    def _is_admin(self, interaction: discord.Interaction) -> bool:
        return is_team_admin(interaction, self.settings.discord_team_admin_role)

    async def _refuse_non_admin(self, interaction: discord.Interaction) -> bool:
        """Tell a non-admin they can't do this; True when refused."""
        if self._is_admin(interaction):
            return False
        await reply(interaction, texts.not_team_admin_text(self.settings.discord_team_admin_role))
        return True

    async def _team_here(self, interaction: discord.Interaction) -> Team | None:
        """The team of this server, or None after telling the user why not."""
        if interaction.guild_id is None:
            await reply(interaction, texts.TEAM_SERVER_ONLY)
            return None
        team = await self.teams.get(team_id_for("discord", interaction.guild_id))
        if team is None:
            await reply(interaction, texts.NO_TEAM)
        return team

    async def _admin_team_here(self, interaction: discord.Interaction) -> Team | None:
        """The server's team when the user is a team admin; None after saying why not."""
        if interaction.guild_id is None:
            await reply(interaction, texts.TEAM_SERVER_ONLY)
            return None
        if await self._refuse_non_admin(interaction):
            return None
        return await self._team_here(interaction)

    # --- the kit --------------------------------------------------------------------------
    async def setup(
        self, interaction: discord.Interaction, logo: discord.Attachment | None
    ) -> None:
        if interaction.guild_id is None:
            await reply(interaction, texts.TEAM_SERVER_ONLY)
            return
        if await self._refuse_non_admin(interaction):
            return
        channel = interaction.channel
        if not isinstance(channel, discord.TextChannel):
            await reply(interaction, texts.TEAM_SETUP_CHANNEL)
            return
        granted = interaction.app_permissions
        missing = [n for n in ("send_messages", "attach_files") if not getattr(granted, n)]
        if missing:
            await reply(interaction, texts.missing_permissions_text(missing, private=True))
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild_id = interaction.guild_id
        team = await self.teams.get(team_id_for("discord", guild_id))
        guild_name = interaction.guild.name if interaction.guild and interaction.guild.name else ""
        draft = team_views.KitDraft(
            guild_id=guild_id,
            channel_id=channel.id,
            kit=team.kit if team else BrandKit(team_name=(guild_name or "Our team")[:80]),
            has_logo=team.has_logo if team else False,
        )
        ref = _ref(interaction.user)
        if logo is not None:
            # Attachment URLs expire: fetch and convert the logo now, park it until Save.
            draft.logo_path = _draft_logo_path(guild_id)
            png = await self._fetch_logo(logo)
            await self.queue.store.put(ref.key, draft.logo_path, png, self.settings.selfie_ttl_s)
        await self._save_draft(ref, draft)
        await interaction.followup.send(
            team_views.kit_text(draft),
            view=team_views.kit_view(draft, interaction.user.id),
            ephemeral=True,
        )

    async def _fetch_logo(self, logo: discord.Attachment) -> bytes:
        if logo.size > MAX_LOGO_UPLOAD_BYTES:
            raise UserError(
                f"That logo is too large: attach one under {MAX_LOGO_UPLOAD_BYTES >> 20} MB."
            )
        if logo.content_type and not logo.content_type.startswith("image/"):
            raise UserError("The logo must be an image: attach a PNG or JPEG.")
        data = await self.client.http.get_from_cdn(logo.url)
        return await asyncio.to_thread(normalise_logo, data)

    async def _load_draft(self, ref: UserRef, guild_id: int) -> team_views.KitDraft | None:
        raw = await self.queue.load_chat_state(ref, _draft_scope(guild_id))
        return team_views.KitDraft.model_validate(raw) if raw else None

    async def _save_draft(self, ref: UserRef, draft: team_views.KitDraft) -> None:
        await self.queue.save_chat_state(
            ref, _draft_scope(draft.guild_id), draft.model_dump(mode="json")
        )

    async def _drop_draft(self, ref: UserRef, draft: team_views.KitDraft) -> None:
        if draft.logo_path:
            await self.queue.store.delete(ref.key, draft.logo_path)
        await self.queue.clear_chat_state(ref, _draft_scope(draft.guild_id))

    async def _editing(
        self, interaction: discord.Interaction, admin_id: int, guild_id: int
    ) -> team_views.KitDraft | None:
        """The draft behind an editor component, or None after telling the user why not."""
        if interaction.user.id != admin_id:
            await reply(interaction, texts.KIT_NOT_YOURS)
            return None
        draft = await self._load_draft(_ref(interaction.user), guild_id)
        if draft is None:
            await reply(interaction, texts.KIT_EXPIRED)
        return draft

    async def _show_editor(
        self, interaction: discord.Interaction, draft: team_views.KitDraft
    ) -> None:
        await self._save_draft(_ref(interaction.user), draft)
        await interaction.response.edit_message(
            content=team_views.kit_text(draft),
            view=team_views.kit_view(draft, interaction.user.id),
        )

    async def kit_button(
        self, interaction: discord.Interaction, op: str, admin_id: int, guild_id: int
    ) -> None:
        draft = await self._editing(interaction, admin_id, guild_id)
        if draft is None:
            return
        if op in ("more", "back"):
            draft.page = "more" if op == "more" else "main"
            await self._show_editor(interaction, draft)
        elif op == "name":
            await interaction.response.send_modal(
                team_views.TeamNameModal(admin_id, guild_id, draft.kit.team_name)
            )
        elif op == "colours":
            background = draft.kit.background
            kind = background.kind if background.kind in ("colour", "gradient") else "colour"
            await interaction.response.send_modal(
                team_views.BrandColoursModal(admin_id, guild_id, kind, background.colours)
            )
        elif op == "cancel":
            await self._drop_draft(_ref(interaction.user), draft)
            await interaction.response.edit_message(content=texts.KIT_CANCELLED, view=None)
        elif op == "save":
            await self._save_kit(interaction, draft)

    async def kit_select(
        self,
        interaction: discord.Interaction,
        op: str,
        admin_id: int,
        guild_id: int,
        values: list[str],
    ) -> None:
        draft = await self._editing(interaction, admin_id, guild_id)
        if draft is None:
            return
        value = values[0] if values else team_views.DEFAULT
        fields = draft.kit.model_dump()
        if op == "preset":
            if value not in load_presets():
                await reply(interaction, "Unknown style: pick one from the list.")
                return
            fields.update(preset=value, attire=None)  # attire keys are per style
        elif op == "bg":
            if value in ("colour", "gradient"):
                # The hex colours come from a modal; the kit changes when it is submitted.
                await interaction.response.send_modal(
                    team_views.BrandColoursModal(
                        admin_id, guild_id, value, draft.kit.background.colours
                    )
                )
                return
            fields["background"] = {"kind": value, "colours": []}
        elif op in ("attire", "grade"):
            fields["attire" if op == "attire" else "colour_grade"] = (
                None if value == team_views.DEFAULT else value
            )
        elif op == "aspect":
            fields["aspect_ratio"] = value
        elif op == "count":
            fields["count"] = int(value)
        elif op == "logo":
            fields["logo_placement"] = value
        elif op == "review":
            fields["review"] = value == "on"
        draft.kit = BrandKit.model_validate(fields)
        await self._show_editor(interaction, draft)

    async def kit_name_submitted(
        self, interaction: discord.Interaction, admin_id: int, guild_id: int, name: str
    ) -> None:
        draft = await self._editing(interaction, admin_id, guild_id)
        if draft is None:
            return
        if name:
            draft.kit = draft.kit.model_copy(update={"team_name": name[:80]})
        await self._show_editor(interaction, draft)

    async def kit_colours_submitted(
        self,
        interaction: discord.Interaction,
        admin_id: int,
        guild_id: int,
        kind: str,
        colours: list[str],
    ) -> None:
        draft = await self._editing(interaction, admin_id, guild_id)
        if draft is None:
            return
        # normalise_hex / KitBackground raise UserError with a message ready for the admin.
        background = KitBackground.model_validate({"kind": kind, "colours": colours})
        draft.kit = draft.kit.model_copy(update={"background": background})
        await self._show_editor(interaction, draft)

    async def _save_kit(self, interaction: discord.Interaction, draft: team_views.KitDraft) -> None:
        if await self._refuse_non_admin(interaction):  # rights may have changed since setup
            return
        await interaction.response.defer()
        ref = _ref(interaction.user)
        team_id = team_id_for("discord", draft.guild_id)
        existed = await self.teams.get(team_id) is not None
        target = ChatTarget(
            platform="discord", chat_id=draft.channel_id, user_id=interaction.user.id
        )
        team = await self.teams.save_kit(team_id, "discord", draft.kit, target, ref.user_id)
        if draft.logo_path:
            try:
                await self.teams.set_logo(
                    team_id, await self.queue.store.get(ref.key, draft.logo_path)
                )
            except NotFound:
                logger.warning("the draft logo of team %s expired before saving", team_id)
        logo = await self.teams.logo(team_id)
        preview = await asyncio.to_thread(_preview, team.kit, logo)
        channel = self.client.get_partial_messageable(draft.channel_id, guild_id=draft.guild_id)
        heading = "updated its team kit" if existed else "has a team headshot kit"
        await channel.send(
            content=(
                f"**{team.kit.team_name}** {heading}.\n{team_views.describe_kit(team.kit)}\n"
                "Press **Join** for your headshot in this look: your selfies stay in a private "
                "thread, and only the picture you pick is posted here."
            ),
            file=_file(preview, "team-kit.jpg"),
            view=team_views.join_view(draft.guild_id),
            allowed_mentions=discord.AllowedMentions.none(),
        )
        await self._drop_draft(ref, draft)
        await interaction.edit_original_response(
            content=f"Saved. The preview and a Join button are in <#{draft.channel_id}>.",
            view=None,
        )

    async def show(self, interaction: discord.Interaction) -> None:
        team = await self._team_here(interaction)
        if team is None:
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        preview = await asyncio.to_thread(_preview, team.kit, await self.teams.logo(team.team_id))
        await interaction.followup.send(
            f"**{team.kit.team_name}**, posted in <#{team.target.chat_id}>\n"
            f"{team_views.describe_kit(team.kit)}\n"
            f"Review: {'on' if team.kit.review else 'off'}",
            file=_file(preview, "team-kit.jpg"),
            ephemeral=True,
        )

    # --- members ----------------------------------------------------------------------------
    async def join(self, interaction: discord.Interaction) -> None:
        team = await self._team_here(interaction)
        if team is None:
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        ref = _ref(interaction.user)
        try:
            member = await self.teams.join(team.team_id, ref.key, interaction.user.display_name)
        except LimitReached as exc:
            await reply(interaction, str(exc))
            return
        session = Session(
            session_id=secrets.token_hex(6),
            owner_id=interaction.user.id,
            upload_id=self.queue.new_upload_id(),
            guild_id=interaction.guild_id,
            channel_id=team.target.chat_id,
            team_id=team.team_id,
            team_look=f"**{team.kit.team_name}** · {team_views.describe_kit(team.kit)}",
            style=team.kit.style_for(member.subject_class or "person"),
        )
        await self.flow.begin(interaction, ref, session)

    async def open_workspace(
        self, interaction: discord.Interaction, session: Session
    ) -> str | None:
        """Open the member's private thread (or DM); the intro to post, None if impossible."""
        assert session.team_id is not None
        team = await self.teams.get(session.team_id)
        name = team.kit.team_name if team else "your team"
        channel = await self._text_channel(session.channel_id)
        if channel is not None:
            try:
                thread = await threads.open_thread(
                    channel, user=interaction.user, settings=self.settings, private=True
                )
            except threads.WorkspaceRefused:
                logger.info("no private thread in %s: using a DM", session.channel_id)
            else:
                session.thread_id = thread.id
                return texts.TEAM_THREAD_INTRO.format(mention=interaction.user.mention, team=name)
        try:
            dm = await interaction.user.create_dm()
        except discord.HTTPException:
            await interaction.edit_original_response(content=texts.NO_PRIVATE_PLACE, view=None)
            return None
        session.guild_id = None
        session.channel_id = dm.id
        session.thread_id = None
        return texts.TEAM_DM_INTRO.format(team=name)

    async def _text_channel(self, channel_id: int) -> discord.TextChannel | None:
        channel = self.client.get_channel(channel_id)
        if channel is None:
            try:
                channel = await self.client.fetch_channel(channel_id)
            except discord.HTTPException:
                logger.warning("cannot see team channel %s", channel_id, exc_info=True)
                return None
        return channel if isinstance(channel, discord.TextChannel) else None

    async def member_request(self, session: Session, request: JobRequest) -> JobRequest:
        """The member's job: the kit's current style for their class, marked with the team."""
        assert session.team_id is not None
        team = await self.teams.require(session.team_id)
        return request.model_copy(
            update={
                "style": team.kit.style_for(session.style.subject_class),
                "team_id": team.team_id,
                "kind": "full",
            }
        )

    async def record_job(self, request: JobRequest) -> None:
        """Count the job against the member's quota and remember where to reach them."""
        assert request.team_id is not None
        member = await self.teams.record_job(request.team_id, request.user.key, request.job_id())
        member.private_target = request.target.model_copy(
            update={"status_message_id": None, "reply_to_message_id": None}
        )
        member.subject_class = request.style.subject_class
        await self.teams.save_member(request.team_id, member)

    # --- favourites and review -------------------------------------------------------------
    async def pick(self, interaction: discord.Interaction, info: JobInfo, action: Action) -> None:
        """Copy the owner's chosen headshot into the team and post it in the team channel."""
        team_id = info.request.team_id
        if team_id is None:
            await reply(interaction, texts.NOT_A_TEAM_RUN)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        team = await self.teams.get(team_id)
        if team is None:
            await reply(interaction, texts.NO_TEAM)
            return
        ref = _ref(interaction.user)
        result = next((r for r in info.results if int(r.get("rank", 0)) == action.rank), None)
        try:
            if result is None:
                raise NotFound(texts.RESULT_GONE)
            data = await self.queue.read_blob(ref, str(result["path"]))
        except NotFound:
            await reply(interaction, texts.RESULT_GONE)
            return
        rank = int(result["rank"])
        member = await self.teams.pick_favourite(team_id, ref.key, info.job_id, rank, data)
        channel_id = team.target.thread_id or team.target.chat_id
        view = (
            team_views.review_view(interaction.user.id, info.job_id, rank)
            if team.kit.review
            else None
        )
        from headshots.generation.brand import safe_filename

        filename = safe_filename(member.display_name, f"member-{interaction.user.id}") + ".png"
        channel = self.client.get_partial_messageable(channel_id, guild_id=interaction.guild_id)
        await channel.send(
            content=texts.favourite_text(member.display_name, review=team.kit.review),
            file=_file(data, filename),
            allowed_mentions=discord.AllowedMentions.none(),
            view=view if view is not None else discord.utils.MISSING,
        )
        waiting = " An admin will approve it." if team.kit.review else ""
        await reply(interaction, f"Posted #{rank} in <#{channel_id}>.{waiting}")

    async def review(
        self, interaction: discord.Interaction, op: str, member_id: int, job_id: str, rank: int
    ) -> None:
        if await self._refuse_non_admin(interaction):
            return
        team = await self._team_here(interaction)
        if team is None:
            return
        member_key = UserRef(platform="discord", user_id=member_id).key
        member = await self.teams.member(team.team_id, member_key)
        if member is None or (member.favourite_job, member.favourite_rank) != (job_id, rank):
            await reply(
                interaction,
                "This is no longer this member's pick: review their newest post instead.",
            )
            return
        admin = interaction.user.display_name
        before = interaction.message.content if interaction.message else ""
        if op == "ok":
            await self.teams.review(team.team_id, member_key, approve=True)
            await interaction.response.edit_message(
                content=f"{before}\n✅ Approved by {admin}.", view=None
            )
            return
        await interaction.response.defer()
        await self.teams.review(team.team_id, member_key, approve=False)
        try:
            await self._redo(team, member_id)
        except (LimitReached, NotFound) as exc:
            await reply(interaction, f"I couldn't start a redo: {exc}")
            return
        await interaction.edit_original_response(
            content=f"{before}\n🔁 Redo requested by {admin}.", view=None
        )

    async def _redo(self, team: Team, member_id: int) -> str:
        """Submit a new-style job on the member's trained model with the next seed; its id."""
        member_key = UserRef(platform="discord", user_id=member_id).key
        member = await self.teams.member(team.team_id, member_key)
        if member is None or member.private_target is None or not member.job_ids:
            raise NotFound("this member has no earlier run to redo.")
        runs = [info for info in [await self.queue.job(j) for j in member.job_ids] if info]
        trained = [info for info in runs if info.request.kind == "full"]
        if not trained:
            raise NotFound("their trained model has expired: they can join again with selfies.")
        last = trained[-1]
        redos = sum(1 for info in runs if info.request.kind == "new_style")
        style = team.kit.style_for(member.subject_class or last.request.style.subject_class)
        request = JobRequest(
            user=UserRef(platform="discord", user_id=member_id, display_name=member.display_name),
            target=member.private_target,
            upload_id=last.request.upload_id,
            style=style.model_copy(update={"seed": team.kit.seed + 1000 * (redos + 1)}),
            kind="new_style",
            lora_job_id=last.job_id,
            team_id=team.team_id,
            nonce=secrets.token_hex(4),
        )
        # Count the run first: past the member's quota nothing is posted to them.
        await self.record_job(request)
        target = member.private_target
        workspace = self.client.get_partial_messageable(target.thread_id or target.chat_id)
        await workspace.send(texts.redo_notice(team.kit.team_name))
        job_id = await self.flow.submit_to(workspace, request)
        if job_id is None:
            raise LimitReached("the member already has a job running; try again later.")
        return job_id

    # --- admin commands ------------------------------------------------------------------
    async def status(self, interaction: discord.Interaction) -> None:
        team = await self._team_here(interaction)
        if team is None:
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        rows = await self.teams.progress(team.team_id)
        lines = [f"**{team.kit.team_name}**: {len(rows)} member(s)"]
        if self._is_admin(interaction):
            lines.extend(f"- {member.display_name}: {label}" for member, label in rows)
        else:
            own = _ref(interaction.user).key
            mine = [label for member, label in rows if member.user_key == own]
            lines.append(f"You: {mine[0]}" if mine else "You haven't joined yet.")
            lines.append("Only admins see everyone's progress.")
        await reply(interaction, "\n".join(lines))

    async def export(self, interaction: discord.Interaction) -> None:
        team = await self._admin_team_here(interaction)
        if team is None:
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        limit = interaction.filesize_limit or DEFAULT_UPLOAD_LIMIT
        try:
            parts = await self.teams.export(team.team_id, max_bytes=limit - UPLOAD_OVERHEAD)
        except NotFound as exc:
            await reply(interaction, str(exc))
            return
        from headshots.generation.brand import safe_filename

        stem = safe_filename(team.kit.team_name, "team") + "-headshots"
        try:
            dm = await interaction.user.create_dm()
            for number, part in enumerate(parts, start=1):
                suffix = f"-part{number}" if len(parts) > 1 else ""
                await dm.send(
                    f"**{team.kit.team_name}** headshots"
                    + (f", part {number} of {len(parts)}" if len(parts) > 1 else ""),
                    file=_file(part, f"{stem}{suffix}.zip"),
                )
        except discord.HTTPException:
            logger.info("could not DM the export to %s", interaction.user.id, exc_info=True)
            await reply(interaction, texts.EXPORT_DM_FAILED)
            return
        await reply(interaction, f"Sent the export to your DMs ({len(parts)} ZIP file(s)).")

    async def delete(self, interaction: discord.Interaction) -> None:
        guild_id = interaction.guild_id
        team = await self._admin_team_here(interaction)
        if team is None or guild_id is None:
            return
        await reply(
            interaction,
            texts.TEAM_DELETE_PROMPT,
            view=team_views.delete_team_view(interaction.user.id, guild_id),
        )

    async def delete_button(
        self, interaction: discord.Interaction, op: str, admin_id: int, guild_id: int
    ) -> None:
        if interaction.user.id != admin_id:
            await reply(interaction, texts.not_team_admin_text(None))
            return
        if op == "keep":
            await interaction.response.edit_message(content=texts.TEAM_DELETE_KEPT, view=None)
            return
        if await self._refuse_non_admin(interaction):
            return
        removed = await self.teams.delete_team(team_id_for("discord", guild_id))
        await interaction.response.edit_message(
            content=(
                f"Deleted the team ({removed} record(s) and file(s)). Members keep their own "
                "photos and results until they run `/headshot delete`."
            ),
            view=None,
        )
