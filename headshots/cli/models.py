"""``headshots models fetch``: prepare a worker host's model folder before it takes jobs."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headshots.settings import Settings

_MARKS = {"ready": "✓", "skipped": "-", "failed": "✗"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = subparsers.add_parser(
        "models",
        help="fetch the configured models ahead of time",
        description="Model weights a worker needs, fetched into HEADSHOTS_MODEL_DIR.",
    )
    actions = models.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch = actions.add_parser(
        "fetch",
        help="fetch every configured model (base, output check, face pack where licensed)",
        description="Fetch the base model, the output check, and the FaceID adapter and "
        "LCM-LoRA when configured, into HEADSHOTS_MODEL_DIR, with the loaders the worker uses. "
        "The insightface pack is fetched only with HEADSHOTS_FACE_BACKEND=insightface (its "
        "licence is non-commercial). HEADSHOTS_HF_OFFLINE is ignored here, so the folder can "
        "then serve offline workers. Exit code 1 when any configured model is missing.",
    )
    fetch.add_argument("--json", action="store_true", help="machine-readable output")
    fetch.set_defaults(func=fetch_command)


def fetch_command(args: argparse.Namespace, settings: Settings) -> int:
    from headshots.generation.fetch import fetch_all

    print(f"Fetching into {settings.models_path} …", flush=True)
    results = fetch_all(settings)
    if args.json:
        print(json.dumps([{**asdict(r), "ok": r.ok} for r in results], indent=2))
    else:
        for result in results:
            print(f"{_MARKS[result.outcome]} {result.what:<15} {result.name}: {result.detail}")
        failed = [r.what for r in results if not r.ok]
        if failed:
            print(f"Not ready: {', '.join(failed)} (the lines above say why).")
        else:
            print(
                f"Ready. Workers on this host, or any host given a copy of {settings.models_path} "
                "as HEADSHOTS_MODEL_DIR, can run with HEADSHOTS_HF_OFFLINE=1."
            )
    return 0 if all(r.ok for r in results) else 1
