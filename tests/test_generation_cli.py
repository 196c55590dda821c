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
    from headshots.generation.models import detect_family

    assert main(["dev", "tiny-model", str(tmp_path / "tiny")]) == 0
    assert detect_family(tmp_path / "tiny") == "sd15"
    assert main(["dev", "tiny-model", str(tmp_path / "xl"), "--family", "sdxl"]) == 0
    assert detect_family(tmp_path / "xl") == "sdxl"
    assert (tmp_path / "xl" / "text_encoder_2" / "config.json").is_file()
    assert main(["dev", "tiny-controlnet", str(tmp_path / "xl"), str(tmp_path / "xl-cn")]) == 0
    assert json.loads((tmp_path / "xl-cn" / "config.json").read_text())["addition_embed_type"] == (
        "text_time"
    )


def test_run_quick_asks_for_a_quick_draft(
    cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from headshots.cli import build_parser
    from headshots.cli.generation import _request

    parser = build_parser()
    base = ["run", "--selfies", str(tmp_path), "--out", str(tmp_path / "o")]
    quick = _request(parser.parse_args([*base, "--quick"]))
    normal = _request(parser.parse_args(base))
    assert quick.style.quick is True and normal.style.quick is False
    assert quick.job_id() != normal.job_id()  # a quick draft is another job, not a duplicate
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--help"])
    assert "LCM-LoRA" in " ".join(capsys.readouterr().out.split())


def test_run_end_to_end_then_generate_from_the_trained_lora(
    cli_env: None,
    tiny_model_path: Path,
    tiny_controlnet_path: Path,
    face_photo_bytes: list[bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.plugins.faces import astronaut_image

    selfies = tmp_path / "selfies"
    selfies.mkdir()
    for number, data in enumerate(face_photo_bytes):
        (selfies / f"{number}.jpg").write_bytes(data)
    reference = tmp_path / "framing.png"
    astronaut_image().save(reference)
    out = tmp_path / "out"
    # Without its ControlNet a reference is refused before anything is checked or trained.
    refused = ["run", "--selfies", str(selfies), "--out", str(out), "--reference", str(reference)]
    assert main([*refused, "--model", str(tiny_model_path)]) == 1
    assert not (out / "report.json").exists()
    monkeypatch.setenv("HEADSHOTS_CONTROLNET_SD15_POSE", str(tiny_controlnet_path))
    code = main(
        [
            "run",
            "--reference",
            str(reference),
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
    # The reference framed the job: its pose image is kept with the job and named in the report.
    control = report["generation"]["control"]
    assert control["hint"] == "pose" and control["conditioning_scale"] == 0.8
    assert Image.open(out / control["image"]).size == tuple(control["size"])
    assert report["check"]["control"]["reference_sha256"] == control["reference_sha256"]

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


_PRESET_CLASSES = {
    "corporate": "man",
    "legal": "woman",
    "healthcare": "person",
    "manufacturing": "man",
    "creative": "woman",
    "tech-startup": "person",
    "real-estate": "man",
    "academic": "woman",
}


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(_PRESET_CLASSES))
def test_run_each_preset_whole_prompts_one_delivered_size(
    cli_env: None,
    tiny_model_path: Path,
    face_photo_bytes: list[bytes],
    tmp_path: Path,
    preset: str,
) -> None:
    from transformers import CLIPTokenizer

    from headshots.generation.prompts import count_text_tokens, plain_text
    from headshots.generation.provenance import TRAINED_ALGORITHMIC_MEDIA, digital_source_type
    from headshots.style.presets import load_presets, output_size

    selfies = tmp_path / "selfies"
    selfies.mkdir()
    for number, data in enumerate(face_photo_bytes[:4]):
        (selfies / f"{number}.jpg").write_bytes(data)
    out = tmp_path / "out"
    args = ["run", "--selfies", str(selfies), "--style", preset, "--out", str(out)]
    args += ["--class", _PRESET_CLASSES[preset], "--model", str(tiny_model_path)]
    args += ["--steps", "1", "--n", "2", "--sample-steps", "2", "--no-validate"]
    args += ["--eye-colour", "green", "--glasses", "wear"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())

    # Counted again with the pipeline's own tokenizer: every token reached the text encoder.
    tokenizer = CLIPTokenizer.from_pretrained(tiny_model_path / "tokenizer")
    generation, tokens = report["generation"], report["prompt_tokens"]
    assert tokens["tokens_dropped"] == 0
    assert tokens["prompt_tokens"] == count_text_tokens(tokenizer, plain_text(generation["prompt"]))
    assert tokens["prompt_tokens_encoded"] == tokens["prompt_tokens"] > 77
    assert tokens["negative_prompt_tokens_encoded"] == tokens["negative_prompt_tokens"] > 77
    assert "(green eyes)1.1, wearing glasses" in generation["prompt"]

    # One size for the whole kit: the style's rule (2 x native on the long side).
    aspect = load_presets()[preset].aspect_ratio
    expected = list(output_size(aspect, 128))
    assert report["delivered_size"] == expected
    files = [Path(r["file"]) for r in report["results"]]
    assert len(files) == 2
    for file in files:
        data = file.read_bytes()
        assert list(Image.open(file).size) == expected
        assert digital_source_type(data) == TRAINED_ALGORITHMIC_MEDIA
    assert (
        digital_source_type((out / "contact_sheet.jpg").read_bytes()) == TRAINED_ALGORITHMIC_MEDIA
    )
    assert report["ordered"] == 2 and report["missing"] == 2  # random weights draw no face
    captions = {c["caption"] for c in _crops(out, report["job_id"])}
    # The stated eye colour goes into every caption; glasses follow what the check saw in each
    # photo (these show none), so the LoRA learns neither as part of the token.
    assert captions == {f"photo of ohwx {_PRESET_CLASSES[preset]}, green eyes"}


def _crops(out: Path, job_id: str) -> list[dict[str, str]]:
    record = json.loads((out / "records" / job_id / "crops.json").read_text())
    crops: list[dict[str, str]] = record["crops"]
    return crops
