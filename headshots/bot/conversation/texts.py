"""Every sentence the bot writes, on both front ends, in one place.

Light markup only: ``**bold**`` and `` `code` `` (Discord shows them, Telegram's adapter strips
them), and commands as Telegram spells them (``/cancel``, ``/team setup``): Discord's adapter
rewrites them to ``/headshot cancel``. ``{admins}`` style parameters name what differs by
platform (who counts as an admin).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from headshots.queue.client import ForgetReport, JobInfo
from headshots.queue.contracts import JobState
from headshots.queue.progress import NO_WORKER, QueuePosition, format_eta, position_eta
from headshots.queue.waiting import queued_text
from headshots.settings import Settings

if TYPE_CHECKING:
    from headshots.queue.chat_log import ChatCleanup, Leftover


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _days(value: float) -> str:
    return f"{value:g} day" + ("" if value == 1 else "s")


def _hours(value: float) -> str:
    return f"{value:g} hour" + ("" if value == 1 else "s")


#: What /delete removes from the chat itself, per platform (see ``bot/*/cleanup.py``).
DELETE_IN_CHAT = {
    "discord": ", and your session thread with everything in it (in a DM: my messages; yours "
    "there are yours to delete)",
    "slack": ", and my messages in our DM (your shared photos there are yours to delete)",
    "telegram": ", and my messages and your photos in this chat that Telegram lets me delete "
    "(those of the last 48 hours; in a group, your photos only if I'm an admin there)",
}


def retention(settings: Settings, platform: str = "") -> str:
    """What is kept where, for how long, and what /delete removes (``platform``: the chat's)."""
    return (
        f"• the copies of your selfies I store: deleted {_hours(settings.selfie_ttl_hours)} "
        "after delivery (what you posted in the chat stays there until you, or /delete, "
        "remove it)\n"
        f"• your trained model after {_days(settings.lora_ttl_days)} "
        "(so you can order new styles without re-uploading)\n"
        f"• your results after {_days(settings.results_ttl_days)}\n"
        "• /delete removes all of it at once, at any time" + DELETE_IN_CHAT.get(platform, "")
    )


def audience(
    platform: str, *, group: bool = False, dm: bool = False, public_threads: bool = False,
    team: bool = False,
) -> str:  # fmt: skip
    """Where the photos go and who can see them (the consent text says so)."""
    head = "Where your photos go: "
    if platform == "discord":
        if dm:
            return head + "this DM, which only you and I can see."
        if team or not public_threads:
            return head + (
                "a private thread that only you and I can see (and server moderators with "
                "Manage Threads), or our DM if this server doesn't let me open one."
            )
        return head + (
            "a thread in this channel that everyone who can read the channel can open: they "
            "see your selfies and headshots. For privacy, use /start in a DM with me."
        )
    if team:
        return head + "our private chat; only the headshot you pick is posted in the group."
    if group:
        return head + (
            "this group: every member sees the selfies you send and the headshots I post. "
            "For privacy, send me /start in a private chat instead."
        )
    return head + "this private chat, which only you and I can see."


def intro(
    settings: Settings,
    eta_s: float | None,
    team_name: str | None = None,
    *,
    where: str = "",
    platform: str = "",
) -> str:
    """The explanation before the consent question (a team member's variant with a team);
    ``where``: where the photos go (:func:`audience`)."""
    count = f"{settings.min_selfies}–{settings.max_selfies}"
    if team_name:
        steps = (
            f"Hi! You're joining **{team_name}**'s headshots: the team's admin chose the look, so "
            f"everyone matches.\n\n1. You send {count} selfies here; I check each one (nobody in "
            "the group sees them).\n2. You confirm the team's look (Customise: tell me man, woman "
            "or neutral, and your eyes, glasses and hair).\n"
        )
        after = "You pick your favourite; only that one is posted in the group."
    else:
        steps = (
            "Hi! I turn a handful of selfies into professional headshots.\n\n"
            f"1. You send {count} selfies; I check each one.\n"
            "2. You pick a style and confirm its recommended look (or Customise background, "
            "attire, colours).\n"
        )
        after = "The results arrive right here."
    return (
        f"{steps}3. I train a small model of your face and paint your headshots: "
        f"{format_eta(eta_s)} once it is your turn. {after}\n\n"
        + (f"{where}\n\n" if where else "")
        + f"What I keep, and for how long:\n{retention(settings, platform)}"
    )


CONSENT_QUESTION = "Do you agree that I process photos of your face for this?"
REPLY_IN_GROUP = (
    "In this group I only see replies to my messages: send them as a reply to this message."
)


def instructions(
    settings: Settings, *, replies_only: bool = False, note: str = "", by_command: bool = False
) -> str:
    """What to send; ``by_command``: photos reach me only attached to a command (Discord
    without the Message Content intent)."""
    count = f"{settings.min_selfies}–{settings.max_selfies}"
    if by_command:
        text = (
            f"Thanks! Now attach {count} selfies to /start (or /add), here: up to 10 per "
            "command, as image files for full quality. I can't see photos posted as plain "
            "messages in this thread. Only you in the picture, different places and light. "
            "/tips has more advice."
        )
    else:
        text = (
            f"Thanks! Now send {count} selfies here: as photos, or as image files for full "
            "quality (several at once is fine). Only you in the picture, different places and "
            "light. /tips has more advice."
        )
    text += f" {note}" if note else ""
    return f"{text}\n{REPLY_IN_GROUP}" if replies_only else text


JOINED = "You joined **{team_name}**. "
DECLINED = "No problem: nothing was downloaded or stored. Send /start if you change your mind."


def tips(settings: Settings) -> str:
    return (
        "Tips for good selfies:\n"
        f"• {settings.min_selfies}–{settings.max_selfies} photos; 10–15 is a good number\n"
        "• only you in the picture, face fully visible, looking at the camera\n"
        "• vary the place, the light, your clothes and the angle a little\n"
        "• no sunglasses, hats, filters or funny faces\n"
        "• sharp and well lit; head and shoulders, not too close\n"
        "• send them as files to keep full resolution"
    )


HELP = (
    "I make professional headshots from your selfies.\n\n"
    "/start – begin (or continue an upload)\n"
    "/help – what I do and how\n"
    "/tips – how to take good selfies\n"
    "/styles – the styles I offer\n"
    "/status – where your job stands\n"
    "/cancel – stop the current upload or job\n"
    "/delete – delete all your data\n"
    "/privacy – what I keep and for how long\n"
    "/team – team mode (in a group): an admin sets one look for everyone, members send "
    "their selfies to me privately and pick the headshot that is posted in the group\n\n"
    "In a group, I answer whoever starts me, and only look at photos of members who are "
    "uploading with me."
)


def privacy(settings: Settings, platform: str = "") -> str:
    return (
        "**Privacy**\nYour photos are used only to make your headshots, and only after you "
        f"agree. Nothing is shared or used for anything else.\n{retention(settings, platform)}"
    )


def styles(rows: list[tuple[str, list[str], list[str]]]) -> str:
    lines = ["Styles (choose one after uploading; each has background and attire options):"]
    for title, backgrounds, attire in rows:
        lines.append(
            f"• **{title}**: backgrounds {', '.join(backgrounds)}; attire {', '.join(attire)}"
        )
    lines.append("• Custom: describe the look in your own words.")
    return "\n".join(lines)


# --- uploading ---------------------------------------------------------------------------
def collecting_hint(accepted: int, settings: Settings, *, form: bool) -> str:
    missing = settings.min_selfies - accepted
    if missing > 0:
        return f"Send at least {plural(missing, 'more photo')}."
    if form:
        return "Enough good photos: choose your style below (you can still add more)."
    return f"Press Done when you are ready, or send more (up to {settings.max_selfies})."


def no_photos_yet(settings: Settings, *, by_command: bool = False) -> str:
    count = f"{settings.min_selfies}–{settings.max_selfies}"
    if by_command:
        return f"**Photos**: none yet. Attach {count} selfies to /add (up to 10 at a time)."
    return f"**Photos**: none yet. Send {count} selfies here (several in one message is fine)."


UPLOAD_COMPLETE = "✅ Upload complete."
NOT_ENOUGH = "Not enough usable photos yet"
OVER_LIMIT = "over the limit of {limit} photos"
DOWNLOAD_FAILED = "I couldn't download this file: please send it again"
NOT_AN_IMAGE = (
    "That file is not an image I can use. Send selfies as photos, or as JPEG/PNG/HEIC files."
)
NEED_START = (
    "Send /start first: I explain what happens and ask for your agreement before I take photos."
)
NEED_CONSENT = (
    "Please answer the question above first (the buttons), then send your photos. "
    "No buttons there? Send /start."
)
NOT_COLLECTING = (
    "Your upload is finished; choose your style with the buttons above. "
    "To upload a new set, send /start."
)
REFERENCE_ASK = (
    "Send one photo to frame your headshots like: its pose and crop are followed, the person "
    "in it need not be you (a portrait you like, your CEO's). Exactly one person, please."
)
REFERENCE_HINTS = {"pose": "pose (face and shoulders)", "canny": "outline (edges)"}
REFERENCE_ONE_PHOTO = "I took the first photo as the reference; the others were not used."
ALREADY_SUBMITTED = (
    "Your photos for this session are already submitted. For a new set, send /start again."
)
SEND_PHOTOS_NOT_TEXT = "I need photos now, not text: send your selfies (or /tips for advice)."
USE_BUTTONS = "Please use the buttons (I sent them again below), or /cancel to stop."
TEXT_HINT = "I make headshots from selfies. Send /start to begin, or /help for all commands."
UNKNOWN_COMMAND = "I don't know that command. " + TEXT_HINT
UPLOAD_FINISHED = "Your upload is already finished."


def unsupported(kind: str) -> str:
    return (
        f"I can't use {kind}. Send selfies as photos (or as image files for full quality). "
        "/tips explains what works best."
    )


def resume(photos: int) -> str:
    return (
        f"You have an upload in progress with {plural(photos, 'accepted photo')}. "
        "Continue with it, or start over?"
    )


# --- style -------------------------------------------------------------------------------
READY = "Great, your photos are ready. "
GOT_IT = "Got it. "
NEW_STYLE_INTRO = "New style with your trained model (no retraining). "
FORM_HEADING = "**Choose your style**"
NEW_STYLE_HEADING = "**New style** for your trained model (no retraining)"
TEAM_HEADING = "**Your team headshot**: tell me how the model should see you"
SUMMARY_HEADING = "**Summary**"
CONFIRM_QUESTION = "Start with this look? (✏️ Customise changes any of it.)"
CONFIRMED = "✅ Confirmed."
PHOTOS_REUSED = "Photos: your trained model from the earlier job (no new training)."
TEAM_LOOK = "The team's look:"
TEAM_STYLE_FIXED = (
    "Your team's admin fixed the look: you only choose how the model sees you "
    "(class, eyes, glasses, hair)."
)
MAX_CUSTOM_CHARS = 300


def custom_prompt(*, replies_only: bool = False) -> str:
    text = (
        f"Describe the look in your own words: clothes, background, mood (up to "
        f"{MAX_CUSTOM_CHARS} characters), e.g. “navy turtleneck, rooftop terrace at golden hour”."
    )
    return f"{text}\n{REPLY_IN_GROUP}" if replies_only else text


EMPTY_DESCRIPTION = "Please describe the look in a few words."


def too_long(length: int) -> str:
    return f"That is {length} characters; please keep it under {MAX_CUSTOM_CHARS}."


PHOTOS_LINE = "Photos: {accepted} accepted."

# --- jobs --------------------------------------------------------------------------------
SUBMITTING = "Submitting your job…"
ALREADY_QUEUED = "This job is already queued: see its status message above."


def queued(position: QueuePosition, mention: str | None = None) -> str:
    prefix = f"{mention}: " if mention else ""
    return f"{prefix}{queued_text(position)} I'll update this message as it goes. /cancel stops it."


def job_status(info: JobInfo) -> str:
    if info.state is JobState.QUEUED and info.position is not None:
        position = info.position.position or "?"
        text = f"Your job is queued: position {position}, ETA {position_eta(info.position)}."
        if not info.position.worker_online:
            text += f" {NO_WORKER}"
    elif info.state is JobState.DONE:
        text = "Your last job is done: the results are in the chat where you ordered them."
    elif info.state is JobState.FAILED:
        text = f"Your last job failed: {info.error or 'unknown error'}."
    elif info.state is JobState.CANCELLED:
        text = "Your last job was cancelled."
    else:
        text = f"Your job is {info.state.value}."
    if not info.finished:
        text += " /cancel stops it."
    return text


def upload_status(accepted: int, settings: Settings) -> str:
    return f"Upload in progress: {plural(accepted, 'photo')} accepted. " + collecting_hint(
        accepted, settings, form=False
    )


CHOOSING = "You are choosing a style: use the buttons of the latest menu."
NOTHING_GOING_ON = "Nothing in progress. Send /start to make headshots."
ALREADY_RUNNING = "You already have a job in progress. "
CANCELLED_QUEUED = "Cancelled your job: it was taken out of the queue."
CANCELLED_STATUS = "❌ Cancelled. Nothing more will happen with this job."


def cancelling(state: JobState) -> str:
    return (
        f"Stopping your job (it is {state.value}); "
        "its status message will confirm when it has stopped."
    )


CANCELLED_UPLOAD = (
    "Cancelled. The photos you sent are deleted and nothing was submitted. "
    "Send /start to begin again."
)
NOTHING_TO_CANCEL = "There is nothing to cancel."
DELETE_CONFIRM = (
    "Delete everything I have of you: selfies, trained models, results, jobs and conversation "
    "state? Running jobs stop. This cannot be undone."
)
DELETE_KEPT = "Nothing was deleted."


#: Where something stays, as the report names it.
DISCORD_THREAD_WHERE = "in your session thread"
DISCORD_DM_WHERE = "in our DM"
TELEGRAM_PRIVATE_WHERE = "in our private chat"
TELEGRAM_GROUP_WHERE = "in the group"
#: How what stays in a chat goes (each front end's cleanup picks one).
HOW_YOURS_DISCORD = "they are yours to delete (hover over each, ⋯ → Delete Message)"
HOW_MODERATORS = "Discord didn't let me delete them: a server moderator can"
HOW_YOURS_TELEGRAM = "they are yours to delete (press and hold each, → Delete)"
HOW_OLD_PRIVATE = (
    "Telegram lets me delete messages for 48 hours only: delete them yourself, or clear our "
    "chat (chat menu → Clear history)"
)
HOW_GROUP_ADMINS = "Telegram lets me delete messages for 48 hours only: a group admin can"
HOW_RESULTS_PRIVATE = (
    "my worker posted them and Telegram can't list a chat for me: delete them yourself, or "
    "clear our chat (chat menu → Clear history)"
)
HOW_GROUP_RESULTS = (
    "my worker posted them and Telegram can't list a chat for me: a group admin can delete them"
)
PLATFORM_NAMES = {"telegram": "Telegram", "discord": "Discord", "slack": "Slack"}


def _day(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    return f"{moment.day} {moment:%b}"


def leftover(item: Leftover) -> str:
    """One thing left in a chat, and how it goes ("the 6 photos you sent in #general on 4 Dec:
    they are yours to delete")."""
    date = f" on {_day(item.since)}" if item.since else ""
    if item.what == "headshots":
        jobs = f" ({plural(item.count, 'job')})" if item.count > 1 else ""
        subject = f"the headshots I posted {item.where}{jobs}"
    elif item.by == "person":
        subject = f"the {plural(item.count, item.what)} you sent {item.where}{date}"
    else:
        subject = f"{plural(item.count, 'message')} of mine {item.where}{date}"
    return f"{subject}: {item.how}"


def deleted(report: ForgetReport, cleanup: ChatCleanup | None = None, platform: str = "") -> str:
    """The delete report: what went from the store and from the chat, and what is left."""
    text = (
        f"Deleted: {plural(report.jobs, 'job')}, {plural(report.blobs, 'stored file')} and "
        f"{plural(report.keys, 'record')}"
    )
    if cleanup is None:
        return text + ". Nothing of yours is left."
    chat = []
    if cleanup.closed:
        chat.append(plural(len(cleanup.closed), "session thread") + " with everything in it")
    if cleanup.messages:
        chat.append(plural(cleanup.messages, "message"))
    text += ("; from the chat: " + " and ".join(chat) if chat else "") + "."
    if cleanup.pending:
        name = PLATFORM_NAMES.get(platform, "The chat")
        text += (
            f" {name} would not let me delete everything in the chat just now: send /delete "
            "again in a few minutes to finish."
        )
    if cleanup.left:
        return text + "\nStill in the chat:\n" + "\n".join(f"• {leftover(i)}" for i in cleanup.left)
    return text if cleanup.pending else text + " Nothing of yours is left."


NOT_YOUR_SESSION = (
    "This is not your session: these buttons belong to someone else. Send /start to begin your own."
)
NOT_YOUR_JOB = (
    "This is not your job: these buttons belong to someone else's headshots, and only the "
    "person who ordered them can use them."
)
STALE_MENU = "This menu is out of date; use the latest one (or /start)."
ERROR = "Sorry, something went wrong on my side. Please try again in a minute."
OPERATIONAL = "I'm busy right now and can't reach my storage. Please try again in a minute."
JOB_GONE = "That job no longer exists (its data expired or was deleted)."
ORIGINALS = "Your originals, uncompressed:"
ORIGINALS_ALREADY = "The files above are the originals: Discord keeps them as they were sent."
NO_ORIGINALS = "No result files are left for this job."
MAKING_MORE = "Making {count} more with the same style and new seeds."

MORE_LIKE = "Making more like #{count}."

# --- team mode ---------------------------------------------------------------------------
TEAM_IN_GROUP = (
    "Team mode lives in your team's group: a group admin runs /team there to set the look, "
    "and members join with the Join button. Got a Join link? Open it and I'll take it from here."
)
TEAM_USAGE = (
    "/team – the team's look and the Join button (admins: set it up or change it)\n"
    "/team join – the link to join\n"
    "/team status – who is where\n"
    "/team export – admins: the chosen headshots as a ZIP, sent to you privately\n"
    "/team delete – admins: delete the team's look, members list and chosen headshots"
)


ONLY_ADMINS = "Only {admins} can do that."
ONLY_ADMINS_CHANGE = "Only {admins} can change the team look."

NO_TEAM = "This place has no team look yet: an admin sets one up with /team setup."
TEAM_LINK_STALE = (
    "That team link no longer works (the team was deleted, or its look expired). "
    "Ask in the group for a new one: /team join."
)
KIT_NOT_YOURS = "This setup belongs to another admin: run /team setup to open your own."
KIT_EXPIRED = "This setup has expired: run /team setup again."
KIT_CANCELLED = "Team setup cancelled; nothing was changed."
KIT_SAVED = "✅ Team look saved."
KIT_HEADING = "**Team look** (members only choose how the model sees them)"
LOGO_RECEIVED = "Logo received."
REFERENCE_RECEIVED = "Reference portrait received."
#: The form's line while it waits for a file in the editor's place (Slack's DM).
KIT_SEND_FILE = {
    "logo": "📎 Send the logo here now, as a PNG or JPEG file.",
    "reference": "📎 Send the reference portrait here now: one person, the pose and crop every "
    "member's headshots will follow.",
}
KIT_REFERENCE_NOT_IMAGE = (
    "That is not a photo I can use as the reference: send a PNG or JPEG (or press No reference "
    "photo)."
)
LOGO_NOT_IMAGE = "That is not an image I can use as a logo: send a PNG or JPEG (or press No logo)."
KIT_REFERENCE_BY_COMMAND = (
    "A new reference portrait comes with the command: run /team setup again with the photo "
    "attached as `reference`."
)
KIT_NOT_IMAGE = {"logo": LOGO_NOT_IMAGE, "reference": KIT_REFERENCE_NOT_IMAGE}
#: Why a logo file was refused (``brand.LogoRefusal``), before any of it was decoded.
LOGO_REFUSED = {
    "vector": "I can't use vector files (SVG, PDF, EPS) as a logo: export it as a PNG with a "
    "transparent background and send that (or press No logo).",
    "web_page": "That file is a web page (HTML), not an image: send the logo as a PNG or JPEG "
    "(or press No logo).",
    "archive": "That file is an archive (ZIP or similar): send the logo itself as a PNG or JPEG "
    "(or press No logo).",
    "animated": "Animated logos (GIF, PNG or WebP) can't be used: send a still PNG or JPEG "
    "(or press No logo).",
}


def logo_refused(kind: str, detail: str = "") -> str:
    """The reply to a refused logo: by kind, or the decoder's reason (too many pixels...)."""
    if kind in LOGO_REFUSED:
        return LOGO_REFUSED[kind]
    if detail:
        return f"I can't use that logo: {detail}. Send a PNG or JPEG (or press No logo)."
    return LOGO_NOT_IMAGE


JOIN_TEXT = (
    "Join **{team_name}**: tap the button, then send me your selfies privately. "
    "Nothing you send me there is posted here; only the headshot you pick."
)


def kit_caption(team_name: str, lines: list[str], *, updated: bool) -> str:
    heading = "has a new team look" if updated else "has a team headshot look"
    return (
        f"**{team_name}** {heading}.\n"
        + "\n".join(lines)
        + "\n\nMembers: tap Join, send your selfies to me privately, and pick your favourite: "
        "only that one is posted here."
    )


def team_status(
    team_name: str, counts: dict[str, int], own: str | None, rows: list[tuple[str, str]] | None
) -> str:
    total = sum(counts.values())
    if not total:
        return f"**{team_name}**: nobody has joined yet. Members join with /team join."
    summary = ", ".join(f"{n} {label}" for label, n in counts.items())
    lines = [f"**{team_name}**: {plural(total, 'member')} – {summary}."]
    if own is not None and rows is None:
        lines.append(f"You: {own}")
    lines.extend(f"• {name} – {label}" for name, label in rows or [])
    return "\n".join(lines)


def pick_caption(name: str, team_name: str, *, review: bool) -> str:
    caption = f"**{name}** picked their headshot for **{team_name}**."
    return caption + (" An admin can approve it or ask for a redo." if review else "")


def picked(rank: int, *, review: bool) -> str:
    text = f"#{rank} is your pick: I posted it in the team's chat."
    if review:
        text += " An admin will review it."
    return text + " You can pick another one any time."


ALREADY_PICKED = "#{rank} is already your pick."
APPROVED = "✅ Approved by {admin}."

REDO_REQUESTED = "🔁 Redo requested by {admin}."
APPROVED_MEMBER = "Your team headshot was approved by an admin. 🎉"


REDO_MEMBER = (
    "Your **{team_name}** admin asked for a redo: I'm making new headshots with your "
    "trained model and the team's look (no new selfies needed). Pick your favourite again "
    "when they arrive."
)


REDO_NOT_STARTED = "Could not start another run for this member: "
ALREADY_REVIEWED = (
    "This is no longer this member's pick (it was reviewed, or replaced by a newer one)."
)
NOT_A_TEAM_RUN = "These headshots are not part of a team run."
RESULT_GONE = "That headshot is no longer stored (results expire)."
EXPORT_EMPTY = "Nothing to export yet: members pick their favourite first."
EXPORT_SENT = "I sent you the export privately."


def export_caption(team_name: str, part: int, parts: int) -> str:
    suffix = f" (part {part} of {parts})" if parts > 1 else ""
    return f"**{team_name}**: the team's headshots{suffix}."


TEAM_DELETE_CONFIRM = (
    "Delete this team's look, its members list and the headshots members picked for it? "
    "Members keep their own photos and results (each can /delete them). This cannot be undone."
)
TEAM_DELETE_KEPT = "The team was not deleted."
TEAM_DELETED = (
    "Deleted the team: its look, members list and picked headshots are deleted. Members keep "
    "their own photos and results until they /delete them."
)

# --- what only one front end needs (its platform's limits and places) ---------------------
ANONYMOUS_SENDER = (
    "You are posting anonymously (as the group or a channel), so I can't tell who you are or "
    "write to you privately. Turn off “Remain anonymous” in your admin rights, or post as "
    "yourself, and send the command again."
)


def kit_file_too_large(size: int, limit: int) -> str:
    return (
        f"That file is {size / 1024 / 1024:.0f} MB; please send one under "
        f"{limit // 1024 // 1024} MB (a few MB is plenty)."
    )


def file_too_large(size: int | None) -> str:
    how_big = f"That file is {size / 1024 / 1024:.0f} MB" if size else "That file is too big"
    return (
        f"{how_big}: Telegram lets bots download at most 20 MB. "
        "Send it as a photo, or export a smaller image (a few MB is plenty)."
    )


EXPORT_NEEDS_START = (
    "I can't message you privately until you start a chat with me: open "
    "{link} and press Start; I'll send the export there."
)


def attachment_too_large(size: int, limit: int) -> str:
    return (
        f"this file is too large ({size / (1024 * 1024):.0f} MB): "
        f"send photos under {limit // (1024 * 1024)} MB"
    )


NOT_A_PHOTO = "this is not a photo ({kind}): send a JPEG or PNG"
OPENING = "Thanks! Opening your session…"


SESSION_OPEN = "Your headshot session is open in {where}: send selfies, pick a style."
OWN_THREAD = "You're already in your session thread: post your selfies here as messages."
OWN_THREAD_ATTACH = "You're already in your session thread: attach your selfies to /add here."
ATTACH_HINT = (
    "I can't see photos posted as messages here: attach them to /add in this thread "
    "(up to 10 at a time)."
)
ADD_WHERE = (
    "/add adds selfies to a session: use it in your session thread or DM with me, or run "
    "/start to begin one."
)


def photos_added(count: int) -> str:
    return f"Got {plural(count, 'file')}: the tally in your session says how they did."


OTHER_PERSONS_THREAD = (
    "This thread belongs to someone else's headshot session. "
    "Run /start in a channel (or in a DM with me) to begin your own."
)
IN_A_THREAD = "Run /start in a text channel (not in a thread), or in a DM with me."
NOT_A_TEXT_CHANNEL = (
    "I can only open a headshot thread in a text channel. Try a regular channel or a DM with me."
)
NO_UPLOAD_HERE = (
    "I'm not collecting photos here. Run /start first (in a channel or in a DM with me)."
)
CHECK_FAILED = "Sorry, I couldn't check these photos. Please try again in a few minutes."
PRIVATE_THREAD_NOTE = (
    "This thread is private: other members can't see it (Discord lets moderators with Manage "
    "Threads open private threads)."
)
DM_FALLBACK_NOTE = (
    "(I couldn't open a private thread in that channel, so we talk here: only you and I see "
    "this DM.)"
)
NO_PRIVATE_PLACE = (
    "I can't open a private thread in this channel or send you a DM. Allow DMs from server "
    "members (Privacy Settings) or ask an admin to give me **Create Private Threads** there."
)
EXPORT_DM_FAILED = (
    "I couldn't send you the export by DM: allow direct messages from server members "
    "(the server's Privacy Settings) and run /team export again."
)
TEAM_SERVER_ONLY = "Team headshots work in a server: run this in your team's server."
TEAM_SETUP_CHANNEL = (
    "Run /team setup in a regular text channel (not a thread): the look's preview, the Join "
    "button and the team's chosen headshots are posted there."
)
PERMISSION_NAMES = {
    "create_public_threads": "Create Public Threads",
    "create_private_threads": "Create Private Threads",
    "send_messages_in_threads": "Send Messages in Threads",
    "send_messages": "Send Messages",
    "attach_files": "Attach Files",
}


def missing_permissions(missing: list[str], *, private: bool) -> str:
    names = ", ".join(f"**{PERMISSION_NAMES.get(m, m)}**" for m in missing)
    what = "private threads" if private else "threads"
    return (
        f"I can't work in this channel: I'm missing {names}. I need them to open {what} for your "
        "session and post your photos there. Ask a server admin to give me these permissions in "
        "this channel (or use /start in a DM with me)."
    )


def thread_refused(*, private: bool) -> str:
    permission = "Create Private Threads" if private else "Create Public Threads"
    return (
        f"I can't create threads here: ask an admin to give me **{permission}** and "
        "**Send Messages in Threads** in this channel (or use /start in a DM with me)."
    )


# --- Slack: sessions live in the DM with the app ----------------------------------------------
SESSION_OPEN_KIT = "I sent you the editor in our DM; Save posts the preview and a Join button here."
SLACK_EXPORT_POSTED = "The export is posted in the team's channel."
HOW_YOURS_SLACK = "they are yours to delete (hover over each, ⋯ → Delete file)"
