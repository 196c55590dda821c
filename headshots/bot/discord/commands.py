"""The ``/headshot`` slash-command group; every command hands over to the client's handlers."""

from __future__ import annotations

from typing import Any, Protocol, cast

import discord
from discord import app_commands

from headshots.bot.conversation import style, texts


class Commands(Protocol):
    async def on_command(
        self, interaction: discord.Interaction, name: str, **options: Any
    ) -> None: ...


async def run(interaction: discord.Interaction, name: str, **options: Any) -> None:
    await cast(Commands, interaction.client).on_command(interaction, name, **options)


class TeamGroup(app_commands.Group, name="team", description="Team headshots in one brand look"):
    """``/headshot team setup|show|join|status|export|delete`` (team mode, servers only)."""

    @app_commands.command(name="setup", description="Set the team's look (server admins)")
    @app_commands.describe(logo="Your logo (PNG or JPEG), for a corner mark on profile pictures")
    async def setup(
        self, interaction: discord.Interaction, logo: discord.Attachment | None = None
    ) -> None:
        """Open the look editor; Save posts the preview and a Join button in this channel."""
        await run(interaction, "team setup", logo=logo)

    @app_commands.command(name="show", description="Show the team's look")
    async def show(self, interaction: discord.Interaction) -> None:
        """Show the look and its preview, privately."""
        await run(interaction, "team show")

    @app_commands.command(name="join", description="Get your headshot in the team's look")
    async def join(self, interaction: discord.Interaction) -> None:
        """Join the team and open a private session for your selfies."""
        await run(interaction, "team join")

    @app_commands.command(name="status", description="Where each team member stands")
    async def status(self, interaction: discord.Interaction) -> None:
        """Show the team's progress (admins see everyone)."""
        await run(interaction, "team status")

    @app_commands.command(name="export", description="Get the team's headshots as a ZIP (admins)")
    async def export(self, interaction: discord.Interaction) -> None:
        """Send the approved headshots and a contact sheet to the admin by DM."""
        await run(interaction, "team export")

    @app_commands.command(name="delete", description="Delete the team's look and pictures (admins)")
    async def delete(self, interaction: discord.Interaction) -> None:
        """Ask for confirmation, then delete the team."""
        await run(interaction, "team delete")


def setup_with_reference() -> app_commands.Command[Any, ..., None]:
    """``/headshot team setup`` where a ControlNet is configured: it also takes the reference
    portrait every member is framed like (unconfigured, the option is absent). Made per tree:
    a command belongs to one group."""

    @app_commands.command(name="setup", description="Set the team's look (server admins)")
    @app_commands.describe(
        logo="Your logo (PNG or JPEG), for a corner mark on profile pictures",
        reference="A portrait (one person) every member's headshots are framed like",
    )
    async def setup(
        interaction: discord.Interaction,
        logo: discord.Attachment | None = None,
        reference: discord.Attachment | None = None,
    ) -> None:
        """Open the look editor; Save posts the preview and a Join button in this channel."""
        await run(interaction, "team setup", logo=logo, reference=reference)

    return setup


@app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
@app_commands.allowed_installs(guilds=True, users=False)
class HeadshotGroup(
    app_commands.Group, name="headshot", description="Professional headshots from your selfies"
):
    """``/headshot start|add|styles|status|cancel|delete|privacy|tips|help`` and ``team``."""

    def __init__(self, *, references: bool = False) -> None:
        """``references``: a ControlNet is configured, so team setup takes a reference."""
        super().__init__()
        team = TeamGroup()
        if references:
            team.remove_command("setup")
            team.add_command(setup_with_reference())
        self.add_command(team)

    @app_commands.command(
        name="start", description="Start a headshot session (attach up to 10 selfies)"
    )
    @app_commands.describe(photo1="A selfie (you can also post them in the session thread)")
    async def start(
        self,
        interaction: discord.Interaction,
        photo1: discord.Attachment | None = None,
        photo2: discord.Attachment | None = None,
        photo3: discord.Attachment | None = None,
        photo4: discord.Attachment | None = None,
        photo5: discord.Attachment | None = None,
        photo6: discord.Attachment | None = None,
        photo7: discord.Attachment | None = None,
        photo8: discord.Attachment | None = None,
        photo9: discord.Attachment | None = None,
        photo10: discord.Attachment | None = None,
    ) -> None:
        """Start a session: consent, a thread, selfie checks, style choice."""
        photos = [photo1, photo2, photo3, photo4, photo5, photo6, photo7, photo8, photo9, photo10]
        await run(interaction, "start", photos=[p for p in photos if p is not None])

    @app_commands.command(name="add", description="Add selfies to your session (up to 10)")
    @app_commands.describe(photo1="A selfie (run this in your session thread or DM)")
    async def add(
        self,
        interaction: discord.Interaction,
        photo1: discord.Attachment,
        photo2: discord.Attachment | None = None,
        photo3: discord.Attachment | None = None,
        photo4: discord.Attachment | None = None,
        photo5: discord.Attachment | None = None,
        photo6: discord.Attachment | None = None,
        photo7: discord.Attachment | None = None,
        photo8: discord.Attachment | None = None,
        photo9: discord.Attachment | None = None,
        photo10: discord.Attachment | None = None,
    ) -> None:
        """Check and add selfies to the session here (the way in without Message Content)."""
        photos = [photo1, photo2, photo3, photo4, photo5, photo6, photo7, photo8, photo9, photo10]
        await run(interaction, "add", photos=[p for p in photos if p is not None])

    @app_commands.command(name="styles", description="List the available styles")
    async def styles(self, interaction: discord.Interaction) -> None:
        """Show the styles with their backgrounds and attire."""
        await run(interaction, "info", text=style.styles_text())

    @app_commands.command(name="status", description="Where is my job?")
    async def status(self, interaction: discord.Interaction) -> None:
        """Show the state, queue position and ETA of the user's job."""
        await run(interaction, "status")

    @app_commands.command(name="cancel", description="Cancel your running job or open session")
    async def cancel(self, interaction: discord.Interaction) -> None:
        """Cancel the user's job (or the unsubmitted session here)."""
        await run(interaction, "status", cancel=True)

    @app_commands.command(name="delete", description="Delete all your data")
    async def delete(self, interaction: discord.Interaction) -> None:
        """Ask for confirmation, then delete everything of the user."""
        await run(interaction, "delete")

    @app_commands.command(name="privacy", description="What is stored, and for how long")
    async def privacy(self, interaction: discord.Interaction) -> None:
        """Explain what is kept and for how long."""
        settings = getattr(interaction.client, "settings")  # noqa: B009 (the bot's settings)
        await run(interaction, "info", text=texts.privacy(settings, "discord"))

    @app_commands.command(name="tips", description="How to take good selfies")
    async def tips(self, interaction: discord.Interaction) -> None:
        """Explain what makes a good selfie."""
        settings = getattr(interaction.client, "settings")  # noqa: B009 (the bot's settings)
        await run(interaction, "info", text=texts.tips(settings))

    @app_commands.command(name="help", description="What I do and how")
    async def help(self, interaction: discord.Interaction) -> None:
        """List the commands."""
        await run(interaction, "info", text=texts.HELP)
