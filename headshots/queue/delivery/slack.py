"""Slack delivery over the Web API with the bot token alone (``chat.*`` and ``files.*``).

Slack's ids are strings (``U024BE7LH``, ``D0123ABC``) and its message ids timestamps
(``1712345678.123456``); chat targets and the core hold integers, so ids travel as their
base-36 value and timestamps as microseconds (:func:`slack_number`, :func:`ts_number`), both
reversible. Files go the documented way: ``files.getUploadURLExternal`` for each file, the
bytes POSTed to its URL, one ``files.completeUploadExternal`` that shares them in the channel.
A 429 is waited out for its ``Retry-After`` seconds; a 5xx or a dropped connection with the
growing back-off of :func:`~headshots.queue.delivery.base.with_retries`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import httpx

from headshots.actions import Action, label
from headshots.errors import DeliveryFailed
from headshots.queue.contracts import ChatTarget
from headshots.queue.delivery.base import TRANSIENT, OutgoingImage, with_retries

logger = logging.getLogger(__name__)

SLACK_API_URL = "https://slack.com/api/"
#: Slack cuts a message's text at 40,000 characters and a section block's at 3,000.
MAX_TEXT = 3000
#: Files one ``files.completeUploadExternal`` shares at once.
MAX_FILES = 10
#: Slack takes files up to 1 GB; one album stays far smaller so a retry stays cheap.
MAX_MESSAGE_BYTES = 50 * 1024 * 1024
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def slack_number(slack_id: str) -> int:
    """The integer a Slack id (``U024BE7LH``, ``C0123``) travels as; :func:`slack_id` undoes it."""
    return int(slack_id, 36)


def slack_id(number: int) -> str:
    digits = ""
    while number:
        number, digit = divmod(number, 36)
        digits = _DIGITS[digit] + digits
    return digits or "0"


def ts_number(ts: str) -> int:
    """A message timestamp (``"1712345678.000200"``) as microseconds; :func:`ts_of` undoes it."""
    seconds, _, fraction = ts.partition(".")
    return int(seconds) * 1_000_000 + int((fraction + "000000")[:6])


def ts_of(number: int) -> str:
    return f"{number // 1_000_000}.{number % 1_000_000:06d}"


class SlackApiError(DeliveryFailed):
    """Slack answered ``"ok": false``; ``error`` is its code (``channel_not_found``...)."""

    def __init__(self, method: str, error: str, status: int = 200, retry_after: float = 0) -> None:
        super().__init__(f"slack {method}: {error}")
        self.method, self.error, self.status, self.retry_after = method, error, status, retry_after


def classify_slack_error(exc: BaseException) -> float | None:
    """Seconds to wait before another try (429: its Retry-After), ``TRANSIENT``, or ``None``."""
    if isinstance(exc, SlackApiError):
        if exc.status == 429 or exc.error == "ratelimited":
            return max(exc.retry_after, 0.1)
        return TRANSIENT if exc.status >= 500 else None
    if isinstance(exc, (httpx.TransportError, TimeoutError, OSError)):
        return TRANSIENT
    return None


class SlackApi:
    """One Web API client: ``call(method, **args)`` returns Slack's answer or raises."""

    def __init__(self, token: str, *, api_url: str | None = None) -> None:
        self.base = (api_url or SLACK_API_URL).rstrip("/") + "/"
        self._auth = {"Authorization": f"Bearer {token}"}
        self.http = httpx.AsyncClient(timeout=30.0)

    async def call_once(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """One try of ``method`` (``call`` retries; ``headshots doctor`` wants the first answer)."""
        # JSON bodies for everything: every method used here accepts them (``application/json``).
        body = {k: v for k, v in args.items() if v is not None}
        response = await self.http.post(self.base + method, json=body, headers=self._auth)
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = float(response.headers.get("Retry-After", "1") or 1)
            raise SlackApiError(method, f"http {response.status_code}", response.status_code,
                                retry_after)  # fmt: skip
        data: dict[str, Any] = response.json()
        if not data.get("ok"):
            raise SlackApiError(method, str(data.get("error", "unknown_error")))
        return data

    async def call(self, method: str, **args: Any) -> dict[str, Any]:
        return await with_retries(
            lambda: self.call_once(method, args), classify_slack_error, what=f"slack {method}"
        )

    async def upload(
        self,
        channel: str,
        files: Sequence[tuple[str, bytes, str]],
        *,
        thread_ts: str | None = None,
        comment: str = "",
    ) -> dict[str, Any]:
        """Upload ``(filename, data, title)`` files and share them in ``channel`` as one message."""
        uploaded = []
        for filename, data, title in files:
            slot = await self.call(
                "files.getUploadURLExternal", filename=filename, length=len(data)
            )
            url = str(slot["upload_url"])

            async def send(url: str = url, filename: str = filename, data: bytes = data) -> None:
                response = await self.http.post(url, files={"file": (filename, data)})
                if response.status_code == 429 or response.status_code >= 500:
                    retry_after = float(response.headers.get("Retry-After", "1") or 1)
                    raise SlackApiError("upload", f"http {response.status_code}",
                                        response.status_code, retry_after)  # fmt: skip
                if response.status_code != 200:
                    raise SlackApiError("upload", f"http {response.status_code}")

            await with_retries(send, classify_slack_error, what="slack upload")
            uploaded.append({"id": slot["file_id"], "title": title[:250] or filename})
        return await self.call(
            "files.completeUploadExternal", files=uploaded, channel_id=channel,
            thread_ts=thread_ts, initial_comment=comment[:MAX_TEXT] or None,
        )  # fmt: skip

    async def close(self) -> None:
        await self.http.aclose()


def action_blocks(text: str, actions: Sequence[Sequence[Action]] | None) -> list[dict[str, Any]]:
    """A section with ``text`` and one actions block per row of result buttons."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:MAX_TEXT] or " "}}
    ]
    for row in actions or []:
        elements = []
        for action in row:
            button: dict[str, Any] = {
                "type": "button", "action_id": action.encode(), "value": action.encode(),
                "text": {"type": "plain_text", "text": label(action)[:75]},
            }  # fmt: skip
            if action.name == "delete":
                button["style"] = "danger"
            elements.append(button)
        if elements:
            blocks.append({"type": "actions", "elements": elements})
    return blocks


def shared_ts(answer: dict[str, Any], channel: str) -> int:
    """The message a completed upload was shared in, when Slack already says (else 0)."""
    for file in answer.get("files") or []:
        shares = file.get("shares") or {}
        for kind in ("private", "public"):
            for share in (shares.get(kind) or {}).get(channel) or []:
                if share.get("ts"):
                    return ts_number(str(share["ts"]))
    return 0


class SlackSender:
    platform = "slack"
    max_album = MAX_FILES
    max_message_bytes = MAX_MESSAGE_BYTES

    def __init__(self, token: str, *, api_url: str | None = None) -> None:
        self.api = SlackApi(token, api_url=api_url)

    @staticmethod
    def _where(target: ChatTarget) -> tuple[str, str | None]:
        thread = ts_of(target.thread_id) if target.thread_id else None
        return slack_id(target.chat_id), thread

    async def send_text(
        self, target: ChatTarget, text: str, actions: Sequence[Sequence[Action]] | None = None
    ) -> int:
        channel, thread = self._where(target)
        answer = await self.api.call(
            "chat.postMessage", channel=channel, thread_ts=thread, text=text[:MAX_TEXT],
            blocks=action_blocks(text, actions) if actions else None,
        )  # fmt: skip
        return ts_number(str(answer["ts"]))

    async def edit_text(self, target: ChatTarget, message_id: int, text: str) -> None:
        channel, _ = self._where(target)
        await self.api.call(
            "chat.update", channel=channel, ts=ts_of(message_id), text=text[:MAX_TEXT], blocks=[]
        )

    async def send_album(self, target: ChatTarget, images: Sequence[OutgoingImage]) -> list[int]:
        channel, thread = self._where(target)
        comment = "\n".join(i.caption for i in images if i.caption)
        files = [(i.filename, i.data, i.caption) for i in images]
        answer = await self.api.upload(channel, files, thread_ts=thread, comment=comment)
        shared = shared_ts(answer, channel)
        return [shared] if shared else []

    async def send_image(
        self,
        target: ChatTarget,
        image: OutgoingImage,
        actions: Sequence[Sequence[Action]] | None = None,
    ) -> int:
        channel, thread = self._where(target)
        files = [(image.filename, image.data, image.caption)]
        comment = "" if actions else image.caption
        answer = await self.api.upload(channel, files, thread_ts=thread, comment=comment)
        if not actions:
            return shared_ts(answer, channel)
        # Shared files carry no buttons: the caption and the buttons follow as one message.
        return await self.send_text(target, image.caption, actions)

    async def close(self) -> None:
        await self.api.close()
