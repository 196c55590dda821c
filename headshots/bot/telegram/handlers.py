"""Telegram updates -> the conversation core, and which update goes to which handler.

A private chat holds several sessions of one person: their own, and a team member's session
(``/start team_<id>``, the team's join link) next to it; a pointer in Redis says which one the
chat's messages belong to (set by the join link, cleared by a plain /start). In groups everyone
has their own conversation, per forum topic; an admin's team-look draft is their ``kit``
session there. Team admins are group creators and administrators, checked live with
``getChatMember`` on every change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from telegram import BotCommand, CallbackQuery, Message, Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import Forbidden, TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from headshots.actions import PREFIX as ACTION_PREFIX
from headshots.actions import decode_action
from headshots.bot.conversation import kit as kit_steps
from headshots.bot.conversation import style, texts
from headshots.bot.conversation.flow import Flow, Services, delete_screen
from headshots.bot.conversation.screens import Button, Screen, Turn
from headshots.bot.conversation.state import KIT_SESSION, Conversation, Photo, Place
from headshots.bot.conversation.team import TeamFlow, delete_team_screen, member_user
from headshots.bot.telegram.albums import QuietPeriod
from headshots.bot.telegram.surface import (
    DOWNLOAD_LIMIT,
    FROM_KIND,
    PATTERN,
    TelegramFront,
    TelegramSurface,
    decode,
    deep_link,
    place_of_message,
    plain,
    posted_anonymously,
    user_ref,
)
from headshots.errors import OperationalError, UserError
from headshots.queue.chat_log import ChatLog, Posted
from headshots.queue.contracts import UserRef
from headshots.queue.teams import team_id_for

logger = logging.getLogger(__name__)

AnyApplication = Application[Any, Any, Any, Any, Any, Any]
Context = ContextTypes.DEFAULT_TYPE

EXPORT_PART_BYTES = 50 * 1000 * 1000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".bmp", ".tif", ".tiff")
ADMIN_STATUSES = (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)
ADMINS = "group admins"
#: A typed answer (team name, colours) must reply to the question, or follow it within this
#: long: an admin who walked away from the setup should not have their next chat line taken.
TEXT_ANSWER_WINDOW_S = 300.0
#: The command menu (set_my_commands), in the words of /help.
COMMANDS = [
    BotCommand(*line.removeprefix("/").split(" – ", 1))
    for line in texts.HELP.splitlines()
    if line.startswith("/")
]
OTHER_KINDS = (
    ("sticker", "stickers"),
    ("video", "videos"),
    ("video_note", "video messages"),
    ("animation", "GIFs"),
    ("voice", "voice messages"),
    ("audio", "audio"),
    ("location", "locations"),
    ("contact", "contacts"),
    ("poll", "polls"),
    ("dice", "dice"),
)


def image_file(message: Message) -> tuple[str, int | None, str] | None:
    """(file id, size, name) of the photo (its largest size) or image file in ``message``."""
    if message.photo:
        return message.photo[-1].file_id, message.photo[-1].file_size, ""
    document = message.document
    if document is None:
        return None
    mime, name = (document.mime_type or "").lower(), document.file_name or ""
    if mime.startswith("image/") or name.lower().endswith(IMAGE_SUFFIXES):
        return document.file_id, document.file_size, name
    return None


def photo_posted(message: Message) -> Posted:
    """The record of a photo the person sent (``/delete`` deletes it where Telegram lets it)."""
    return Posted(
        chat_id=message.chat_id, message_id=message.message_id,
        thread_id=message.message_thread_id if message.is_topic_message else None,
        by="person", kind="photo", at=message.date.timestamp(), name=message.chat.title or "",
    )  # fmt: skip


class TelegramBot:
    """Every handler of the bot; the conversation itself is the core's."""

    def __init__(self, services: Services, front: TelegramFront, *, quiet_period_s: float) -> None:
        self.services = services
        self.flow = Flow(services, front)
        self.team = TeamFlow(self.flow)
        self.tally = QuietPeriod(quiet_period_s)

    @property
    def store(self) -> Any:
        return self.services.conversations

    async def write_owed_tallies(self, bot: Any) -> None:
        """At start-up: the tallies a bot that died mid-album never wrote (see ``tally_due``).

        Waits one quiet period first, so that albums re-delivered after the restart are counted
        by their own flush, not answered half-way.
        """
        await asyncio.sleep(self.tally.delay_s)

        def surface(user: UserRef, conversation: Conversation) -> TelegramSurface:
            owner = conversation.owner_id or user.user_id
            return TelegramSurface(bot, conversation.place, owner_id=owner, log=self.log)

        await self.flow.refresh_due_tallies("telegram", surface)

    @property
    def log(self) -> ChatLog:
        return self.services.chat_log

    def _surface(
        self,
        context: Context,
        place: Place,
        user: UserRef,
        *,
        message: Message | None = None,
        query: CallbackQuery | None = None,
        session: bool = True,
    ) -> TelegramSurface:
        """A surface for ``user``'s conversation: what it posts is recorded for ``/delete``
        (``session=False``: a team's or kit's message, which is not the person's data)."""
        return TelegramSurface(
            context.bot, place, owner_id=user.user_id, query=query, message=message,
            log=self.log if session else None,
        )  # fmt: skip

    async def _place(self, user: UserRef, message: Message) -> Place:
        """The place of ``message``, in the session its private chat is switched to."""
        place = place_of_message(message)
        return place if place.is_group else await self.store.place_of_chat(user, place.chat_id)

    @staticmethod
    async def _is_admin(context: Context, chat_id: int, user_id: int) -> bool:
        try:
            member = await context.bot.get_chat_member(chat_id, user_id)
        except TelegramError:
            logger.warning("getChatMember %s/%s failed", chat_id, user_id, exc_info=True)
            return False
        return member.status in ADMIN_STATUSES

    # --- /start, deep links ------------------------------------------------------------
    async def start(self, update: Update, context: Context) -> None:
        """Explain what happens and ask for consent, or offer to continue an upload."""
        message = update.effective_message
        if message is None or message.from_user is None:
            return
        if posted_anonymously(message):
            await message.reply_text(texts.ANONYMOUS_SENDER, do_quote=True)
            return
        user, place = user_ref(message.from_user), place_of_message(message)
        payload = context.args[0] if context.args and not place.is_group else ""
        if payload.startswith("export_"):
            await self._export_link(message, context, user, payload.removeprefix("export_"))
            return
        team_id = payload.removeprefix("team_") if payload.startswith("team_") else None
        if team_id is not None:
            if await self.services.teams.get(team_id) is None:
                await message.reply_text(texts.TEAM_LINK_STALE)
                return
            active = await self.services.client.active_job(user)
            if active is not None:  # one job at a time: the chat stays in its session
                await message.reply_text(texts.ALREADY_RUNNING + texts.job_status(active))
                return
            place = Place.team_session(place.chat_id, team_id)
        if not place.is_group:
            await self.store.switch_session(user, place.chat_id, team_id)
        surface = self._surface(context, place, user, message=message)
        turn = Turn(surface, user, place.scope)
        fresh = Conversation(
            owner_id=user.user_id,
            place=place,
            anchor_message_id=message.message_id,
            team_id=team_id,
        )
        opened = await self.flow.begin(turn, fresh)
        if opened is not None:
            await self.flow.open(turn, opened)

    async def _export_link(
        self, message: Message, context: Context, user: UserRef, team_id: str
    ) -> None:
        team = await self.services.teams.get(team_id)
        if team is None:
            await message.reply_text(texts.TEAM_LINK_STALE)
        elif not await self._is_admin(context, team.target.chat_id, user.user_id):
            await message.reply_text(texts.ONLY_ADMINS.format(admins=ADMINS))
        elif not await self._export(context, team, user):
            await message.reply_text(texts.EXPORT_EMPTY)

    # --- photos --------------------------------------------------------------------------
    async def on_image(self, update: Update, context: Context) -> None:
        """Check a photo (the largest size) or image file; explain why other files are refused."""
        message = update.effective_message
        if message is None or message.from_user is None:
            return
        found = image_file(message)
        if found is not None:
            await self._take(message, context, *found)
        elif await self._listening(user_ref(message.from_user), message):
            await message.reply_text(texts.NOT_AN_IMAGE, do_quote=message.chat.type != "private")

    async def _listening(self, user: UserRef, message: Message) -> bool:
        """In groups the bot only answers members who are in a conversation with it."""
        place = await self._place(user, message)
        if not place.is_group:
            return True
        conversation = await self.store.load(user, place)
        return conversation is not None and conversation.stage != "submitted"

    async def _take(
        self, message: Message, context: Context, file_id: str, size: int | None, name: str
    ) -> None:
        if message.from_user is None:
            return
        user = user_ref(message.from_user)
        place = await self._place(user, message)
        surface = self._surface(context, place, user, message=message)
        if size is not None and size > DOWNLOAD_LIMIT:
            # Refused before getFile: Telegram does not serve such files to bots.
            if await self._listening(user, message):
                await surface.answer(texts.file_too_large(size))
            return
        key = (user.key, place.scope)
        photo = Photo(url=file_id, name=name, place=(message.message_id, 0))
        self.tally.begin(key)
        try:
            problem = await self.flow.add_photos(Turn(surface, user, place.scope), [photo])
            quiet = place.is_group and problem in (texts.NEED_START, texts.ALREADY_SUBMITTED)
            if problem is None or not place.is_group:  # the person's photo, sent to us
                await self.log.add(user, photo_posted(message))
            if problem is not None and not quiet:  # in busy groups, others' photos aren't ours
                await surface.answer(problem)
        finally:
            later = self._surface(context, place, user)
            self.tally.end(key, lambda: self.flow.refresh_tally(Turn(later, user, place.scope)))

    # --- text and everything else ------------------------------------------------------------
    async def on_text(self, update: Update, context: Context) -> None:
        """Use text as a custom description when asked for one; otherwise say what to do."""
        message = update.effective_message
        if message is None or message.from_user is None:
            return
        user = user_ref(message.from_user)
        place = await self._place(user, message)
        surface = self._surface(context, place, user, message=message)
        await self.flow.text(Turn(surface, user, place.scope), place, message.text or "")

    async def on_other(self, update: Update, context: Context) -> None:
        """Explain that stickers, videos, voice and the like cannot be used."""
        message = update.effective_message
        if message is None or message.from_user is None:
            return
        if await self._listening(user_ref(message.from_user), message):
            kind = next((w for a, w in OTHER_KINDS if getattr(message, a, None)), "this")
            await message.reply_text(
                texts.unsupported(kind), do_quote=message.chat.type != ChatType.PRIVATE
            )

    async def on_unknown_command(self, update: Update, context: Context) -> None:
        """Point at /help for commands we do not know (private chats only)."""
        message = update.effective_message
        if message is not None and message.chat.type == ChatType.PRIVATE:
            await message.reply_text(texts.UNKNOWN_COMMAND)

    # --- commands ------------------------------------------------------------------------
    async def info(self, update: Update, context: Context) -> None:
        """Answer /help, /tips, /styles and /privacy."""
        message = update.effective_message
        if message is None or not message.text:
            return
        command = message.text.split()[0].split("@")[0].lstrip("/")
        settings = self.services.settings
        if command == "styles":
            text = style.styles_text()
        else:
            text = {
                "tips": texts.tips(settings),
                "privacy": texts.privacy(settings, "telegram"),
            }.get(command, texts.HELP)
        await message.reply_text(plain(text))

    async def command(self, update: Update, context: Context) -> None:
        """Answer /status, /cancel and /delete."""
        message = update.effective_message
        if message is None or message.from_user is None or not message.text:
            return
        user = user_ref(message.from_user)
        place = await self._place(user, message)
        surface = self._surface(context, place, user, message=message)
        command = message.text.split()[0].split("@")[0].lstrip("/")
        if command == "status":
            await self.flow.status(Turn(surface, user, place.scope))
        elif command == "cancel":
            await self.flow.cancel(Turn(surface, user, place.scope))
        else:
            await surface.show(delete_screen(), reply_to=message.message_id)

    # --- buttons -------------------------------------------------------------------------
    async def on_button(self, update: Update, context: Context) -> None:
        """Route a press of one of our buttons to the conversation, the draft or the team."""
        query = update.callback_query
        if query is None or query.data is None or not isinstance(query.message, Message):
            if query is not None:
                await query.answer(texts.STALE_MENU)
            return
        callback = decode(query.data)
        message, user = query.message, user_ref(query.from_user)
        place = await self._place(user, message)
        team = callback is not None and callback.kind in ("tk", "td", "tm", "tv")
        surface = self._surface(context, place, user, query=query, session=not team)
        try:
            if callback is None:
                await surface.answer(texts.STALE_MENU)
            elif callback.kind in ("tk", "td", "tm", "tv"):
                await self._team_button(surface, context, message, user, callback.kind, callback)
            elif callback.user_id != user.user_id:
                await surface.answer(texts.NOT_YOUR_SESSION, alert=True)
            else:
                turn = Turn(surface, user, place.scope)
                await self._own_button(turn, message.message_id, callback.kind, callback.args)
        finally:
            await surface.finish()

    async def _own_button(self, turn: Turn, mid: int, kind: str, args: tuple[str, ...]) -> None:
        user = turn.user
        if kind == "s" and len(args) == 2:
            await self.flow.press(turn, "answer", args[1], step=args[0], message_id=mid)
            return
        action, value = FROM_KIND.get((kind, args[0] if args else ""), ("", ""))
        if action == "forget":
            if value == "y":
                # Pending tally refreshes would write conversation state back after the delete.
                self.tally.forget(lambda key: isinstance(key, tuple) and key[0] == user.key)
            await self.flow.forget(turn, yes=value == "y", message_id=mid)
        elif action == "consent":
            opened = await self.flow.consent(turn, accepted=value == "y", message_id=mid)
            if opened is not None:
                await self.flow.open(turn, opened, edit=mid)
        elif action:
            await self.flow.press(turn, action, value, message_id=mid)
        else:
            await turn.surface.answer(texts.STALE_MENU)

    async def on_result(self, update: Update, context: Context) -> None:
        """Handle the worker's buttons under results (new style, more, originals, pick...)."""
        query = update.callback_query
        if query is None or query.data is None:
            return
        action = decode_action(query.data)
        if action is None or not isinstance(query.message, Message):
            await query.answer(texts.STALE_MENU)
            return
        user = user_ref(query.from_user)
        place = place_of_message(query.message)
        surface = self._surface(context, place, user, query=query)
        try:
            if action.name == "new_style" and not place.is_group:
                await self.store.switch_session(user, place.chat_id, None)
            turn = Turn(surface, user, place.scope)
            info = await self.flow.result(turn, action, place)
            if info is not None and action.rank is not None:
                await self.team.pick(turn, info, action.rank)
        finally:
            await surface.finish()

    # --- team mode -------------------------------------------------------------------------
    async def team_command(self, update: Update, context: Context) -> None:
        """Show the team's look and Join button, set it up (admins), or run a subcommand."""
        message = update.effective_message
        if message is None or message.from_user is None:
            return
        if message.chat.type == ChatType.PRIVATE:
            await message.reply_text(texts.TEAM_IN_GROUP)
            return
        if posted_anonymously(message):
            await message.reply_text(texts.ANONYMOUS_SENDER, do_quote=True)
            return
        user, place = user_ref(message.from_user), place_of_message(message)
        surface = TelegramSurface(context.bot, place, owner_id=user.user_id, message=message)
        team_id = team_id_for("telegram", message.chat_id)
        team = await self.services.teams.get(team_id)
        sub = context.args[0].lower() if context.args else ""
        admin = await self._is_admin(context, message.chat_id, user.user_id)
        if sub in ("", "setup", "edit", "change") and admin and (team is None or sub):
            kit_scope = place.in_session(KIT_SESSION).scope
            turn = Turn(surface, user, kit_scope)
            await self.team.kit_start(turn, team_id, place, anchor=message.message_id)
        elif sub in ("setup", "edit", "change", "export", "delete") and not admin:
            await surface.answer(texts.ONLY_ADMINS.format(admins=ADMINS))
        elif sub not in ("", "join", "status", "export", "delete"):
            await surface.answer(texts.TEAM_USAGE)
        elif team is None:
            await surface.answer(texts.NO_TEAM)
        elif sub == "":
            await self.team.post_kit(surface, team, reply_to=message.message_id)
        elif sub == "join":
            link = deep_link(context.bot.username, "team_" + team_id)
            join = Screen(
                texts.JOIN_TEXT.format(team_name=team.kit.team_name) + f"\n{link}",
                buttons=[Button("join", "👋 Join", team_id)],
            )
            await surface.show(join, reply_to=message.message_id)
        elif sub == "status":
            await self.team.status(surface, team, user, admin=admin)
        elif sub == "export":
            try:
                sent = await self._export(context, team, user)
            except Forbidden:  # the admin never opened a private chat: bots cannot start one
                link = deep_link(context.bot.username, "export_" + team_id)
                await surface.answer(texts.EXPORT_NEEDS_START.format(link=link))
                return
            await surface.answer(texts.EXPORT_SENT if sent else texts.EXPORT_EMPTY)
        else:
            await surface.show(delete_team_screen(), reply_to=message.message_id)

    async def _export(self, context: Context, team: Any, admin: UserRef) -> bool:
        private = TelegramSurface(context.bot, Place(admin.user_id), owner_id=admin.user_id)
        return await self.team.export(private, team, max_bytes=EXPORT_PART_BYTES)

    async def _team_button(
        self,
        surface: TelegramSurface,
        context: Context,
        message: Message,
        user: UserRef,
        kind: str,
        callback: Any,
    ) -> None:
        admin = await self._is_admin(context, message.chat_id, user.user_id)
        team_id = team_id_for("telegram", message.chat_id)
        place = place_of_message(message)
        if kind == "tv":
            if not admin:
                await surface.answer(texts.ONLY_ADMINS.format(admins=ADMINS), alert=True)
            elif len(callback.args) == 3:
                verdict, member, job = callback.args
                value = f"{'ok' if verdict == 'a' else 'redo'}:{member}:{job}"
                name = user.display_name or f"admin {user.user_id}"
                await self.team.review(surface, name, team_id, value, message_id=message.message_id)
            return
        if not admin:
            await surface.answer(texts.ONLY_ADMINS_CHANGE.format(admins=ADMINS), alert=True)
            return
        kit_scope = place.in_session(KIT_SESSION).scope
        if kind == "tm":
            await self.team.kit_start(Turn(surface, user, kit_scope), team_id, place)
        elif callback.user_id != user.user_id:
            await surface.answer(texts.KIT_NOT_YOURS, alert=True)
        elif kind == "td":
            if callback.args[:1] != ("y",):
                await surface.show(Screen(texts.TEAM_DELETE_KEPT), message_id=message.message_id)
                return
            await self._forget_team(team_id)
            await self.store.put(user, kit_scope, None)
            await surface.show(Screen(texts.TEAM_DELETED), message_id=message.message_id)
            logger.info("team %s deleted by %s", team_id, user.key)
        elif len(callback.args) == 2:
            step, value = callback.args
            turn = Turn(surface, user, kit_scope)
            await self.team.kit_press(
                turn, step, value, team_id=team_id, message_id=message.message_id
            )

    async def _forget_team(self, team_id: str) -> None:
        """Delete the team, and its members' team sessions (their own data stays theirs)."""
        for member in await self.services.teams.members(team_id):
            person = member_user(member, "telegram")
            session = Place.team_session(person.user_id, team_id)
            async with self.store.lock(person, session):
                await self.store.put(person, session, None)
                if (await self.store.place_of_chat(person, person.user_id)).team_id == team_id:
                    await self.store.switch_session(person, person.user_id, None)
        await self.services.teams.delete_team(team_id)

    async def _kit_answer(self, message: Message, user: UserRef) -> tuple[str, Any] | None:
        """The admin's draft ``message`` answers (a reply to it, or soon after it), if any."""
        kit_scope = place_of_message(message).in_session(KIT_SESSION).scope
        draft = await self.team.draft(user, kit_scope)
        if draft is None:
            return None
        replied = message.reply_to_message
        if replied is not None and replied.message_id != draft.menu_message_id:
            return None  # a reply to anything else is part of the group's own conversation
        if replied is None and time.time() - draft.asked_at > TEXT_ANSWER_WINDOW_S:
            return None
        return kit_scope, draft

    async def on_kit_text(self, update: Update, context: Context) -> None:
        """Take an admin's typed answer (team name, hex colours) while their draft waits."""
        message = update.effective_message
        if message is None or message.from_user is None or not message.text:
            return
        user = user_ref(message.from_user)
        found = await self._kit_answer(message, user)
        if found is None or found[1].step not in kit_steps.TEXT_STEPS:
            return  # not for us: the ordinary handlers see it
        surface = TelegramSurface(
            context.bot, place_of_message(message), owner_id=user.user_id, message=message
        )
        turn = Turn(surface, user, found[0])
        await self.team.kit_text(turn, message.text, anchor=message.message_id)
        raise ApplicationHandlerStop

    async def on_kit_image(self, update: Update, context: Context) -> None:
        """Take the logo or reference portrait an admin sends while their draft asks for it."""
        message = update.effective_message
        if message is None or message.from_user is None:
            return
        user = user_ref(message.from_user)
        found = await self._kit_answer(message, user)
        if found is None or found[1].step not in kit_steps.IMAGE_STEPS:
            return
        step = found[1].step
        surface = TelegramSurface(
            context.bot, place_of_message(message), owner_id=user.user_id, message=message
        )
        image = image_file(message)
        if image is None:
            await surface.answer(texts.KIT_NOT_IMAGE[step])
            raise ApplicationHandlerStop
        file_id, size, _ = image
        if size is not None and size > DOWNLOAD_LIMIT:
            await surface.answer(texts.file_too_large(size))
            raise ApplicationHandlerStop
        try:
            png = await self.team.checked_image(step, lambda: self.flow.front.download(file_id))
        except UserError as exc:
            await surface.answer(str(exc))
            raise ApplicationHandlerStop from None
        await self.team.kit_image(Turn(surface, user, found[0]), png, anchor=message.message_id)
        raise ApplicationHandlerStop

    # --- errors ----------------------------------------------------------------------------
    @staticmethod
    async def on_error(update: object, context: Context) -> None:
        """Log the exception with its traceback and answer the user in the chat it came from."""
        error = context.error
        if isinstance(error, UserError):
            # Written for the user (a limit, an expired job): no traceback needed.
            logger.info("user error: %s", error)
            reply = str(error)
        else:
            logger.error("error while handling an update", exc_info=error)
            reply = texts.OPERATIONAL if isinstance(error, OperationalError) else texts.ERROR
        if not isinstance(update, Update):
            return
        try:
            if update.callback_query is not None:
                await update.callback_query.answer(reply[:200], show_alert=True)
            elif update.effective_message is not None:
                await update.effective_message.reply_text(reply)
        except Exception:  # the chat may be gone or Telegram down: logging is all we can do
            logger.warning("could not tell the user about the error", exc_info=True)


def register(application: AnyApplication, bot: TelegramBot) -> None:
    """Add every handler and the error handler to ``application``."""
    # An admin's typed answers while setting up the team's look (its name, colours, logo) are
    # looked at first; anything else falls through (ApplicationHandlerStop ends the update).
    groups = filters.ChatType.GROUPS
    application.add_handlers(
        [
            MessageHandler(groups & filters.TEXT & ~filters.COMMAND, bot.on_kit_text),
            MessageHandler(groups & (filters.PHOTO | filters.Document.ALL), bot.on_kit_image),
        ],
        group=-1,
    )
    other = (
        filters.Sticker.ALL | filters.VIDEO | filters.VIDEO_NOTE | filters.ANIMATION
        | filters.VOICE | filters.AUDIO | filters.LOCATION | filters.CONTACT | filters.POLL
        | filters.Dice.ALL
    )  # fmt: skip
    application.add_handlers(
        [
            CommandHandler("start", bot.start),
            CommandHandler("team", bot.team_command),
            CommandHandler(["help", "tips", "styles", "privacy"], bot.info),
            CommandHandler(["status", "cancel", "delete"], bot.command),
            CallbackQueryHandler(bot.on_button, pattern=PATTERN),
            CallbackQueryHandler(bot.on_result, pattern=rf"^{ACTION_PREFIX}:"),
            MessageHandler(
                filters.PHOTO | (filters.Document.ALL & ~filters.ANIMATION), bot.on_image
            ),
            MessageHandler(filters.COMMAND, bot.on_unknown_command),
            MessageHandler(filters.TEXT, bot.on_text),
            MessageHandler(other, bot.on_other),
        ]
    )
    application.add_error_handler(bot.on_error)
