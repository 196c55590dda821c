"""/help, /tips, /styles, /privacy, /status, /cancel and /delete (/team is in :mod:`team`)."""

from __future__ import annotations

import logging

from telegram import BotCommand, Update
from telegram.ext import ContextTypes

from headshots.bot.telegram import texts
from headshots.bot.telegram.results import ResultHandlers
from headshots.bot.telegram.services import BotServices
from headshots.bot.telegram.state import ACTIVE_STAGES, Place, user_ref
from headshots.errors import NotFound
from headshots.queue.contracts import JobState

logger = logging.getLogger(__name__)

#: The command menu (set_my_commands).
COMMANDS = [
    BotCommand("start", "make headshots from your selfies"),
    BotCommand("help", "what I do and how"),
    BotCommand("tips", "how to take good selfies"),
    BotCommand("styles", "the styles on offer"),
    BotCommand("status", "where your job stands"),
    BotCommand("cancel", "stop the current upload or job"),
    BotCommand("delete", "delete all your data"),
    BotCommand("privacy", "what I keep and for how long"),
    BotCommand("team", "team mode: one look for the whole group"),
]


class CommandHandlers:
    def __init__(self, services: BotServices, results: ResultHandlers) -> None:
        self.services = services
        self.results = results

    async def help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """List the commands."""
        if update.effective_message is not None:
            await update.effective_message.reply_text(texts.help_text(self.services.settings))

    async def tips(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Explain what makes a good selfie."""
        if update.effective_message is not None:
            await update.effective_message.reply_text(texts.tips(self.services.settings))

    async def privacy(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Say what is kept and for how long."""
        if update.effective_message is not None:
            await update.effective_message.reply_text(texts.privacy(self.services.settings))

    async def styles(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """List the style presets with their options."""
        from headshots.generation.presets import load_presets

        if update.effective_message is None:
            return
        rows = [
            (
                name,
                p.title,
                [k.replace("_", " ") for k in p.backgrounds],
                [k.replace("_", " ") for k in p.attire],
            )
            for name, p in load_presets().items()
        ]
        await update.effective_message.reply_text(texts.styles(rows))

    async def status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Report the active job (position and ETA), else the last job or the upload."""
        message = update.effective_message
        if message is None or message.from_user is None:
            return
        user = user_ref(message.from_user)
        place = await self.services.conversations.place_of(user, message)
        client = self.services.client
        lines: list[str] = []
        job = await client.active_job(user)
        if job is None:
            jobs = await client.user_jobs(user)
            job = jobs[-1] if jobs else None
        if job is not None:
            lines.append(texts.job_status(job))
        state = await self.services.conversations.load(user, place)
        if state is not None and state.stage == "collecting":
            lines.append(texts.upload_status(len(state.stored), self.services.settings))
        elif state is not None and state.stage in ("style", "custom", "confirm"):
            lines.append("You are choosing a style: use the buttons of the latest menu.")
        await message.reply_text(
            "\n".join(lines) or texts.NOTHING_GOING_ON, do_quote=place.is_group
        )

    async def cancel(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Cancel the running job, else the upload or style choice in progress."""
        message = update.effective_message
        if message is None or message.from_user is None:
            return
        user = user_ref(message.from_user)
        place = await self.services.conversations.place_of(user, message)
        client = self.services.client
        try:
            info = await client.cancel(user)
        except NotFound:
            info = None
        if info is not None:
            if info.state is JobState.CANCELLED:
                await message.reply_text(texts.CANCELLED_QUEUED, do_quote=place.is_group)
            else:
                await message.reply_text(texts.cancelling(info.state), do_quote=place.is_group)
            return
        conversations = self.services.conversations
        async with conversations.lock(user, place):
            state = await conversations.load(user, place)
            if state is None or state.stage not in ACTIVE_STAGES:
                await message.reply_text(texts.NOTHING_TO_CANCEL, do_quote=place.is_group)
                return
            if state.kind == "full" and state.upload_id is not None:
                for index in state.stored:
                    await client.remove_selfie(user, state.upload_id, index)
            await conversations.clear(user, place)
        await message.reply_text(texts.CANCELLED_UPLOAD, do_quote=place.is_group)

    async def delete(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Ask for confirmation before deleting everything of the user."""
        message = update.effective_message
        if message is None or message.from_user is None:
            return
        await self.results.ask_delete(
            context.bot, user_ref(message.from_user), Place.of_message(message)
        )
