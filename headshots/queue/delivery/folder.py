"""Delivery for jobs submitted from the command line (platform ``cli``): files in a folder.

``<state_dir>/outbox/<chat_id>/`` receives the images, and ``messages.jsonl`` every text and
edit, so a job started without any chat platform still ends somewhere a person can look.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from headshots.actions import Action
from headshots.queue.contracts import ChatTarget
from headshots.queue.delivery.base import OutgoingImage


class FolderSender:
    platform = "cli"
    max_album = 10
    max_message_bytes = 1 << 40

    def __init__(self, root: Path) -> None:
        self.root = root
        self._next_id = int(time.time() * 1000)

    def _folder(self, target: ChatTarget) -> Path:
        folder = self.root / str(target.chat_id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _log(self, target: ChatTarget, entry: dict[str, object]) -> int:
        self._next_id += 1
        entry = {"id": self._next_id, "at": time.time(), **entry}
        with (self._folder(target) / "messages.jsonl").open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")
        return self._next_id

    async def send_text(
        self, target: ChatTarget, text: str, actions: Sequence[Sequence[Action]] | None = None
    ) -> int:
        buttons = [a.encode() for row in actions or [] for a in row]
        return self._log(target, {"type": "text", "text": text, "buttons": buttons})

    async def edit_text(self, target: ChatTarget, message_id: int, text: str) -> None:
        self._log(target, {"type": "edit", "message_id": message_id, "text": text})

    async def send_album(self, target: ChatTarget, images: Sequence[OutgoingImage]) -> list[int]:
        return [await self.send_image(target, image) for image in images]

    async def send_image(
        self,
        target: ChatTarget,
        image: OutgoingImage,
        actions: Sequence[Sequence[Action]] | None = None,
    ) -> int:
        (self._folder(target) / image.filename).write_bytes(image.data)
        buttons = [a.encode() for row in actions or [] for a in row]
        return self._log(
            target,
            {"type": "image", "file": image.filename, "caption": image.caption, "buttons": buttons},
        )

    async def close(self) -> None:
        return None
