"""The output check every test runs with: a tiny random-weight safety checker built here.

``HEADSHOTS_SAFETY_CHECKER`` is set for the whole session (and so for every worker process a
test starts), because the product default (``auto``) would fetch the real checker from the hub.
This one flags nothing; ``flagging_checker_path`` flags every image.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def safety_checker_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from headshots.generation.safety import save_random_checker

    path = save_random_checker(tmp_path_factory.mktemp("safety-checker"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HEADSHOTS_SAFETY_CHECKER", str(path))
        yield path


@pytest.fixture(scope="session")
def flagging_checker_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from headshots.generation.safety import save_random_checker

    return save_random_checker(tmp_path_factory.mktemp("flagging-checker"), flag_everything=True)
