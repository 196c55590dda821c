"""Which update goes to which handler."""

from __future__ import annotations

from typing import Any

from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from headshots.actions import PREFIX as ACTION_PREFIX
from headshots.actions import Action
from headshots.bot.telegram import keyboards, team_keyboards
from headshots.bot.telegram.commands import CommandHandlers
from headshots.bot.telegram.conversation import ConversationHandlers
from headshots.bot.telegram.errors import on_error
from headshots.bot.telegram.fallbacks import FallbackHandlers
from headshots.bot.telegram.results import ResultHandlers
from headshots.bot.telegram.services import BotServices
from headshots.bot.telegram.team import EXPORT_PREFIX, JOIN_PREFIX, TeamHandlers
from headshots.bot.telegram.upload import UploadHandlers

AnyApplication = Application[Any, Any, Any, Any, Any, Any]

#: ``/start team_<id>`` and ``/start export_<id>``: the team's deep links.
TEAM_LINK = filters.ChatType.PRIVATE & filters.Regex(
    rf"^/start(@\w+)?\s+({JOIN_PREFIX}|{EXPORT_PREFIX})\w+"
)
#: "Pick #N for the team" under a member's results (attached by the worker).
PICK_PATTERN = "^" + Action("pick").encode()


def register(application: AnyApplication, services: BotServices) -> None:
    """Add every handler and the error handler to ``application``."""
    upload = UploadHandlers(services)
    conversation = ConversationHandlers(services, upload)
    results = ResultHandlers(services, conversation)
    commands = CommandHandlers(services, results)
    fallbacks = FallbackHandlers(services, conversation)
    team = TeamHandlers(services, conversation)

    # An admin's answers while setting up the team's kit (its name, colours, logo) are looked
    # at first; anything else falls through to the handlers below (ApplicationHandlerStop
    # ends the update once one of these took it).
    application.add_handlers(
        [
            MessageHandler(
                filters.ChatType.GROUPS & filters.TEXT & ~filters.COMMAND, team.on_kit_text
            ),
            MessageHandler(
                filters.ChatType.GROUPS & (filters.PHOTO | filters.Document.ALL),
                team.on_kit_image,
            ),
        ],
        group=-1,
    )
    application.add_handlers(
        [
            CommandHandler("start", team.on_start_link, filters=TEAM_LINK),
            CommandHandler("start", conversation.start),
            CommandHandler("team", team.command),
            CommandHandler("help", commands.help),
            CommandHandler("tips", commands.tips),
            CommandHandler("styles", commands.styles),
            CommandHandler("status", commands.status),
            CommandHandler("cancel", commands.cancel),
            CommandHandler("delete", commands.delete),
            CommandHandler("privacy", commands.privacy),
            CallbackQueryHandler(results.on_delete_button, pattern=rf"^{keyboards.DELETE}:"),
            CallbackQueryHandler(conversation.on_button, pattern=keyboards.PATTERN),
            CallbackQueryHandler(team.on_button, pattern=team_keyboards.PATTERN),
            CallbackQueryHandler(team.on_pick, pattern=PICK_PATTERN),
            CallbackQueryHandler(results.on_action, pattern=rf"^{ACTION_PREFIX}:"),
            MessageHandler(filters.PHOTO, upload.on_photo),
            MessageHandler(filters.Document.ALL & ~filters.ANIMATION, upload.on_document),
            MessageHandler(filters.COMMAND, fallbacks.on_unknown_command),
            MessageHandler(filters.TEXT, fallbacks.on_text),
            MessageHandler(
                filters.Sticker.ALL
                | filters.VIDEO
                | filters.VIDEO_NOTE
                | filters.ANIMATION
                | filters.VOICE
                | filters.AUDIO
                | filters.LOCATION
                | filters.CONTACT
                | filters.POLL
                | filters.Dice.ALL,
                fallbacks.on_other,
            ),
        ]
    )
    application.add_error_handler(on_error)
