"""Job contracts: the small, JSON-friendly models that travel through the queue.

Never images: pixels live in the shared store and jobs carry only ids and options.
"""

from __future__ import annotations

import enum
import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Platform = Literal["telegram", "discord", "slack", "cli"]
SubjectClass = Literal["man", "woman", "person"]
AspectRatio = Literal["1:1", "4:5", "2:3"]
JobKind = Literal["full", "new_style", "more_like"]
#: The person's own features a chat asks once (``None`` / "as_in_photos": as in the selfies).
EyeColour = Literal["brown", "dark_brown", "hazel", "green", "blue", "grey"]
Glasses = Literal["as_in_photos", "wear", "none"]
HairColour = Literal["black", "dark_brown", "brown", "auburn", "red", "blonde", "grey", "white"]
HairLength = Literal["shaved", "short", "medium", "long"]
#: How a reference photo steers the composition (a ControlNet per hint): OpenPose keypoints of
#: face and shoulders, or Canny edges.
ControlHint = Literal["pose", "canny"]

#: The short name of each platform in user keys (``tg:42``), team ids and Redis key patterns.
PLATFORM_SHORT: dict[str, str] = {"telegram": "tg", "discord": "dc", "slack": "sl", "cli": "cli"}


class JobState(enum.StrEnum):
    QUEUED = "queued"
    CHECKING = "checking"
    TRAINING = "training"
    GENERATING = "generating"
    DELIVERING = "delivering"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class UserRef(BaseModel):
    """A person on one platform."""

    model_config = ConfigDict(frozen=True)

    platform: Platform
    user_id: int
    display_name: str | None = None

    @property
    def key(self) -> str:
        """Stable key used in every Redis key and store path of this user, e.g. ``tg:42``."""
        return f"{PLATFORM_SHORT[self.platform]}:{self.user_id}"

    @classmethod
    def from_key(cls, key: str) -> UserRef:
        """The person of a :attr:`key` (``tg:42``); ``ValueError`` when it is not one."""
        short, _, user_id = key.partition(":")
        platforms = {v: k for k, v in PLATFORM_SHORT.items()}
        if short not in platforms or not user_id.lstrip("-").isdigit():
            raise ValueError(f"not a user key: {key!r}")
        return cls(platform=platforms[short], user_id=int(user_id))  # type: ignore[arg-type]


class ChatTarget(BaseModel):
    """The exact place a request came from and where its progress and results go."""

    model_config = ConfigDict(frozen=True)

    platform: Platform
    chat_id: int
    thread_id: int | None = None
    user_id: int
    reply_to_message_id: int | None = None
    status_message_id: int | None = None


class PersonAttributes(BaseModel):
    """The person's own features: they go into training captions (so the LoRA does not bind
    them to the token) and into every prompt. ``None`` means "as in my photos"."""

    model_config = ConfigDict(frozen=True)

    eye_colour: EyeColour | None = None
    glasses: Glasses = "as_in_photos"
    hair_colour: HairColour | None = None
    hair_length: HairLength | None = None

    @property
    def is_default(self) -> bool:
        return self == PersonAttributes()


class ReferenceChoice(BaseModel):
    """A reference photo the output is framed like ("this pose, this crop").

    The photo itself lives in the job's user store at ``path`` (selfie retention, the same
    delete); a team kit's reference is copied there for each member's job. ``sha256`` makes two
    different photos two different jobs.
    """

    model_config = ConfigDict(frozen=True)

    path: str = Field(pattern=r"^references/[0-9a-f]{16}\.png$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    hint: ControlHint = "pose"

    @staticmethod
    def path_for(sha256: str) -> str:
        return f"references/{sha256[:16]}.png"

    @classmethod
    def of(cls, png: bytes, hint: ControlHint) -> ReferenceChoice:
        """The choice of a stored reference's bytes (the chats' and the CLI's one way to it)."""
        sha = hashlib.sha256(png).hexdigest()
        return cls(path=cls.path_for(sha), sha256=sha, hint=hint)


class StyleChoice(BaseModel):
    """What a chat collects about the look; presets turn it into prompts."""

    preset: str = "corporate"
    subject_class: SubjectClass = "person"
    background: str | None = None
    attire: str | None = None
    colour_grade: str | None = None
    count: int = Field(default=8, ge=1, le=40)
    aspect_ratio: AspectRatio | None = None
    custom: str | None = Field(default=None, max_length=300)
    seed: int | None = None
    attributes: PersonAttributes = Field(default_factory=PersonAttributes)
    #: "Quick draft": 4-8 steps with the LCM-LoRA (when the operator configured one).
    quick: bool = False
    #: "Frame me like this photo": pose or edges of a reference through a ControlNet.
    reference: ReferenceChoice | None = None

    @field_validator("custom")
    @classmethod
    def _strip_custom(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = " ".join(value.split())
        return value or None


class JobRequest(BaseModel):
    """Everything a worker needs to run one job; the argument of both arq jobs."""

    user: UserRef
    target: ChatTarget
    upload_id: str
    style: StyleChoice = Field(default_factory=StyleChoice)
    kind: JobKind = "full"
    #: Job whose trained LoRA a "new style" / "more like" job reuses.
    lora_job_id: str | None = None
    #: "More like #N": the rank of the image to vary.
    like_rank: int | None = None
    team_id: str | None = None
    #: Distinguishes deliberate repeats (new seeds) from accidental double submissions.
    nonce: str = ""

    def job_id(self) -> str:
        """Deterministic id: the same request twice is the same job (arq dedupes on it)."""
        material = "|".join(
            [
                self.user.key,
                self.upload_id,
                self.kind,
                self.lora_job_id or "",
                str(self.like_rank or ""),
                # Without a reference the id is what it was before references existed.
                self.style.model_dump_json(
                    exclude={"reference"} if self.style.reference is None else None
                ),
                self.nonce,
            ]
        )
        return hashlib.sha256(material.encode()).hexdigest()[:20]


class ProgressEvent(BaseModel):
    """One progress report of a job: recorded in Redis and published for chats."""

    job_id: str
    state: JobState
    stage: str
    percent: float | None = None
    text: str = ""
    at: float
