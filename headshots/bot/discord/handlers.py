"""Discord commands, components, modals and messages -> the conversation core.

A session in a server is a private thread per job with the person added, or a DM where the bot
may not open private threads (or Discord refuses one); public threads only when the operator
sets ``HEADSHOTS_DISCORD_PRIVATE_THREADS=false`` (a team member's session is private whatever
it says). In DMs it is the DM channel itself. Its conversation is the person's chat state
``dc-session:<session id>``; ``dc-where:<channel id>`` says which session a thread or DM belongs
to (photos posted there), and an admin's team-look draft is ``dc-kit:<guild id>``. Every place
is recorded in the person's chat log, for ``/delete``. Team admins: **Manage Server**, or the
role ``HEADSHOTS_DISCORD_TEAM_ADMIN_ROLE`` (by name or id), read live from each interaction.

Every interaction is acknowledged before its handler waits for anything (see ``guarded``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any, cast

import discord
from discord import app_commands

from headshots.actions import decode_action
from headshots.bot.conversation import texts
from headshots.bot.conversation.flow import Flow, Services, delete_screen
from headshots.bot.conversation.screens import Screen, Turn
from headshots.bot.conversation.state import Conversation, Photo, Place
from headshots.bot.conversation.team import TeamFlow, delete_team_screen
from headshots.bot.discord.surface import (
    DESCRIPTION,
    FIRST_COLOUR,
    OP_STEPS,
    SECOND_COLOUR,
    TEAM_NAME,
    UPLOAD_BYTES,
    DiscordFront,
    DiscordSurface,
    for_discord,
    form,
    submitted_values,
)
from headshots.errors import OperationalError, UserError
from headshots.queue.chat_log import Posted
from headshots.queue.contracts import UserRef
from headshots.queue.teams import Team, team_id_for
from headshots.settings import Settings

logger = logging.getLogger(__name__)

#: Discord's attachment ceiling for most servers; anything larger is refused unread.
MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024
MAX_LOGO_BYTES = 8 * 1024 * 1024


def user_ref(user: discord.abc.User) -> UserRef:
    return UserRef(platform="discord", user_id=user.id, display_name=user.display_name)


def precheck(size: int, content_type: str | None) -> str | None:
    """A reason to refuse an attachment from what Discord says about it, before downloading."""
    if size > MAX_ATTACHMENT_BYTES:
        return texts.attachment_too_large(size, MAX_ATTACHMENT_BYTES)
    if content_type and not content_type.startswith("image/"):
        return texts.NOT_A_PHOTO.format(kind=content_type.split(";")[0])
    return None


def photo_of(attachment: discord.Attachment, message_id: int, position: int) -> Photo:
    return Photo(
        url=attachment.url,
        name=attachment.filename,
        size=attachment.size,
        content_type=attachment.content_type,
        place=(message_id, position),
        refused=precheck(attachment.size, attachment.content_type),
    )


#: Commands answered at once from memory (no lock, no I/O): no deferred reply first.
INSTANT_COMMANDS = ("info", "delete")


def kit_form_wanted(op: str, values: list[str]) -> bool:
    """Whether a press of the team-look editor opens a form (typed name or brand colours)."""
    return op in ("name", "colours") or (op == "bg" and values[:1] in (["colour"], ["gradient"]))


def chat_place(place: Place, interaction: discord.Interaction) -> Posted:
    """The record of a session's thread or DM (``/delete`` clears it, see ``chat_log``)."""
    if place.thread_id is None:
        return Posted(chat_id=place.chat_id, kind="dm", name=texts.DISCORD_DM_WHERE)
    channel = interaction.channel
    parent = channel.name if isinstance(channel, discord.TextChannel) else ""
    where = texts.DISCORD_THREAD_WHERE + (f" in #{parent}" if parent else "")
    return Posted(chat_id=place.thread_id, kind="thread", own=True, name=where)


def session_scope(session_id: str) -> str:
    return f"dc-session:{session_id}"


class WorkspaceRefused(Exception):
    """Discord refused the thread (permissions changed since the check); ``str()`` is for users."""


def missing_permissions(
    interaction: discord.Interaction, settings: Settings, *, private: bool | None = None
) -> list[str]:
    """Names of the permissions the bot lacks here to open a session thread."""
    private = settings.discord_private_threads if private is None else private
    needed = ["create_private_threads" if private else "create_public_threads"]
    needed += ["send_messages_in_threads", "attach_files"]
    return [name for name in needed if not getattr(interaction.app_permissions, name)]


async def open_thread(
    channel: discord.TextChannel, user: discord.abc.User, settings: Settings, *, private: bool
) -> discord.Thread:
    """Create a session's thread (archived after the configured time) and add the person."""
    kind = discord.ChannelType.private_thread if private else discord.ChannelType.public_thread
    try:
        thread = await channel.create_thread(
            name=for_discord(f"Headshots · {user.display_name}", 100), type=kind,
            auto_archive_duration=cast(Any, settings.discord_thread_archive_minutes),
            invitable=not private, reason=f"headshot session of {user.id}",
        )  # fmt: skip
    except discord.Forbidden as exc:
        logger.info("thread creation refused in channel %s: %s", channel.id, exc.text)
        raise WorkspaceRefused(for_discord(texts.thread_refused(private=private))) from exc
    try:
        await thread.add_user(user)
    except discord.HTTPException:
        # A public thread stays reachable without membership; a private one was created by the
        # bot, which may add members, so this only fails transiently.
        logger.warning("could not add user %s to thread %s", user.id, thread.id, exc_info=True)
    return thread


class DiscordBot:
    """Every handler of the bot; the conversation itself is the core's."""

    def __init__(self, client: discord.Client, services: Services) -> None:
        self.client = client
        self.services = services
        self.settings = services.settings
        self.flow = Flow(services, DiscordFront(client))
        self.team = TeamFlow(self.flow)
        #: Interactions being handled; ``settled`` is set while there are none.
        self._handling = 0
        self._settled = asyncio.Event()
        self._settled.set()

    async def settled(self) -> None:
        """Wait until no interaction is being handled (its edits and followups are out)."""
        await self._settled.wait()

    @property
    def store(self) -> Any:
        return self.services.conversations

    async def write_owed_tallies(self) -> None:
        """Once connected: the tallies a bot that died mid-upload never wrote (``tally_due``)."""

        def surface(user: UserRef, conversation: Conversation) -> DiscordSurface:
            place = conversation.place
            return DiscordSurface(
                self.client,
                place.thread_id or place.chat_id,  # photos are posted in the thread, or DM
                guild_id=place.guild_id,
                owner_id=conversation.owner_id or user.user_id,
                session_id=conversation.session_id,
            )

        await self.flow.refresh_due_tallies("discord", surface)

    def _admins(self) -> str:
        role = self.settings.discord_team_admin_role
        who = "server admins (**Manage Server**)"
        return who + (f" and members with the **{role}** role" if role else "")

    def _is_admin(self, interaction: discord.Interaction) -> bool:
        """Whether the person may change the team now: Manage Server, or the team role."""
        user = interaction.user
        if interaction.guild_id is None or not isinstance(user, discord.Member):
            return False
        permissions = interaction.permissions  # resolved into the payload: no member cache
        if permissions.manage_guild or permissions.administrator:
            return True
        role = self.settings.discord_team_admin_role
        if role:
            wanted = role.strip().lstrip("@").lower()
            # Role names need the guild's role cache (the ``guilds`` intent fills it).
            return any(str(r.id) == wanted or r.name.lower() == wanted for r in user.roles)
        return False

    def _surface(
        self, interaction: discord.Interaction, *, session_id: str = "", kit: bool = False
    ) -> DiscordSurface:
        return DiscordSurface(
            self.client,
            interaction.channel_id or interaction.user.id,
            guild_id=interaction.guild_id,
            owner_id=interaction.user.id,
            session_id=session_id,
            interaction=interaction,
            kit=kit,
        )

    async def _session_at(self, user: UserRef, channel_id: int) -> str | None:
        """The scope of ``user``'s session in this thread or DM, if any."""
        where = await self.store.raw(user, f"dc-where:{channel_id}")
        return session_scope(str(where["session_id"])) if where else None

    # --- entry points (client events) ------------------------------------------------------
    async def guarded(
        self,
        interaction: discord.Interaction,
        surface: DiscordSurface,
        work: Any,
        *,
        acknowledge: bool = True,
    ) -> None:
        """Acknowledge, then run a handler; errors go to the one error handler.

        Acknowledging comes first, whatever the handler waits for (a session lock held by a
        photo check, Redis, the faces): Discord refuses an initial response after 3 s, and the
        person sees "This interaction failed". Only what opens a form (a modal is an initial
        response itself) and answers that need nothing slow skip it (``acknowledge=False``).
        """
        self._handling += 1
        self._settled.clear()
        try:
            if acknowledge:
                await surface.acknowledge()
            await work
            await surface.finish()
        except Exception as exc:
            work.close()  # never awaited when the acknowledgement failed
            await report_error(interaction, exc)
        finally:
            self._handling -= 1
            if not self._handling:
                self._settled.set()

    async def on_command(self, interaction: discord.Interaction, name: str, **options: Any) -> None:
        surface = self._surface(interaction)
        handler = getattr(self, "cmd_" + name.replace(" ", "_"))
        work = handler(interaction, surface, **options)
        await self.guarded(interaction, surface, work, acknowledge=name not in INSTANT_COMMANDS)

    async def on_component(
        self, interaction: discord.Interaction, custom_id: str, values: list[str]
    ) -> None:
        prefix, _, rest = custom_id.partition(":")
        op, _, tail = rest.partition(":")
        surface = self._surface(interaction, kit=prefix == "hsdk")
        if prefix == "hs":
            work = self._result(interaction, custom_id)
        elif prefix == "hsdt":
            work = self._team_button(interaction, surface, op, tail)
        elif prefix == "hsdk":
            work = self._kit(interaction, surface, op, tail, values)
        else:
            work = self._session(interaction, op, tail, values)
        opens_form = (prefix == "hsd" and op == "custom") or (
            prefix == "hsdk" and kit_form_wanted(op, values)
        )
        await self.guarded(interaction, surface, work, acknowledge=not opens_form)

    async def on_modal(self, interaction: discord.Interaction) -> None:
        data: dict[str, Any] = dict(interaction.data or {})  # type: ignore[arg-type]
        prefix, _, rest = str(data.get("custom_id", "")).partition(":")
        op, _, tail = rest.partition(":")
        owner, _, key = tail.partition(":")
        values = submitted_values(data)
        user = user_ref(interaction.user)
        if prefix == "hsd" and op == "modal":
            surface = self._surface(interaction, session_id=key)
            work = self.flow.describe(
                Turn(surface, user, session_scope(key)), values.get(DESCRIPTION, "")
            )
        elif prefix == "hsdk" and op.startswith("m-") and owner == str(user.user_id):
            surface = self._surface(interaction, kit=True)
            typed = " ".join(v for k, v in sorted(values.items()) if v.strip())
            step = op.removeprefix("m-")
            work = self.team.kit_text(Turn(surface, user, f"dc-kit:{key}"), typed, step=step)
        else:
            return
        await self.guarded(interaction, surface, work)

    async def on_message(self, message: discord.Message) -> None:
        """Check selfies posted in a session thread or DM."""
        if message.author.bot:
            return
        if not message.attachments:
            await self._maybe_unseen_photos(message)
            return
        user = user_ref(message.author)
        scope = await self._session_at(user, message.channel.id)
        if scope is None:
            if isinstance(message.channel, discord.DMChannel):
                await message.channel.send(for_discord(texts.NO_UPLOAD_HERE))
            return
        # The session's id: a reference photo brings the summary back, and its buttons must
        # reach this session.
        surface = DiscordSurface(
            self.client,
            message.channel.id,
            guild_id=message.guild.id if message.guild else None,
            owner_id=user.user_id,
            session_id=scope.removeprefix(session_scope("")),
        )
        photos = [photo_of(a, message.id, n) for n, a in enumerate(message.attachments)]
        turn = Turn(surface, user, scope)
        problem = await self.flow.add_photos(turn, photos)
        if problem is not None:
            await surface.answer(problem)
            return
        await self.flow.refresh_tally(turn)

    async def _maybe_unseen_photos(self, message: discord.Message) -> None:
        """Without the Message Content intent a server message arrives with no attachments
        (and no text): in a session thread it may have carried selfies, so say how they reach
        the bot instead of ignoring them."""
        channel, bot = message.channel, self.client.user
        if self.client.intents.message_content or isinstance(channel, discord.DMChannel):
            return  # DMs always carry their attachments
        if isinstance(channel, discord.Thread):
            if bot is None or channel.owner_id != bot.id:
                return  # not a thread of ours: not our business
        elif not isinstance(channel, discord.PartialMessageable):
            return  # a channel the cache knows, and no thread: sessions live in threads
        if await self._session_at(user_ref(message.author), channel.id) is not None:
            await channel.send(for_discord(texts.ATTACH_HINT))

    # --- a session ---------------------------------------------------------------------------
    async def cmd_start(
        self, interaction: discord.Interaction, surface: DiscordSurface, photos: list[Any]
    ) -> None:
        """Consent once, then a thread (or the DM), selfie checks and the style form."""
        user, channel = user_ref(interaction.user), interaction.channel
        if isinstance(channel, discord.Thread):
            own = await self._session_at(user, channel.id)
            bot = self.client.user
            if own is not None and photos:
                await self.cmd_add(interaction, surface, photos)
            elif own is not None:
                by_command = not self.client.intents.message_content
                await surface.answer(texts.OWN_THREAD_ATTACH if by_command else texts.OWN_THREAD)
            elif bot is not None and channel.owner_id == bot.id:
                await surface.answer(texts.OTHER_PERSONS_THREAD)
            else:
                await surface.answer(texts.IN_A_THREAD)
            return
        if interaction.guild_id is not None:
            missing = missing_permissions(interaction, self.settings)
            if missing and not self.settings.discord_private_threads:
                await surface.answer(texts.missing_permissions(missing, private=False))
                return  # (private sessions without a private thread go to a DM instead)
            if not isinstance(channel, discord.TextChannel):
                await surface.answer(texts.NOT_A_TEXT_CHANNEL)
                return
        await surface.working()
        pending = [photo_of(a, 0, n) for n, a in enumerate(photos)]
        place = Place(interaction.channel_id or user.user_id, guild_id=interaction.guild_id)
        await self._begin(interaction, user, place, pending=pending)

    async def cmd_add(
        self, interaction: discord.Interaction, surface: DiscordSurface, photos: list[Any]
    ) -> None:
        """Check selfies attached to the command and add them to the session here."""
        user = user_ref(interaction.user)
        workspace = interaction.channel_id or 0
        scope = await self._session_at(user, workspace)
        if scope is None:
            await surface.answer(texts.ADD_WHERE)
            return
        # The interaction's id orders these among the thread's messages (both are snowflakes).
        pending = [photo_of(a, interaction.id, n) for n, a in enumerate(photos)]
        here = DiscordSurface(
            self.client, workspace, guild_id=interaction.guild_id, owner_id=user.user_id,
            session_id=scope.removeprefix(session_scope("")),
        )  # fmt: skip
        turn = Turn(here, user, scope)
        problem = await self.flow.add_photos(turn, pending)
        if problem is not None:
            await surface.answer(problem)
            return
        await self.flow.refresh_tally(turn)
        await surface.answer(texts.photos_added(len(photos)))

    async def _begin(
        self,
        interaction: discord.Interaction,
        user: UserRef,
        place: Place,
        *,
        pending: list[Photo] | None = None,
        team_id: str | None = None,
    ) -> None:
        session_id = secrets.token_hex(6)
        surface = self._surface(interaction, session_id=session_id)
        fresh = Conversation(
            session_id=session_id, owner_id=user.user_id, place=place, team_id=team_id,
            pending=pending or [],
        )  # fmt: skip
        opened = await self.flow.begin(
            Turn(surface, user, session_scope(session_id)), fresh, resume=False
        )
        if opened is not None:
            await self._open(interaction, user, opened)

    async def _open(
        self, interaction: discord.Interaction, user: UserRef, conversation: Conversation
    ) -> None:
        """Open the thread (or use the DM), then the core asks for photos there."""
        place, note = conversation.place, ""
        private = conversation.team_id is not None or self.settings.discord_private_threads
        reply = DiscordSurface(self.client, 0, interaction=interaction)
        try:
            if place.guild_id is not None and private:
                place, note = await self._private_place(interaction, place)
            elif place.guild_id is not None:
                channel = interaction.channel
                if not isinstance(channel, discord.TextChannel):
                    raise WorkspaceRefused(for_discord(texts.NOT_A_TEXT_CHANNEL))
                thread = await open_thread(channel, interaction.user, self.settings, private=False)
                place = Place(channel.id, thread.id, guild_id=place.guild_id)
        except WorkspaceRefused as exc:
            await reply.reply_in_place(str(exc))
            return
        conversation.place = place
        workspace = place.thread_id or place.chat_id
        scope = session_scope(conversation.session_id)
        await self.store.put(user, f"dc-where:{workspace}", {"session_id": conversation.session_id})
        await self.services.chat_log.add(user, chat_place(place, interaction))
        surface = DiscordSurface(
            self.client, workspace, guild_id=place.guild_id, owner_id=user.user_id,
            session_id=conversation.session_id,
        )  # fmt: skip
        try:
            if not await self.flow.open(Turn(surface, user, scope), conversation, note=note):
                return
        except discord.Forbidden:  # 50007: the person takes no DMs from this server's members
            logger.info("could not write to %s in %s", user.key, workspace, exc_info=True)
            await self.store.put(user, scope, None)
            await self.store.put(user, f"dc-where:{workspace}", None)
            await reply.reply_in_place(texts.NO_PRIVATE_PLACE)
            return
        if place.thread_id:
            where = f"<#{place.thread_id}>"
        else:
            where = "a DM from me" if interaction.guild_id is not None else "this chat"
        await reply.reply_in_place(texts.SESSION_OPEN.format(where=where))

    async def _tell_privately(self, interaction: discord.Interaction, text: str) -> None:
        """Send ``text`` by DM (best effort: the person may take no DMs from the server)."""
        try:
            dm = await interaction.user.create_dm()
            await dm.send(for_discord(text))
        except discord.HTTPException:
            logger.info("could not DM %s", interaction.user.id, exc_info=True)

    async def _private_place(
        self, interaction: discord.Interaction, place: Place
    ) -> tuple[Place, str]:
        """A private thread in the place's channel (the person's, or the team's), else a DM.

        A DM when the bot may not open private threads there (the command's channel says so
        at once), or Discord refuses the thread.
        """
        here = interaction.channel_id == place.chat_id
        channel: Any = interaction.channel if here else self.client.get_channel(place.chat_id)
        if channel is None:
            try:
                channel = await self.client.fetch_channel(place.chat_id)
            except discord.HTTPException:
                logger.warning("cannot see team channel %s", place.chat_id, exc_info=True)
        allowed = not here or not missing_permissions(interaction, self.settings, private=True)
        if isinstance(channel, discord.TextChannel) and allowed:
            try:
                thread = await open_thread(channel, interaction.user, self.settings, private=True)
                return Place(
                    channel.id, thread.id, guild_id=place.guild_id
                ), texts.PRIVATE_THREAD_NOTE
            except WorkspaceRefused:
                logger.info("no private thread in %s: using a DM", place.chat_id)
        try:
            dm = await interaction.user.create_dm()
        except discord.HTTPException as exc:
            raise WorkspaceRefused(for_discord(texts.NO_PRIVATE_PLACE)) from exc
        return Place(dm.id), texts.DM_FALLBACK_NOTE

    async def _session(
        self, interaction: discord.Interaction, op: str, tail: str, values: list[str]
    ) -> None:
        owner, _, session_id = tail.partition(":")
        surface = self._surface(interaction, session_id=session_id)
        user = user_ref(interaction.user)
        if owner != str(user.user_id):
            await surface.answer(texts.NOT_YOUR_SESSION)
            return
        message_id = interaction.message.id if interaction.message else 0
        scope = session_scope(session_id)
        turn = Turn(surface, user, scope)
        if op in ("forget", "keep"):
            text, cleanup = await self.flow.forget(turn, yes=op == "forget", message_id=message_id)
            if cleanup is not None and interaction.channel_id in cleanup.closed:
                await self._tell_privately(interaction, text)  # the reply went with the thread
        elif op in ("consent", "decline"):
            accepted = op == "consent"
            opened = await self.flow.consent(turn, accepted=accepted, message_id=message_id)
            if opened is not None:
                await surface.reply_in_place(texts.OPENING)
                await self._open(interaction, user, opened)
        elif op == "custom":
            conversation = await self.store.load(user, scope)
            current = conversation.style.get("custom") if conversation else None
            look = (
                DESCRIPTION,
                "Describe the look",
                "e.g. warm smile, soft window light",
                current or "",
            )
            await interaction.response.send_modal(
                form("Custom description", f"hsd:modal:{tail}", look)
            )
        elif op in OP_STEPS["hsd"]:
            value = values[0] if values else ""
            step = OP_STEPS["hsd"][op]
            await self.flow.press(turn, "set", value, step=step, message_id=message_id)
        elif op in ("look", "more", "you", "hairstyle"):  # the form's pages
            await self.flow.press(turn, "page", op, message_id=message_id)
        else:
            await self.flow.press(turn, op, message_id=message_id)

    async def _result(self, interaction: discord.Interaction, custom_id: str) -> None:
        """The worker's buttons under results."""
        action = decode_action(custom_id)
        user = user_ref(interaction.user)
        session_id = secrets.token_hex(6)
        surface = self._surface(interaction, session_id=session_id)
        if action is None:
            await surface.answer(texts.STALE_MENU)
            return
        channel = interaction.channel
        parent = channel.parent_id if isinstance(channel, discord.Thread) else None
        workspace = interaction.channel_id or user.user_id
        place = Place(
            parent or workspace, workspace if parent else None, guild_id=interaction.guild_id
        )
        scope = session_scope(session_id)
        turn = Turn(surface, user, scope)
        info = await self.flow.result(turn, action, place, session_id=session_id)
        if action.name == "new_style" and await self.store.raw(user, scope):
            await self.store.put(user, f"dc-where:{workspace}", {"session_id": session_id})
        if info is not None and action.rank is not None:
            await self.team.pick(turn, info, action.rank)

    async def cmd_status(
        self, interaction: discord.Interaction, surface: DiscordSurface, cancel: bool = False
    ) -> None:
        """Where the person's job stands (or cancel it, or the session here)."""
        await surface.working()
        user = user_ref(interaction.user)
        scope = await self._session_at(user, interaction.channel_id or 0)
        await (self.flow.cancel if cancel else self.flow.status)(Turn(surface, user, scope or ""))

    async def cmd_delete(self, interaction: discord.Interaction, surface: DiscordSurface) -> None:
        await surface.show(delete_screen())

    async def cmd_info(
        self, interaction: discord.Interaction, surface: DiscordSurface, text: str
    ) -> None:
        await surface.answer(text)

    # --- team mode ---------------------------------------------------------------------------
    async def _team_here(
        self, interaction: discord.Interaction, surface: DiscordSurface, *, admin: bool = False
    ) -> Team | None:
        """The server's team (when the person may use it), or ``None`` after saying why not."""
        if interaction.guild_id is None:
            await surface.answer(texts.TEAM_SERVER_ONLY)
            return None
        if admin and not self._is_admin(interaction):
            await surface.answer(texts.ONLY_ADMINS.format(admins=self._admins()))
            return None
        team = await self.services.teams.get(team_id_for("discord", interaction.guild_id))
        if team is None:
            await surface.answer(texts.NO_TEAM)
        return team

    async def cmd_team_setup(
        self,
        interaction: discord.Interaction,
        surface: DiscordSurface,
        logo: Any = None,
        reference: Any = None,
    ) -> None:
        """Open the look editor; Save posts the preview and a Join button in this channel."""
        channel, guild_id = interaction.channel, interaction.guild_id
        if guild_id is None:
            await surface.answer(texts.TEAM_SERVER_ONLY)
        elif not self._is_admin(interaction):
            await surface.answer(texts.ONLY_ADMINS.format(admins=self._admins()))
        elif not isinstance(channel, discord.TextChannel):
            await surface.answer(texts.TEAM_SETUP_CHANNEL)
        elif missing := [
            name
            for name in ("send_messages", "attach_files")
            if not getattr(interaction.app_permissions, name)
        ]:
            await surface.answer(texts.missing_permissions(missing, private=True))
        else:
            await surface.working()
            # Attachment links expire: both are fetched and checked now.
            logo_png = await self._kit_attachment("logo", logo)
            reference_png = await self._kit_attachment("reference", reference)
            name = interaction.guild.name if interaction.guild and interaction.guild.name else ""
            turn = Turn(self._surface(interaction, kit=True), user_ref(interaction.user))
            await self.team.kit_start(
                turn._replace(scope=f"dc-kit:{guild_id}"),
                team_id_for("discord", guild_id),
                Place(channel.id, guild_id=guild_id),
                name=name,
                logo=logo_png,
                reference=reference_png,
            )

    async def _kit_attachment(self, step: str, attachment: Any) -> bytes | None:
        """A ``/team setup`` attachment as the checked PNG for kit ``step`` (``None``: none);
        :class:`UserError` with the reply when it can't be used."""
        if attachment is None:
            return None
        if not (attachment.content_type or "image/").startswith("image/"):
            raise UserError(texts.KIT_NOT_IMAGE[step])
        # A logo is small; a reference is a photo, as large as a selfie may be.
        limit = MAX_LOGO_BYTES if step == "logo" else MAX_ATTACHMENT_BYTES
        if attachment.size > limit:
            raise UserError(texts.kit_file_too_large(attachment.size, limit))
        url = attachment.url  # fetched and decoded under the selfie checks' limit
        return await self.team.checked_image(step, lambda: self.flow.front.download(url))

    async def _kit(
        self,
        interaction: discord.Interaction,
        surface: DiscordSurface,
        op: str,
        tail: str,
        values: list[str],
    ) -> None:
        admin_id, _, guild = tail.partition(":")
        user = user_ref(interaction.user)
        if not self._is_admin(interaction):  # rights may have changed since the setup
            await surface.answer(texts.ONLY_ADMINS_CHANGE.format(admins=self._admins()))
            return
        if admin_id != str(user.user_id):
            await surface.answer(texts.KIT_NOT_YOURS)
            return
        scope, message_id = f"dc-kit:{guild}", interaction.message.id if interaction.message else 0
        draft = await self.team.draft(user, scope)
        value = values[0] if values else ""
        if draft is not None and kit_form_wanted(op, values):  # typed answers: a form (modal)
            background = draft.values.get("background") or {}
            kind = value or str(background.get("kind"))
            kind = kind if kind in ("colour", "gradient") else "colour"
            colours = [*background.get("colours", []), "", ""]
            if op == "name":
                field = (TEAM_NAME, "Team name", "e.g. Acme", str(draft.values.get("team_name")))
                modal = form("Team name", f"hsdk:m-name:{tail}", field)
            else:
                first = (FIRST_COLOUR, "Colour (hex)", "#1F6FEB", colours[0])
                second = (SECOND_COLOUR, "Second colour (gradient)", "#0B1F3A", colours[1])
                pair = (first, second) if kind == "gradient" else (first,)
                modal = form("Brand colours (hex)", f"hsdk:m-{kind}:{tail}", *pair)
            await interaction.response.send_modal(modal)
            return
        step, value = OP_STEPS["hsdk"].get(op, "form"), value or op
        await surface.acknowledge()  # only still due when a form was wanted and its draft is gone
        team_id = team_id_for("discord", int(guild))
        turn = Turn(surface, user, scope)
        await self.team.kit_press(turn, step, value, team_id=team_id, message_id=message_id)

    async def cmd_team_show(
        self, interaction: discord.Interaction, surface: DiscordSurface
    ) -> None:
        """Show the team's look and its preview, privately."""
        team = await self._team_here(interaction, surface)
        if team is not None:
            await surface.working()
            await self.team.post_kit(surface, team, private=True)

    async def cmd_team_join(
        self, interaction: discord.Interaction, surface: DiscordSurface
    ) -> None:
        """Join the team: consent, then a private thread (or DM) for the selfies."""
        team = await self._team_here(interaction, surface)
        if team is not None:
            await surface.working()
            place = Place(team.target.chat_id, guild_id=interaction.guild_id)
            await self._begin(interaction, user_ref(interaction.user), place, team_id=team.team_id)

    async def cmd_team_status(
        self, interaction: discord.Interaction, surface: DiscordSurface
    ) -> None:
        team = await self._team_here(interaction, surface)
        if team is not None:
            await surface.working()
            user = user_ref(interaction.user)
            await self.team.status(surface, team, user, admin=self._is_admin(interaction))

    async def cmd_team_export(
        self, interaction: discord.Interaction, surface: DiscordSurface
    ) -> None:
        """Send the approved headshots and a contact sheet to the admin by DM."""
        team = await self._team_here(interaction, surface, admin=True)
        if team is None:
            return
        await surface.working()
        limit = (interaction.filesize_limit or UPLOAD_BYTES) - 64 * 1024
        try:
            dm = await interaction.user.create_dm()
            sent = await self.team.export(DiscordSurface(self.client, dm.id), team, max_bytes=limit)
        except discord.HTTPException:
            logger.info("could not DM the export to %s", interaction.user.id, exc_info=True)
            await surface.answer(texts.EXPORT_DM_FAILED)
            return
        await surface.answer(texts.EXPORT_SENT if sent else texts.EXPORT_EMPTY)

    async def cmd_team_delete(
        self, interaction: discord.Interaction, surface: DiscordSurface
    ) -> None:
        if await self._team_here(interaction, surface, admin=True) is not None:
            await surface.show(delete_team_screen())

    async def _team_button(
        self, interaction: discord.Interaction, surface: DiscordSurface, op: str, tail: str
    ) -> None:
        message_id = interaction.message.id if interaction.message else 0
        if op == "join":
            await self.cmd_team_join(interaction, surface)
            return
        if not self._is_admin(interaction):
            await surface.answer(texts.ONLY_ADMINS.format(admins=self._admins()))
            return
        guild = interaction.guild_id or 0
        team_id = team_id_for("discord", guild)
        if op in ("ok", "redo"):
            value = f"{op}:{tail}"
            name = interaction.user.display_name
            await self.team.review(surface, name, team_id, value, message_id=message_id)
        elif tail.partition(":")[0] != str(interaction.user.id):
            await surface.answer(texts.KIT_NOT_YOURS)
        elif op == "keep":
            await surface.show(Screen(texts.TEAM_DELETE_KEPT, private=True), message_id=message_id)
        else:
            await self.services.teams.delete_team(team_id)
            await surface.show(Screen(texts.TEAM_DELETED, private=True), message_id=message_id)


def user_text(error: BaseException) -> str:
    """What to tell the person about ``error`` (logging is the caller's business)."""
    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, app_commands.CheckFailure):
        return str(error) or "You can't use this command here."
    return texts.OPERATIONAL if isinstance(error, OperationalError) else texts.ERROR


async def report_error(interaction: discord.Interaction, error: BaseException) -> None:
    """Log ``error`` and tell the person something useful, privately."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    command = interaction.command.qualified_name if interaction.command else "component"
    if isinstance(error, (UserError, app_commands.CheckFailure)):
        logger.info("user error in %s for user %s: %s", command, interaction.user.id, error)
    else:
        logger.error("error in %s", command, exc_info=error)
    try:
        await DiscordSurface(interaction.client, 0, interaction=interaction).answer(
            user_text(error)
        )
    except discord.HTTPException:
        # The interaction token may have expired (15 min); nothing more we can say.
        logger.warning("could not report an error to user %s", interaction.user.id, exc_info=True)
