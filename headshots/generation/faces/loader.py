"""Choosing and building the face backend from settings."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from headshots.errors import ConfigurationError
from headshots.generation.faces.dlib_backend import DlibAnalyzer
from headshots.generation.faces.insightface_backend import (
    InsightFaceAnalyzer,
    insightface_pack_dir,
    missing_pack_error,
    pack_is_present,
)

if TYPE_CHECKING:
    from headshots.generation.faces.types import FaceAnalyzer
    from headshots.settings import Settings

logger = logging.getLogger(__name__)


def load_analyzer(settings: Settings) -> FaceAnalyzer:
    """Return the configured face backend (models load on first use; the caller keeps it).

    ``auto`` picks insightface when its pack folder
    ``<models_path>/insightface/models/<insightface_pack>/`` holds .onnx files, else dlib.
    ``insightface`` without the pack raises :class:`ModelMissing` naming that folder.
    """
    pack_dir = insightface_pack_dir(settings.models_path, settings.insightface_pack)
    backend = settings.face_backend
    if backend == "auto":
        backend = "insightface" if pack_is_present(pack_dir) else "dlib"
        logger.info("face backend auto-selected: %s", backend)
    if backend == "insightface":
        if not pack_is_present(pack_dir):
            raise missing_pack_error(pack_dir)
        return InsightFaceAnalyzer(pack_dir)
    if backend == "dlib":
        return DlibAnalyzer()
    raise ConfigurationError(f"unknown face backend {backend!r}")
