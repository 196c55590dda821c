"""Slack commands, actions, modals and messages -> the conversation core.

A person's session lives in their DM with the app, whichever channel ``/headshots start``
was typed in: its conversation is the chat state ``sl-session:<session id>``, and
``sl-where:<DM id>`` says which session the DM's files belong to. An admin's team-look draft is
``sl-kit:<team id>``; one team per workspace, its place the channel the look was set up in.
Team admins: workspace admins and owners (``users.info``), or members of the user group
``HEADSHOTS_SLACK_TEAM_ADMIN_GROUP``, read live for every press.

Every envelope is acknowledged first (Slack allows 3 s), then handled; errors go to
:meth:`SlackBot.guarded`, which logs them and tells the person.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from headshots.actions import decode_action
from headshots.bot.conversation import style, texts
from headshots.bot.conversation.flow import Flow, Services, delete_screen
from headshots.bot.conversation.screens import Screen, Turn
from headshots.bot.conversation.state import Conversation, Photo, Place
from headshots.bot.conversation.team import TeamFlow, delete_team_screen
from headshots.bot.slack.cleanup import DM_WHERE
from headshots.bot.slack.surface import (
    SlackFront,
    SlackSurface,
    for_slack,
    is_dm,
    modal,
    split_action,
    submitted_values,
)
from headshots.errors import OperationalError, UserError
from headshots.queue.chat_log import Posted
from headshots.queue.contracts import UserRef
from headshots.queue.delivery.slack import MAX_MESSAGE_BYTES, slack_number, ts_number
from headshots.queue.teams import Team, team_id_for

logger = logging.getLogger(__name__)

#: Slack takes files up to 1 GB; a selfie larger than this is refused unread.
MAX_PHOTO_BYTES = 25 * 1024 * 1024
DESCRIPTION, TEAM_NAME, FIRST_COLOUR, SECOND_COLOUR = "description", "name", "first", "second"


def user_ref(user_id: str, name: str | None = None) -> UserRef:
    return UserRef(platform="slack", user_id=slack_number(user_id), display_name=name or None)


def session_scope(session_id: str) -> str:
    return f"sl-session:{session_id}"


def precheck(size: int, content_type: str | None) -> str | None:
    """A reason to refuse a shared file from what Slack says about it, before downloading."""
    if size > MAX_PHOTO_BYTES:
        return texts.attachment_too_large(size, MAX_PHOTO_BYTES)
    if content_type and not content_type.startswith("image/"):
        return texts.NOT_A_PHOTO.format(kind=content_type.split(";")[0])
    return None


def user_text(error: BaseException) -> str:
    """What to tell the person about ``error`` (logging is the caller's business)."""
    if isinstance(error, UserError):
        return str(error)
    return texts.OPERATIONAL if isinstance(error, OperationalError) else texts.ERROR


class SlackBot:
    """Every handler of the bot; the conversation itself is the core's."""

    def __init__(self, client: AsyncWebClient, services: Services, token: str) -> None:
        self.client, self.services, self.settings = client, services, services.settings
        self.front = SlackFront(client, token)
        self.flow = Flow(services, self.front)
        # The look's editor is the admin's DM, where shared files reach on_message.
        self.team = TeamFlow(self.flow, kit_uploads=True)
        #: Envelopes being handled; ``settled`` is set while there are none.
        self._handling = 0
        self._settled = asyncio.Event()
        self._settled.set()

    async def settled(self) -> None:
        """Wait until no envelope is being handled (its replies and edits are out)."""
        await self._settled.wait()

    @property
    def store(self) -> Any:
        return self.services.conversations

    async def close(self) -> None:
        await self.front.close()

    # --- plumbing ------------------------------------------------------------------------
    async def guarded(
        self,
        surface: SlackSurface,
        work: Coroutine[Any, Any, None],
        what: str,
        ack: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        """Acknowledge (Slack allows 3 s), then run a handler; an error is logged and the
        person hears something useful. Counted from before the ack (see :meth:`settled`)."""
        self._handling += 1
        self._settled.clear()
        try:
            if ack is not None:
                await ack()
            await work
        except Exception as exc:
            work.close()  # never awaited when the acknowledgement failed
            if isinstance(exc, UserError):
                logger.info("user error in %s for %s: %s", what, surface.owner, exc)
            else:
                logger.error("error in %s", what, exc_info=exc)
            try:
                await surface.answer(user_text(exc))
            except Exception:
                logger.warning("could not report an error to %s", surface.owner, exc_info=True)
        finally:
            self._handling -= 1
            if not self._handling:
                self._settled.set()

    async def _dm(self, user_id: str) -> str:
        """The app's DM with ``user_id`` (``conversations.open`` returns the existing one)."""
        opened = await self.client.conversations_open(users=user_id)
        return str(opened["channel"]["id"])

    async def _session_at(self, user: UserRef, channel: str) -> str | None:
        where = await self.store.raw(user, f"sl-where:{channel}")
        return session_scope(str(where["session_id"])) if where else None

    async def is_admin(self, user_id: str) -> bool:
        """Workspace admin or owner, or a member of the configured user group (read live)."""
        person = (await self.client.users_info(user=user_id))["user"]
        if person.get("is_admin") or person.get("is_owner"):
            return True
        wanted = (self.settings.slack_team_admin_group or "").strip().lstrip("@")
        if not wanted:
            return False
        groups = (await self.client.usergroups_list())["usergroups"]
        named = {str(g["id"]): g["id"] for g in groups}
        named |= {str(g.get("handle", "")).lower(): g["id"] for g in groups}
        group = named.get(wanted) or named.get(wanted.lower())
        if group is None:
            logger.warning("no user group %r in this workspace", wanted)
            return False
        members = (await self.client.usergroups_users_list(usergroup=group))["users"]
        return user_id in members

    def _admins(self) -> str:
        group = self.settings.slack_team_admin_group
        who = "workspace admins and owners"
        return who + (f" and members of @{group.lstrip('@')}" if group else "")

    # --- entry points (Bolt listeners: ``ack`` first, then the work) ------------------------
    async def on_command(self, ack: Any, body: dict[str, Any]) -> None:
        """``/headshots <start|team ...|status|cancel|delete|privacy|help|tips|styles>``."""
        user, channel = str(body["user_id"]), str(body["channel_id"])
        surface = SlackSurface(self.client, channel, owner=user)
        words = str(body.get("text") or "").lower().split()
        name = words[0] if words else "start"
        work = self._command(surface, body, name, words[1:])
        await self.guarded(surface, work, f"/headshots {name}", ack)

    async def _command(
        self, surface: SlackSurface, body: dict[str, Any], name: str, rest: list[str]
    ) -> None:
        user = user_ref(surface.owner, body.get("user_name"))
        if name == "start":
            await self._start(surface, user)
        elif name == "team":
            await self._team_command(surface, body, rest[0] if rest else "setup")
        elif name in ("status", "cancel"):
            dm = await self._dm(surface.owner)
            scope = await self._session_at(user, dm) or ""
            await (self.flow.cancel if name == "cancel" else self.flow.status)(
                Turn(surface, user, scope)
            )
        elif name == "delete":
            await surface.show(delete_screen())
        elif name == "privacy":
            await surface.answer(texts.privacy(self.settings, "slack"))
        elif name == "tips":
            await surface.answer(texts.tips(self.settings))
        elif name == "styles":
            await surface.answer(style.styles_text())
        elif name == "help":
            await surface.answer(texts.HELP)
        else:
            await surface.answer(texts.UNKNOWN_COMMAND)

    async def on_action(self, ack: Any, body: dict[str, Any]) -> None:
        """A button or select: a session's, the kit editor's, the team's, a result's."""
        action = body["actions"][0]
        user = str(body["user"]["id"])
        container = body.get("container") or {}
        # No channel in the App Home: its delete question is a private screen, shown in the DM.
        channel = str(container.get("channel_id") or (body.get("channel") or {}).get("id") or "")
        surface = SlackSurface(self.client, channel, owner=user)
        work = self._action(surface, body, action, str(container.get("message_ts") or "0"))
        await self.guarded(surface, work, str(action.get("action_id"))[:20], ack)

    async def _action(
        self, surface: SlackSurface, body: dict[str, Any], action: dict[str, Any], ts: str
    ) -> None:
        action_id = str(action["action_id"])
        value = str(action.get("value") or (action.get("selected_option") or {}).get("value", ""))
        value = "" if value == "-" else value
        prefix, op, owner, tail = split_action(action_id)
        user = user_ref(surface.owner, body["user"].get("name"))
        team_id = team_id_for("slack", slack_number(str(body["team"]["id"])))
        message_id = ts_number(ts)
        trigger = str(body.get("trigger_id", ""))
        if prefix == "hs":
            await self._result(surface, user, action_id)
        elif prefix == "hssh":  # the App Home's delete button
            await surface.show(delete_screen())
        elif prefix == "hsst":
            await self._team_button(surface, body, team_id, op, value, message_id)
        elif owner != surface.owner:
            await surface.answer(
                texts.KIT_NOT_YOURS if prefix == "hssk" else texts.NOT_YOUR_SESSION
            )
        elif prefix == "hssk":
            await self._kit(surface, user, team_id, op, value, message_id, trigger)
        else:
            await self._session(surface, user, op, tail, value, message_id, trigger)

    async def on_view(self, ack: Any, body: dict[str, Any]) -> None:
        """A submitted modal: a custom description, or the team's name or colours."""
        view = body["view"]
        user_id = str(body["user"]["id"])
        prefix, op, _, key = split_action(str(view["callback_id"]))
        channel = str(view.get("private_metadata") or "")
        user = user_ref(user_id, body["user"].get("name"))
        values = submitted_values(view)
        if prefix == "hss":
            surface = SlackSurface(self.client, channel, owner=user_id, session_id=key)
            turn = Turn(surface, user, session_scope(key))
            work = self.flow.describe(turn, values.get(DESCRIPTION, ""))
        else:
            surface = SlackSurface(self.client, channel, owner=user_id, team=key, kit=True)
            typed = " ".join(v for k, v in sorted(values.items()) if v.strip())
            turn = Turn(surface, user, f"sl-kit:{key}")
            work = self.team.kit_text(turn, typed, step=op.removeprefix("m-"))
        await self.guarded(surface, work, str(view["callback_id"])[:20], ack)

    async def on_message(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        """Check selfies shared in the DM with the app; answer text there with a hint. A file
        an admin's team-look editor waits for (logo, reference portrait) goes to the look."""
        channel = str(event.get("channel", ""))
        subtype = event.get("subtype")
        if event.get("bot_id") or subtype not in (None, "file_share") or not is_dm(channel):
            return
        user_id = str(event["user"])
        surface = SlackSurface(self.client, channel, owner=user_id)
        team_id = team_id_for("slack", slack_number(str(body.get("team_id") or event["team"])))
        await self.guarded(surface, self._message(surface, event, team_id), "message")

    async def _message(self, surface: SlackSurface, event: dict[str, Any], team_id: str) -> None:
        user = user_ref(surface.owner)
        files = list(event.get("files") or [])
        kit_scope = f"sl-kit:{team_id}"
        if files and (step := await self.team.image_step(user, kit_scope)) is not None:
            await self._kit_file(surface, user, kit_scope, step, files[0], event)
            return
        scope = await self._session_at(user, surface.channel)
        if scope is None:
            await surface.answer(texts.NO_UPLOAD_HERE if files else texts.TEXT_HINT)
            return
        # The session's id: a reference photo brings the summary back, and its buttons must
        # reach this session.
        surface.session_id = scope.removeprefix(session_scope(""))
        turn = Turn(surface, user, scope)
        if not files:
            await self.flow.text(turn, Place(slack_number(surface.channel)), str(event["text"]))
            return
        message_id = ts_number(str(event["ts"]))
        photos = []
        for n, file in enumerate(files):
            size, mime = int(file.get("size") or 0), file.get("mimetype")
            url = str(file.get("url_private_download") or file.get("url_private"))
            name = str(file.get("name", ""))
            refused = precheck(size, mime)
            photos.append(
                Photo(
                    url=url,
                    name=name,
                    size=size,
                    content_type=mime,
                    place=(message_id, n),
                    refused=refused,
                )
            )
        problem = await self.flow.add_photos(turn, photos)
        if problem is not None:
            await surface.answer(problem)
            return
        await self.flow.refresh_tally(turn)

    async def _kit_file(
        self,
        surface: SlackSurface,
        user: UserRef,
        scope: str,
        step: str,
        file: dict[str, Any],
        event: dict[str, Any],
    ) -> None:
        """The first shared file as the logo or reference portrait the admin's look waits for
        (checked as such), the form updated in place."""
        if not await self.is_admin(surface.owner):  # rights may have changed since the setup
            await surface.answer(texts.ONLY_ADMINS_CHANGE.format(admins=self._admins()))
            return
        refused = precheck(int(file.get("size") or 0), file.get("mimetype"))
        if refused is not None:
            await surface.answer(refused)
            return
        url = str(file.get("url_private_download") or file.get("url_private"))
        try:
            png = await self.team.checked_image(step, lambda: self.front.download(url))
        except UserError as exc:
            await surface.answer(str(exc))
            return
        surface.team, surface.kit = scope.removeprefix("sl-kit:"), True
        turn = Turn(surface, user, scope)
        await self.team.kit_image(turn, png, anchor=ts_number(str(event["ts"])))

    async def on_home(self, event: dict[str, Any]) -> None:
        """Publish the App Home: the current job, the results, the delete button."""
        if event.get("tab", "home") != "home":
            return
        user_id = str(event["user"])
        surface = SlackSurface(self.client, "", owner=user_id)
        await self.guarded(surface, self.publish_home(user_id), "app home")

    async def publish_home(self, user_id: str) -> None:
        client, user = self.services.client, user_ref(user_id)
        active = await client.active_job(user)
        jobs = await client.user_jobs(user)
        current = texts.job_status(active) if active is not None else texts.NOTHING_GOING_ON
        done = [j for j in jobs if j.state.value == "done"]
        lines = [f"• {len(j.results)} headshots ({j.request.style.preset})" for j in done[-5:]]
        results = "\n".join(lines) + "\n(in our DM)" if lines else "No results yet."
        section = [
            ("*Headshots*", "Send `/headshots start` (here or in any channel) to begin."),
            ("*Your job*", current),
            ("*Your results*", results),
        ]
        home_blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": for_slack(f"{head}\n{text}")}}
            for head, text in section
        ]
        label = {"type": "plain_text", "text": "Delete my data"}
        delete = {"type": "button", "action_id": f"hssh:delete:{user_id}:", "text": label}
        delete |= {"style": "danger", "value": "-"}
        home_blocks.append({"type": "actions", "elements": [delete]})
        await self.client.views_publish(
            user_id=user_id, view={"type": "home", "blocks": home_blocks}
        )

    # --- a session ---------------------------------------------------------------------------
    async def _start(
        self, surface: SlackSurface, user: UserRef, *, team_id: str | None = None
    ) -> None:
        """Consent once, then selfies and the style form, in the DM with the app."""
        dm = await self._dm(surface.owner)
        session_id = secrets.token_hex(6)
        place = Place(slack_number(dm))
        here = SlackSurface(self.client, dm, owner=surface.owner, session_id=session_id)
        fresh = Conversation(
            session_id=session_id, owner_id=user.user_id, place=place, team_id=team_id
        )
        if surface.channel != dm:
            await surface.answer(texts.SESSION_OPEN.format(where="our DM (Apps → Headshots)"))
        await self.store.put(user, f"sl-where:{dm}", {"session_id": session_id})
        await self.services.chat_log.add(
            user, Posted(chat_id=place.chat_id, kind="dm", name=DM_WHERE)
        )
        turn = Turn(here, user, session_scope(session_id))
        opened = await self.flow.begin(turn, fresh, resume=False)
        if opened is not None:
            await self.flow.open(turn, opened)

    async def _session(
        self,
        surface: SlackSurface,
        user: UserRef,
        op: str,
        session_id: str,
        value: str,
        message_id: int,
        trigger: str,
    ) -> None:
        surface.session_id = session_id
        turn = Turn(surface, user, session_scope(session_id))
        if op == "consent":
            opened = await self.flow.consent(turn, accepted=value == "y", message_id=message_id)
            if opened is not None:
                await self.flow.open(turn, opened, edit=message_id)
        elif op == "forget":
            await self.flow.forget(turn, yes=value == "y", message_id=message_id)
        elif op == "custom":
            conversation = await self.store.load(user, turn.scope)
            current = str((conversation.style.get("custom") if conversation else None) or "")
            field = (
                DESCRIPTION,
                "Describe the look",
                "e.g. warm smile, soft window light",
                current,
            )
            view = modal("Custom description", f"hss:modal:{surface.owner}:{session_id}", field)
            await self.client.views_open(
                trigger_id=trigger, view={**view, "private_metadata": surface.channel}
            )
        elif op.startswith("set."):
            step = op.removeprefix("set.")
            await self.flow.press(turn, "set", value, step=step, message_id=message_id)
        else:
            await self.flow.press(turn, op, value, message_id=message_id)

    async def _result(self, surface: SlackSurface, user: UserRef, action_id: str) -> None:
        """The worker's buttons under results."""
        action = decode_action(action_id)
        if action is None:
            await surface.answer(texts.STALE_MENU)
            return
        session_id = secrets.token_hex(6)
        surface.session_id = session_id
        scope = session_scope(session_id)
        turn = Turn(surface, user, scope)
        place = Place(slack_number(surface.channel))
        info = await self.flow.result(turn, action, place, session_id=session_id)
        if action.name == "new_style" and await self.store.raw(user, scope):
            await self.store.put(user, f"sl-where:{surface.channel}", {"session_id": session_id})
        if info is not None and action.rank is not None:
            await self.team.pick(turn, info, action.rank)

    # --- team mode ---------------------------------------------------------------------------
    async def _team_command(self, surface: SlackSurface, body: dict[str, Any], sub: str) -> None:
        team_id = team_id_for("slack", slack_number(str(body["team_id"])))
        user = user_ref(surface.owner, body.get("user_name"))
        admin_only = sub in ("setup", "export", "delete")
        if admin_only and not await self.is_admin(surface.owner):
            await surface.answer(texts.ONLY_ADMINS.format(admins=self._admins()))
            return
        if sub == "setup":
            if is_dm(surface.channel):
                await surface.answer(texts.TEAM_SETUP_CHANNEL)
                return
            editor = SlackSurface(
                self.client, await self._dm(surface.owner), owner=surface.owner, team=team_id,
                kit=True,
            )  # fmt: skip
            await surface.answer(texts.SESSION_OPEN_KIT)
            await self.team.kit_start(
                Turn(editor, user, f"sl-kit:{team_id}"), team_id,
                Place(slack_number(surface.channel)), name=str(body.get("team_domain", "")),
            )  # fmt: skip
            return
        team = await self.services.teams.get(team_id)
        if team is None:
            await surface.answer(texts.NO_TEAM)
        elif sub == "join":
            await self._start(surface, user, team_id=team.team_id)
        elif sub == "show":
            await self.team.post_kit(surface, team, private=True)
        elif sub == "status":
            admin = await self.is_admin(surface.owner)
            await self.team.status(surface, team, user, admin=admin)
        elif sub == "export":
            await self._export(surface, team)
        elif sub == "delete":
            editor = SlackSurface(self.client, surface.channel, owner=surface.owner, team=team_id)
            await editor.show(delete_team_screen())
        else:
            await surface.answer(texts.TEAM_USAGE)

    async def _export(self, surface: SlackSurface, team: Team) -> None:
        """The approved headshots and a contact sheet as a ZIP, posted to the team's channel."""
        channel = self.front.surface(team.target)
        sent = await self.team.export(channel, team, max_bytes=MAX_MESSAGE_BYTES)
        await surface.answer(texts.SLACK_EXPORT_POSTED if sent else texts.EXPORT_EMPTY)

    async def _kit(
        self,
        surface: SlackSurface,
        user: UserRef,
        team_id: str,
        op: str,
        value: str,
        message_id: int,
        trigger: str,
    ) -> None:
        if not await self.is_admin(surface.owner):  # rights may have changed since the setup
            await surface.answer(texts.ONLY_ADMINS_CHANGE.format(admins=self._admins()))
            return
        surface.team, surface.kit = team_id, True
        scope = f"sl-kit:{team_id}"
        step = op.removeprefix("set.") if op.startswith("set.") else "form"
        value = value if op.startswith("set.") else op
        draft = await self.team.draft(user, scope)
        wants_form = op in ("name", "colours") or (
            step == "background" and value in ("colour", "gradient")
        )
        if draft is not None and wants_form:  # typed answers: a modal
            background = draft.values.get("background") or {}
            kind = value if value in ("colour", "gradient") else str(background.get("kind"))
            kind = kind if kind in ("colour", "gradient") else "colour"
            colours = [*background.get("colours", []), "", ""]
            tail = f"{surface.owner}:{team_id}"
            if op == "name":
                field = (TEAM_NAME, "Team name", "e.g. Acme", str(draft.values.get("team_name")))
                view = modal("Team name", f"hssk:m-name:{tail}", field)
            else:
                first = (FIRST_COLOUR, "Colour (hex)", "#1F6FEB", colours[0])
                second = (SECOND_COLOUR, "Second colour (gradient)", "#0B1F3A", colours[1])
                pair = (first, second) if kind == "gradient" else (first,)
                view = modal("Brand colours (hex)", f"hssk:m-{kind}:{tail}", *pair)
            await self.client.views_open(
                trigger_id=trigger, view={**view, "private_metadata": surface.channel}
            )
            return
        turn = Turn(surface, user, scope)
        await self.team.kit_press(turn, step, value, team_id=team_id, message_id=message_id)

    async def _team_button(
        self,
        surface: SlackSurface,
        body: dict[str, Any],
        team_id: str,
        op: str,
        value: str,
        message_id: int,
    ) -> None:
        user = user_ref(surface.owner, body["user"].get("name"))
        if op == "join":
            team = await self.services.teams.get(value or team_id)
            if team is None:
                await surface.answer(texts.NO_TEAM)
            else:
                await self._start(surface, user, team_id=team.team_id)
            return
        if not await self.is_admin(surface.owner):
            await surface.answer(texts.ONLY_ADMINS.format(admins=self._admins()))
        elif op == "review":
            name = user.display_name or surface.owner
            await self.team.review(surface, name, team_id, value, message_id=message_id)
        elif value == "y":
            await self.services.teams.delete_team(team_id)
            await surface.show(Screen(texts.TEAM_DELETED, private=True), message_id=message_id)
        else:
            await surface.show(Screen(texts.TEAM_DELETE_KEPT, private=True), message_id=message_id)
