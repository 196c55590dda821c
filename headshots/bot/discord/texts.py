"""Everything the Discord bot says, in one place (Discord: message text <= 2000 characters)."""

from __future__ import annotations

from headshots.settings import Settings

MAX_MESSAGE = 2000

NOT_YOUR_SESSION = "This is not your session: run `/headshot start` to begin your own."
NOT_YOUR_JOB = (
    "This is not your job: only the person who ordered these headshots can use its buttons."
)
SESSION_EXPIRED = "This session has expired or was cancelled. Run `/headshot start` to begin again."
OTHER_PERSONS_THREAD = (
    "This thread belongs to someone else's headshot session. "
    "Run `/headshot start` in a channel (or in a DM with me) to begin your own."
)
OWN_THREAD = "You're already in your session thread: post your selfies here as messages."
NOT_A_TEXT_CHANNEL = (
    "I can only open a headshot thread in a text channel. Try a regular channel or a DM with me."
)
NO_JOB = "You have no job in progress. Start one with `/headshot start`."
NO_UPLOAD_HERE = (
    "I'm not collecting photos here. Run `/headshot start` first (in a channel or in a DM with me)."
)
ALREADY_SUBMITTED = (
    "Your photos for this session are already submitted. "
    "For a new set, run `/headshot start` again."
)
TRY_LATER = "Something went wrong on my side. Please try again in a few minutes."
DECLINED = "No problem: nothing was downloaded or stored. Run `/headshot start` whenever you like."
DELETE_PROMPT = (
    "Delete **everything** I keep about you: selfies, trained model, results and job history? "
    "Running jobs stop. This cannot be undone."
)
DELETE_KEPT = "Nothing was deleted."
THREAD_INTRO = (
    "{mention} this is your headshot session. Post selfies here (4-30, one person, face clearly "
    "visible, varied backgrounds and light), then choose a style below."
)
DM_INTRO = (
    "This is your headshot session. Send selfies here (4-30, one person, face clearly visible, "
    "varied backgrounds and light), then choose a style below."
)
PERMISSION_NAMES = {
    "create_public_threads": "Create Public Threads",
    "create_private_threads": "Create Private Threads",
    "send_messages_in_threads": "Send Messages in Threads",
    "attach_files": "Attach Files",
    "view_channel": "View Channel",
}


def consent_text(settings: Settings) -> str:
    return (
        "**Before we start**\n"
        "To make your headshots I download your selfies, check them, and train a small model of "
        "your face on our server. Selfies are deleted after "
        f"{settings.selfie_ttl_hours:g} hours, the trained model after {settings.lora_ttl_days:g} "
        f"days and results after {settings.results_ttl_days:g} days. `/headshot delete` removes "
        "everything at any time. Only upload photos of yourself.\n\n"
        "Do you agree?"
    )


def privacy_text(settings: Settings) -> str:
    return (
        "**What I keep, and for how long**\n"
        f"- Your selfies (shrunk, EXIF removed): {settings.selfie_ttl_hours:g} hours.\n"
        f"- The model trained on your face: {settings.lora_ttl_days:g} days (for new styles).\n"
        f"- Your results: {settings.results_ttl_days:g} days.\n"
        "- Your Discord user id and display name with each job.\n"
        "Nothing is shared or used for anything else. `/headshot delete` removes all of it now."
    )


def missing_permissions_text(missing: list[str], *, private: bool) -> str:
    names = ", ".join(f"**{PERMISSION_NAMES.get(m, m)}**" for m in missing)
    what = "private threads" if private else "threads"
    return (
        f"I can't work in this channel: I'm missing {names}. I need them to open {what} for your "
        "session and post your photos there. Ask a server admin to give me these permissions in "
        "this channel (or use `/headshot start` in a DM with me)."
    )


def thread_refused_text(*, private: bool) -> str:
    permission = "Create Private Threads" if private else "Create Public Threads"
    return (
        f"I can't create threads here: ask an admin to give me **{permission}** and "
        "**Send Messages in Threads** in this channel (or use `/headshot start` in a DM with me)."
    )


def clip(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- team mode ------------------------------------------------------------------------------
TEAM_SERVER_ONLY = "Team headshots work in a server: run this in your team's server."
NO_TEAM = "This server has no team kit yet: a server admin sets one up with `/headshot team setup`."
TEAM_SETUP_CHANNEL = (
    "Run `/headshot team setup` in a regular text channel (not a thread): the kit preview, the "
    "Join button and the team's chosen headshots are posted there."
)
KIT_NOT_YOURS = (
    "This kit editor belongs to another admin: run `/headshot team setup` to open your own."
)
KIT_EXPIRED = "This kit editor has expired: run `/headshot team setup` again."
KIT_CANCELLED = "Nothing was changed."
TEAM_STYLE_FIXED = "Your team's admin fixed the look: you only choose man, woman or person."
NOT_A_TEAM_RUN = "These headshots are not part of a team run."
RESULT_GONE = "That headshot is no longer stored (results expire): run the team session again."
TEAM_DELETE_PROMPT = (
    "Delete this server's team: the kit, the logo, the member list and the team's copies of "
    "the chosen headshots? Members keep their own photos and results until they run "
    "`/headshot delete`. This cannot be undone."
)
TEAM_DELETE_KEPT = "The team was not deleted."
TEAM_THREAD_INTRO = (
    "{mention} this is your **private** team headshot session for **{team}**: other members "
    "can't see this thread (Discord lets moderators with Manage Threads open private threads), "
    "and nothing you post here goes to the team channel: only the one headshot you pick. Post "
    "selfies here (4-30, one person, face clearly visible, varied backgrounds and light), then "
    "choose man, woman or person below. Your admin fixed everything else."
)
TEAM_DM_INTRO = (
    "This is your private team headshot session for **{team}** (I couldn't open a private "
    "thread in the team channel). Send selfies here (4-30, one person, face clearly visible, "
    "varied backgrounds and light), then choose man, woman or person below."
)
NO_PRIVATE_PLACE = (
    "I can't open a private thread in the team channel or send you a DM. Allow DMs from server "
    "members (Privacy Settings) or ask an admin to give me **Create Private Threads** there."
)
EXPORT_DM_FAILED = (
    "I couldn't send you the export by DM: allow direct messages from server members "
    "(the server's Privacy Settings) and run `/headshot team export` again."
)


def not_team_admin_text(role: str | None) -> str:
    who = "server admins (**Manage Server**)"
    if role:
        who += f" and members with the **{role}** role"
    return f"Only {who} can do this. Anyone can see the kit with `/headshot team show`."


def favourite_text(display_name: str, *, review: bool) -> str:
    text = f"**{display_name}** picked their team headshot."
    return text + (" An admin can approve it or ask for a redo." if review else "")


def redo_notice(team: str) -> str:
    return (
        f"Your **{team}** admin asked for a redo: I'm making new headshots with your trained "
        "model and the team's look (no new selfies needed). Pick your favourite again when "
        "they arrive."
    )
