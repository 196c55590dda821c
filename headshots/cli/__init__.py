"""The ``headshots`` command line.

Each command group lives in its own module exposing ``register(subparsers)``; every parser sets
``func(args, settings) -> int`` as its default. Logging is configured here and nowhere else.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from headshots import __version__
from headshots.errors import HeadshotsError
from headshots.logs import install_redaction
from headshots.settings import Settings

_COMMAND_MODULES = (
    "headshots.cli.core",
    "headshots.cli.faces",
    "headshots.cli.generation",
    "headshots.cli.models",
    "headshots.cli.policy",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headshots",
        description="Professional headshots from selfies sent in Telegram or Discord.",
    )
    parser.add_argument("--version", action="version", version=f"headshots {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def configure_logging(settings: Settings, verbose: bool) -> None:
    level = logging.DEBUG if verbose else getattr(logging, settings.log_level.upper(), logging.INFO)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # Every configured secret is redacted from every record, whichever logger writes it.
    install_redaction(settings)
    # Request-per-line chatter (httpx logs every URL at INFO); the redaction covers it anyway.
    for noisy in ("httpx", "httpcore", "telegram.ext.Updater", "discord.http"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings, args.verbose)
    try:
        return int(args.func(args, settings))
    except KeyboardInterrupt:
        return 130
    except HeadshotsError as exc:
        print(f"headshots: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
