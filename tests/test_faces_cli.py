"""``headshots check-selfies`` and ``headshots rank`` on real photographs."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from headshots.cli import faces as faces_cli
from headshots.settings import Settings
from tests.plugins.faces import astronaut_image, other_person_image, to_jpeg


def _run(argv: list[str], tmp_path: Path) -> int:
    parser = argparse.ArgumentParser(prog="headshots")
    faces_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    settings = Settings(model_dir=tmp_path / "models", face_backend="dlib")
    return int(args.func(args, settings))


@pytest.fixture
def selfie_files(tmp_path: Path, face_photo_bytes: list[bytes]) -> list[Path]:
    folder = tmp_path / "selfies"
    folder.mkdir()
    paths = []
    for number, data in enumerate(face_photo_bytes[:5], start=1):
        path = folder / f"{number:02d}.jpg"
        path.write_bytes(data)
        paths.append(path)
    return paths


def test_check_selfies_usable_set_exits_zero(selfie_files, tmp_path, capsys) -> None:
    assert _run(["check-selfies", *map(str, selfie_files)], tmp_path) == 0
    out = capsys.readouterr().out
    assert out.count(": ok") == 5 and "usable: 5 accepted, 0 rejected" in out


def test_check_selfies_json_reports_each_file_and_the_set(
    selfie_files, tmp_path, capsys, group_photo_bytes
) -> None:
    group = tmp_path / "group.jpg"
    group.write_bytes(group_photo_bytes)
    junk = tmp_path / "notes.jpg"
    junk.write_text("not a photo")
    files = [*selfie_files[:2], group, junk]
    assert _run(["check-selfies", "--json", *map(str, files)], tmp_path) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["backend"] == "dlib"
    assert [p["accepted"] for p in document["photos"]] == [True, True, False, False]
    assert document["photos"][2]["reasons"] == ["more than one person in the picture"]
    assert "not a photo" in document["photos"][3]["reasons"][0]
    assert document["set"]["usable"] is False
    assert document["set"]["reasons"] == ["only 2 usable photos, need at least 4"]
    assert document["set"]["rejected"].keys() == {"3", "4"}


def test_rank_orders_images_by_likeness(selfie_files, tmp_path, capsys) -> None:
    person = tmp_path / "a_person.jpg"
    person.write_bytes(to_jpeg(astronaut_image().crop((20, 20, 500, 500))))
    stranger = tmp_path / "b_stranger.jpg"
    stranger.write_bytes(to_jpeg(other_person_image()))
    argv = ["rank", "--selfies", str(selfie_files[0].parent), str(stranger), str(person), "--json"]
    assert _run(argv, tmp_path) == 0
    rows = json.loads(capsys.readouterr().out)["ranked"]
    assert [row["file"] for row in rows] == [str(person)]
    assert rows[0]["rank"] == 1 and rows[0]["similarity"] > 0.92

    assert _run(["rank", "--selfies", str(selfie_files[0].parent), str(stranger)], tmp_path) == 0
    assert "no image looks like" in capsys.readouterr().out


def test_rank_without_usable_selfies_is_a_user_error(tmp_path: Path) -> None:
    from headshots.errors import UserError

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no usable selfie"):
        _run(["rank", "--selfies", str(empty), str(tmp_path / "x.jpg")], tmp_path)


@pytest.mark.skipif(
    importlib.util.find_spec("headshots.cli.core") is None,
    reason="headshots.cli.core (the foundation's commands) is not there yet",
)
def test_command_line_entry_point(selfie_files, tmp_path, group_photo_bytes) -> None:
    group = tmp_path / "group.jpg"
    group.write_bytes(group_photo_bytes)
    env = {
        **os.environ,
        "HEADSHOTS_MODEL_DIR": str(tmp_path / "models"),
        "HEADSHOTS_FACE_BACKEND": "dlib",
    }
    command = [sys.executable, "-m", "headshots", "check-selfies", "--json"]
    good = subprocess.run(
        [*command, *map(str, selfie_files)], env=env, capture_output=True, text=True, timeout=120
    )
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["set"]["usable"] is True
    bad = subprocess.run(
        [*command, str(group)], env=env, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 1
    assert "torch" not in bad.stderr
