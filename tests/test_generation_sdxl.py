"""Every generation path on the tiny SDXL model, as the SD1.5 tests run them on tiny SD1.5.

Train, generate, face refine, "More like", a new style on an existing LoRA and a team's
generation run here on a model with SDXL's shape (two text encoders, pooled text and
``add_time_ids`` conditioning the UNet), so an SDXL base on a GPU meets no untried code.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

from headshots.cli import main
from headshots.generation.context import Retention, lora_path
from headshots.generation.local_context import LocalContext, run_stages
from headshots.generation.pipeline import ResidentPipeline
from headshots.generation.prompts import count_text_tokens, encode_prompts, plain_text
from headshots.generation.stages import GenerationOptions, GenerationStages
from headshots.queue.contracts import ChatTarget, JobRequest, StyleChoice, UserRef
from headshots.settings import Settings
from headshots.style.presets import build_prompt_spec, load_presets, output_size

FAST = GenerationOptions(sample_steps=2, validate_likeness=False, progress_every=1)


def _request(style: StyleChoice, user_id: int = 1, **fields: Any) -> JobRequest:
    return JobRequest(
        user=UserRef(platform="cli", user_id=user_id),
        target=ChatTarget(platform="cli", chat_id=user_id, user_id=user_id),
        upload_id="u1",
        style=style,
        **fields,
    )


def _context(
    root: Path, settings: Settings, request: JobRequest, lora: bytes, train_job: str
) -> LocalContext:
    ctx = LocalContext(root, request, settings, train_job_id=train_job)
    ctx.write_blob(lora_path(train_job), lora, Retention.LORA)
    return ctx


def _pixels(ctx: LocalContext, path: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(ctx.read_blob(path))).convert("RGB"), np.int16)


def test_prompts_reach_both_encoders_whole_with_the_pooled_embedding(
    tiny_sdxl_settings: Settings,
) -> None:
    import torch

    pipe = ResidentPipeline(tiny_sdxl_settings).pipe
    # A short unweighted prompt: compel's embeddings are diffusers' own SDXL encode_prompt.
    encoded = encode_prompts(pipe, "photo of ohwx woman", "blurry", family="sdxl")
    ours = encoded.embeddings
    theirs = pipe.encode_prompt(
        prompt="photo of ohwx woman",
        device=pipe.device,
        num_images_per_prompt=1,
        do_classifier_free_guidance=True,
        negative_prompt="blurry",
    )
    names = (
        "prompt_embeds",
        "negative_prompt_embeds",
        "pooled_prompt_embeds",
        "negative_pooled_prompt_embeds",
    )
    for name, expected in zip(names, theirs, strict=True):
        torch.testing.assert_close(ours[name], expected, rtol=1e-4, atol=1e-5, msg=name)
    hidden = pipe.text_encoder.config.hidden_size + pipe.text_encoder_2.config.hidden_size
    assert ours["prompt_embeds"].shape == (1, 77, hidden)
    assert ours["pooled_prompt_embeds"].shape == (1, pipe.text_encoder_2.config.projection_dim)

    # A long weighted prompt: every token reaches both encoders, none is cut at 77.
    long_prompt = "(portrait of ohwx woman)1.2, " + ", ".join(f"detail {n}" for n in range(40))
    long_negative = ", ".join(f"flaw {n}" for n in range(60))
    encoded = encode_prompts(pipe, long_prompt, long_negative, family="sdxl")
    record = encoded.to_record()
    assert record["tokens_dropped"] == 0 and record["prompt_encoder"] == "compel"
    for tokenizer in (pipe.tokenizer, pipe.tokenizer_2):
        assert record["prompt_tokens_encoded"] == count_text_tokens(
            tokenizer, plain_text(long_prompt)
        )
    assert record["negative_prompt_tokens_encoded"] == count_text_tokens(
        pipe.tokenizer, long_negative
    )
    windows = max(record["prompt_chunks"], record["negative_prompt_chunks"])
    assert windows > 1
    for name in ("prompt_embeds", "negative_prompt_embeds"):
        assert encoded.embeddings[name].shape == (1, 77 * windows, hidden)
    # The weight counts: the same words unweighted encode differently.
    unweighted = encode_prompts(pipe, plain_text(long_prompt), long_negative, family="sdxl")
    assert not torch.allclose(
        unweighted.embeddings["prompt_embeds"], encoded.embeddings["prompt_embeds"]
    )
    # An empty negative is zeros, as SDXL pipelines make it (force_zeros_for_empty_prompt).
    empty = encode_prompts(pipe, "photo of ohwx woman", "", family="sdxl").embeddings
    assert not empty["negative_prompt_embeds"].any()
    assert not empty["negative_pooled_prompt_embeds"].any()


def test_training_saves_an_sdxl_lora_that_changes_the_output(
    tiny_sdxl_settings: Settings, make_tiny_sdxl_lora: Callable[[int], bytes], tmp_path: Path
) -> None:
    lora = make_tiny_sdxl_lora(1)
    path = tmp_path / "lora.safetensors"
    path.write_bytes(lora)
    weights = load_file(str(path))
    assert weights and all(k.startswith("unet.") for k in weights)
    assert any(".to_q.lora.down." in k for k in weights)
    assert any(".to_out.0.lora.up." in k for k in weights)

    resident = ResidentPipeline(tiny_sdxl_settings)
    spec = build_prompt_spec(
        StyleChoice(preset="corporate", subject_class="woman", seed=3, aspect_ratio="1:1"),
        job_id="j",
        native_resolution=resident.native_resolution,
        count=1,
        steps=2,
    )
    base = resident.generate(spec, lora=None, adapter_name="none").images[0].image
    with_lora = resident.generate(spec, lora=lora, adapter_name="job").images[0].image
    assert np.abs(np.asarray(base, np.int16) - np.asarray(with_lora, np.int16)).max() > 0
    assert not getattr(resident.pipe.unet, "peft_config", None), "the adapter leaked"
    again = resident.generate(spec, lora=None, adapter_name="none").images[0].image
    np.testing.assert_array_equal(np.asarray(again), np.asarray(base))


def test_face_refine_and_detail_pass_run_on_sdxl_img2img(
    tiny_sdxl_settings: Settings, face_photo_bytes: list[bytes], dlib_analyzer: Any
) -> None:
    from headshots.generation.faces import decode_image
    from headshots.generation.postprocess import (
        PostprocessOptions,
        diffusers_img2img,
        postprocess_image,
    )

    resident = ResidentPipeline(tiny_sdxl_settings)
    img2img = resident.img2img
    assert type(img2img).__name__ == "StableDiffusionXLImg2ImgPipeline"
    encoded = encode_prompts(img2img, "portrait of (ohwx woman)1.1", "blurry", family="sdxl")
    photo = decode_image(face_photo_bytes[0])
    options = PostprocessOptions(
        colour_grade="none",
        film_grain=False,
        # dlib's detector needs a face of ~40 px: the smallest delivered size that has one.
        output_size=(192, 240),
        aspect_ratio="4:5",
        refine=True,
    )
    face = diffusers_img2img(img2img, prompts=encoded, steps=2, cfg=5.0, seed=1, strength=0.5)
    # No detail pass here: random weights would redraw the face away before the refine sees it.
    image, applied = postprocess_image(
        photo,
        options,
        analyzer=dlib_analyzer,
        img2img=face.run,
        detail=None,
        super_resolution=None,
        refine_resolution=resident.native_resolution,
        seed=1,
    )
    assert image.size == (192, 240)
    assert applied["refined"] is True, "the face refine ran on the SDXL img2img"
    lanczos, _ = postprocess_image(
        photo, options, analyzer=None, refine_resolution=resident.native_resolution
    )
    changed = np.abs(np.asarray(image, np.int16) - np.asarray(lanczos, np.int16)).max(axis=2)
    box = dlib_analyzer.analyze(lanczos)[0].box
    x0, y0, x1, y1 = (int(v) for v in box)
    assert changed[y0:y1, x0:x1].mean() > 1.0, "the face was redrawn"
    assert changed[-10:, :].max() == 0 and changed[:, :10].max() == 0, "only the face region"

    # The upscale's detail pass: a batch of tiles in one SDXL img2img call, one seed per tile.
    tiles = diffusers_img2img(img2img, prompts=encoded, steps=2, cfg=5.0, seed=1, strength=0.3)
    crop = lanczos.crop((0, 0, 64, 64))
    redrawn = tiles.batch([crop, crop], first=0)
    assert [tile.size for tile in redrawn] == [(64, 64), (64, 64)]
    a, b = (np.asarray(tile, np.int16) for tile in redrawn)
    assert np.abs(a - b).max() > 0, "each tile has its own noise"


def test_more_like_new_style_and_a_team_on_sdxl(
    tiny_sdxl_settings: Settings, make_tiny_sdxl_lora: Callable[[int], bytes], tmp_path: Path
) -> None:
    from headshots.queue.teams import BrandKit, KitBackground
    from headshots.style.brand import export_headshot

    # HEADSHOTS_OUTPUT_LONG_SIDE replaces the style's size rule for every image.
    settings = tiny_sdxl_settings.model_copy(update={"output_long_side": 96})
    stages = GenerationStages(settings, FAST)
    lora = make_tiny_sdxl_lora(1)
    # A new style on an existing LoRA: the generate stages alone, the LoRA from the store.
    first = _request(
        StyleChoice(preset="corporate", subject_class="woman", count=1, seed=11),
        kind="new_style",
        lora_job_id="trained",
    )
    ctx = _context(tmp_path, settings, first, lora, "trained")
    run_stages(ctx, stages.stage_set().generate)
    rank = ctx.output_of("rank") or {}
    assert rank["generation"]["family"] == "sdxl" and rank["generation"]["tokens_dropped"] == 0
    (chosen,) = rank["results"]
    assert rank["delivered_size"] == list(output_size("4:5", 96))
    assert Image.open(io.BytesIO(ctx.read_blob(chosen["path"]))).size == output_size("4:5", 96)

    # "More like #1": an SDXL img2img variation of the chosen image.
    more = first.model_copy(
        update={"kind": "more_like", "lora_job_id": ctx.job_id, "like_rank": 1, "nonce": "again"}
    )
    ctx2 = _context(tmp_path, settings, more, lora, "trained")
    record = stages.generate(ctx2)
    assert record["generation"]["variation_of"]["seed"] == chosen["seed"]
    assert record["generation"]["variation_strength"] > 0
    variation = _pixels(ctx2, record["images"][0]["path"])
    assert variation.shape[:2] == (80, 64)
    # The chosen image shapes the result: the same seed without it gives another picture.
    seed = record["generation"]["seeds"][0]
    fresh_request = _request(
        StyleChoice(preset="corporate", subject_class="woman", count=1, seed=seed)
    )
    fresh = stages.generate(_context(tmp_path, settings, fresh_request, lora, "trained"))
    assert np.abs(variation - _pixels(ctx2, fresh["images"][0]["path"])).mean() > 1.0

    # A team: two members on the kit's style, one look (their LoRAs do not change settings).
    kit = BrandKit(
        team_name="Acme",
        background=KitBackground(kind="colour", colours=["#1f6feb"]),
        aspect_ratio="1:1",
        count=1,
        colour_grade="ektar",
    )
    # The first member's job runs to delivery; the second's generation settings must match.
    member_ctx = _context(
        tmp_path, settings, _request(kit.style_for("man"), user_id=21, team_id="acme"), lora, "m21"
    )
    run_stages(member_ctx, stages.stage_set().generate)
    member_rank = member_ctx.output_of("rank") or {}
    delivered = member_ctx.read_blob(member_rank["results"][0]["path"])
    assert Image.open(io.BytesIO(delivered)).size == (96, 96)
    # The team export keeps the kit's crop of the delivered image.
    assert export_headshot(delivered, "1:1", long_side=96).size == (96, 96)
    second = _request(kit.style_for("woman"), user_id=22, team_id="acme")
    records = [
        member_rank["generation"],
        stages.generate(_context(tmp_path, settings, second, lora, "m22"))["generation"],
    ]
    assert records[0]["prompt"] != records[1]["prompt"]  # each member's own class
    for field in ("negative_prompt", "seeds", "steps", "cfg", "width", "height", "colour_grade"):
        assert records[0][field] == records[1][field], field
    assert (
        all("royal blue" in r["prompt"] for r in records) and records[0]["colour_grade"] == "ektar"
    )
    assert stages.resident.base_loads == 1
    stages.close()


def test_sdxl_size_rule_and_the_operator_override(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On a 1024 px SDXL base every preset delivers a 2048 px long side, every class and aspect;
    ``HEADSHOTS_OUTPUT_LONG_SIDE`` replaces that for all of them."""
    monkeypatch.chdir(tmp_path)
    for name in load_presets():
        for aspect in ("1:1", "4:5", "2:3"):
            for cls in ("man", "woman", "person"):
                style = StyleChoice(preset=name, subject_class=cls, aspect_ratio=aspect)
                spec = build_prompt_spec(style, job_id="j", native_resolution=1024, count=1)
                assert max(spec.output_width, spec.output_height) == 2048, (name, aspect)
                assert min(spec.width, spec.height) == 1024
    monkeypatch.setenv("HEADSHOTS_OUTPUT_LONG_SIDE", "3072")
    settings = Settings(_env_file=None, state_dir=tmp_path)  # type: ignore[call-arg]
    assert settings.output_long_side == 3072
    spec = build_prompt_spec(
        StyleChoice(aspect_ratio="2:3"),
        job_id="j",
        native_resolution=1024,
        count=1,
        output_long_side=settings.output_long_side,
    )
    assert (spec.output_width, spec.output_height) == output_size("2:3", 3072) == (2048, 3072)


def _selfies(tmp_path: Path, photos: list[bytes]) -> Path:
    folder = tmp_path / "selfies"
    folder.mkdir()
    for number, data in enumerate(photos):
        (folder / f"{number}.jpg").write_bytes(data)
    return folder


@pytest.fixture
def sdxl_cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("HEADSHOTS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("HEADSHOTS_FACE_BACKEND", "dlib")
    monkeypatch.setenv("HEADSHOTS_DEVICE", "cpu")
    monkeypatch.setenv("HEADSHOTS_DTYPE", "float32")
    monkeypatch.setenv("HEADSHOTS_HF_OFFLINE", "true")
    monkeypatch.setenv("HEADSHOTS_SAMPLE_STEPS", "2")


def test_run_on_sdxl_delivers_whole_prompts_at_the_style_size(
    sdxl_cli_env: None,
    tiny_sdxl_model_path: Path,
    face_photo_bytes: list[bytes],
    tmp_path: Path,
) -> None:
    from transformers import CLIPTokenizer

    out = tmp_path / "out"
    args = ["run", "--selfies", str(_selfies(tmp_path, face_photo_bytes[:4]))]
    args += ["--style", "legal", "--class", "woman", "--out", str(out)]
    args += ["--model", str(tiny_sdxl_model_path), "--steps", "2", "--n", "1"]
    # Likeness validation on SDXL runs too (20 sampling steps per checkpoint): off for time.
    args += ["--sample-steps", "2", "--no-validate", "--eye-colour", "green"]
    assert main(args) == 0
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
    assert report["train"]["optimizer_steps"] == 2
    assert report["train"]["config"]["family"] == "sdxl"
    assert report["train"]["config"]["gradient_checkpointing"] is False  # auto: off on a CPU
    # SDXL has no FaceID preview: the record says so instead of failing.
    assert "skipped" in json.loads(
        (out / "records" / report["job_id"] / "preview.json").read_text()
    )
    generation = report["generation"]
    assert generation["family"] == "sdxl"

    # Counted again with each of the pipeline's own tokenizers: every token was encoded.
    tokens = report["prompt_tokens"]
    assert tokens["tokens_dropped"] == 0
    for folder in ("tokenizer", "tokenizer_2"):
        tokenizer = CLIPTokenizer.from_pretrained(tiny_sdxl_model_path / folder)
        prompt_tokens = count_text_tokens(tokenizer, plain_text(generation["prompt"]))
        assert tokens["prompt_tokens_encoded"] == tokens["prompt_tokens"] == prompt_tokens > 77
    assert tokens["negative_prompt_tokens_encoded"] == tokens["negative_prompt_tokens"] > 77

    # The style's size rule: 2 x native on the long side (2048 px on a 1024 px SDXL base).
    preset = load_presets()["legal"]
    expected = list(output_size(preset.aspect_ratio, round(64 * preset.upscale_factor)))
    assert report["delivered_size"] == expected
    (result,) = report["results"]
    assert list(Image.open(result["file"]).size) == expected
