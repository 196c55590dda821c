"""Team mode, the same on every front end: the admin's look, picks, review, redo, export.

An admin (as the platform counts them: the front end checks it live and says so) builds the
team's look in their own draft (:mod:`.kit`) and saves it; the preview with a Join button goes
to the team's place. Members then run the single-person conversation in a private place with
``team_id`` set (:class:`.flow.Flow`): they are asked only about themselves, their job is built
from the kit (``BrandKit.style_for``). Only the headshot a member picks is posted to the team;
with review on, admins approve it or ask for a redo (the next seeds, the member's own model).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from headshots.bot.conversation import kit as kit_steps
from headshots.bot.conversation import texts
from headshots.bot.conversation.flow import Flow
from headshots.bot.conversation.screens import Button, Question, Screen, Surface, Turn
from headshots.bot.conversation.state import Place, Store
from headshots.errors import NotFound, UserError
from headshots.model_family import reference_hints
from headshots.queue.client import JobInfo
from headshots.queue.contracts import ChatTarget, UserRef
from headshots.queue.teams import Member, Team, TeamStore

logger = logging.getLogger(__name__)


def member_user(member: Member, platform: str) -> UserRef:
    """The :class:`UserRef` of a member (keys are ``tg:<id>`` / ``dc:<id>``)."""
    return UserRef(
        platform=platform,  # type: ignore[arg-type]
        user_id=int(member.user_key.split(":", 1)[1]),
        display_name=member.display_name,
    )


def delete_team_screen() -> Screen:
    yes = Button("team_delete", "🗑 Yes, delete the team", "y", "danger")
    no = Button("team_delete", "Keep it", "n")
    return Screen(texts.TEAM_DELETE_CONFIRM, buttons=[yes, no], private=True)


class TeamFlow:
    def __init__(self, flow: Flow, *, kit_uploads: bool = False) -> None:
        """``kit_uploads``: files sent to the editor's place reach :meth:`kit_image` (Slack's
        DM), so the form offers to take the logo and reference photo there. Elsewhere a form
        takes them with its command (Discord's ``/team setup logo: reference:``)."""
        self.flow = flow
        self.services = flow.services
        self.kit_uploads = kit_uploads

    @property
    def teams(self) -> TeamStore:
        return self.services.teams

    @property
    def store(self) -> Store:
        return self.services.conversations

    # --- the admin's draft ---------------------------------------------------------------
    async def draft(self, admin: UserRef, scope: str) -> kit_steps.KitDraft | None:
        raw = await self.store.raw(admin, scope)
        return kit_steps.KitDraft.from_json(raw) if raw else None

    async def kit_start(
        self,
        turn: Turn,
        team_id: str,
        place: Place,
        *,
        anchor: int | None = None,
        name: str = "",
        logo: bytes | None = None,
        reference: bytes | None = None,
    ) -> None:
        """Open a draft of the team's look (the saved one's, or the defaults); ``logo`` and
        ``reference``: checked images that came with the command."""
        team = await self.teams.get(team_id)
        async with self.store.lock(turn.user, turn.scope):
            draft = kit_steps.start_draft(
                team.kit if team else None,
                has_logo=bool(team and team.has_logo),
                has_reference=bool(team and team.has_reference),
                hints=reference_hints(self.flow.settings),
                name=name,
            )
            draft.chat_id, draft.thread_id = place.chat_id, place.thread_id
            draft.anchor_message_id = anchor
            if logo is not None:
                kit_steps.take_logo(draft, logo)
            if reference is not None and draft.hints:
                kit_steps.take_reference(draft, reference)
            draft.step = "name"
            await self._show(turn, draft)

    async def _show(
        self, turn: Turn, draft: kit_steps.KitDraft, *, message_id: int | None = None
    ) -> None:
        """Ask the draft's current question (or show the form), remember it as the menu."""
        screen = self.kit_screen(draft, form=turn.surface.form, uploads=self.kit_uploads)
        if screen.asks_text:
            message_id = None  # a typed answer replies to its own question
        draft.menu_message_id = await turn.surface.show(
            screen, message_id=message_id, reply_to=draft.anchor_message_id
        )
        draft.asked_at = time.time()
        await self.store.put(turn.user, turn.scope, draft.to_json())

    @staticmethod
    def kit_screen(draft: kit_steps.KitDraft, *, form: bool, uploads: bool = False) -> Screen:
        if form:
            return TeamFlow._kit_form(draft, uploads=uploads)
        step = draft.step
        text = kit_steps.QUESTIONS[step]
        if step == "confirm":
            text = "\n".join(kit_steps.draft_lines(draft)) + "\n\n" + text
        options = tuple(kit_steps.options(step, draft))
        questions = [Question("kit", step, text, options)] if options else []
        return Screen(text, questions=questions, asks_text=not options)

    @staticmethod
    def _kit_form(draft: kit_steps.KitDraft, *, uploads: bool) -> Screen:
        """One page of the look as a form; with ``uploads`` it also offers to take the logo
        and the reference photo as files sent to the editor's place."""
        pages = kit_steps.form_pages(draft)
        draft.page = max(0, min(draft.page, len(pages) - 1))
        group = pages[draft.page]
        questions = [
            Question("kit", step, kit_steps.QUESTIONS[step], options, current)
            for step in group
            for options, current in [
                (tuple(kit_steps.options(step, draft)), kit_steps.current(step, draft))
            ]
            if options  # the reference and its hint exist only where they can be used
        ]
        files = {"new": "a new one", "keep": "the current one", "none": "none"}
        lines = [
            texts.KIT_HEADING,
            *kit_steps.draft_lines(draft),
            f"Logo file: {files[draft.logo]}",
        ]
        if draft.hints:
            lines.append(f"Reference photo: {files[draft.reference]}")
            if not uploads and group == kit_steps.GROUPS[2]:
                lines.append(texts.KIT_REFERENCE_BY_COMMAND)
        # One page button (Discord's row holds five): the next page, from the last the first.
        more = draft.page < len(pages) - 1
        buttons = [
            Button("more", "More options") if more else Button("back", "Back"),
            Button("name", "Team name"),
            Button("colours", "Colours"),
        ]
        if uploads:
            buttons.append(Button("logo", "Send a logo"))
            if draft.hints:
                buttons.append(Button("reference", "Send a reference photo"))
            if draft.step in kit_steps.IMAGE_STEPS:
                lines.append(texts.KIT_SEND_FILE[draft.step])
        buttons += [
            Button("save", "Save", tone="success"),
            Button("cancel", "Cancel", tone="danger"),
        ]
        return Screen("\n".join(lines), questions=questions, buttons=buttons, private=True)

    async def kit_press(
        self, turn: Turn, step: str, value: str, *, team_id: str, message_id: int
    ) -> None:
        """An answer at ``step`` (a button, or a select of the form), or a form's button."""
        surface, admin, scope = turn
        async with self.store.lock(admin, scope):
            draft = await self.draft(admin, scope)
            if draft is None:
                await surface.answer(texts.KIT_EXPIRED)
                return
            if message_id != draft.menu_message_id or (not surface.form and step != draft.step):
                await surface.answer(texts.STALE_MENU)
                return
            if step in ("confirm", "form") and value in ("save", "cancel", "restart"):
                await self._finish(turn, draft, value, team_id, message_id)
                return
            if step == "form" and value in kit_steps.IMAGE_STEPS:  # "send it here" (Slack)
                draft.step = value
            elif step == "form":  # the form's pages: the next one, or back to the first
                draft.page = draft.page + 1 if value == "more" else 0
            else:
                labels = {o.value: o.label for o in kit_steps.options(step, draft)}
                try:
                    kit_steps.choose(draft, step, value)
                except ValueError:
                    await surface.answer(texts.STALE_MENU)
                    return
                if surface.form:  # a form waits for a file only after its "Send a ..." button
                    draft.step = kit_steps.FORM_STEP
                if draft.step in kit_steps.TEXT_STEPS and not surface.form:
                    # The question that takes a typed answer needs its own (reply-to) message.
                    chosen = f"{kit_steps.QUESTIONS[step]} {labels[value]}"
                    await surface.show(Screen(chosen), message_id=message_id)
            await self._show(turn, draft, message_id=message_id)

    async def kit_text(
        self, turn: Turn, text: str, *, step: str | None = None, anchor: int | None = None
    ) -> None:
        """A typed answer (team name, hex colours): from a reply, or a form of the front end."""
        surface, admin, scope = turn
        async with self.store.lock(admin, scope):
            draft = await self.draft(admin, scope)
            if draft is None:
                await surface.answer(texts.KIT_EXPIRED)
                return
            try:
                kit_steps.take_text(draft, text, step)
            except UserError as exc:
                await surface.answer(str(exc))
                return
            if anchor is not None:
                draft.anchor_message_id = anchor
            message_id = draft.menu_message_id if surface.form else None
            await self._show(turn, draft, message_id=message_id)

    async def kit_image(self, turn: Turn, png: bytes, *, anchor: int) -> None:
        """The logo or reference portrait the draft asks for, checked by the front end
        (:meth:`image_step` says which check)."""
        surface, admin, scope = turn
        async with self.store.lock(admin, scope):
            draft = await self.draft(admin, scope)
            if draft is None or draft.step not in kit_steps.IMAGE_STEPS:
                return
            step = draft.step
            if step == "logo":
                kit_steps.take_logo(draft, png)
            else:
                kit_steps.take_reference(draft, png)
            received = texts.LOGO_RECEIVED if step == "logo" else texts.REFERENCE_RECEIVED
            if surface.form:  # the form itself shows the new file
                draft.step = kit_steps.FORM_STEP
                await surface.answer(received)
                await self._show(turn, draft, message_id=draft.menu_message_id)
                return
            if draft.menu_message_id is not None:
                text = kit_steps.QUESTIONS[step] + " " + received
                await surface.show(Screen(text), message_id=draft.menu_message_id)
            draft.anchor_message_id = anchor
            await self._show(turn, draft)

    async def checked_image(self, step: str, fetch: Callable[[], Awaitable[bytes]]) -> bytes:
        """The image for kit ``step`` fetched and checked under the selfie checks' limiter: a
        logo's bounded decode, or a reference's (one person, the output check). Raises
        :class:`UserError` with the reply."""
        faces = self.services.faces
        return await (faces.logo(fetch) if step == "logo" else faces.reference(fetch))

    async def image_step(self, admin: UserRef, scope: str) -> str | None:
        """The image the admin's draft in ``scope`` waits for (``logo``, ``reference``), if any."""
        draft = await self.draft(admin, scope)
        return draft.step if draft is not None and draft.step in kit_steps.IMAGE_STEPS else None

    async def _finish(
        self, turn: Turn, draft: kit_steps.KitDraft, choice: str, team_id: str, message_id: int
    ) -> None:
        surface, admin, scope = turn
        if choice == "cancel":
            await self.store.put(admin, scope, None)
            await surface.show(Screen(texts.KIT_CANCELLED, private=True), message_id=message_id)
            return
        if choice == "restart":
            fresh = kit_steps.start_draft(
                kit_steps.to_kit(draft),
                has_logo=draft.had_logo,
                has_reference=draft.had_reference,
                hints=draft.hints,
            )
            for kept in ("editing", "chat_id", "thread_id", "anchor_message_id"):
                setattr(fresh, kept, getattr(draft, kept))
            await self._show(turn, fresh, message_id=message_id)
            return
        await surface.working()
        kit = kit_steps.to_kit(draft)
        target = ChatTarget(
            platform=surface.platform, chat_id=draft.chat_id, thread_id=draft.thread_id,
            user_id=admin.user_id,
        )  # fmt: skip
        existed = await self.teams.get(team_id) is not None
        await self.teams.save_kit(team_id, surface.platform, kit, target, admin.user_id)
        if draft.logo == "new":
            await self.teams.set_logo(team_id, draft.logo_bytes)
        elif draft.logo == "none":
            await self.teams.set_logo(team_id, None)
        if draft.reference == "new":
            await self.teams.set_reference(team_id, draft.reference_bytes)
        elif draft.reference == "none":
            await self.teams.set_reference(team_id, None)
        # The draft (and its Save button) goes only once the group has the Join post: a bot
        # that dies in between leaves the admin a Save that still works (found by the soak).
        team = await self.teams.require(team_id)
        await self.post_kit(self.flow.front.surface(team.target), team, updated=existed)
        await self.store.put(admin, scope, None)
        text = "\n".join(kit_steps.draft_lines(draft)) + "\n\n" + texts.KIT_SAVED
        await surface.show(Screen(text, private=True), message_id=message_id)
        logger.info("team %s: look saved by %s", team_id, admin.key)

    async def post_kit(
        self,
        surface: Surface,
        team: Team,
        *,
        updated: bool = False,
        private: bool = False,
        reply_to: int | None = None,
    ) -> None:
        """The look's preview picture with its description and the Join button."""
        from headshots.style.brand import render_kit_preview

        logo = await self.teams.logo(team.team_id) if team.has_logo else None
        reference = await self.flow.kit_reference(team)
        preview = await self.services.faces.run(
            render_kit_preview, team.kit.look(), logo, reference
        )
        lines = kit_steps.look_lines(team.kit, logo=logo is not None)
        join = [Button("join", "👋 Join", team.team_id, "success")]
        buttons = [] if private else [*join, Button("kit_change", "Change look (admins)")]
        text = texts.kit_caption(team.kit.team_name, lines, updated=updated)
        screen = Screen(text, [], buttons, preview, "team-kit.jpg", private=private)
        await surface.show(screen, reply_to=reply_to)

    # --- members' picks and the admins' review ------------------------------------------------
    async def pick(self, turn: Turn, info: JobInfo, rank: int) -> None:
        """Post the member's chosen headshot to the team (with review buttons if the kit asks)."""
        surface, user, _ = turn
        from headshots.style.brand import safe_filename

        team_id = info.request.team_id
        result = next((r for r in info.results if int(r.get("rank", 0)) == rank), None)
        if team_id is None or result is None:
            await surface.answer(texts.NOT_A_TEAM_RUN if team_id is None else texts.RESULT_GONE)
            return
        before = await self.teams.member(team_id, user.key)
        if before is not None and (before.favourite_job, before.favourite_rank) == (
            info.job_id,
            rank,
        ):
            await surface.answer(texts.ALREADY_PICKED.format(rank=rank))
            return
        await surface.working()
        try:
            image = await self.services.client.read_blob(user, str(result["path"]))
            member = await self.teams.pick_favourite(team_id, user.key, info.job_id, rank, image)
            team = await self.teams.require(team_id)
        except NotFound as exc:
            await surface.answer(str(exc))
            return
        review = team.kit.review
        value = f"{user.user_id}:{info.job_id}:{rank}"
        approve = Button("review", "✅ Approve", "ok:" + value, "success")
        buttons = [approve, Button("review", "↻ Redo", "redo:" + value)]
        name = safe_filename(member.display_name, f"member-{user.user_id}") + ".png"
        caption = texts.pick_caption(member.display_name, team.kit.team_name, review=review)
        screen = Screen(caption, buttons=buttons if review else [], image=image, image_name=name)
        await self.flow.front.surface(team.target).show(screen)
        logger.info("team %s: %s picked #%d of %s", team_id, user.key, rank, info.job_id)
        await surface.show(Screen(texts.picked(rank, review=review), private=True))

    async def review(
        self, surface: Surface, admin_name: str, team_id: str, value: str, *, message_id: int
    ) -> None:
        """Approve a posted pick, or ask for a redo (``value``: ``ok|redo:member:job[:rank]``)."""
        verdict, member_id, job_id, *rank = value.split(":")
        team = await self.teams.get(team_id)
        member = await self.teams.member(team_id, f"{team_id[:2]}:{member_id}")
        current = member is not None and (member.favourite_job, member.state) == (job_id, "picked")
        if (
            team is None
            or member is None
            or not current
            or rank[:1] not in ([], [str(member.favourite_rank)])
        ):
            await surface.answer(texts.ALREADY_REVIEWED)
            return
        await surface.working()
        approve = verdict == "ok"
        await self.teams.review(team_id, member.user_key, approve=approve)
        caption = texts.pick_caption(member.display_name, team.kit.team_name, review=False)
        outcome = (texts.APPROVED if approve else texts.REDO_REQUESTED).format(admin=admin_name)
        await surface.show(Screen(f"{caption}\n{outcome}", is_caption=True), message_id=message_id)
        if approve:
            await self._tell(team, member, texts.APPROVED_MEMBER)
            return
        problem = await self.redo(team, member)
        if problem is not None:
            await surface.answer(texts.REDO_NOT_STARTED + problem)

    async def redo(self, team: Team, member: Member) -> str | None:
        """A new run on the member's trained model with the kit's next seeds; why not, if not."""
        if not member.job_ids or member.private_target is None:
            return "this member has no earlier run to redo."
        last = await self.services.client.job(member.job_ids[-1])
        if last is None:
            return "their trained model has expired: they can join again with selfies."
        # A redo of a redo still reuses the model of the member's one training run.
        lora_job_id = last.request.lora_job_id if last.request.kind != "full" else last.job_id
        features = last.request.style
        person = member_user(member, team.platform)
        style = await self.flow.team_style(
            team, person, member.subject_class or features.subject_class, features.attributes
        )
        style = style.model_copy(update={"seed": team.kit.seed + 1000 * len(member.job_ids)})
        await self._tell(team, member, texts.REDO_MEMBER.format(team_name=team.kit.team_name))
        target = member.private_target
        surface = self.flow.front.surface(target)
        job_id = await self.flow.submit(
            surface, person, Place(target.chat_id, target.thread_id), style=style,
            upload_id=last.request.upload_id, kind="new_style", lora_job_id=lora_job_id,
            team_id=team.team_id,
        )  # fmt: skip
        return None if job_id else "they already have a job running; try again later."

    async def _tell(self, team: Team, member: Member, text: str) -> None:
        if member.private_target is None:
            return
        try:
            await self.flow.front.surface(member.private_target).show(Screen(text))
        except Exception:  # they blocked the bot or left: the review stands anyway
            logger.info("member %s not told: %s", member.user_key, text, exc_info=True)

    # --- status, export, delete -----------------------------------------------------------
    async def status(self, surface: Surface, team: Team, user: UserRef, *, admin: bool) -> None:
        progress = await self.teams.progress(team.team_id)
        counts = Counter(label for _, label in progress)
        own = next((label for m, label in progress if m.user_key == user.key), "not joined yet")
        rows = [(m.display_name, label) for m, label in progress] if admin else None
        await surface.answer(texts.team_status(team.kit.team_name, dict(counts), own, rows))

    async def export(self, private: Surface, team: Team, *, max_bytes: int) -> bool:
        """Send the export ZIP part(s) to the admin's private place; ``False`` when empty."""
        from headshots.style.brand import safe_filename

        try:
            parts = await self.teams.export(team.team_id, max_bytes=max_bytes)
        except NotFound:
            return False
        base = safe_filename(team.kit.team_name, team.team_id) + "-headshots"
        for number, part in enumerate(parts, start=1):
            suffix = f"-part{number}" if len(parts) > 1 else ""
            caption = texts.export_caption(team.kit.team_name, number, len(parts))
            await private.send_files([(f"{base}{suffix}.zip", part)], caption)
        logger.info("team %s: export of %d part(s) sent", team.team_id, len(parts))
        return True
