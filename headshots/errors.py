"""The one exception tree of headshots.

HeadshotsError
├── UserError                 something the person in the chat can fix or should know
│   ├── SelfieRejected        a photo (or the whole set) is unusable; carries the reasons
│   ├── LimitReached          per-user limits: an active job already, or too many today
│   ├── JobCancelled          the user cancelled; long loops raise it between steps
│   └── NotFound              no such job, upload set or trained model (expired or deleted)
└── OperationalError          our side is broken; log it, tell the user to try later
    ├── StoreUnavailable      Redis (or the blob store) cannot be reached
    ├── ModelMissing          weights or a face model pack are not where settings say
    ├── DeliveryFailed        a chat platform refused a message after retries
    └── ConfigurationError    a setting is missing or inconsistent
"""

from __future__ import annotations


class HeadshotsError(Exception):
    """Root of every error this package raises on purpose."""


class UserError(HeadshotsError):
    """An error whose message is written for the person in the chat."""


class SelfieRejected(UserError):
    def __init__(self, message: str, reasons: list[str] | None = None) -> None:
        super().__init__(message)
        self.reasons = reasons or []


class LimitReached(UserError):
    pass


class JobCancelled(UserError):
    pass


class NotFound(UserError):
    pass


class OperationalError(HeadshotsError):
    """An error of ours: operators read it, users get a polite 'try again later'."""


class StoreUnavailable(OperationalError):
    pass


class ModelMissing(OperationalError):
    pass


class DeliveryFailed(OperationalError):
    pass


class ConfigurationError(OperationalError):
    pass
