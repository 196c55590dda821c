"""headshots: professional on-brand headshots from a handful of selfies sent in a chat."""

from __future__ import annotations

from headshots.errors import (
    ConfigurationError,
    DeliveryFailed,
    HeadshotsError,
    JobCancelled,
    LimitReached,
    ModelMissing,
    NotFound,
    OperationalError,
    SelfieRejected,
    StoreUnavailable,
    UserError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "DeliveryFailed",
    "HeadshotsError",
    "JobCancelled",
    "LimitReached",
    "ModelMissing",
    "NotFound",
    "OperationalError",
    "SelfieRejected",
    "StoreUnavailable",
    "UserError",
    "__version__",
]
