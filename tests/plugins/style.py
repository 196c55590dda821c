"""The style policy, built once per test session and kept for every process the tests start.

The first review in a process reads the whole vocabulary and builds the refusal shield (about
25 s on two cores; about 2 s to read a kept build back), and the chat reviews a description in
its event loop. The session keeps builds in a folder of its own, named in the environment so
that the workers, bots and CLI runs the tests start read the same build (``cache_dir``); every
bot fixture (telegram, discord, slack) asks for the policy built first, as a long-running bot
has it before its first customer (the bots' own start builds it too, in a thread).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from headshots.style.policy import keep_builds, prepare

_CACHE_VARIABLE = "HEADSHOTS_CACHE_DIR"
#: The session's folder, and the variable's value before the session.
_cache_key = pytest.StashKey[tuple[Path, str | None]]()


def pytest_configure(config: pytest.Config) -> None:
    folder = Path(tempfile.mkdtemp(prefix="headshots-cache-"))
    config.stash[_cache_key] = (folder, os.environ.get(_CACHE_VARIABLE))
    os.environ[_CACHE_VARIABLE] = str(folder)
    keep_builds(folder)


def pytest_unconfigure(config: pytest.Config) -> None:
    folder, before = config.stash[_cache_key]
    if before is None:
        os.environ.pop(_CACHE_VARIABLE, None)
    else:
        os.environ[_CACHE_VARIABLE] = before
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def style_policy_built() -> None:
    prepare(Path(os.environ[_CACHE_VARIABLE]))
