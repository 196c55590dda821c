"""Built style knowledge kept on disk, so that each process does not build it again.

Reading the vocabulary and building the refusal shield takes about 25 s on two cores (150 000
phrases, each tried against every refusal pattern); a bot, each worker and each ``headshots
policy check`` would pay it on its first description. The built objects are pickled under a
name that hashes everything they are built from (the data files, the code that reads them, the
Python and Unicode versions), so an edited vocabulary or a new release never reads a stale
build, and loading one takes about 2 s.

The directory is created private (0700) and only this code writes into it: unpickling runs
code, so a cache must never be shared with a user who is not trusted with this process.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import hashlib
import logging
import os
import pickle
import sys
import tempfile
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Builds kept per name: enough for a rollback and an operator's edited copy, not a pile.
KEEP_PER_NAME = 4


def cached(
    directory: Path | None,
    name: str,
    sources: Sequence[Path],
    build: Callable[[], T],
    kind: type[T],
) -> T:
    """``build()``'s result, read from ``directory`` when a build of these ``sources`` is there
    and written there otherwise; built in memory only when ``directory`` is None. A cache that
    cannot be read or written is rebuilt (and logged), never an error."""
    if directory is None:
        return build()
    path = directory / f"{name}-{_digest(sources)}.pickle"
    if (value := _read(path, kind)) is not None:
        return value
    try:
        with _building(path):
            # Processes started together (a bot and its workers) build once: the others wait
            # here for the first, then read what it wrote.
            if (value := _read(path, kind)) is not None:
                return value
            value = build()
            _write(path, value)
    except OSError as exc:
        logger.warning("could not keep the built %s in %s: %s", name, directory, exc)
        return build() if value is None else value
    return value


def _read(path: Path, kind: type[T]) -> T | None:
    try:
        with path.open("rb") as file, _no_collection():
            value = pickle.load(file)
    except FileNotFoundError:
        return None
    except Exception as exc:  # a truncated or foreign file: any unpickling error at all
        logger.warning("could not read %s (%s); building it again", path, exc)
        return None
    if isinstance(value, kind):
        return value
    logger.warning("%s holds no %s; building it again", path, kind.__name__)
    return None


@contextlib.contextmanager
def _building(path: Path) -> Iterator[None]:
    """An exclusive lock on building ``path``, held until the block ends."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _lock_file(path).open("wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def _digest(sources: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    versions = (sys.version_info[:2], unicodedata.unidata_version, pickle.HIGHEST_PROTOCOL)
    digest.update(repr(versions).encode())
    for source in (Path(__file__), *sources):
        data = source.read_bytes()
        # Lengths keep two files' bytes from reading as one other split.
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:32]


@contextlib.contextmanager
def _no_collection() -> Iterator[None]:
    """The collector off while millions of small objects are read (a third of the load)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _write(path: Path, value: object) -> None:
    # Written aside, then renamed: a process that reads at the same time sees all or nothing.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            pickle.dump(value, file, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    name = path.name.rsplit("-", 1)[0]
    older = sorted(
        path.parent.glob(f"{name}-*.pickle"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for stale in older[KEEP_PER_NAME:]:
        stale.unlink(missing_ok=True)
        _lock_file(stale).unlink(missing_ok=True)


def _lock_file(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")
