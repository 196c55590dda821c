"""The project's own metadata: a newcomer's install prints no deprecation warnings."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_licence_is_an_spdx_expression_with_its_text() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    # A TOML table here is deprecated by setuptools and unsupported after 2027-02-18.
    assert project["project"]["license"] == "MIT"
    assert all((ROOT / name).is_file() for name in project["project"]["license-files"])
    assert any(r.startswith("setuptools>=77") for r in project["build-system"]["requires"])


def test_building_the_package_warns_about_nothing(tmp_path: Path) -> None:
    pytest.importorskip("setuptools", minversion="77")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--verbose",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    output = build.stdout + build.stderr
    assert "Deprecat" not in output and "deprecat" not in output, output[-3000:]
    (wheel,) = tmp_path.glob("headshots-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        assert "License-Expression: MIT" in archive.read(metadata).decode()
