"""Every sentence the Telegram bot writes, in one place."""

from __future__ import annotations

from headshots.queue.client import ForgetReport, JobInfo
from headshots.queue.contracts import JobState
from headshots.queue.progress import NO_WORKER, QueuePosition, format_eta
from headshots.settings import Settings


def _days(value: float) -> str:
    return f"{value:g} day" + ("" if value == 1 else "s")


def _hours(value: float) -> str:
    return f"{value:g} hour" + ("" if value == 1 else "s")


def retention(settings: Settings) -> str:
    return (
        f"• your selfies are deleted {_hours(settings.selfie_ttl_hours)} after delivery\n"
        f"• your trained model after {_days(settings.lora_ttl_days)} "
        "(so you can order new styles without re-uploading)\n"
        f"• your results after {_days(settings.results_ttl_days)}\n"
        "• /delete removes everything at once, at any time"
    )


def start(settings: Settings, eta_s: float | None) -> str:
    return (
        "Hi! I turn a handful of selfies into professional headshots.\n\n"
        f"1. You send {settings.min_selfies}–{settings.max_selfies} selfies; I check each one.\n"
        "2. You pick a style (background, attire, colours).\n"
        "3. I train a small model of your face and paint your headshots: "
        f"{format_eta(eta_s)} once it is your turn. The results arrive right here.\n\n"
        f"What I keep, and for how long:\n{retention(settings)}\n\n"
        "Do you agree that I process photos of your face for this?"
    )


REPLY_IN_GROUP = (
    "In this group I only see replies to my messages: send them as a reply to this message."
)


def consent_given(settings: Settings, *, replies_only: bool = False) -> str:
    text = (
        f"Thanks! Now send {settings.min_selfies}–{settings.max_selfies} selfies: as photos, or "
        "as image files for full quality (an album is fine). Only you in the picture, different "
        "places and light. /tips has more advice."
    )
    return f"{text}\n{REPLY_IN_GROUP}" if replies_only else text


CONSENT_DECLINED = "No problem: nothing was stored. Send /start if you change your mind."


def tips(settings: Settings) -> str:
    return (
        "Tips for good selfies:\n"
        f"• {settings.min_selfies}–{settings.max_selfies} photos; 10–15 is a good number\n"
        "• only you in the picture, face fully visible, looking at the camera\n"
        "• vary the place, the light, your clothes and the angle a little\n"
        "• no sunglasses, hats, filters or funny faces\n"
        "• sharp and well lit; head and shoulders, not too close\n"
        "• send them as files (📎 → File) to keep full resolution"
    )


def help_text(settings: Settings) -> str:
    return (
        "I make professional headshots from your selfies.\n\n"
        "/start – begin (or continue an upload)\n"
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


def privacy(settings: Settings) -> str:
    return (
        "Privacy:\n"
        "Your photos are used only to make your headshots, and only after you agree.\n"
        f"{retention(settings)}"
    )


def styles(presets: list[tuple[str, str, list[str], list[str]]]) -> str:
    lines = ["Styles (choose one after uploading; each has background and attire options):"]
    for _, title, backgrounds, attire in presets:
        lines.append(f"• {title}: backgrounds {', '.join(backgrounds)}; attire {', '.join(attire)}")
    lines.append("• Custom: describe the look in your own words.")
    return "\n".join(lines)


def collecting_hint(accepted: int, settings: Settings) -> str:
    missing = settings.min_selfies - accepted
    if missing > 0:
        return f"Send at least {missing} more photo{'s' if missing != 1 else ''}."
    return f"Press Done when you are ready, or send more (up to {settings.max_selfies})."


def ranges(indices: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3–5, 9"``."""
    parts: list[str] = []
    for index in sorted(indices):
        if parts and parts[-1].split("–")[-1] == str(index - 1):
            start = parts[-1].split("–")[0]
            parts[-1] = f"{start}–{index}"
        else:
            parts.append(str(index))
    return ", ".join(parts)


def over_limit(indices: list[int], settings: Settings) -> str:
    return f"Photo {ranges(indices)} not used: {settings.max_selfies} photos is the maximum."


def file_too_large(size: int) -> str:
    return (
        f"That file is {size / 1024 / 1024:.0f} MB: Telegram lets bots download at most 20 MB. "
        "Send it as a photo, or export a smaller image (a few MB is plenty)."
    )


NOT_AN_IMAGE = (
    "That file is not an image I can use. Send selfies as photos, or as JPEG/PNG/HEIC files."
)
NEED_START = (
    "Send /start first: I explain what happens and ask for your agreement before I take photos."
)
NEED_CONSENT = "Please answer the question above first (the buttons), then send your photos."
NOT_COLLECTING = (
    "Your upload is finished; choose your style with the buttons above. "
    "To upload a new set, send /start."
)
SEND_PHOTOS_NOT_TEXT = "I need photos now, not text: send your selfies (or /tips for advice)."
USE_BUTTONS = "Please use the buttons (I sent them again below), or /cancel to stop."
TEXT_HINT = "I make headshots from selfies. Send /start to begin, or /help for all commands."


def unsupported(kind: str) -> str:
    return (
        f"I can't use {kind}. Send selfies as photos (or as image files for full quality). "
        "/tips explains what works best."
    )


def resume(photos: int) -> str:
    return (
        f"You have an upload in progress with {photos} accepted photo{'s' if photos != 1 else ''}. "
        "Continue with it, or start over?"
    )


def custom_prompt(*, replies_only: bool = False) -> str:
    text = (
        "Describe the look in your own words: clothes, background, mood (up to 300 "
        "characters), e.g. “navy turtleneck, rooftop terrace at golden hour”."
    )
    return f"{text}\n{REPLY_IN_GROUP}" if replies_only else text


def summary(style_text: str) -> str:
    return f"Your choice:\n{style_text}\n\nConfirm to start?"


SUBMITTING = "Submitting your job…"


def queued(position: QueuePosition, mention: str | None) -> str:
    where = f"position {position.position}" if position.position else "in the queue"
    prefix = f"{mention}: " if mention else ""
    offline = f" {NO_WORKER}" if not position.worker_online else ""
    return (
        f"{prefix}Queued: {where}, ETA {format_eta(position.eta_s)}.{offline} "
        "I'll update this message as it goes. /cancel stops it."
    )


def started(state: JobState, mention: str | None) -> str:
    prefix = f"{mention}: " if mention else ""
    return f"{prefix}Your job is {state.value}. I'll update this message as it goes."


def job_status(info: JobInfo) -> str:
    if info.state is JobState.QUEUED and info.position is not None:
        position = info.position.position or "?"
        text = f"Your job is queued: position {position}, ETA {format_eta(info.position.eta_s)}."
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
    return (
        f"Upload in progress: {accepted} photo{'s' if accepted != 1 else ''} accepted. "
        + collecting_hint(accepted, settings)
    )


NOTHING_GOING_ON = "Nothing in progress. Send /start to make headshots."
CANCELLED_QUEUED = "Cancelled: your job was taken out of the queue."


def cancelling(state: JobState) -> str:
    return (
        f"Stopping your job (it is {state.value}); "
        "its status message will confirm when it has stopped."
    )


CANCELLED_UPLOAD = "Cancelled. The photos you sent are deleted. Send /start to begin again."
NOTHING_TO_CANCEL = "There is nothing to cancel."
DELETE_CONFIRM = (
    "Delete everything I have of you: selfies, trained models, results, jobs and conversation "
    "state? Running jobs stop. This cannot be undone."
)
DELETE_KEPT = "Nothing was deleted."


def deleted(report: ForgetReport) -> str:
    return (
        f"Deleted: {report.jobs} job{'s' if report.jobs != 1 else ''}, "
        f"{report.blobs} stored file{'s' if report.blobs != 1 else ''} and "
        f"{report.keys} record{'s' if report.keys != 1 else ''}. Nothing of yours is left."
    )


NOT_YOUR_BUTTON = "These buttons belong to someone else's conversation."
STALE_MENU = "This menu is out of date; use the latest one (or /start)."
ALREADY_RUNNING_PREFIX = "You already have a job in progress. "
ERROR = (
    "Sorry, something went wrong on my side. Please try again in a minute; "
    "your photos and choices are kept."
)
OPERATIONAL = "I can't reach my storage right now. Please try again in a few minutes."
JOB_GONE = "That job no longer exists (its data expired or was deleted)."
ORIGINALS_SENT = "Here are your originals as files."
NEW_STYLE_INTRO = "New style with your trained model (no retraining). "


# --- team mode -----------------------------------------------------------------------------
TEAM_IN_GROUP = (
    "Team mode lives in your team's group: a group admin runs /team there to set the look, "
    "and members join with the Join button. Got a Join link? Open it and I'll take it from here."
)
TEAM_USAGE = (
    "/team – the team's look and the Join button (admins: set it up or change it)\n"
    "/team join – the link to join\n"
    "/team status – who is where\n"
    "/team export – admins: the chosen headshots as a ZIP, sent to you privately\n"
    "/team delete – admins: delete the team's kit, members list and chosen headshots"
)
ONLY_ADMINS_CHANGE = "Only group admins can change the team look."
ONLY_ADMINS = "Only group admins can do that."
ANONYMOUS_SENDER = (
    "You are posting anonymously (as the group or a channel), so I can't tell who you are or "
    "write to you privately. Turn off “Remain anonymous” in your admin rights, or post as "
    "yourself, and send the command again."
)
NO_KIT_YET = "This group has no team look yet: a group admin sets it up with /team."
TEAM_LINK_STALE = (
    "That team link no longer works (the team was deleted, or its look expired). "
    "Ask in the group for a new one: /team join."
)
KIT_CANCELLED = "Team setup cancelled; nothing was changed."
KIT_SAVED = "✅ Team look saved."


def join_text(team_name: str) -> str:
    return (
        f"Join {team_name}: tap the button, then send me your selfies in our private chat. "
        "Nothing you send me there is posted here; only the headshot you pick."
    )


def kit_caption(lines: list[str]) -> str:
    return "\n".join(lines) + (
        "\n\nMembers: tap Join, send your selfies to me privately, and pick your favourite."
    )


def team_start(team_name: str, settings: Settings, eta_s: float | None) -> str:
    return (
        f"Hi! You're joining {team_name}'s headshots: the team's admin chose the look, so everyone "
        "matches.\n\n"
        f"1. You send {settings.min_selfies}–{settings.max_selfies} selfies here; I check each one "
        "(nobody in the group sees them).\n"
        "2. You tell me man, woman or neutral; the rest is the team's look.\n"
        f"3. I train a small model of your face and paint your headshots: {format_eta(eta_s)} "
        "once it is your turn. You pick your favourite; only that one is posted in the group.\n\n"
        f"What I keep, and for how long:\n{retention(settings)}\n\n"
        "Do you agree that I process photos of your face for this?"
    )


def joined(team_name: str) -> str:
    return f"You joined {team_name}. "


def team_summary(look_lines: list[str], subject_label: str) -> str:
    return (
        "The team's look:\n"
        + "\n".join(look_lines)
        + f"\nYou: {subject_label}\n\nConfirm to start?"
    )


def team_status(team_name: str, counts: dict[str, int], rows: list[tuple[str, str]] | None) -> str:
    total = sum(counts.values())
    if not total:
        return f"{team_name}: nobody has joined yet. Members join with /team join."
    summary = ", ".join(f"{n} {label}" for label, n in counts.items())
    text = f"{team_name}: {total} member{'s' if total != 1 else ''} – {summary}."
    if rows:
        text += "\n" + "\n".join(f"• {name} – {label}" for name, label in rows)
    return text


def team_pick_caption(name: str, team_name: str, *, review: bool) -> str:
    caption = f"{name}'s headshot for {team_name}"
    return caption + (" – waiting for an admin's review." if review else ".")


def picked(rank: int, *, review: bool) -> str:
    text = f"#{rank} is your pick: I posted it in the team's chat."
    if review:
        text += " An admin will review it."
    return text + " You can pick another one any time."


def approved_caption(caption: str, admin: str) -> str:
    return f"{caption.split(' – ')[0]} – ✅ approved by {admin}."


def redo_caption(caption: str, admin: str) -> str:
    return f"{caption.split(' – ')[0]} – {admin} asked for another take."


APPROVED_MEMBER = "Your team headshot was approved by an admin. 🎉"
REDO_MEMBER = (
    "A team admin asked for another take of your headshot: I'm making a new set with the team's "
    "look and new seeds (no new selfies needed). Pick your favourite again when it arrives."
)
REDO_NOT_STARTED = "Could not start another run for this member (see their chat for why)."
ALREADY_REVIEWED = "This pick was already reviewed, or replaced by a newer one."
NOT_A_TEAM_JOB = "That result is not part of a team run."
EXPORT_EMPTY = "Nothing to export yet: members pick their favourite first."
EXPORT_SENT = "I sent you the export privately."


def export_needs_start(link: str) -> str:
    return (
        "I can't message you privately until you start a chat with me: open "
        f"{link} and press Start; I'll send the export there."
    )


def export_caption(team_name: str, part: int, parts: int) -> str:
    suffix = f" (part {part} of {parts})" if parts > 1 else ""
    return f"{team_name}: the team's headshots{suffix}."


TEAM_DELETE_CONFIRM = (
    "Delete this team's look, its members list and the headshots members picked for it? "
    "Members keep their own photos and results (each can /delete them). This cannot be undone."
)
TEAM_DELETE_KEPT = "The team was not deleted."
TEAM_DELETED = "The team's look, members list and picked headshots are deleted."
LOGO_RECEIVED = "Logo received."
LOGO_NOT_IMAGE = "That is not an image I can use as a logo: send a PNG or JPEG (or press No logo)."
