"""Buttons under results, encoded the same way for Telegram ``callback_data`` (<= 64 bytes) and
Discord ``custom_id`` (<= 100 chars), so the worker can attach them and either bot can read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ActionName = Literal["new_style", "more_like", "originals", "delete", "pick", "make_more"]

_CODES: dict[ActionName, str] = {
    "new_style": "ns",
    "more_like": "ml",
    "originals": "og",
    "delete": "dl",
    "pick": "pk",
    # "Make N more" after a shortfall: same LoRA and style, new seeds; ``rank`` carries N.
    "make_more": "mm",
}
_NAMES = {code: name for name, code in _CODES.items()}
PREFIX = "hs"


@dataclass(frozen=True)
class Action:
    name: ActionName
    job_id: str = ""
    rank: int | None = None

    def encode(self) -> str:
        parts = [PREFIX, _CODES[self.name], self.job_id]
        if self.rank is not None:
            parts.append(str(self.rank))
        data = ":".join(parts)
        if len(data.encode()) > 64:  # Telegram's callback_data limit
            raise ValueError(f"action too long for callback_data: {data!r}")
        return data


def decode_action(data: str) -> Action | None:
    """The action in ``data``, or ``None`` when it is not one of ours (or malformed)."""
    parts = data.split(":")
    if len(parts) < 3 or parts[0] != PREFIX or parts[1] not in _NAMES:
        return None
    rank: int | None = None
    if len(parts) > 3:
        if not parts[3].isdigit():
            return None
        rank = int(parts[3])
    return Action(name=_NAMES[parts[1]], job_id=parts[2], rank=rank)


def result_actions(
    job_id: str, ranks: list[int], *, team: bool = False, missing: int = 0
) -> list[list[Action]]:
    """Rows of buttons under a result set: new style / originals / delete, then "More like #N".

    A team member's results instead offer "Pick #N" (the favourite posted to the team) and
    originals: the team's look is fixed, so no new style. When ``missing`` images of the order
    did not pass the likeness check, the first row offers "Make N more" (same LoRA and style,
    new seeds).
    """
    make_more = [Action("make_more", job_id, missing)] if missing > 0 else []
    if team:
        picks = [Action("pick", job_id, rank) for rank in ranks[:10]]
        team_rows = [picks[i : i + 5] for i in range(0, len(picks), 5)]
        if make_more:
            team_rows.insert(0, make_more)
        team_rows.append([Action("originals", job_id), Action("delete", job_id)])
        return team_rows
    rows: list[list[Action]] = [
        [*make_more, Action("new_style", job_id), Action("originals", job_id)],
    ]
    like = [Action("more_like", job_id, rank) for rank in ranks[:5]]
    if like:
        rows.append(like)
    rows.append([Action("delete", job_id)])
    return rows


LABELS: dict[ActionName, str] = {
    "new_style": "New style",
    "more_like": "More like #{rank}",
    "originals": "Originals as files",
    "delete": "Delete my data",
    "pick": "Pick #{rank} for the team",
    "make_more": "Make {rank} more",
}


def label(action: Action) -> str:
    return LABELS[action.name].format(rank=action.rank)
