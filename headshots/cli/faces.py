"""``headshots check-selfies`` and ``headshots rank``: the face checks from a terminal."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headshots.errors import UserError

if TYPE_CHECKING:
    from headshots.settings import Settings

logger = logging.getLogger(__name__)

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".bmp", ".tif", ".tiff", ".gif"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = subparsers.add_parser(
        "check-selfies",
        help="check photos as the bot would; exit 0 when the set is usable",
        description="One verdict per photo and one for the set. Exit code 0 when the set is "
        "usable for training, 1 otherwise.",
    )
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(func=check_selfies_command)

    rank = subparsers.add_parser(
        "rank",
        help="rank images by likeness to the person in a folder of selfies",
    )
    rank.add_argument("--selfies", type=Path, required=True, metavar="DIR")
    rank.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    rank.add_argument("--top", type=int, default=10, metavar="K")
    rank.add_argument("--json", action="store_true", help="machine-readable output")
    rank.set_defaults(func=rank_command)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None


def check_selfies_command(args: argparse.Namespace, settings: Settings) -> int:
    """Check FILEs one by one and as a set; print the verdicts."""
    from headshots.generation.faces import check_selfie, check_selfie_set, load_analyzer

    analyzer = load_analyzer(settings)
    files: list[Path] = args.files
    verdicts = [
        check_selfie(_read(path), analyzer, index=number)
        for number, path in enumerate(files, start=1)
    ]
    result = check_selfie_set(
        verdicts,
        same_person_threshold=analyzer.same_person_threshold,
        min_count=settings.min_selfies,
        max_count=settings.max_selfies,
    )
    if args.json:
        photos: list[dict[str, Any]] = []
        for path, verdict in zip(files, verdicts, strict=True):
            data = verdict.to_json()
            data.pop("face", None)  # embeddings are noise on a terminal
            data["file"] = str(path)
            data["similarity"] = result.similarities.get(verdict.index)
            data["set_rejected"] = (
                result.rejected.get(verdict.index, []) if verdict.accepted else []
            )
            photos.append(data)
        document = {
            "backend": analyzer.name,
            "photos": photos,
            "set": {
                "usable": result.usable,
                "accepted": result.accepted,
                "rejected": {str(k): v for k, v in result.rejected.items()},
                "reasons": result.reasons,
                "summary": result.summary(),
            },
        }
        print(json.dumps(document, indent=2))
    else:
        for path, verdict in zip(files, verdicts, strict=True):
            print(f"{verdict.summary()}  [{path}]")
        print(("usable: " if result.usable else "not usable: ") + result.summary())
    return 0 if result.usable else 1


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UserError(f"not a folder: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)


def rank_command(args: argparse.Namespace, settings: Settings) -> int:
    """Rank IMAGES by likeness to the accepted selfies in --selfies DIR."""
    from headshots.generation.faces import (
        ImageRejected,
        check_selfie,
        check_selfie_set,
        decode_image,
        load_analyzer,
        rank_by_likeness,
    )

    if args.top < 1:
        raise UserError("--top must be at least 1")
    analyzer = load_analyzer(settings)
    selfie_files = _image_files(args.selfies)
    verdicts = [
        check_selfie(_read(path), analyzer, index=number)
        for number, path in enumerate(selfie_files, start=1)
    ]
    reference_set = check_selfie_set(
        verdicts, same_person_threshold=analyzer.same_person_threshold, min_count=1
    )
    if reference_set.reference is None:
        raise UserError(f"no usable selfie in {args.selfies}: {reference_set.summary()}")

    paths: list[Path] = []
    images = []
    for path in args.images:
        try:
            images.append(decode_image(_read(path)))
            paths.append(path)
        except ImageRejected as exc:
            logger.warning("skipping %s: %s", path, exc.reason)
    ranked = rank_by_likeness(images, reference_set.reference, analyzer, top_k=args.top)
    if args.json:
        rows = [
            {
                "rank": item.rank,
                "file": str(paths[item.index]),
                "score": round(item.score, 4),
                "similarity": round(item.similarity, 4),
            }
            for item in ranked
        ]
        print(json.dumps({"backend": analyzer.name, "ranked": rows}, indent=2))
    else:
        for item in ranked:
            print(f"{item.rank:3d}. {paths[item.index]}  similarity {item.similarity:.3f}")
        if not ranked:
            print("no image looks like the person in the selfies")
    return 0
