from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from headshots.cli import main


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("HEADSHOTS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("HEADSHOTS_FACE_BACKEND", "dlib")
    monkeypatch.setenv("HEADSHOTS_DEVICE", "cpu")


def test_dev_tiny_model(cli_env: None, tmp_path: Path, torch_threads: None) -> None:
    assert main(["dev", "tiny-model", str(tmp_path / "tiny")]) == 0
    assert (tmp_path / "tiny" / "model_index.json").is_file()


def test_run_end_to_end_then_generate_from_the_trained_lora(
    cli_env: None, tiny_model_path: Path, face_photo_bytes: list[bytes], tmp_path: Path
) -> None:
    selfies = tmp_path / "selfies"
    selfies.mkdir()
    for number, data in enumerate(face_photo_bytes):
        (selfies / f"{number}.jpg").write_bytes(data)
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "--selfies",
            str(selfies),
            "--style",
            "legal",
            "--class",
            "woman",
            "--out",
            str(out),
            "--model",
            str(tiny_model_path),
            "--steps",
            "3",
            "--n",
            "2",
            "--sample-steps",
            "2",
            "--no-validate",
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert list(report["stages"]) == [
        "check",
        "crops",
        "preview",
        "train",
        "generate",
        "postprocess",
        "rank",
    ]
    assert all(stage["seconds"] >= 0 for stage in report["stages"].values())
    assert report["train"]["optimizer_steps"] == 3
    assert len(report["results"]) == 2
    for result in report["results"]:
        assert Path(result["file"]).is_file() and isinstance(result["seed"], int)
    assert Image.open(out / "contact_sheet.jpg").format == "JPEG"
    assert report["generation"]["preset"] == "legal" and report["generation"]["seeds"]

    # `train` output layout is what `generate` consumes: reuse the store's LoRA.
    lora = out / "lora"
    lora.mkdir()
    job = report["job_id"]
    (lora / "pytorch_lora_weights.safetensors").write_bytes(
        (out / "jobs" / job / "lora" / "pytorch_lora_weights.safetensors").read_bytes()
    )
    (lora / "reference.npy").write_bytes(
        (out / "jobs" / job / "faces" / "reference.npy").read_bytes()
    )
    again = tmp_path / "again"
    code = main(
        [
            "generate",
            "--lora",
            str(lora),
            "--style",
            "tech-startup",
            "--n",
            "1",
            "--out",
            str(again),
            "--model",
            str(tiny_model_path),
            "--sample-steps",
            "2",
            "--no-refine",
        ]
    )
    assert code == 0
    assert len(list((again / "results").glob("*.png"))) == 1


def test_train_command_exports_a_lora_folder(
    cli_env: None, tiny_model_path: Path, face_photo_bytes: list[bytes], tmp_path: Path
) -> None:
    selfies = tmp_path / "selfies"
    selfies.mkdir()
    for number, data in enumerate(face_photo_bytes[:5]):
        (selfies / f"{number}.jpg").write_bytes(data)
    out = tmp_path / "trained"
    assert (
        main(
            [
                "train",
                "--selfies",
                str(selfies),
                "--class",
                "man",
                "--out",
                str(out),
                "--model",
                str(tiny_model_path),
                "--steps",
                "2",
                "--no-validate",
            ]
        )
        == 0
    )
    assert {p.name for p in (out / "lora").iterdir()} == {
        "pytorch_lora_weights.safetensors",
        "reference.npy",
        "model.json",
    }


def test_bad_selfie_folder_is_a_clean_error(
    cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["train", "--selfies", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 1
    )
    assert "not a folder" in capsys.readouterr().err
