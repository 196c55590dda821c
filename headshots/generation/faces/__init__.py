"""Face analysis for headshots: selfie checks, training crops, likeness ranking, contact sheets.

Importing this package is cheap: dlib, insightface and onnxruntime load inside the backend on
first use, so the chat bot can check selfies without pulling in the generation stack.
"""

from __future__ import annotations

from headshots.generation.faces.contact_sheet import contact_sheet
from headshots.generation.faces.crops import TrainingExample, make_training_crops
from headshots.generation.faces.dlib_backend import DlibAnalyzer
from headshots.generation.faces.images import decode_image, normalise_reference, normalise_selfie
from headshots.generation.faces.insightface_backend import (
    ArcFaceEmbedder,
    InsightFaceAnalyzer,
    insightface_pack_dir,
)
from headshots.generation.faces.loader import load_analyzer
from headshots.generation.faces.ranking import RankedImage, rank_by_likeness, reference_embedding
from headshots.generation.faces.selfie_check import (
    SelfieVerdict,
    SetVerdict,
    check_reference,
    check_selfie,
    check_selfie_image,
    check_selfie_set,
    check_selfies,
)
from headshots.generation.faces.types import Face, FaceAnalyzer, ImageRejected

__all__ = [
    "ArcFaceEmbedder",
    "DlibAnalyzer",
    "Face",
    "FaceAnalyzer",
    "ImageRejected",
    "InsightFaceAnalyzer",
    "RankedImage",
    "SelfieVerdict",
    "SetVerdict",
    "TrainingExample",
    "check_reference",
    "check_selfie",
    "check_selfie_image",
    "check_selfie_set",
    "check_selfies",
    "contact_sheet",
    "decode_image",
    "insightface_pack_dir",
    "load_analyzer",
    "make_training_crops",
    "normalise_reference",
    "normalise_selfie",
    "rank_by_likeness",
    "reference_embedding",
]
