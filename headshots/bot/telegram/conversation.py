"""The conversation: /start and consent, "Done", the style menus, Confirm and submission.

A team member's session (``/start team_<id>``, see :mod:`team`) runs through the same steps with
its own state: consent (unless given already), joining the team, the same selfie upload, then
only the man/woman/person question and a summary of the team's look; the job carries the team.
"""

from __future__ import annotations

import logging
import secrets

from telegram import Bot, CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.ext import ContextTypes

from headshots.bot.labels import CLASS_LABELS
from headshots.bot.telegram import keyboards, messaging, style_flow, team_kit, texts
from headshots.bot.telegram.services import BotServices
from headshots.bot.telegram.state import ChatState, Place, user_ref
from headshots.bot.telegram.upload import UploadHandlers
from headshots.errors import LimitReached, NotFound, UserError
from headshots.queue.contracts import ChatTarget, JobRequest, JobState, StyleChoice, UserRef
from headshots.queue.progress import average_duration
from headshots.queue.teams import Team

logger = logging.getLogger(__name__)


class ConversationHandlers:
    def __init__(self, services: BotServices, upload: UploadHandlers) -> None:
        self.services = services
        self.upload = upload

    # --- /start, consent, resume ------------------------------------------------------
    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Explain what happens and ask for consent, or offer to continue an upload."""
        message = update.effective_message
        if message is None or message.from_user is None:
            return
        if messaging.posted_anonymously(message):
            await message.reply_text(texts.ANONYMOUS_SENDER, do_quote=True)
            return
        user = user_ref(message.from_user)
        place = Place.of_message(message)
        if not place.is_group:
            # A plain /start is the user's own session, also after a team's join link.
            await self.services.conversations.switch_session(user, place.chat_id, None)
        await self.begin(message, user, place)

    async def start_team(self, message: Message, user: UserRef, team_id: str) -> None:
        """Open ``team_id``'s session in this private chat (the team's join link)."""
        team = await self.services.teams.get(team_id)
        if team is None:
            await message.reply_text(texts.TEAM_LINK_STALE)
            return
        active = await self.services.client.active_job(user)
        if active is not None:  # one job at a time: their chat stays in the session it was in
            await message.reply_text(texts.ALREADY_RUNNING_PREFIX + texts.job_status(active))
            return
        await self.services.conversations.switch_session(user, message.chat_id, team_id)
        await self.begin(message, user, Place.team_session(message.chat_id, team_id), team=team)

    async def begin(
        self, message: Message, user: UserRef, place: Place, *, team: Team | None = None
    ) -> None:
        """Ask for consent (or offer to continue an upload) in ``place``'s session."""
        conversations = self.services.conversations
        async with conversations.lock(user, place):
            active = await self.services.client.active_job(user)
            if active is not None:
                await message.reply_text(
                    texts.ALREADY_RUNNING_PREFIX + texts.job_status(active), do_quote=place.is_group
                )
                return
            state = await conversations.load(user, place)
            if (
                state is not None
                and state.stage in ("collecting", "style", "custom", "confirm")
                and (state.stored or state.stage != "collecting")
            ):
                state.resume_offered = True
                sent = await message.reply_text(
                    texts.resume(len(state.stored)),
                    reply_markup=keyboards.resume(user.user_id, len(state.stored)),
                    do_quote=place.is_group,
                )
                state.menu_message_id = sent.message_id
                await conversations.save(user, place, state)
                return
            if state is not None and state.stage == "collecting":
                await self._drop_photos(user, state)
            fresh = ChatState(
                stage="consent",
                anchor_message_id=message.message_id,
                last_job_id=state.last_job_id if state else None,
                team_id=team.team_id if team else None,
            )
            if team is not None and await self._consented(user, message, state):
                # Agreed already (in their own session or an earlier visit): straight to photos.
                await self._start_collecting(message.get_bot(), user, place, fresh)
                return
            sent = await message.reply_text(
                await self._intro(fresh),
                reply_markup=keyboards.consent(user.user_id),
                do_quote=place.is_group,
            )
            fresh.menu_message_id = sent.message_id
            await conversations.save(user, place, fresh)

    async def _consented(
        self, user: UserRef, message: Message, team_state: ChatState | None
    ) -> bool:
        if team_state is not None and team_state.consent:
            return True
        own = await self.services.conversations.load(user, Place.of_message(message))
        return own is not None and own.consent

    async def _intro(self, state: ChatState) -> str:
        """The explanation with the consent question (the team's variant in a team session)."""
        eta = await self._typical_duration()
        if state.team_id:
            team = await self.services.teams.require(state.team_id)
            return texts.team_start(team.kit.team_name, self.services.settings, eta)
        return texts.start(self.services.settings, eta)

    async def _typical_duration(self) -> float:
        redis = self.services.client.redis
        return await average_duration(redis, "train") + await average_duration(redis, "generate")

    async def _drop_photos(self, user: UserRef, state: ChatState) -> None:
        if state.upload_id is not None and state.kind == "full":
            for index in state.stored:
                await self.services.client.remove_selfie(user, state.upload_id, index)

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Route a press of one of our buttons (consent, resume, done, style, summary)."""
        query = update.callback_query
        if query is None or query.data is None or not isinstance(query.message, Message):
            if query is not None:
                await query.answer(texts.STALE_MENU)
            return
        callback = keyboards.decode(query.data)
        if callback is None:
            await query.answer(texts.STALE_MENU)
            return
        if callback.user_id != query.from_user.id:
            await query.answer(texts.NOT_YOUR_BUTTON, show_alert=True)
            return
        user = user_ref(query.from_user)
        conversations = self.services.conversations
        place = await conversations.place_of(user, query.message)
        async with conversations.lock(user, place):
            state = await conversations.load(user, place)
            if state is None:
                await query.answer(texts.STALE_MENU)
                await query.edit_message_reply_markup(None)
                return
            answer = await self._dispatch(context.bot, query, callback, user, place, state)
        await query.answer(answer)

    async def _dispatch(
        self,
        bot: Bot,
        query: CallbackQuery,
        callback: keyboards.Callback,
        user: UserRef,
        place: Place,
        state: ChatState,
    ) -> str | None:
        kind = callback.kind
        arg = callback.args[0] if callback.args else ""
        message_id = query.message.message_id if query.message else 0
        if kind == keyboards.DONE:
            return await self._done(bot, user, place, state)
        if message_id != state.menu_message_id:
            return texts.STALE_MENU
        if kind == keyboards.CONSENT and state.stage == "consent":
            return await self._consent(bot, user, place, state, message_id, accepted=arg == "y")
        if kind == keyboards.RESUME and state.resume_offered:
            return await self._resume(bot, user, place, state, message_id, go_on=arg == "go")
        if kind == keyboards.STYLE and state.stage == "style" and len(callback.args) == 2:
            step = keyboards.CODE_STEPS.get(callback.args[0])
            if step is None or step != state.style_step:
                return texts.STALE_MENU
            return await self._style(bot, user, place, state, message_id, step, callback.args[1])
        if kind == keyboards.SUMMARY and state.stage == "confirm":
            return await self._summary(bot, user, place, state, message_id, arg)
        return texts.STALE_MENU

    async def _consent(
        self,
        bot: Bot,
        user: UserRef,
        place: Place,
        state: ChatState,
        message_id: int,
        *,
        accepted: bool,
    ) -> str | None:
        if not accepted:
            await self.services.conversations.clear(user, place)
            if place.is_team_session:
                await self.services.conversations.switch_session(user, place.chat_id, None)
            await messaging.edit(bot, place, message_id, texts.CONSENT_DECLINED)
            return None
        joined = await self._start_collecting(
            bot, user, place, state, edit_message_id=message_id, intro=await self._intro(state)
        )
        return "Thanks!" if joined else None

    async def _start_collecting(
        self,
        bot: Bot,
        user: UserRef,
        place: Place,
        state: ChatState,
        *,
        edit_message_id: int | None = None,
        intro: str = "",
    ) -> bool:
        """Consent is given: join the team (in a team session), then ask for the selfies.

        The instructions go under the consent message (``edit_message_id``) or in a new one.
        """
        settings = self.services.settings
        lead = f"{intro}\n\n✅ " if intro else ""
        if state.team_id:
            try:
                member = await self.services.teams.join(
                    state.team_id, user.key, user.display_name or str(user.user_id)
                )
                team = await self.services.teams.require(state.team_id)
            except UserError as exc:  # the team is full, or was deleted meanwhile
                await self.services.conversations.clear(user, place)
                await self.services.conversations.switch_session(user, place.chat_id, None)
                if edit_message_id is not None:
                    await messaging.edit(bot, place, edit_message_id, str(exc))
                else:
                    await messaging.send(bot, place, str(exc))
                return False
            logger.info("%s joined team %s", member.user_key, team.team_id)
            lead += texts.joined(team.kit.team_name)
        state.stage = "collecting"
        state.consent = True
        state.upload_id = self.services.client.new_upload_id()
        state.menu_message_id = None
        text = lead + texts.consent_given(
            settings, replies_only=messaging.sees_only_replies(bot, place)
        )
        if edit_message_id is not None:
            await messaging.edit(bot, place, edit_message_id, text)
        else:
            await messaging.send(bot, place, text, reply_to=state.anchor_message_id)
        await self.services.conversations.save(user, place, state)
        return True

    async def _resume(
        self,
        bot: Bot,
        user: UserRef,
        place: Place,
        state: ChatState,
        message_id: int,
        *,
        go_on: bool,
    ) -> str | None:
        state.resume_offered = False
        if not go_on:
            await self._drop_photos(user, state)
            fresh = ChatState(
                stage="consent",
                anchor_message_id=state.anchor_message_id,
                menu_message_id=message_id,
                last_job_id=state.last_job_id,
                team_id=state.team_id,
            )
            await messaging.edit(
                bot,
                place,
                message_id,
                await self._intro(fresh),
                markup=keyboards.consent(user.user_id),
            )
            await self.services.conversations.save(user, place, fresh)
            return "Starting over"
        await messaging.edit(
            bot, place, message_id, texts.resume(len(state.stored)) + "\n→ Continuing."
        )
        if state.stage == "collecting":
            state.menu_message_id = None
            state.tally_message_id = None  # the old tally is far up the chat: write a new one
            await self.services.conversations.save(user, place, state)
            self.services.tally.schedule(
                (user.key, place.scope), lambda: self.upload.refresh_tally(bot, user, place)
            )
            return "Continue sending photos"
        await self._show_menu(bot, user, place, state)
        return None

    # --- Done and the style menus ------------------------------------------------------
    async def _done(self, bot: Bot, user: UserRef, place: Place, state: ChatState) -> str | None:
        from headshots.generation.faces import SelfieVerdict, check_selfie_set

        if state.stage != "collecting":
            return "Your upload is already finished."
        settings = self.services.settings
        analyzer = await self.services.analyzer()
        result = check_selfie_set(
            [SelfieVerdict.from_json(v) for v in state.verdicts],
            same_person_threshold=analyzer.same_person_threshold,
            min_count=settings.min_selfies,
            max_count=settings.max_selfies,
        )
        if not result.usable:
            return (". ".join(result.reasons) or "Not enough usable photos yet.")[:190]
        assert state.upload_id is not None
        for index in sorted(set(state.stored) - set(result.accepted)):
            await self.services.client.remove_selfie(user, state.upload_id, index)
        state.stored = list(result.accepted)
        if state.tally_message_id is not None:
            await messaging.edit(
                bot, place, state.tally_message_id, f"{result.summary()}\n✅ Upload complete."
            )
        state.stage = "style"
        state.style = {}
        state.style_step = self._first_step(state)
        await self._show_menu(bot, user, place, state, intro="Great, your photos are ready. ")
        return None

    async def _show_menu(
        self, bot: Bot, user: UserRef, place: Place, state: ChatState, *, intro: str = ""
    ) -> None:
        """Send the current menu (style step, custom prompt or summary) as a new message."""
        text, markup = await self._menu(
            user, state, replies_only=messaging.sees_only_replies(bot, place)
        )
        sent = await messaging.send(
            bot, place, intro + text, reply_to=state.anchor_message_id, markup=markup
        )
        state.menu_message_id = sent.message_id
        await self.services.conversations.save(user, place, state)

    @staticmethod
    def _first_step(state: ChatState) -> style_flow.Step:
        # A team's look is fixed: its members only say how the model should see them.
        return "subject_class" if state.team_id else style_flow.first_step()

    async def _summary_text(self, state: ChatState) -> str:
        if not state.team_id:
            return texts.summary(style_flow.summary(state.style))
        team = await self.services.teams.require(state.team_id)
        subject = CLASS_LABELS.get(str(state.style.get("subject_class")), "Person")
        return texts.team_summary(team_kit.look_lines(team.kit, logo=team.has_logo), subject)

    async def _menu(
        self, user: UserRef, state: ChatState, *, replies_only: bool = False
    ) -> tuple[str, InlineKeyboardMarkup | None]:
        if state.stage == "custom":
            return texts.custom_prompt(replies_only=replies_only), None
        if state.stage == "confirm":
            return await self._summary_text(state), keyboards.summary(user.user_id)
        first = self._first_step(state)
        step = state.style_step if state.style_step in style_flow.STEPS else first
        if state.team_id:
            step = first
        state.style_step = step
        typed_step: style_flow.Step = style_flow.STEPS[style_flow.STEPS.index(step)]  # type: ignore[arg-type]
        return style_flow.question(typed_step), keyboards.style_step(
            user.user_id, typed_step, state.style
        )

    async def resend_menu(self, bot: Bot, user: UserRef, place: Place, state: ChatState) -> None:
        """Show the current buttons again (after text arrived where a button was expected)."""
        if state.resume_offered:
            sent = await messaging.send(
                bot,
                place,
                texts.resume(len(state.stored)),
                reply_to=state.anchor_message_id,
                markup=keyboards.resume(user.user_id, len(state.stored)),
            )
            state.menu_message_id = sent.message_id
            await self.services.conversations.save(user, place, state)
            return
        if state.stage == "consent":
            sent = await messaging.send(
                bot,
                place,
                await self._intro(state),
                reply_to=state.anchor_message_id,
                markup=keyboards.consent(user.user_id),
            )
            state.menu_message_id = sent.message_id
            await self.services.conversations.save(user, place, state)
            return
        await self._show_menu(bot, user, place, state)

    async def _style(
        self,
        bot: Bot,
        user: UserRef,
        place: Place,
        state: ChatState,
        message_id: int,
        step: style_flow.Step,
        value: str,
    ) -> str | None:
        if step == "preset" and value == style_flow.CUSTOM:
            state.stage = "custom"
            prompt = texts.custom_prompt(replies_only=messaging.sees_only_replies(bot, place))
            await messaging.edit(bot, place, message_id, prompt)
            await self.services.conversations.save(user, place, state)
            return "Describe the look"
        try:
            state.style = style_flow.apply(state.style, step, value)
        except ValueError:
            return texts.STALE_MENU
        following = None if state.team_id else style_flow.next_step(step, state.style)
        if following is None:
            state.stage = "confirm"
            state.style_step = None
        else:
            state.style_step = following
        text, markup = await self._menu(user, state)
        await messaging.edit(bot, place, message_id, text, markup=markup)
        await self.services.conversations.save(user, place, state)
        return None

    async def on_custom_text(
        self, bot: Bot, message: Message, user: UserRef, place: Place, state: ChatState
    ) -> None:
        """Use a text message as the custom description, then continue with the menus."""
        try:
            state.style = style_flow.with_custom(state.style, message.text or "")
        except UserError as exc:
            await message.reply_text(str(exc), do_quote=place.is_group)
            return
        state.stage = "style"
        following = style_flow.next_step("preset", state.style)
        state.style_step = following
        if following is None:
            state.stage = "confirm"
        await self._show_menu(bot, user, place, state, intro="Got it. ")

    async def _summary(
        self, bot: Bot, user: UserRef, place: Place, state: ChatState, message_id: int, choice: str
    ) -> str | None:
        if choice == "change":
            state.stage = "style"
            state.style_step = self._first_step(state)
            keep = {"custom": state.style.get("custom")} if state.style.get("custom") else {}
            state.style = keep
            text, markup = await self._menu(user, state)
            await messaging.edit(bot, place, message_id, text, markup=markup)
            await self.services.conversations.save(user, place, state)
            return None
        if choice == "no":
            if state.kind == "full":
                await self._drop_photos(user, state)
            await self.services.conversations.clear(user, place)
            await messaging.edit(bot, place, message_id, texts.CANCELLED_UPLOAD)
            return "Cancelled"
        if state.team_id:
            team = await self.services.teams.require(state.team_id)
            style = team.kit.style_for(style_flow.to_choice(state.style).subject_class)
            chosen = (await self._summary_text(state)).removesuffix("Confirm to start?").strip()
        else:
            style = style_flow.to_choice(state.style)
            chosen = "Your choice:\n" + style_flow.summary(state.style)
        await messaging.edit(bot, place, message_id, chosen + "\n✅ Confirmed.")
        job_id = await self.submit(
            bot,
            user,
            place,
            upload_id=state.upload_id or "",
            style=style,
            kind=state.kind,
            lora_job_id=state.lora_job_id,
            anchor=state.anchor_message_id,
            team_id=state.team_id,
        )
        if job_id is None:
            # A limit was hit: keep the choice so Confirm works once the limit is gone.
            await self._show_menu(bot, user, place, state)
            return None
        await self.services.conversations.save(
            user,
            place,
            ChatState(
                stage="submitted",
                consent=True,
                upload_id=state.upload_id,
                anchor_message_id=state.anchor_message_id,
                last_job_id=job_id,
                team_id=state.team_id,
            ),
        )
        return "Submitted"

    # --- submission ------------------------------------------------------------------------
    async def submit(
        self,
        bot: Bot,
        user: UserRef,
        place: Place,
        *,
        upload_id: str,
        style: StyleChoice,
        kind: str,
        lora_job_id: str | None = None,
        like_rank: int | None = None,
        anchor: int | None = None,
        team_id: str | None = None,
    ) -> str | None:
        """Post the status message, submit the job with it as target; the job id, or ``None``.

        A team job counts against the member's team quota first (``record_job`` before
        ``submit``, as the team core asks), and the member's private target and class are saved
        so an admin's "Redo" can reach them.
        """
        name = messaging.mention(place, user.display_name)
        status = await messaging.send(bot, place, texts.SUBMITTING, reply_to=anchor)
        target = ChatTarget(
            platform="telegram",
            chat_id=place.chat_id,
            thread_id=place.thread_id,
            user_id=user.user_id,
            reply_to_message_id=anchor if place.is_group else None,
            status_message_id=status.message_id,
        )
        request = JobRequest(
            user=user,
            target=target,
            upload_id=upload_id,
            style=style,
            kind="full"
            if kind == "full"
            else ("new_style" if kind == "new_style" else "more_like"),
            lora_job_id=lora_job_id,
            like_rank=like_rank,
            # A deliberate repeat on a trained model is a new job; a full job is unique already
            # through its upload id.
            nonce="" if kind == "full" else secrets.token_hex(6),
            team_id=team_id,
        )
        client = self.services.client
        teams = self.services.teams
        try:
            if team_id is not None:
                await teams.record_job(team_id, user.key, request.job_id())
            try:
                submission = await client.submit(request)
            except LimitReached:
                if team_id is not None:  # refused: the member keeps their run
                    await teams.unrecord_job(team_id, user.key, request.job_id())
                raise
        except (LimitReached, NotFound) as exc:
            await messaging.edit(bot, place, status.message_id, str(exc))
            return None
        if team_id is not None:
            member = await teams.member(team_id, user.key)
            if member is not None:
                member.private_target = target
                member.subject_class = style.subject_class
                await teams.save_member(team_id, member)
        await client.set_status_message(submission.job_id, status.message_id)
        info = await client.job(submission.job_id)
        # Once a worker has picked the job up, the status message is the worker's to edit.
        if info is None or info.state is JobState.QUEUED:
            position = info.position if info is not None and info.position else submission.position
            await messaging.edit(bot, place, status.message_id, texts.queued(position, name))
        logger.info("submitted %s job %s for %s", kind, submission.job_id, user.key)
        return submission.job_id

    async def start_new_style(
        self,
        bot: Bot,
        user: UserRef,
        place: Place,
        *,
        job_id: str,
        upload_id: str,
        anchor: int | None,
    ) -> None:
        """Ask for a style again for a trained model ("New style" under results)."""
        conversations = self.services.conversations
        async with conversations.lock(user, place):
            state = ChatState(
                stage="style",
                consent=True,
                upload_id=upload_id,
                kind="new_style",
                lora_job_id=job_id,
                anchor_message_id=anchor,
                last_job_id=job_id,
                style_step=style_flow.first_step(),
            )
            await self._show_menu(bot, user, place, state, intro=texts.NEW_STYLE_INTRO)
