"""One person's conversation, the same on every front end.

    consent -> collecting -> style [-> custom] -> confirm -> submitted

Front ends call these methods with what the person did (an action and its value, text,
photos) in a :class:`Turn`: where to show the outcome, who it is, which conversation. One at a
time (Telegram), the style questions are asked in turn after "Done"; as a form (Discord), they
are shown beside the upload and "Continue" finishes both. A team member's conversation
(``team_id``) asks only about the person; the look is the team's (see :mod:`.team`).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Sequence

from headshots.actions import Action
from headshots.bot.conversation import photos, style, texts
from headshots.bot.conversation.kit import look_lines
from headshots.bot.conversation.screens import Button, FrontEnd, Question, Screen, Surface, Turn
from headshots.bot.conversation.state import ACTIVE, Conversation, Photo, Place, Store
from headshots.errors import ConfigurationError, LimitReached, NotFound, UserError
from headshots.model_family import quick_drafts_possible, reference_hints
from headshots.queue.chat_log import ChatCleanup, ChatLog
from headshots.queue.client import JobInfo, QueueClient
from headshots.queue.contracts import (
    ChatTarget,
    JobRequest,
    JobState,
    PersonAttributes,
    Platform,
    StyleChoice,
    SubjectClass,
    UserRef,
)
from headshots.queue.progress import expected_job_s
from headshots.queue.teams import Team, TeamStore
from headshots.settings import Settings

logger = logging.getLogger(__name__)


class Services:
    """What both front ends need, created once per process and passed in (no globals).

    ``conversations`` and ``teams`` exist once the queue client is there (``connect``)."""

    conversations: Store
    teams: TeamStore
    chat_log: ChatLog

    def __init__(
        self, settings: Settings, redis_url: str = "", *, client: QueueClient | None = None
    ) -> None:
        self.settings, self.redis_url = settings, redis_url
        self.faces = photos.FaceWork(settings)
        self._client: QueueClient | None = None
        self._owns_client = client is None
        if client is not None:
            self._attach(client)

    def _attach(self, client: QueueClient) -> None:
        self._client = client
        self.conversations = Store(client)
        self.teams = TeamStore(client.redis, client.store, self.settings)
        # As long as anything of the person's sessions may be kept: their trained model.
        ttl_s = max(self.settings.lora_ttl_s, self.settings.results_ttl_s)
        self.chat_log = ChatLog(client.redis, ttl_s)

    async def connect(self) -> None:
        if self._client is None:
            self._attach(await QueueClient.connect(self.settings, self.redis_url))

    async def prepare_policy(self) -> None:
        """Have the content policy built (or read back from the cache) before anyone
        describes a look: the chat reviews a description in its event loop, and a first build
        takes ~25 s (2-5 s to read a kept one)."""
        from headshots.style.policy import prepare

        await self.faces.run(prepare, self.settings.cache_dir)

    async def close(self) -> None:
        self.faces.close()
        if self._client is not None and self._owns_client:
            await self._client.close()
            self._client = None

    @property
    def client(self) -> QueueClient:
        if self._client is None:
            raise ConfigurationError("the bot's queue client is not connected (post_init not run)")
        return self._client


def mention(place: Place, user: UserRef) -> str | None:
    """A name to address the person by where others read along (``None`` elsewhere)."""
    return user.display_name if place.is_group and user.display_name else None


def delete_screen() -> Screen:
    yes = Button("forget", "🗑 Yes, delete everything", "y", "danger")
    return Screen(
        texts.DELETE_CONFIRM, buttons=[yes, Button("forget", "Keep my data", "n")], private=True
    )


class Flow:
    """The single-person conversation; all state lives in Redis (see :class:`Store`)."""

    def __init__(self, services: Services, front: FrontEnd) -> None:
        self.services, self.front, self.settings = services, front, services.settings

    @property
    def store(self) -> Store:
        return self.services.conversations

    @property
    def client(self) -> QueueClient:
        return self.services.client

    @contextlib.asynccontextmanager
    async def _locked(self, turn: Turn) -> AsyncIterator[None]:
        """Hold the turn's conversation; a press is acknowledged first when it has to wait.

        The lock may be held for seconds (a photo check downloads and checks a whole message
        of photos inside it): Discord refuses an answer after 3 s and Telegram spins the
        button meanwhile, so the platform hears back before the wait, not after it.
        """
        lock = self.store.lock(turn.user, turn.scope)
        if lock.locked():
            await turn.surface.working()
        async with lock:
            yield

    # --- starting ----------------------------------------------------------------------
    async def begin(
        self, turn: Turn, fresh: Conversation, *, resume: bool = True
    ) -> Conversation | None:
        """Offer to continue an upload, or ask for consent; ``fresh`` when consent was given
        before (the caller then opens it where photos go, see :meth:`open`)."""
        surface, user, scope = turn
        anchor = fresh.anchor_message_id
        async with self._locked(turn):
            active = await self.client.active_job(user)
            if active is not None:
                await surface.answer(texts.ALREADY_RUNNING + texts.job_status(active))
                return None
            old = await self.store.load(user, scope) if resume else None
            if old is not None and old.stage in ("collecting", "style", "custom", "confirm"):
                if old.stored or old.stage != "collecting":
                    old.resume_offered = True
                    old.menu_message_id = await surface.show(self._resume(old), reply_to=anchor)
                    await self.store.save(user, scope, old)
                    return None
                await self._drop_photos(user, old)
            if old is not None and old.stage == "submitted" and old.style.get("attributes"):
                # The person's features carry over to their next job in this chat.
                fresh.style, fresh.remembered = {"attributes": old.style["attributes"]}, True
            consented = await self.store.consented(user)
            if not consented:
                fresh.menu_message_id = await surface.show(
                    await self._consent(surface, fresh), reply_to=anchor
                )
            await self.store.save(user, scope, fresh)
            return fresh if consented else None

    async def consent(self, turn: Turn, *, accepted: bool, message_id: int) -> Conversation | None:
        """Record the answer to the consent question; the conversation to open, if agreed."""
        surface, user, scope = turn
        async with self._locked(turn):
            conversation = await self.store.load(user, scope)
            stale = conversation is None or conversation.menu_message_id not in (None, message_id)
            if conversation is None or stale or conversation.stage != "consent":
                await surface.answer(texts.STALE_MENU)
                return None
            if not accepted:
                await self._leave(user, scope, conversation)
                await surface.show(Screen(texts.DECLINED), message_id=message_id)
                return None
            await self.store.record_consent(user)
            return conversation

    async def _leave(self, user: UserRef, scope: str, conversation: Conversation) -> None:
        await self.store.put(user, scope, None)
        if conversation.place.is_team_session:  # the private chat is their own again
            await self.store.switch_session(user, conversation.place.chat_id, None)

    async def open(
        self, turn: Turn, conversation: Conversation, *, edit: int | None = None, note: str = ""
    ) -> bool:
        """Join the team (a member), ask for the selfies; a form shows tally and style too.

        The instructions replace the consent question (``edit``) or go in a new message.
        """
        surface, user, scope = turn
        async with self._locked(turn):
            intro = await self._intro(surface, conversation) if edit is not None else ""
            lead = intro + "\n\n✅ " if intro else ""
            if conversation.team_id:
                try:
                    team = await self.services.teams.require(conversation.team_id)
                    name = user.display_name or str(user.user_id)
                    await self.services.teams.join(team.team_id, user.key, name)
                except UserError as exc:  # the team is full, or was deleted meanwhile
                    await self._leave(user, scope, conversation)
                    await surface.show(Screen(str(exc)), message_id=edit)
                    return False
                logger.info("%s joined team %s", user.key, team.team_id)
                lead += texts.JOINED.format(team_name=team.kit.team_name)
            conversation.stage, conversation.menu_message_id = "collecting", None
            conversation.upload_id = self.client.new_upload_id()
            # Saved before it is shown (found by bench/soak.py): a bot killed between showing
            # "send your selfies" and saving had the person's photos refused with "answer the
            # question above", under a question whose buttons were gone.
            await self.store.save(user, scope, conversation)
            text = lead + texts.instructions(
                self.settings, replies_only=surface.replies_only, note=note,
                by_command=surface.photos_by_command,
            )  # fmt: skip
            await surface.show(
                Screen(text), message_id=edit, reply_to=conversation.anchor_message_id
            )
            if surface.form:
                tally = Screen(
                    texts.no_photos_yet(self.settings, by_command=surface.photos_by_command)
                )
                conversation.tally_message_id = await surface.show(tally)
                pending, conversation.pending = conversation.pending, []
                await self.store.save(user, scope, conversation)
                if pending:
                    await self._take(turn, conversation, pending)
                    await self._refresh_tally(turn, conversation)
                conversation.menu_message_id = await surface.show(await self._form(conversation))
            await self.store.save(user, scope, conversation)
            return True

    async def _intro(self, surface: Surface, conversation: Conversation) -> str:
        eta = await expected_job_s(self.client.redis)
        name = None
        if conversation.team_id:
            name = (await self.services.teams.require(conversation.team_id)).kit.team_name
        place = conversation.place
        where = texts.audience(
            surface.platform, group=place.is_group, team=conversation.team_id is not None,
            dm=surface.platform == "discord" and place.guild_id is None,
            public_threads=not self.settings.discord_private_threads,
        )  # fmt: skip
        return texts.intro(self.settings, eta, name, where=where, platform=surface.platform)

    async def _consent(self, surface: Surface, conversation: Conversation) -> Screen:
        agree = Button("consent", "✅ I agree", "y", "success")
        return Screen(
            await self._intro(surface, conversation) + "\n\n" + texts.CONSENT_QUESTION,
            buttons=[agree, Button("consent", "No, thanks", "n")],
            private=True,
        )

    @staticmethod
    def _resume(conversation: Conversation) -> Screen:
        count = len(conversation.stored)
        go_on = Button("resume", f"Continue with {count} photos", "go")
        return Screen(texts.resume(count), buttons=[go_on, Button("resume", "Start over", "new")])

    # --- photos ------------------------------------------------------------------------
    async def add_photos(self, turn: Turn, incoming: Sequence[Photo]) -> str | None:
        """Check and keep photos of a conversation; else why not (for the caller to say, or
        not: in busy groups the bot only answers people it talks to)."""
        async with self._locked(turn):
            conversation = await self.store.load(turn.user, turn.scope)
            if conversation is None:
                return texts.NEED_START
            if conversation.stage in ("consent", "submitted"):
                return (
                    texts.NEED_CONSENT
                    if conversation.stage == "consent"
                    else texts.ALREADY_SUBMITTED
                )
            if conversation.stage == "reference" and incoming:
                return await self._take_reference(turn, conversation, incoming)
            if conversation.stage != "collecting" or conversation.kind != "full":
                return texts.NOT_COLLECTING
            await self._take(turn, conversation, incoming)
            conversation.tally_due = True
            await self.store.save(turn.user, turn.scope, conversation)
            return None

    async def _take_reference(
        self, turn: Turn, conversation: Conversation, incoming: Sequence[Photo]
    ) -> str | None:
        """The first photo as the reference (checked and stored), then the summary again."""
        photo = incoming[0]
        if photo.refused is not None:
            return photo.refused
        try:
            png = await self.services.faces.reference(lambda: self.front.download(photo.url))
        except UserError as exc:
            return str(exc)
        hint = reference_hints(self.settings)[0]
        choice = await self.client.add_reference(turn.user, png, hint)
        conversation.style["reference"] = choice.model_dump()
        conversation.stage = "confirm"
        # A form (Discord, Slack) is one message that changes; a chat gets the summary anew,
        # below the photo.
        conversation.menu_message_id = await turn.surface.show(
            await self._menu(turn.surface, conversation),
            message_id=conversation.menu_message_id if turn.surface.form else None,
            reply_to=conversation.anchor_message_id,
        )
        await self.store.save(turn.user, turn.scope, conversation)
        return texts.REFERENCE_ONE_PHOTO if len(incoming) > 1 else None

    async def _take(
        self, turn: Turn, conversation: Conversation, incoming: Sequence[Photo]
    ) -> None:
        await photos.take(
            conversation, incoming, user=turn.user, client=self.client,
            faces=self.services.faces, download=self.front.download,
        )  # fmt: skip

    async def refresh_tally(self, turn: Turn) -> None:
        """Write the tally of the upload into its one message (sent the first time)."""
        async with self._locked(turn):
            conversation = await self.store.load(turn.user, turn.scope)
            if conversation is not None and conversation.stage == "collecting":
                await self._refresh_tally(turn, conversation)
                await self.store.save(turn.user, turn.scope, conversation)

    async def _refresh_tally(self, turn: Turn, conversation: Conversation) -> None:
        verdict = await photos.set_verdict(conversation, self.services.faces)
        form = turn.surface.form
        text = photos.tally(conversation, verdict, self.settings, form=form)
        enough = len(verdict.accepted) >= self.settings.min_selfies
        buttons = [Button("done", "✅ Done", tone="success")] if enough and not form else []
        conversation.tally_message_id = await turn.surface.show(
            Screen(text, buttons=buttons),
            message_id=conversation.tally_message_id,
            reply_to=conversation.anchor_message_id,
        )
        conversation.tally_due = False

    async def refresh_due_tallies(
        self, platform: Platform, surface_for: Callable[[UserRef, Conversation], Surface]
    ) -> int:
        """Write the tallies a stopped bot owed (photos taken, tally never written); how many.

        Found by bench/soak.py: a bot killed while an album arrived had stored the photos it
        had handled, but their tally only waited in memory, so the person never heard back.
        """
        written = 0
        try:
            async for user, scope, raw in self.client.chat_states(platform):
                if not raw.get("tally_due") or raw.get("stage") != "collecting":
                    continue
                conversation = Conversation.model_validate(raw)
                try:
                    await self.refresh_tally(Turn(surface_for(user, conversation), user, scope))
                except Exception:  # one chat's failure must not keep the others waiting
                    logger.warning("writing the owed tally of %s failed", user.key, exc_info=True)
                    continue
                written += 1
        except Exception:  # a background sweep at start-up: it must never take the bot down
            logger.warning("looking for owed tallies failed", exc_info=True)
        if written:
            logger.info("wrote %d tally message(s) a stopped %s bot owed", written, platform)
        return written

    async def _finish_upload(self, turn: Turn, conversation: Conversation) -> str | None:
        """Drop what the set check refused; ``None``, or why the upload cannot finish yet."""
        if conversation.kind != "full":
            return None
        if conversation.stage != "collecting":
            return texts.UPLOAD_FINISHED
        verdict = await photos.set_verdict(conversation, self.services.faces)
        if not verdict.usable:
            return f"{texts.NOT_ENOUGH}: {'; '.join(verdict.reasons)}."
        keep = photos.accepted_indices(conversation, verdict)
        for index in sorted(set(conversation.stored) - set(keep)):
            await self.client.remove_selfie(turn.user, conversation.upload_id or "", index)
        conversation.stored, conversation.stage = keep, "style"
        if conversation.tally_message_id is not None:
            text = photos.headline(verdict, {}) + "\n" + texts.UPLOAD_COMPLETE
            await turn.surface.show(Screen(text), message_id=conversation.tally_message_id)
        return None

    async def _drop_photos(self, user: UserRef, conversation: Conversation) -> None:
        if conversation.upload_id is not None and conversation.kind == "full":
            for index in conversation.stored:
                await self.client.remove_selfie(user, conversation.upload_id, index)

    # --- what the person pressed ---------------------------------------------------------
    async def press(
        self, turn: Turn, action: str, value: str = "", *, step: str = "", message_id: int = 0
    ) -> None:
        """Handle a button or select of a conversation (resume, done, a style answer, the form's
        pages, continue, confirm, quick draft, change, cancel)."""
        surface, user, scope = turn
        async with self._locked(turn):
            conversation = await self.store.load(user, scope)
            if conversation is None or conversation.stage == "submitted":
                await surface.answer(texts.STALE_MENU)
            elif action == "set" and conversation.team_id and step not in style.TEAM_STEPS:
                await surface.answer(texts.TEAM_STYLE_FIXED)  # whatever the message said
            elif action == "done":
                await self._done(turn, conversation)
            elif message_id != conversation.menu_message_id or (
                (action == "resume") != conversation.resume_offered
            ):
                await surface.answer(texts.STALE_MENU)
            elif action == "resume":
                await self._continue(turn, conversation, value == "go")
            else:
                await self._on_menu(turn, conversation, action, value, step)

    async def _done(self, turn: Turn, conversation: Conversation) -> None:
        problem = await self._finish_upload(turn, conversation)
        if problem is not None:
            await turn.surface.answer(problem[:190], alert=True)
            return
        conversation.style.pop("custom", None)
        conversation.step = self._next(conversation, None)
        conversation.menu_message_id = await turn.surface.show(
            await self._menu(turn.surface, conversation, intro=texts.READY),
            reply_to=conversation.anchor_message_id,
        )
        await self.store.save(turn.user, turn.scope, conversation)

    async def _continue(self, turn: Turn, conversation: Conversation, go_on: bool) -> None:
        surface, user, scope = turn
        message_id, conversation.resume_offered = conversation.menu_message_id, False
        if not go_on:
            await self._drop_photos(user, conversation)
            fresh = Conversation(
                owner_id=user.user_id, place=conversation.place, team_id=conversation.team_id,
                anchor_message_id=conversation.anchor_message_id, menu_message_id=message_id,
            )  # fmt: skip
            await surface.answer("Starting over")
            await surface.show(await self._consent(surface, fresh), message_id=message_id)
            await self.store.save(user, scope, fresh)
            return
        text = texts.resume(len(conversation.stored)) + "\n→ Continuing."
        await surface.show(Screen(text), message_id=message_id)
        conversation.menu_message_id = None
        if conversation.stage == "collecting":
            conversation.tally_message_id = None  # the old tally is far up: write a new one
            await self._refresh_tally(turn, conversation)
        else:
            conversation.menu_message_id = await surface.show(
                await self._menu(surface, conversation), reply_to=conversation.anchor_message_id
            )
        await self.store.save(user, scope, conversation)

    async def _on_menu(
        self, turn: Turn, conversation: Conversation, action: str, value: str, step: str
    ) -> None:
        surface, user, scope = turn
        message_id, stage = conversation.menu_message_id, conversation.stage
        choosing = stage in ("collecting", "style")
        if action == "cancel":
            await self._drop_photos(user, conversation)
            await self.store.put(user, scope, None)
            await surface.show(Screen(texts.CANCELLED_UPLOAD), message_id=message_id)
            return
        if action == "answer" and stage == "style" and step == conversation.step:
            if step == "preset" and value == style.CUSTOM:
                conversation.stage = "custom"
            elif not await self._apply(surface, conversation, step, value):
                return
            else:
                if step == "preset" and value != style.KEEP:
                    conversation.style.pop("custom", None)  # a preset instead of a description
                if step == style.FEATURES:  # "Set them" asks each feature; the rest skip them
                    conversation.remembered = value != style.SET_FEATURES
                conversation.step = self._next(conversation, step)
        elif action == "set" and choosing:
            if not await self._apply(surface, conversation, step, value):
                return
        elif action == "page" and choosing:
            groups = list(style.TEAM_GROUPS if conversation.team_id else style.GROUPS)
            conversation.page = groups.index(value) if value in groups else 0
        elif action == "next" and choosing:
            problem = await self._finish_upload(turn, conversation)
            if problem is not None:
                await surface.answer(problem)
                return
            conversation.stage = "confirm"
        elif action == "quick" and stage == "confirm" and self._quick_offered(conversation):
            conversation.style["quick"] = not conversation.style.get("quick")
        elif action == "reference" and stage == "confirm" and self._reference_offered(conversation):
            conversation.stage = "reference"
        elif action == "refback" and stage == "reference":
            conversation.stage = "confirm"
        elif action == "refoff" and stage == "confirm":
            conversation.style.pop("reference", None)
        elif (
            action == "refhint" and stage == "confirm" and (other := self._other_hint(conversation))
        ):
            conversation.style["reference"] = {**conversation.style["reference"], "hint": other}
        elif action == "change" and stage == "confirm":
            # "Customise": every question, the features among them, from the top.
            conversation.stage, conversation.page, conversation.remembered = "style", 0, False
            conversation.customising = True
            conversation.step = self._next(conversation, None)
        elif action == "confirm" and stage == "confirm":
            await self._confirm(turn, conversation)
        else:
            await surface.answer(texts.STALE_MENU)
            return
        if action != "confirm":
            await surface.show(await self._menu(surface, conversation), message_id=message_id)
        await self.store.save(user, scope, conversation)

    async def _apply(
        self, surface: Surface, conversation: Conversation, step: str, value: str
    ) -> bool:
        try:
            conversation.style = style.apply(conversation.style, step, value)
        except ValueError:
            await surface.answer(texts.STALE_MENU)
            return False
        if step == "hair_colour" and value == style.DEFAULT:
            # "As in my photos" covers the hair length too: a length chosen before goes.
            conversation.style = style.apply(conversation.style, "hair_length", style.DEFAULT)
        return True

    def _next(self, conversation: Conversation, step: str | None) -> str | None:
        """The question after ``step``; ``None`` (and the summary) when none is left.

        The default path asks only the preset (a team member: nothing, the kit is the look);
        the summary then shows the recommended look with "Looks good" and "Customise".
        """
        steps: tuple[str, ...]
        if conversation.customising:
            steps = style.TEAM_STEPS if conversation.team_id else style.STEPS
        else:
            steps = () if conversation.team_id else style.BRIEF_STEPS
        following = style.next_step(
            step, conversation.style, steps=steps, skip=conversation.remembered
        )
        conversation.stage = "style" if following else "confirm"
        return following

    # --- what is shown -------------------------------------------------------------------
    async def _menu(self, surface: Surface, conversation: Conversation, intro: str = "") -> Screen:
        """The current menu: the question asked, the form, or the summary."""
        if conversation.stage == "custom":
            return Screen(texts.custom_prompt(replies_only=surface.replies_only))
        if conversation.stage == "confirm":
            return await self._summary(conversation)
        if conversation.stage == "reference":
            return Screen(texts.REFERENCE_ASK, buttons=[Button("refback", "↩️ Go on without one")])
        if surface.form:
            return await self._form(conversation)
        step = conversation.step = conversation.step or self._next(conversation, None) or "preset"
        options = tuple(style.options(step, conversation.style))
        question = Question("style", step, style.QUESTIONS[step], options)
        return Screen(intro + question.text, questions=[question])

    async def _body(self, conversation: Conversation) -> list[str]:
        if not conversation.team_id:
            return style.lines(conversation.style)
        team = await self.services.teams.require(conversation.team_id)
        you = style.CLASS_LABELS[style.to_choice(conversation.style).subject_class]
        return [
            texts.TEAM_LOOK,
            *look_lines(team.kit, logo=team.has_logo),
            f"You: {you} · {style.person_line(conversation.style)}",
        ]

    async def _form(self, conversation: Conversation) -> Screen:
        """One page of the form: its questions, the pages next to it, continue and cancel."""
        groups = style.TEAM_GROUPS if conversation.team_id else style.GROUPS
        names = list(groups)
        page = conversation.page = max(0, min(conversation.page, len(names) - 1))
        chosen, questions = conversation.style, []
        for step in groups[names[page]]:
            if step == "hair_length" and style.current("hair_colour", chosen) == style.DEFAULT:
                continue  # as one at a time (style.next_step): "As in my photos" skips it
            offered = style.options(step, chosen)
            options = tuple(o for o in offered if o.value not in (style.CUSTOM, style.KEEP))
            current = style.current(step, chosen)
            questions.append(Question("style", step, style.QUESTIONS[step], options, current))
        buttons = [
            Button("page", "Back" if near < page else style.PAGE_LABELS[names[near]], names[near])
            for near in (page - 1, page + 1)
            if 0 <= near < len(names)
        ]
        if not conversation.team_id:
            buttons.append(Button("custom", "Custom description"))
        buttons += [
            Button("next", "Continue", tone="primary"),
            Button("cancel", "Cancel", tone="danger"),
        ]
        if conversation.team_id:
            heading = texts.TEAM_HEADING
        else:
            heading = (
                texts.NEW_STYLE_HEADING if conversation.kind == "new_style" else texts.FORM_HEADING
            )
        text = heading + "\n" + "\n".join(await self._body(conversation))
        return Screen(text, questions=questions, buttons=buttons)

    async def _summary_text(self, conversation: Conversation) -> str:
        if conversation.kind == "new_style":
            photos_line = texts.PHOTOS_REUSED
        else:
            photos_line = texts.PHOTOS_LINE.format(accepted=len(conversation.stored))
        return "\n".join([texts.SUMMARY_HEADING, photos_line, *await self._body(conversation)])

    async def _summary(self, conversation: Conversation) -> Screen:
        buttons = [Button("confirm", "✅ Looks good", tone="success")]
        if self._quick_offered(conversation):
            quick = conversation.style.get("quick")
            label = "Full quality instead" if quick else "⚡ Quick draft (fast, lower quality)"
            buttons.append(Button("quick", label))
        if self._reference_offered(conversation):
            if conversation.style.get("reference") is None:
                buttons.append(Button("reference", "🖼 Use a reference photo"))
            else:
                buttons.append(Button("refoff", "No reference photo"))
                if other := self._other_hint(conversation):
                    buttons.append(Button("refhint", f"Frame by {texts.REFERENCE_HINTS[other]}"))
        buttons += [Button("change", "✏️ Customise"), Button("cancel", "Cancel", tone="danger")]
        text = await self._summary_text(conversation) + "\n\n" + texts.CONFIRM_QUESTION
        return Screen(text, buttons=buttons)

    def _other_hint(self, conversation: Conversation) -> str | None:
        """The configured hint the chosen reference does not use yet (the switch's target)."""
        reference = conversation.style.get("reference")
        if reference is None:
            return None
        others = [h for h in reference_hints(self.settings) if h != reference.get("hint")]
        return others[0] if others else None

    def _reference_offered(self, conversation: Conversation) -> bool:
        """A reference photo needs a ControlNet of the base's family; a team member's is the
        kit's (:meth:`team_style`)."""
        return bool(reference_hints(self.settings)) and not conversation.team_id

    def _quick_offered(self, conversation: Conversation) -> bool:
        """Quick drafts need an LCM-LoRA (or a step-distilled klein); a team's look fixes the
        quality too."""
        return quick_drafts_possible(self.settings) and not conversation.team_id

    # --- text, custom descriptions -------------------------------------------------------
    async def text(self, turn: Turn, place: Place, text: str) -> None:
        """Use text as the custom description when asked for one; otherwise say what to do."""
        surface, user, scope = turn
        async with self._locked(turn):
            conversation = await self.store.load(user, scope)
            if conversation is not None and conversation.stage == "custom":
                if not conversation.resume_offered:
                    await self._describe(turn, conversation, text)
                    return
            if place.is_group:
                return  # members talk to each other in groups: only commands and buttons are ours
            if conversation is None or conversation.stage == "submitted":
                await surface.answer(texts.TEXT_HINT)
            elif conversation.stage == "collecting" and not conversation.resume_offered:
                await surface.answer(texts.SEND_PHOTOS_NOT_TEXT)
            else:
                await surface.answer(texts.USE_BUTTONS)
                if conversation.resume_offered:
                    screen = self._resume(conversation)
                elif conversation.stage == "consent":
                    screen = await self._consent(surface, conversation)
                else:
                    screen = await self._menu(surface, conversation)
                reply_to = conversation.anchor_message_id
                conversation.menu_message_id = await surface.show(screen, reply_to=reply_to)
                await self.store.save(user, scope, conversation)

    async def describe(self, turn: Turn, text: str) -> None:
        """A custom description typed into a form (a Discord modal)."""
        async with self._locked(turn):
            conversation = await self.store.load(turn.user, turn.scope)
            if conversation is None or conversation.stage not in ("collecting", "style"):
                await turn.surface.answer(texts.STALE_MENU)
            elif conversation.team_id:
                await turn.surface.answer(texts.TEAM_STYLE_FIXED)
            else:
                await self._describe(turn, conversation, text)

    async def _describe(self, turn: Turn, conversation: Conversation, text: str) -> None:
        surface, user, scope = turn
        if surface.form and not text.strip():
            conversation.style.pop("custom", None)
        else:
            try:
                conversation.style = style.with_custom(conversation.style, text)
            except UserError as exc:  # refused, too long or empty: nothing is kept, ask again
                await surface.answer(str(exc))
                return
        if surface.form:
            form = await self._form(conversation)
            await surface.show(form, message_id=conversation.menu_message_id)
        else:
            conversation.step = self._next(conversation, "preset")
            conversation.menu_message_id = await surface.show(
                await self._menu(surface, conversation, intro=texts.GOT_IT),
                reply_to=conversation.anchor_message_id,
            )
        await self.store.save(user, scope, conversation)

    # --- a team member's job ----------------------------------------------------------------
    async def team_style(
        self,
        team: Team,
        user: UserRef,
        subject_class: SubjectClass,
        attributes: PersonAttributes | None,
    ) -> StyleChoice:
        """A member's job style: the kit's, with the member's class and features, and the
        kit's reference portrait copied into the member's own store (their retention, their
        ``/delete``). The same bytes for everyone: every member gets the same control image."""
        reference = None
        png = await self.kit_reference(team)
        hints = reference_hints(self.settings)
        if png is not None and team.kit.reference_hint is not None:
            # The kit's hint while the operator configures it, else the one they do.
            hint = team.kit.reference_hint if team.kit.reference_hint in hints else hints[0]
            reference = await self.client.add_reference(user, png, hint)
        return team.kit.style_for(subject_class, attributes, reference)

    async def kit_reference(self, team: Team) -> bytes | None:
        """The kit's reference portrait where it can be used: stored, with a hint, and a
        ControlNet configured for the base (else the kit frames by its prompt alone)."""
        if not (team.has_reference and team.kit.reference_hint and reference_hints(self.settings)):
            return None
        png = await self.services.teams.reference(team.team_id)
        if png is None:
            logger.warning("team %s: its reference portrait is gone", team.team_id)
        return png

    # --- confirming and submitting -------------------------------------------------------
    async def _confirm(self, turn: Turn, conversation: Conversation) -> None:
        surface, user, _ = turn
        try:
            choice = style.to_choice(conversation.style)
            if conversation.team_id:
                team = await self.services.teams.require(conversation.team_id)
                choice = await self.team_style(team, user, choice.subject_class, choice.attributes)
            summary = await self._summary_text(conversation) + "\n\n" + texts.CONFIRMED
        except UserError as exc:  # the team was deleted meanwhile
            await surface.answer(str(exc))
            return
        await surface.show(Screen(summary), message_id=conversation.menu_message_id)
        new_style = conversation.kind == "new_style"
        job_id = await self.submit(
            surface, user, conversation.place, upload_id=conversation.upload_id or "",
            style=choice, kind=conversation.kind, lora_job_id=conversation.lora_job_id,
            anchor=conversation.anchor_message_id, team_id=conversation.team_id,
            nonce=conversation.session_id if new_style else "",
        )  # fmt: skip
        if job_id is not None:
            conversation.stage, conversation.job_id = "submitted", job_id
            conversation.menu_message_id = None
            return
        # A limit was hit: the menu comes back so Confirm works once the limit is gone.
        if surface.form:
            conversation.stage, conversation.page = "style", 0
        conversation.menu_message_id = await surface.show(
            await self._menu(surface, conversation),
            message_id=conversation.menu_message_id if surface.form else None,
            reply_to=conversation.anchor_message_id,
        )

    async def submit(
        self,
        surface: Surface,
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
        nonce: str | None = None,
    ) -> str | None:
        """Post the status message, submit the job with it as target; the job id, or ``None``.

        A team job counts against the member's team quota first (``record_job`` before
        ``submit``); the member's private place is saved for an admin's redo. ``nonce``:
        ``None`` makes a deliberate repeat on a trained model a new job.
        """
        status_id = await surface.show(Screen(texts.SUBMITTING), reply_to=anchor)
        target = ChatTarget(
            platform=surface.platform, chat_id=place.chat_id, thread_id=place.thread_id,
            user_id=user.user_id, reply_to_message_id=anchor if place.is_group else None,
            status_message_id=status_id,
        )  # fmt: skip
        request = JobRequest(
            user=user, target=target, upload_id=upload_id, style=style,
            kind="full" if kind == "full" else ("more_like" if like_rank else "new_style"),
            lora_job_id=lora_job_id, like_rank=like_rank, team_id=team_id,
            nonce=secrets.token_hex(6) if nonce is None else nonce,
        )  # fmt: skip
        teams = self.services.teams
        try:
            if team_id is not None:
                member = await teams.record_job(team_id, user.key, request.job_id())
            try:
                submission = await self.client.submit(request)
            except LimitReached:
                if team_id is not None:  # refused: the member keeps their run
                    await teams.unrecord_job(team_id, user.key, request.job_id())
                raise
        except (LimitReached, NotFound) as exc:
            await surface.show(Screen(str(exc)), message_id=status_id)
            return None
        if team_id is not None:
            update = {"status_message_id": None, "reply_to_message_id": None}
            member.private_target = target.model_copy(update=update)
            member.subject_class = style.subject_class
            await teams.save_member(team_id, member)
        await self.client.set_status_message(submission.job_id, status_id)
        info = await self.client.job(submission.job_id)
        if not submission.created:
            await surface.show(Screen(texts.ALREADY_QUEUED), message_id=status_id)
        elif info is None or info.state is JobState.QUEUED:
            # Once a worker has picked the job up, the status message is the worker's to edit.
            position = info.position if info is not None and info.position else None
            text = texts.queued(position or submission.position, mention(place, user))
            await surface.show(Screen(text), message_id=status_id)
            await self._after_queued_edit(surface, submission.job_id, status_id, text)
        logger.info("submitted %s job %s for %s", request.kind, submission.job_id, user.key)
        return submission.job_id

    async def _after_queued_edit(
        self, surface: Surface, job_id: str, status_id: int, shown: str
    ) -> None:
        """Give the status message back to the worker when it took the job meanwhile.

        Found by bench/soak.py: in a busy group our "Queued" edit can wait tens of seconds in
        the per-chat rate limiter while a worker runs the job and edits the same message, so
        "Queued" landed last, over "Done!". Once the job has left the queue, the worker's latest
        status text is the right one; show it again until it stops changing.
        """
        for _ in range(3):
            info = await self.client.job(job_id)
            if info is None or info.state is JobState.QUEUED:
                return  # still waiting (or forgotten): our text stands
            latest = await self.client.status_text(job_id)
            if latest is None or latest == shown:
                return
            await surface.show(Screen(latest), message_id=status_id)
            shown = latest

    # --- commands ------------------------------------------------------------------------
    async def status(self, turn: Turn) -> None:
        """The active job (position and ETA), else the last job, and the upload in progress."""
        surface, user, scope = turn
        job = await self.client.active_job(user)
        if job is None:
            jobs = await self.client.user_jobs(user)
            job = jobs[-1] if jobs else None
        lines = [texts.job_status(job)] if job is not None else []
        conversation = await self.store.load(user, scope) if scope else None
        stage = conversation.stage if conversation is not None else None
        if conversation is not None and stage == "collecting":
            lines.append(texts.upload_status(len(conversation.stored), self.settings))
        elif stage in ("style", "custom", "confirm"):
            lines.append(texts.CHOOSING)
        await surface.answer("\n".join(lines) or texts.NOTHING_GOING_ON)

    async def cancel(self, turn: Turn) -> None:
        """Cancel the running job, else the upload or style choice in progress."""
        surface, user, scope = turn
        try:
            info = await self.client.cancel(user)
        except NotFound:
            info = None
        if info is not None and info.state is not JobState.CANCELLED:
            await surface.answer(texts.cancelling(info.state))
            return
        if info is not None:
            # A queued job never reaches a worker: nobody else updates its status message.
            target = info.request.target
            if target.status_message_id is not None:
                edit = target.status_message_id
                await self.front.surface(target).show(
                    Screen(texts.CANCELLED_STATUS), message_id=edit
                )
            await surface.answer(texts.CANCELLED_QUEUED)
            return
        async with self._locked(turn):
            conversation = await self.store.load(user, scope) if scope else None
            if conversation is None or conversation.stage not in ACTIVE:
                await surface.answer(texts.NOTHING_TO_CANCEL)
                return
            await self._drop_photos(user, conversation)
            await self.store.put(user, scope, None)
        await surface.answer(texts.CANCELLED_UPLOAD)

    async def forget(
        self, turn: Turn, *, yes: bool, message_id: int
    ) -> tuple[str, ChatCleanup | None]:
        """Delete everything of the person once they confirm: what we store, then what their
        sessions left in chats as far as the platform allows. The report (what went, what is
        left and who can remove it) replaces the question; it and the chat cleanup are returned.
        """
        if not yes:
            await turn.surface.show(Screen(texts.DELETE_KEPT, private=True), message_id=message_id)
            return texts.DELETE_KEPT, None
        await turn.surface.working()  # deleting a chat's messages takes a while
        log, user = self.services.chat_log, turn.user
        posted = await log.items(user)
        jobs = await self.client.user_jobs(user)
        delivered = [job.request.target for job in jobs if job.state is JobState.DONE]
        report = await self.client.forget(user)
        # The record went with everything else. Written back at once, and each entry dropped as
        # its message goes, it is the plan of the cleanup: a bot stopped half-way, or a platform
        # refusing for a while, leaves the rest for the next /delete.
        await log.add(user, *posted)
        cleanup = await self.front.clear_chats(
            user, posted, log, keep=message_id, delivered=delivered
        )
        text = texts.deleted(report, cleanup, turn.surface.platform)
        try:
            await turn.surface.show(Screen(text, private=True), message_id=message_id)
        except Exception:  # the question went with the chat it was asked in
            logger.info("no question left to show %s the delete report in", user.key, exc_info=True)
        return text, cleanup

    # --- buttons under results (posted by the worker) ------------------------------------
    async def result(
        self, turn: Turn, action: Action, place: Place, *, session_id: str = ""
    ) -> JobInfo | None:
        """New style, more like #N, make N more, originals, delete; the job for "pick".

        ``session_id`` names a new style's conversation (front ends that name them)."""
        surface, user, _ = turn
        if action.name == "delete":
            await surface.show(delete_screen())
            return None
        info = await self.client.job(action.job_id)
        if info is None or info.user_key != user.key:
            await surface.answer(texts.JOB_GONE if info is None else texts.NOT_YOUR_JOB, alert=True)
            return None
        request = info.request
        if action.name == "pick":
            return info
        if action.name == "new_style":
            await self._new_style(turn, place, info, session_id)
        elif action.name == "originals" and surface.platform == "discord":
            # Discord keeps attachments byte for byte: the album already is the files (the
            # button is no longer posted there; this answers one posted before).
            await surface.answer(texts.ORIGINALS_ALREADY)
        elif action.name == "originals":
            await surface.working()
            files = await self._originals(user, info)
            if files:
                await surface.send_files(files, texts.ORIGINALS)
            else:
                await surface.answer(texts.NO_ORIGINALS)
        elif action.rank is not None and action.name in ("more_like", "make_more"):
            more, chosen, rank = action.name == "make_more", request.style, action.rank
            if more:
                # The next seeds of the schedule (a set seed), or seeds from the new job id.
                seed = None if chosen.seed is None else chosen.seed + chosen.count
                chosen = chosen.model_copy(update={"count": rank, "seed": seed})
            await surface.answer(
                (texts.MAKING_MORE if more else texts.MORE_LIKE).format(count=rank)
            )
            await self.submit(
                surface, user, place, upload_id=request.upload_id, style=chosen,
                kind="new_style" if more else "more_like", lora_job_id=info.job_id,
                like_rank=None if more else rank, anchor=request.target.reply_to_message_id,
                team_id=request.team_id,
                # One job per press of a "make more" button, however often it is pressed.
                nonce=f"more:{info.job_id}:{rank}" if more else None,
            )  # fmt: skip
        return None

    async def _new_style(self, turn: Turn, place: Place, info: JobInfo, session_id: str) -> None:
        """Ask for a style again for a trained model; the person's features are kept."""
        surface, user, scope = turn
        previous = info.request.style.model_copy(update={"seed": None, "quick": False})
        async with self._locked(turn):
            conversation = Conversation(
                owner_id=user.user_id, place=place, stage="style", kind="new_style",
                upload_id=info.request.upload_id, lora_job_id=info.job_id, job_id=info.job_id,
                anchor_message_id=info.request.target.reply_to_message_id, remembered=True,
                style=previous.model_dump(mode="json", exclude={"custom"}),
            )  # fmt: skip
            conversation.session_id = session_id or conversation.session_id
            conversation.step = self._next(conversation, None)
            conversation.menu_message_id = await surface.show(
                await self._menu(surface, conversation, intro=texts.NEW_STYLE_INTRO),
                reply_to=conversation.anchor_message_id,
            )
            await self.store.save(user, scope, conversation)

    async def _originals(self, user: UserRef, info: JobInfo) -> list[tuple[str, bytes]]:
        files: list[tuple[str, bytes]] = []
        for result in sorted(info.results, key=lambda r: int(r.get("rank", 0))):
            path = str(result["path"])
            try:
                data = await self.client.read_blob(user, path)
            except NotFound:
                continue
            suffix = path[path.rfind(".") :] if "." in path.rsplit("/", 1)[-1] else ".png"
            files.append((f"headshot-{int(result.get('rank', len(files) + 1)):02d}{suffix}", data))
        return files
