"""The session flow: what each command, button, select, modal and uploaded message does.

Interaction tokens live 15 minutes, so everything that lasts (the thread's tally, style form,
status message, results) is posted with the bot token into the thread; the interaction itself
only gets quick private answers.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import discord

from headshots.actions import Action
from headshots.bot.discord import selfies, texts, threads, views
from headshots.bot.discord.replies import reply, report_error
from headshots.bot.discord.session import Photo, Session, SessionStore, user_ref
from headshots.bot.discord.team import TeamFlow
from headshots.bot.labels import COLOUR_GRADE_LABELS
from headshots.errors import LimitReached, NotFound
from headshots.generation.presets import load_presets
from headshots.queue import waiting
from headshots.queue.client import JobInfo, QueueClient
from headshots.queue.contracts import ChatTarget, JobRequest, JobState, StyleChoice, UserRef
from headshots.queue.delivery.base import split_batches
from headshots.queue.progress import QueuePosition

if TYPE_CHECKING:
    from headshots.bot.discord.client import HeadshotsClient

logger = logging.getLogger(__name__)

_STYLE_FIELDS = {
    "bg": "background",
    "attire": "attire",
    "grade": "colour_grade",
    "aspect": "aspect_ratio",
}


def _ref(user: discord.abc.User) -> UserRef:
    return user_ref(user.id, user.display_name)


def queued_text(position: QueuePosition) -> str:
    # The workers' refreshes of a waiting job use the same words (see headshots.queue.waiting).
    return "⏳ " + waiting.queued_text(position)


def describe_job(info: JobInfo) -> str:
    where = info.request.target.thread_id or info.request.target.chat_id
    if info.state is JobState.QUEUED and info.position is not None:
        state = queued_text(info.position)
    elif info.state is JobState.FAILED:
        state = f"failed: {info.error or 'unknown error'}"
    else:
        state = info.state.value
    kind = info.request.kind.replace("_", " ")
    return f"Job `{info.job_id}` ({kind}): {state} Progress in <#{where}>."


class Flow:
    """Handlers of one :class:`HeadshotsClient`; all state lives in Redis (see SessionStore)."""

    def __init__(self, client: HeadshotsClient) -> None:
        self.client = client
        self.queue: QueueClient = client.queue
        self.settings = client.settings
        self.sessions = SessionStore(client.queue)
        # Serialises updates of one session inside this process (uploads can arrive together).
        self._locks: dict[str, asyncio.Lock] = {}
        self.team = TeamFlow(self)

    def _lock(self, session_id: str) -> asyncio.Lock:
        return self._locks.setdefault(session_id, asyncio.Lock())

    def _workspace(self, session: Session) -> discord.PartialMessageable:
        return self.client.get_partial_messageable(session.workspace_id, guild_id=session.guild_id)

    async def guarded(self, interaction: discord.Interaction, work: Awaitable[None]) -> None:
        """Run a component handler; errors go to the one error handler."""
        try:
            await work
        except Exception as exc:
            await report_error(interaction, exc)

    # --- commands -----------------------------------------------------------------------
    async def start(
        self, interaction: discord.Interaction, attachments: list[discord.Attachment]
    ) -> None:
        user = interaction.user
        ref = _ref(user)
        channel = interaction.channel
        if threads.is_thread(channel):
            assert isinstance(channel, discord.Thread)
            own = await self.sessions.at(ref, channel.id)
            if own is not None:
                text = texts.OWN_THREAD
            elif self.client.user is not None and channel.owner_id == self.client.user.id:
                text = texts.OTHER_PERSONS_THREAD
            else:
                text = (
                    "Run `/headshot start` in a text channel (not in a thread), or in a DM with me."
                )
            await reply(interaction, text)
            return
        if interaction.guild_id is not None:
            missing = threads.missing_permissions(interaction, self.settings)
            if missing:
                await reply(
                    interaction,
                    texts.missing_permissions_text(
                        missing, private=self.settings.discord_private_threads
                    ),
                )
                return
            if not isinstance(channel, discord.TextChannel):
                await reply(interaction, texts.NOT_A_TEXT_CHANNEL)
                return
        await interaction.response.defer(ephemeral=True, thinking=True)
        session = Session(
            session_id=secrets.token_hex(6),
            owner_id=user.id,
            upload_id=self.queue.new_upload_id(),
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id or user.id,
            pending=[Photo.of(a, message_id=0, position=n) for n, a in enumerate(attachments)],
        )
        await self.begin(interaction, ref, session)

    async def begin(self, interaction: discord.Interaction, ref: UserRef, session: Session) -> None:
        """Ask for consent once, then open ``session`` (the interaction is already deferred)."""
        user = interaction.user
        active = await self.queue.active_job(ref)
        if active is not None:
            await reply(
                interaction,
                "You already have a job in progress. "
                "Wait for its results or use `/headshot cancel`.\n" + describe_job(active),
            )
            return
        if not await self.sessions.has_consented(ref):
            await self.sessions.save(ref, session)
            await interaction.followup.send(
                texts.consent_text(self.settings),
                view=views.consent_view(user.id, session.session_id),
                ephemeral=True,
            )
            return
        async with self._lock(session.session_id):
            await self._open(interaction, ref, session)

    async def _open(self, interaction: discord.Interaction, ref: UserRef, session: Session) -> None:
        """Open the thread (or use the DM), post tally and style form, check waiting photos."""
        if session.team_id is not None:
            # A team member's session is private: their own private thread, or a DM.
            team_intro = await self.team.open_workspace(interaction, session)
            if team_intro is None:
                return
            intro = team_intro
        elif session.guild_id is not None:
            channel = interaction.channel
            if not isinstance(channel, discord.TextChannel):
                await interaction.edit_original_response(
                    content=texts.NOT_A_TEXT_CHANNEL, view=None
                )
                return
            try:
                thread = await threads.open_thread(
                    channel, user=interaction.user, settings=self.settings
                )
            except threads.WorkspaceRefused as exc:
                await interaction.edit_original_response(content=str(exc), view=None)
                return
            session.thread_id = thread.id
            intro = texts.THREAD_INTRO.format(mention=interaction.user.mention)
        else:
            intro = texts.DM_INTRO
        session.phase = "open"
        workspace = self._workspace(session)
        await workspace.send(intro)
        tally = await workspace.send(selfies.tally_text(session, None, self.settings))
        session.tally_message_id = tally.id
        pending, session.pending = session.pending, []
        await self.sessions.save(ref, session)
        if pending:
            await self._add_photos(ref, session, pending)
        form = await workspace.send(views.style_text(session), view=views.style_view(session))
        session.style_message_id = form.id
        await self.sessions.save(ref, session)
        if session.thread_id:
            where = f"<#{session.thread_id}>"
        elif interaction.guild_id is not None:
            where = "a DM from me"
        else:
            where = "this chat"
        await interaction.edit_original_response(
            content=f"Your headshot session is open in {where}: post selfies, pick a style.",
            view=None,
        )

    async def _add_photos(self, ref: UserRef, session: Session, photos: list[Photo]) -> None:
        analyzer = await self.client.analyzer()
        await selfies.add_photos(
            session,
            photos,
            user=ref,
            queue=self.queue,
            settings=self.settings,
            analyzer=analyzer,
            fetch=self.client.http.get_from_cdn,
        )
        await self.sessions.save(ref, session)
        verdict = selfies.set_verdict(session, self.settings, analyzer)
        if session.tally_message_id is not None:
            tally = self._workspace(session).get_partial_message(session.tally_message_id)
            await tally.edit(content=selfies.tally_text(session, verdict, self.settings))

    async def status(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        ref = _ref(interaction.user)
        info = await self.queue.active_job(ref)
        if info is not None:
            await reply(interaction, describe_job(info))
            return
        jobs = await self.queue.user_jobs(ref)
        if jobs:
            await reply(interaction, "No job running. Your latest: " + describe_job(jobs[-1]))
            return
        session = await self.sessions.at(ref, interaction.channel_id or 0)
        if session is not None and session.phase == "open":
            await reply(
                interaction, f"Collecting photos: {selfies.verdict_summary(session.verdicts)}."
            )
            return
        await reply(interaction, texts.NO_JOB)

    async def cancel(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        ref = _ref(interaction.user)
        try:
            info = await self.queue.cancel(ref)
        except NotFound:
            session = await self.sessions.at(ref, interaction.channel_id or 0)
            if session is not None and session.phase == "open":
                async with self._lock(session.session_id):
                    await self._cancel_session(ref, session)
                await reply(interaction, "Cancelled your session: nothing was submitted.")
                return
            await reply(interaction, texts.NO_JOB)
            return
        if info.state is JobState.CANCELLED:
            # A queued job never reaches a worker, so nobody else will update its status message.
            await self._edit_status(info, "❌ Cancelled. Nothing more will happen with this job.")
            await reply(interaction, "Cancelled your job.")
        else:
            await reply(
                interaction,
                "Stopping your job: it ends at its next step, and its status message will say so.",
            )

    async def _edit_status(self, info: JobInfo, text: str) -> None:
        target = info.request.target
        if target.status_message_id is None:
            return
        channel = self.client.get_partial_messageable(target.thread_id or target.chat_id)
        try:
            await channel.get_partial_message(target.status_message_id).edit(content=text)
        except discord.HTTPException:
            logger.warning("could not edit status message of job %s", info.job_id, exc_info=True)

    async def delete(self, interaction: discord.Interaction) -> None:
        await reply(interaction, texts.DELETE_PROMPT, view=views.forget_view(interaction.user.id))

    async def privacy(self, interaction: discord.Interaction) -> None:
        await reply(interaction, texts.privacy_text(self.settings))

    async def styles(self, interaction: discord.Interaction) -> None:
        lines = ["**Styles** (pick them in the form after `/headshot start`)"]
        for name, preset in load_presets().items():
            lines.append(
                f"**{preset.title}** (`{name}`): "
                f"backgrounds {', '.join(preset.backgrounds) or '-'}; "
                f"attire {', '.join(preset.attire) or '-'}"
            )
        lines.append("Colour grades: " + ", ".join(COLOUR_GRADE_LABELS.values()))
        lines.append("Shapes: 1:1, 4:5, 2:3 · up to 40 headshots · optional custom description")
        await reply(interaction, "\n".join(lines))

    # --- session components -------------------------------------------------------------
    async def session_button(
        self, interaction: discord.Interaction, op: str, owner_id: int, session_id: str
    ) -> None:
        if interaction.user.id != owner_id:
            await reply(interaction, texts.NOT_YOUR_SESSION)
            return
        ref = _ref(interaction.user)
        if op == "forget":
            report = await self.queue.forget(ref)
            await interaction.response.edit_message(
                content=(
                    f"Deleted {report.jobs} job(s), {report.blobs} file(s) "
                    f"and {report.keys} record(s). "
                    "Nothing of yours is left with me."
                ),
                view=None,
            )
            return
        if op == "keep":
            await interaction.response.edit_message(content=texts.DELETE_KEPT, view=None)
            return
        async with self._lock(session_id):
            session = await self.sessions.load(ref, session_id)
            if session is None or session.phase == "cancelled":
                await reply(interaction, texts.SESSION_EXPIRED)
                return
            if session.phase == "submitted":
                await reply(
                    interaction,
                    "This session is already submitted: "
                    "use `/headshot status` or `/headshot cancel`.",
                )
                return
            await self._session_op(interaction, ref, session, op)

    async def _session_op(
        self, interaction: discord.Interaction, ref: UserRef, session: Session, op: str
    ) -> None:
        if op == "consent":
            if session.phase != "consent":
                await reply(interaction, "Your session is already open.")
                return
            await self.sessions.record_consent(ref)
            await interaction.response.edit_message(
                content="Thanks! Opening your session…", view=None
            )
            await self._open(interaction, ref, session)
        elif op == "decline":
            await self.queue.clear_chat_state(ref, f"dc-session:{session.session_id}")
            await interaction.response.edit_message(content=texts.DECLINED, view=None)
        elif op in ("more", "back", "change"):
            session.page = "more" if op == "more" else "main"
            await self.sessions.save(ref, session)
            await interaction.response.edit_message(
                content=views.style_text(session), view=views.style_view(session)
            )
        elif op == "custom" and session.team_id is not None:
            await reply(interaction, texts.TEAM_STYLE_FIXED)
        elif op == "custom":
            await interaction.response.send_modal(
                views.CustomDescriptionModal(
                    session.owner_id, session.session_id, session.style.custom
                )
            )
        elif op == "next":
            ready, photos_line = await self._ready(session)
            if not ready:
                await reply(interaction, photos_line)
                return
            session.page = "summary"
            await self.sessions.save(ref, session)
            await interaction.response.edit_message(
                content=views.summary_text(session, photos_line), view=views.summary_view(session)
            )
        elif op == "confirm":
            await self._confirm(interaction, ref, session)
        elif op == "cancel":
            await self._cancel_session(ref, session)
            await interaction.response.edit_message(
                content="Cancelled: nothing was submitted and your photos are being deleted.",
                view=None,
            )
        else:  # a custom_id of a newer version of the bot, say
            await reply(interaction, texts.SESSION_EXPIRED)

    async def _ready(self, session: Session) -> tuple[bool, str]:
        """Whether the session can be submitted, and a line about its photos."""
        if session.mode == "new_style":
            return True, "Photos: your trained model from the earlier job (no new training)."
        analyzer = await self.client.analyzer()
        verdict = selfies.set_verdict(session, self.settings, analyzer)
        if not verdict.usable:
            return False, (
                f"Not enough usable photos yet ({verdict.summary()}). "
                f"Post at least {self.settings.min_selfies} good selfies in this thread first."
            )
        return True, f"Photos: {len(verdict.accepted)} accepted."

    async def _cancel_session(self, ref: UserRef, session: Session) -> None:
        session.phase = "cancelled"
        if session.mode == "full":
            for verdict in session.verdicts:
                if verdict.get("accepted"):
                    await self.queue.remove_selfie(ref, session.upload_id, int(verdict["index"]))
        await self.sessions.save(ref, session)

    async def _confirm(
        self, interaction: discord.Interaction, ref: UserRef, session: Session
    ) -> None:
        ready, photos_line = await self._ready(session)
        if not ready:
            await reply(interaction, photos_line)
            return
        await interaction.response.edit_message(
            content=views.summary_text(session, photos_line).split("\n\nConfirm")[0]
            + "\n\n**Confirmed.**",
            view=None,
        )
        if session.mode == "full":
            # Photos dropped by the set check (another person, duplicates) must not train.
            verdict = selfies.set_verdict(session, self.settings, await self.client.analyzer())
            for index in verdict.rejected:
                if any(v.get("index") == index and v.get("accepted") for v in session.verdicts):
                    await self.queue.remove_selfie(ref, session.upload_id, index)
        request = JobRequest(
            user=ref,
            target=ChatTarget(
                platform="discord",
                chat_id=session.channel_id,
                thread_id=session.thread_id,
                user_id=session.owner_id,
            ),
            upload_id=session.upload_id,
            style=session.style,
            kind=session.mode,
            lora_job_id=session.lora_job_id,
            nonce=session.session_id if session.mode == "new_style" else "",
        )
        job_id: str | None = None
        if session.team_id is not None:
            try:
                request = await self.team.member_request(session, request)
            except NotFound as exc:  # the admin deleted the team meanwhile
                await self._workspace(session).send(f"⚠️ {exc}")
            else:
                job_id = await self._submit(session, request)
        else:
            job_id = await self._submit(session, request)
        if job_id is not None:
            session.phase = "submitted"
            session.job_id = job_id
        else:
            session.page = "main"
        await self.sessions.save(ref, session)
        if job_id is None and session.style_message_id is not None:
            # Give the form back so the user can try again once the limit allows.
            form = self._workspace(session).get_partial_message(session.style_message_id)
            await form.edit(content=views.style_text(session), view=views.style_view(session))

    async def _submit(self, session: Session, request: JobRequest) -> str | None:
        return await self.submit_to(self._workspace(session), request)

    async def submit_to(
        self, workspace: discord.PartialMessageable, request: JobRequest
    ) -> str | None:
        """Post the status message, submit with its id; the job id, or None after a limit."""
        status = await workspace.send("⏳ Queued: finding your place in line…")
        request = request.model_copy(
            update={"target": request.target.model_copy(update={"status_message_id": status.id})}
        )
        try:
            if request.team_id is not None:
                # Counted before submitting (the core's rule); idempotent per job id.
                await self.team.record_job(request)
            try:
                submission = await self.queue.submit(request)
            except LimitReached:
                if request.team_id is not None:  # refused: the member keeps their run
                    await self.team.teams.unrecord_job(
                        request.team_id, request.user.key, request.job_id()
                    )
                raise
        except (LimitReached, NotFound) as exc:
            await status.edit(content="⚠️ " + str(exc).replace("/cancel", "/headshot cancel"))
            return None
        await self.queue.set_status_message(submission.job_id, status.id)
        info = await self.queue.job(submission.job_id)
        if not submission.created:
            await status.edit(content="This job is already queued: see its status message above.")
        elif info is not None and info.state is JobState.QUEUED:
            # The worker may already have moved it on (and edited this message): don't undo that.
            await status.edit(content=queued_text(submission.position))
        return submission.job_id

    async def session_select(
        self,
        interaction: discord.Interaction,
        op: str,
        owner_id: int,
        session_id: str,
        values: list[str],
    ) -> None:
        if interaction.user.id != owner_id:
            await reply(interaction, texts.NOT_YOUR_SESSION)
            return
        ref = _ref(interaction.user)
        async with self._lock(session_id):
            session = await self.sessions.load(ref, session_id)
            if session is None or session.phase not in ("open",):
                await reply(interaction, texts.SESSION_EXPIRED)
                return
            if session.team_id is not None and op != "class":
                await reply(interaction, texts.TEAM_STYLE_FIXED)
                return
            value = values[0] if values else views.DEFAULT
            choice: dict[str, Any] = session.style.model_dump()
            if op == "preset":
                if value not in load_presets():
                    await reply(interaction, "Unknown style: pick one from the list.")
                    return
                # Backgrounds and attire are per style: the old keys mean nothing in the new one.
                choice.update(preset=value, background=None, attire=None)
            elif op == "class":
                choice["subject_class"] = value
            elif op == "count":
                choice["count"] = int(value)
            elif op in _STYLE_FIELDS:
                choice[_STYLE_FIELDS[op]] = None if value == views.DEFAULT else value
            session.style = StyleChoice.model_validate(choice)
            await self.sessions.save(ref, session)
            await interaction.response.edit_message(
                content=views.style_text(session), view=views.style_view(session)
            )

    async def custom_submitted(
        self, interaction: discord.Interaction, owner_id: int, session_id: str, text: str | None
    ) -> None:
        if interaction.user.id != owner_id:
            await reply(interaction, texts.NOT_YOUR_SESSION)
            return
        ref = _ref(interaction.user)
        async with self._lock(session_id):
            session = await self.sessions.load(ref, session_id)
            if session is None or session.phase != "open":
                await reply(interaction, texts.SESSION_EXPIRED)
                return
            session.style = session.style.model_copy(
                update={"custom": StyleChoice(custom=text).custom}
            )
            await self.sessions.save(ref, session)
            if interaction.message is not None:
                await interaction.response.edit_message(
                    content=views.style_text(session), view=views.style_view(session)
                )
            else:
                await reply(interaction, "Custom description saved.")

    # --- result buttons (posted by the worker) ------------------------------------------
    async def result_action(self, interaction: discord.Interaction, action: Action) -> None:
        info = await self.queue.job(action.job_id)
        if info is None:
            await reply(interaction, "That job no longer exists (its data expired or was deleted).")
            return
        owner = info.request.user
        if owner.platform != "discord" or owner.user_id != interaction.user.id:
            await reply(interaction, texts.NOT_YOUR_JOB)
            return
        ref = _ref(interaction.user)
        target = info.request.target
        if action.name == "delete":
            await reply(
                interaction, texts.DELETE_PROMPT, view=views.forget_view(interaction.user.id)
            )
        elif action.name == "pick":
            await self.team.pick(interaction, info, action)
        elif action.name == "new_style":
            session = Session(
                session_id=secrets.token_hex(6),
                owner_id=interaction.user.id,
                upload_id=info.request.upload_id,
                mode="new_style",
                lora_job_id=info.job_id,
                guild_id=interaction.guild_id,
                channel_id=target.chat_id,
                thread_id=target.thread_id,
                phase="open",
                style=info.request.style.model_copy(update={"seed": None}),
            )
            await reply(
                interaction, "Pick the new style in the form below: no new training needed."
            )
            form = await self._workspace(session).send(
                views.style_text(session), view=views.style_view(session)
            )
            session.style_message_id = form.id
            await self.sessions.save(ref, session)
        elif action.name == "more_like":
            await reply(interaction, f"Making more like #{action.rank}: progress below.")
            session = Session(
                session_id=secrets.token_hex(6),
                owner_id=interaction.user.id,
                upload_id=info.request.upload_id,
                guild_id=interaction.guild_id,
                channel_id=target.chat_id,
                thread_id=target.thread_id,
            )
            await self._submit(
                session,
                JobRequest(
                    user=ref,
                    target=ChatTarget(
                        platform="discord",
                        chat_id=target.chat_id,
                        thread_id=target.thread_id,
                        user_id=ref.user_id,
                    ),
                    upload_id=info.request.upload_id,
                    style=info.request.style,
                    kind="more_like",
                    lora_job_id=info.job_id,
                    like_rank=action.rank,
                    nonce=secrets.token_hex(4),
                ),
            )
        elif action.name == "originals":
            await interaction.response.defer(ephemeral=True, thinking=True)
            sent = await self._send_originals(ref, info)
            await reply(
                interaction,
                f"Sent {sent} original file(s) above."
                if sent
                else "No result files are left for this job.",
            )

    async def _send_originals(self, ref: UserRef, info: JobInfo) -> int:
        from headshots.queue.delivery.base import OutgoingImage

        images: list[OutgoingImage] = []
        for result in sorted(info.results, key=lambda r: int(r.get("rank", 0))):
            path = str(result["path"])
            try:
                data = await self.queue.read_blob(ref, path)
            except NotFound:
                continue
            images.append(
                OutgoingImage(
                    filename=f"headshot-{int(result.get('rank', 0)):02d}{_suffix(path)}", data=data
                )
            )
        target = info.request.target
        channel = self.client.get_partial_messageable(target.thread_id or target.chat_id)
        for batch in split_batches(images, 10, 10 * 1024 * 1024 - 64 * 1024):
            files = [discord.File(_bytes_io(i.data), filename=i.filename) for i in batch]
            await channel.send(content="Originals, uncompressed:", files=files)
        return len(images)

    # --- uploads as messages in the session thread / DM ---------------------------------
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or not message.attachments:
            return
        ref = _ref(message.author)
        session = await self.sessions.at(ref, message.channel.id)
        if session is None:
            if isinstance(message.channel, discord.DMChannel):
                await message.channel.send(texts.NO_UPLOAD_HERE)
            return
        if session.phase != "open" or session.mode != "full":
            await message.channel.send(
                texts.ALREADY_SUBMITTED if session.phase == "submitted" else texts.NO_UPLOAD_HERE
            )
            return
        photos = [
            Photo.of(a, message_id=message.id, position=n)
            for n, a in enumerate(message.attachments)
        ]
        async with self._lock(session.session_id):
            fresh = await self.sessions.load(ref, session.session_id)
            if fresh is None or fresh.phase != "open":
                return
            await self._add_photos(ref, fresh, photos)


def _suffix(path: str) -> str:
    dot = path.rfind(".")
    return path[dot:] if dot > path.rfind("/") else ".png"


def _bytes_io(data: bytes) -> Any:
    import io

    return io.BytesIO(data)
