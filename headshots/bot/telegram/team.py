"""Team mode in groups: /team (kit, join, status, export, delete), picks and admin review.

A group admin (checked live with ``getChatMember`` on every change) sets the team's brand kit
with buttons in the group; the draft is the admin's own ``kit`` session there, so it never
mixes with a conversation they may have with the bot in the same group. Members join through a
deep link (``/start team_<id>``) into their private chat, where :mod:`conversation` runs their
team session. Only the headshot a member picks is posted in the group; with review on, admins
approve it or ask for a redo (a new run on the member's trained model with the next seeds).
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from telegram import Bot, ForceReply, Message, ReplyParameters, Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import ApplicationHandlerStop, ContextTypes

from headshots.actions import decode_action
from headshots.bot.telegram import messaging, team_keyboards, texts
from headshots.bot.telegram import team_kit as kit_flow
from headshots.bot.telegram.conversation import ConversationHandlers
from headshots.bot.telegram.services import BotServices
from headshots.bot.telegram.state import KIT_SESSION, Place, user_ref
from headshots.bot.telegram.upload import DOWNLOAD_LIMIT, is_image_document
from headshots.errors import NotFound, UserError
from headshots.generation.brand import normalise_logo, safe_filename
from headshots.queue.contracts import ChatTarget, UserRef
from headshots.queue.teams import Member, Team, team_id_for

logger = logging.getLogger(__name__)

#: Telegram's upload limit for bots: export ZIP parts stay under it.
EXPORT_PART_BYTES = 50 * 1000 * 1000
ADMIN_STATUSES = (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)
#: Deep-link payloads (``/start <payload>``) this module answers.
JOIN_PREFIX = "team_"
EXPORT_PREFIX = "export_"
#: A typed answer (team name, colours) must reply to the question, or follow it within this
#: long: an admin who walked away from the setup should not have their next chat line taken.
TEXT_ANSWER_WINDOW_S = 300.0


async def is_group_admin(bot: Bot, chat_id: int, user_id: int) -> bool:
    """Whether ``user_id`` is the creator or an administrator of ``chat_id`` right now."""
    try:
        member = await bot.get_chat_member(chat_id, user_id)
    except TelegramError:
        logger.warning("getChatMember %s/%s failed", chat_id, user_id, exc_info=True)
        return False
    return member.status in ADMIN_STATUSES


def member_user(member: Member) -> UserRef:
    """The :class:`UserRef` of a Telegram team member (keys are ``tg:<user id>``)."""
    return UserRef(
        platform="telegram",
        user_id=int(member.user_key.split(":", 1)[1]),
        display_name=member.display_name,
    )


class TeamHandlers:
    def __init__(self, services: BotServices, conversation: ConversationHandlers) -> None:
        self.services = services
        self.conversation = conversation

    # --- /team ------------------------------------------------------------------------------
    async def command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Show the team's look and Join button, set it up (admins), or run a subcommand."""
        message = update.effective_message
        if message is None or message.from_user is None:
            return
        if message.chat.type == ChatType.PRIVATE:
            await message.reply_text(texts.TEAM_IN_GROUP)
            return
        if messaging.posted_anonymously(message):
            await message.reply_text(texts.ANONYMOUS_SENDER, do_quote=True)
            return
        user = user_ref(message.from_user)
        place = Place.of_message(message)
        team_id = team_id_for("telegram", message.chat_id)
        sub = context.args[0].lower() if context.args else ""
        bot = context.bot
        if sub == "join":
            await self._reply_join(message, team_id)
        elif sub == "status":
            await self._status(message, user, team_id)
        elif sub == "export":
            await self._export_from_group(message, user, team_id)
        elif sub == "delete":
            if not await is_group_admin(bot, message.chat_id, user.user_id):
                await message.reply_text(texts.ONLY_ADMINS, do_quote=True)
                return
            await message.reply_text(
                texts.TEAM_DELETE_CONFIRM,
                reply_markup=team_keyboards.delete(user.user_id),
                do_quote=True,
            )
        elif sub in ("", "setup", "edit", "change"):
            await self._show_or_setup(message, user, place, team_id, setup=bool(sub))
        else:
            await message.reply_text(texts.TEAM_USAGE, do_quote=True)

    async def _show_or_setup(
        self, message: Message, user: UserRef, place: Place, team_id: str, *, setup: bool
    ) -> None:
        team = await self.services.teams.get(team_id)
        admin = await is_group_admin(message.get_bot(), message.chat_id, user.user_id)
        if admin and (team is None or setup):
            await self._start_setup(message.get_bot(), user, place, team, message.message_id)
            return
        if setup:
            await message.reply_text(texts.ONLY_ADMINS_CHANGE, do_quote=True)
            return
        if team is None:
            await message.reply_text(texts.NO_KIT_YET, do_quote=True)
            return
        await self._post_kit(message.get_bot(), team, place, reply_to=message.message_id)

    async def _reply_join(self, message: Message, team_id: str) -> None:
        team = await self.services.teams.get(team_id)
        if team is None:
            await message.reply_text(texts.NO_KIT_YET, do_quote=True)
            return
        link = team_keyboards.join_url(message.get_bot().username, team_id)
        await message.reply_text(
            f"{texts.join_text(team.kit.team_name)}\n{link}",
            reply_markup=team_keyboards.join(message.get_bot().username, team_id),
            do_quote=True,
        )

    async def _post_kit(
        self, bot: Bot, team: Team, place: Place, *, reply_to: int | None = None
    ) -> Message:
        """Post the kit's preview image with its description and the Join button."""
        from headshots.generation.brand import render_kit_preview

        teams = self.services.teams
        logo = await teams.logo(team.team_id) if team.has_logo else None
        preview = await self.services.in_face_thread(render_kit_preview, team.kit.look(), logo)
        caption = texts.kit_caption(kit_flow.look_lines(team.kit, logo=logo is not None))
        return await bot.send_photo(
            place.chat_id,
            preview,
            caption=caption[:1024],
            message_thread_id=place.thread_id,
            reply_parameters=_reply(reply_to),
            reply_markup=team_keyboards.join(bot.username, team.team_id, change=True),
        )

    # --- the kit draft ------------------------------------------------------------------------
    async def _load_draft(self, user: UserRef, place: Place) -> kit_flow.KitDraft | None:
        raw = await self.services.client.load_chat_state(user, place.scope)
        return kit_flow.KitDraft.from_json(raw) if raw is not None else None

    async def _save_draft(self, user: UserRef, place: Place, draft: kit_flow.KitDraft) -> None:
        await self.services.client.save_chat_state(user, place.scope, draft.to_json())

    async def _start_setup(
        self, bot: Bot, user: UserRef, place: Place, team: Team | None, anchor: int | None
    ) -> None:
        kit_place = place.in_session(KIT_SESSION)
        async with self.services.conversations.lock(user, kit_place):
            draft = kit_flow.start_draft(
                team.kit if team else None, has_logo=bool(team and team.has_logo)
            )
            draft.anchor_message_id = anchor
            await self._send_step(bot, user, kit_place, draft)

    async def _send_step(
        self, bot: Bot, user: UserRef, kit_place: Place, draft: kit_flow.KitDraft
    ) -> None:
        """Ask the draft's current question in a new message (and remember it as the menu)."""
        markup = team_keyboards.kit_step(user.user_id, draft)
        text = self._step_text(draft)
        if markup is None:
            # A text answer: in groups with privacy mode the bot only sees replies to itself.
            sent = await bot.send_message(
                kit_place.chat_id,
                text,
                message_thread_id=kit_place.thread_id,
                reply_parameters=_reply(draft.anchor_message_id),
                reply_markup=ForceReply(
                    # Selective: only the admin's reply box opens (the question replies to them).
                    selective=draft.anchor_message_id is not None,
                    input_field_placeholder="Reply here",
                ),
            )
        else:
            sent = await messaging.send(
                bot, kit_place, text, reply_to=draft.anchor_message_id, markup=markup
            )
        draft.menu_message_id = sent.message_id
        draft.asked_at = time.time()
        await self._save_draft(user, kit_place, draft)

    @staticmethod
    def _step_text(draft: kit_flow.KitDraft) -> str:
        text = kit_flow.question(draft.step)
        if draft.step == "confirm":
            text = "\n".join(kit_flow.draft_lines(draft)) + "\n\n" + text
        return text

    @staticmethod
    def _answers(message: Message, draft: kit_flow.KitDraft) -> bool:
        """Whether ``message`` answers the draft's question (a reply to it, or soon after it)."""
        replied = message.reply_to_message
        if replied is not None:
            # A reply to anything else is part of the group's own conversation.
            return replied.message_id == draft.menu_message_id
        return time.time() - draft.asked_at <= TEXT_ANSWER_WINDOW_S

    async def on_kit_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Take an admin's text answer (team name, hex colours) while their kit draft waits."""
        message = update.effective_message
        if message is None or message.from_user is None or not message.text:
            return
        user = user_ref(message.from_user)
        kit_place = Place.of_message(message).in_session(KIT_SESSION)
        async with self.services.conversations.lock(user, kit_place):
            draft = await self._load_draft(user, kit_place)
            if draft is None or draft.step not in kit_flow.TEXT_STEPS:
                return  # not for us: the ordinary handlers see it
            if not self._answers(message, draft):
                return
            try:
                kit_flow.take_text(draft, message.text)
            except UserError as exc:
                await message.reply_text(str(exc), do_quote=True)
                raise ApplicationHandlerStop from None
            draft.anchor_message_id = message.message_id
            await self._send_step(context.bot, user, kit_place, draft)
        raise ApplicationHandlerStop

    async def on_kit_image(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Take the logo an admin sends while their kit draft asks for it."""
        message = update.effective_message
        if message is None or message.from_user is None:
            return
        user = user_ref(message.from_user)
        kit_place = Place.of_message(message).in_session(KIT_SESSION)
        async with self.services.conversations.lock(user, kit_place):
            draft = await self._load_draft(user, kit_place)
            if draft is None or draft.step != "logo" or not self._answers(message, draft):
                return
            if message.photo:
                file_id, size = message.photo[-1].file_id, message.photo[-1].file_size
            elif message.document is not None and is_image_document(
                message.document.mime_type, message.document.file_name
            ):
                file_id, size = message.document.file_id, message.document.file_size
            else:
                await message.reply_text(texts.LOGO_NOT_IMAGE, do_quote=True)
                raise ApplicationHandlerStop
            if size is not None and size > DOWNLOAD_LIMIT:
                await message.reply_text(texts.file_too_large(size), do_quote=True)
                raise ApplicationHandlerStop
            data = bytes(await (await context.bot.get_file(file_id)).download_as_bytearray())
            try:
                png = await self.services.in_face_thread(normalise_logo, data)
            except UserError as exc:
                await message.reply_text(str(exc), do_quote=True)
                raise ApplicationHandlerStop from None
            kit_flow.take_logo(draft, png)
            if draft.menu_message_id is not None:
                await messaging.edit(
                    context.bot,
                    kit_place,
                    draft.menu_message_id,
                    kit_flow.question("logo") + " " + texts.LOGO_RECEIVED,
                )
            draft.anchor_message_id = message.message_id
            await self._send_step(context.bot, user, kit_place, draft)
        raise ApplicationHandlerStop

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Route team buttons: kit steps, "Change look", review, delete confirmation."""
        query = update.callback_query
        if query is None or query.data is None or not isinstance(query.message, Message):
            if query is not None:
                await query.answer(texts.STALE_MENU)
            return
        callback = team_keyboards.decode(query.data)
        if callback is None:
            await query.answer(texts.STALE_MENU)
            return
        message = query.message
        user = user_ref(query.from_user)
        bot = context.bot
        if callback.kind == team_keyboards.MENU:
            if not await is_group_admin(bot, message.chat_id, user.user_id):
                await query.answer(texts.ONLY_ADMINS_CHANGE, show_alert=True)
                return
            team = await self.services.teams.get(team_id_for("telegram", message.chat_id))
            await query.answer()
            await self._start_setup(bot, user, Place.of_message(message), team, None)
            return
        if callback.kind == team_keyboards.REVIEW:
            await query.answer(await self._review(bot, message, user, callback.args))
            return
        owner = callback.args[0] if callback.args else ""
        if owner != str(user.user_id):
            admin = await is_group_admin(bot, message.chat_id, user.user_id)
            await query.answer(
                texts.NOT_YOUR_BUTTON if admin else texts.ONLY_ADMINS_CHANGE, show_alert=True
            )
            return
        if callback.kind == team_keyboards.DELETE:
            await query.answer(await self._delete(bot, message, user, callback.args[1:]))
            return
        await query.answer(await self._kit_step(bot, message, user, callback.args[1:]))

    async def _kit_step(
        self, bot: Bot, message: Message, user: UserRef, args: tuple[str, ...]
    ) -> str | None:
        kit_place = Place.of_message(message).in_session(KIT_SESSION)
        async with self.services.conversations.lock(user, kit_place):
            draft = await self._load_draft(user, kit_place)
            step = kit_flow.CODE_STEPS.get(args[0]) if len(args) == 2 else None
            if draft is None or message.message_id != draft.menu_message_id or step != draft.step:
                return texts.STALE_MENU
            if not await is_group_admin(bot, message.chat_id, user.user_id):
                return texts.ONLY_ADMINS_CHANGE
            value = args[1]
            if step == "confirm":
                return await self._confirm(bot, message, user, kit_place, draft, value)
            labels = {o.value: o.label for o in kit_flow.options(step, draft)}
            try:
                kit_flow.choose(draft, step, value)
            except ValueError:
                return texts.STALE_MENU
            chosen = labels[value]
            if draft.step in kit_flow.TEXT_STEPS:
                # The question that takes a typed answer needs its own (reply-to) message.
                await messaging.edit(
                    bot, kit_place, message.message_id, f"{kit_flow.question(step)} {chosen}"
                )
                await self._send_step(bot, user, kit_place, draft)
                return None
            markup = team_keyboards.kit_step(user.user_id, draft)
            await messaging.edit(
                bot, kit_place, message.message_id, self._step_text(draft), markup=markup
            )
            await self._save_draft(user, kit_place, draft)
            return chosen

    async def _confirm(
        self,
        bot: Bot,
        message: Message,
        user: UserRef,
        kit_place: Place,
        draft: kit_flow.KitDraft,
        choice: str,
    ) -> str | None:
        client = self.services.client
        if choice == "cancel":
            await client.clear_chat_state(user, kit_place.scope)
            await messaging.edit(bot, kit_place, message.message_id, texts.KIT_CANCELLED)
            return "Cancelled"
        if choice == "restart":
            fresh = kit_flow.start_draft(kit_flow.to_kit(draft), has_logo=draft.had_logo)
            fresh.editing = draft.editing
            fresh.anchor_message_id = draft.anchor_message_id
            fresh.menu_message_id = message.message_id
            await messaging.edit(
                bot,
                kit_place,
                message.message_id,
                self._step_text(fresh),
                markup=team_keyboards.kit_step(user.user_id, fresh),
            )
            await self._save_draft(user, kit_place, fresh)
            return None
        kit = kit_flow.to_kit(draft)
        teams = self.services.teams
        team_id = team_id_for("telegram", kit_place.chat_id)
        target = ChatTarget(
            platform="telegram",
            chat_id=kit_place.chat_id,
            thread_id=kit_place.thread_id,
            user_id=user.user_id,
        )
        await teams.save_kit(team_id, "telegram", kit, target, user.user_id)
        if draft.logo == "new":
            await teams.set_logo(team_id, draft.logo_bytes)
        elif draft.logo == "none":
            await teams.set_logo(team_id, None)
        await client.clear_chat_state(user, kit_place.scope)
        await messaging.edit(
            bot,
            kit_place,
            message.message_id,
            "\n".join(kit_flow.draft_lines(draft)) + "\n\n" + texts.KIT_SAVED,
        )
        team = await teams.require(team_id)
        await self._post_kit(bot, team, Place(kit_place.chat_id, kit_place.thread_id, True))
        logger.info("team %s: kit saved by %s", team_id, user.key)
        return "Saved"

    # --- deep links in the private chat -----------------------------------------------------
    async def on_start_link(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Open a team session (``/start team_<id>``) or send an export (``export_<id>``)."""
        message = update.effective_message
        if message is None or message.from_user is None:
            return
        payload = context.args[0] if context.args else ""
        user = user_ref(message.from_user)
        if payload.startswith(JOIN_PREFIX):
            await self.conversation.start_team(message, user, payload.removeprefix(JOIN_PREFIX))
            return
        team = await self.services.teams.get(payload.removeprefix(EXPORT_PREFIX))
        if team is None:
            await message.reply_text(texts.TEAM_LINK_STALE)
            return
        if not await is_group_admin(context.bot, team.target.chat_id, user.user_id):
            await message.reply_text(texts.ONLY_ADMINS)
            return
        if not await self._send_export(context.bot, team, user):
            await message.reply_text(texts.EXPORT_EMPTY)

    # --- picks and review ---------------------------------------------------------------------
    async def on_pick(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Post the member's chosen headshot in the team's chat (review buttons if the kit asks)."""
        query = update.callback_query
        if query is None or query.data is None:
            return
        action = decode_action(query.data)
        if action is None or action.rank is None:
            await query.answer(texts.STALE_MENU)
            return
        user = user_ref(query.from_user)
        client = self.services.client
        info = await client.job(action.job_id)
        if info is None:
            await query.answer(texts.JOB_GONE, show_alert=True)
            return
        if info.user_key != user.key:
            await query.answer(texts.NOT_YOUR_BUTTON, show_alert=True)
            return
        team_id = info.request.team_id
        result = next((r for r in info.results if int(r.get("rank", 0)) == action.rank), None)
        if team_id is None or result is None:
            await query.answer(texts.NOT_A_TEAM_JOB if team_id is None else texts.JOB_GONE)
            return
        teams = self.services.teams
        before = await teams.member(team_id, user.key)
        if before is not None and (before.favourite_job, before.favourite_rank) == (
            info.job_id,
            action.rank,
        ):
            await query.answer(f"#{action.rank} is already your pick.")
            return
        try:
            image = await client.read_blob(user, str(result["path"]))
            member = await teams.pick_favourite(team_id, user.key, info.job_id, action.rank, image)
            team = await teams.require(team_id)
        except NotFound as exc:
            await query.answer(str(exc)[:200], show_alert=True)
            return
        review = team.kit.review
        await context.bot.send_photo(
            team.target.chat_id,
            image,
            caption=texts.team_pick_caption(member.display_name, team.kit.team_name, review=review),
            message_thread_id=team.target.thread_id,
            reply_markup=team_keyboards.review(user.user_id, info.job_id) if review else None,
        )
        logger.info("team %s: %s picked #%d of %s", team_id, user.key, action.rank, info.job_id)
        await query.answer(f"Posted #{action.rank}")
        if isinstance(query.message, Message):
            await messaging.send(
                context.bot,
                Place.of_message(query.message),
                texts.picked(action.rank, review=review),
            )

    async def _review(
        self, bot: Bot, message: Message, user: UserRef, args: tuple[str, ...]
    ) -> str | None:
        if len(args) != 3 or not args[1].isdigit():
            return texts.STALE_MENU
        if not await is_group_admin(bot, message.chat_id, user.user_id):
            return texts.ONLY_ADMINS
        verdict, member_id, job_id = args
        teams = self.services.teams
        team_id = team_id_for("telegram", message.chat_id)
        member = await teams.member(team_id, f"tg:{member_id}")
        if member is None or member.favourite_job != job_id or member.state != "picked":
            await self._drop_buttons(bot, message)
            return texts.ALREADY_REVIEWED
        team = await teams.require(team_id)
        caption = message.caption or ""
        if verdict == "a":
            await teams.review(team_id, member.user_key, approve=True)
            await self._edit_caption(bot, message, texts.approved_caption(caption, user_name(user)))
            await self._tell_member(bot, member, texts.APPROVED_MEMBER)
            return "Approved"
        await teams.review(team_id, member.user_key, approve=False)
        await self._edit_caption(bot, message, texts.redo_caption(caption, user_name(user)))
        started = await self._redo(bot, team, member)
        return "Redo started" if started else texts.REDO_NOT_STARTED

    async def _redo(self, bot: Bot, team: Team, member: Member) -> bool:
        """A new run on the member's trained model with the kit's next seeds, sent to them."""
        if not member.job_ids or member.private_target is None:
            return False
        last = await self.services.client.job(member.job_ids[-1])
        if last is None:
            return False
        # A redo of a redo still reuses the model of the member's one training run.
        lora_job_id = last.request.lora_job_id if last.request.kind != "full" else last.job_id
        subject = member.subject_class or last.request.style.subject_class
        style = team.kit.style_for(subject).model_copy(
            update={"seed": team.kit.seed + 1000 * len(member.job_ids)}
        )
        await self._tell_member(bot, member, texts.REDO_MEMBER)
        target = member.private_target
        job_id = await self.conversation.submit(
            bot,
            member_user(member),
            Place(target.chat_id, target.thread_id, target.chat_id < 0),
            upload_id=last.request.upload_id,
            style=style,
            kind="new_style",
            lora_job_id=lora_job_id,
            team_id=team.team_id,
        )
        return job_id is not None

    async def _tell_member(self, bot: Bot, member: Member, text: str) -> None:
        target = member.private_target
        if target is None:
            return
        try:
            await bot.send_message(target.chat_id, text, message_thread_id=target.thread_id)
        except Forbidden:
            logger.info("member %s blocked the bot; not told: %s", member.user_key, text)

    @staticmethod
    async def _edit_caption(bot: Bot, message: Message, caption: str) -> None:
        try:
            await bot.edit_message_caption(
                chat_id=message.chat_id, message_id=message.message_id, caption=caption[:1024]
            )
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():
                raise

    @staticmethod
    async def _drop_buttons(bot: Bot, message: Message) -> None:
        try:
            await bot.edit_message_reply_markup(
                chat_id=message.chat_id, message_id=message.message_id, reply_markup=None
            )
        except BadRequest:
            pass  # already without buttons

    # --- status, export, delete ---------------------------------------------------------------
    async def _status(self, message: Message, user: UserRef, team_id: str) -> None:
        team = await self.services.teams.get(team_id)
        if team is None:
            await message.reply_text(texts.NO_KIT_YET, do_quote=True)
            return
        progress = await self.services.teams.progress(team_id)
        counts = Counter(label for _, label in progress)
        admin = await is_group_admin(message.get_bot(), message.chat_id, user.user_id)
        rows = [(m.display_name, label) for m, label in progress] if admin else None
        await message.reply_text(
            texts.team_status(team.kit.team_name, dict(counts), rows), do_quote=True
        )

    async def _export_from_group(self, message: Message, user: UserRef, team_id: str) -> None:
        bot = message.get_bot()
        if not await is_group_admin(bot, message.chat_id, user.user_id):
            await message.reply_text(texts.ONLY_ADMINS, do_quote=True)
            return
        team = await self.services.teams.get(team_id)
        if team is None:
            await message.reply_text(texts.NO_KIT_YET, do_quote=True)
            return
        try:
            sent = await self._send_export(bot, team, user)
        except Forbidden:
            # The admin never opened a private chat with the bot: bots cannot start one.
            link = team_keyboards.export_url(bot.username, team_id)
            await message.reply_text(texts.export_needs_start(link), do_quote=True)
            return
        if sent:
            await message.reply_text(texts.EXPORT_SENT, do_quote=True)
        else:
            await message.reply_text(texts.EXPORT_EMPTY, do_quote=True)

    async def _send_export(self, bot: Bot, team: Team, admin: UserRef) -> bool:
        """Send the export ZIP part(s) to the admin's private chat; ``False`` when empty.

        Raises :class:`Forbidden` when the admin never started a private chat with the bot.
        """
        try:
            parts = await self.services.teams.export(team.team_id, max_bytes=EXPORT_PART_BYTES)
        except NotFound:
            return False
        base = safe_filename(team.kit.team_name, team.team_id)
        for number, part in enumerate(parts, start=1):
            suffix = f"-part{number}" if len(parts) > 1 else ""
            await bot.send_document(
                admin.user_id,
                part,
                filename=f"{base}-headshots{suffix}.zip",
                caption=texts.export_caption(team.kit.team_name, number, len(parts)),
            )
        logger.info("team %s: export of %d part(s) sent to %s", team.team_id, len(parts), admin.key)
        return True

    async def _delete(
        self, bot: Bot, message: Message, user: UserRef, args: tuple[str, ...]
    ) -> str | None:
        place = Place.of_message(message)
        if args[:1] != ("y",):
            await messaging.edit(bot, place, message.message_id, texts.TEAM_DELETE_KEPT)
            return None
        if not await is_group_admin(bot, message.chat_id, user.user_id):
            return texts.ONLY_ADMINS
        team_id = team_id_for("telegram", message.chat_id)
        await self.forget_team(team_id)
        await self.services.client.clear_chat_state(user, place.in_session(KIT_SESSION).scope)
        await messaging.edit(bot, place, message.message_id, texts.TEAM_DELETED)
        logger.info("team %s deleted by %s", team_id, user.key)
        return "Deleted"

    async def forget_team(self, team_id: str) -> None:
        """Delete the team, and its members' team sessions (their own data stays theirs)."""
        teams = self.services.teams
        conversations = self.services.conversations
        for member in await teams.members(team_id):
            person = member_user(member)
            session = Place.team_session(person.user_id, team_id)
            async with conversations.lock(person, session):
                await conversations.clear(person, session)
                pointed = await conversations.place_of_chat(person, person.user_id)
                if pointed.team_id == team_id:
                    await conversations.switch_session(person, person.user_id, None)
        await teams.delete_team(team_id)


def _reply(message_id: int | None) -> ReplyParameters | None:
    if message_id is None:
        return None
    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True)


def user_name(user: UserRef) -> str:
    return user.display_name or f"admin {user.user_id}"
