from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import pytest

from headshots.style import built
from headshots.style.built import KEEP_PER_NAME, cached
from headshots.style.policy import (
    REFUSALS_FILE,
    VOCABULARY_FILES,
    _protected,
    _Shield,
    load_vocabulary,
    review_description,
)


class Builds:
    """A build that counts its calls and returns a fresh list each time."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> list[str]:
        self.calls += 1
        return ["built", str(self.calls)]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "data.toml"
    path.write_text('"suit" = []\n', encoding="utf-8")
    return path


def test_a_build_is_kept_and_read_back(tmp_path: Path, source: Path) -> None:
    build, folder = Builds(), tmp_path / "cache"
    assert cached(folder, "thing", [source], build, list) == ["built", "1"]
    assert cached(folder, "thing", [source], build, list) == ["built", "1"]
    assert build.calls == 1
    assert oct(folder.stat().st_mode & 0o777) == oct(0o700)
    # No cache folder: built each time.
    assert cached(None, "thing", [source], build, list) == ["built", "2"]


def test_an_edited_source_is_built_again(tmp_path: Path, source: Path) -> None:
    build, folder = Builds(), tmp_path / "cache"
    cached(folder, "thing", [source], build, list)
    source.write_text('"suit" = ["costume"]\n', encoding="utf-8")
    assert cached(folder, "thing", [source], build, list) == ["built", "2"]
    # The same bytes in two files split another way are other sources.
    halves = [tmp_path / "a", tmp_path / "b"]
    halves[0].write_text("ab", encoding="utf-8")
    halves[1].write_text("c", encoding="utf-8")
    cached(folder, "split", halves, build, list)
    halves[0].write_text("a", encoding="utf-8")
    halves[1].write_text("bc", encoding="utf-8")
    assert cached(folder, "split", halves, build, list) == ["built", "4"]


def test_a_broken_or_foreign_file_is_built_again(
    tmp_path: Path, source: Path, caplog: pytest.LogCaptureFixture
) -> None:
    build, folder = Builds(), tmp_path / "cache"
    cached(folder, "thing", [source], build, list)
    (kept,) = folder.glob("thing-*.pickle")
    kept.write_bytes(kept.read_bytes()[:10])  # truncated, as by a full disk
    with caplog.at_level(logging.WARNING, logger=built.__name__):
        assert cached(folder, "thing", [source], build, list) == ["built", "2"]
    assert "could not read" in caplog.text
    # A readable file that holds something else is not taken for the build.
    assert cached(folder, "thing", [source], build, dict) == ["built", "3"]  # type: ignore[arg-type]


def test_an_unwritable_folder_still_gives_the_build(
    tmp_path: Path, source: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger=built.__name__):
        assert cached(blocked / "cache", "thing", [source], Builds(), list) == ["built", "1"]
    assert "could not keep" in caplog.text


def test_processes_started_together_build_once(tmp_path: Path, source: Path) -> None:
    """Each waits for the first builder's lock, then reads what it wrote (threads open the
    lock file apart, as processes do)."""
    started = threading.Barrier(3)

    class Slow(Builds):
        def __call__(self) -> list[str]:
            time.sleep(0.3)
            return super().__call__()

    build, folder, results = Slow(), tmp_path / "cache", []

    def run() -> None:
        started.wait()
        results.append(cached(folder, "thing", [source], build, list))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert build.calls == 1 and results == [["built", "1"]] * 3


def test_old_builds_are_pruned(tmp_path: Path, source: Path) -> None:
    build, folder = Builds(), tmp_path / "cache"
    for version in range(KEEP_PER_NAME + 3):
        source.write_text(f'"suit" = ["v{version}"]\n', encoding="utf-8")
        cached(folder, "thing", [source], build, list)
    assert len(list(folder.glob("thing-*.pickle"))) == KEEP_PER_NAME
    # No temporary file is left, nor a lock of a build that is gone.
    assert len(list(folder.glob(".thing*"))) == KEEP_PER_NAME
    assert cached(folder, "thing", [source], build, list) == ["built", str(KEEP_PER_NAME + 3)]


def test_the_policy_read_back_is_the_policy_built(style_policy_built: None) -> None:
    """The session keeps the shipped vocabulary and shield (tests/plugins/style.py); read
    back, they are the ones built, and they review as the built ones do."""
    folder = Path(os.environ["HEADSHOTS_CACHE_DIR"])
    kept = {path.name.rsplit("-", 1)[0] for path in folder.glob("*.pickle")}
    assert kept == {"vocabulary", "shield", "refused-phrases"}

    def never() -> _Shield:
        raise AssertionError("built again")

    sources = (Path(built.__file__).with_name("policy.py"), *VOCABULARY_FILES, REFUSALS_FILE)
    shield = cached(folder, "shield", sources, never, _Shield)
    assert shield == _protected(VOCABULARY_FILES, REFUSALS_FILE)
    assert len(load_vocabulary(VOCABULARY_FILES).exact) > 100_000
    assert review_description("navy blazer, no tie").terms == ("navy blazer", "no tie")
    assert review_description("nude lipstick, bare chest").category == "sexual"
