"""Every generation path on the tiny FLUX.2 [klein] model, as the SDXL tests run them on SDXL.

The model: a Qwen3 causal LM whose stacked hidden states condition a FLUX.2 transformer over
patchified latents, sampled by flow matching; built by ``headshots dev tiny-model --family
flux2-klein`` from diffusers' and transformers' own classes in the standard folder layout.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

from headshots.cli import main
from headshots.errors import ConfigurationError
from headshots.generation.context import Retention, lora_path
from headshots.generation.estimate import step_costs
from headshots.generation.local_context import LocalContext, run_stages
from headshots.generation.models import (
    detect_family,
    load_base_pipeline,
    resolve_model,
)
from headshots.generation.pipeline import ResidentPipeline
from headshots.generation.prompts import (
    KLEIN_MIN_SEQUENCE,
    count_text_tokens,
    encode_prompts,
    klein_text_layers,
)
from headshots.generation.stages import KLEIN_NO_QUICK, GenerationOptions, GenerationStages
from headshots.model_family import quick_drafts_possible
from headshots.queue.contracts import ChatTarget, JobRequest, StyleChoice, UserRef
from headshots.settings import Settings
from headshots.style.presets import build_prompt_spec, load_presets, output_size

FAST = GenerationOptions(sample_steps=2, validate_likeness=False, progress_every=1)


@pytest.fixture(autouse=True)
def one_torch_thread(torch_threads: None) -> Iterator[None]:
    """One thread: the tiny transformer's ops take microseconds, and a second OpenMP thread on
    a shared core cost ~100x (3.7 s against 0.04 s for one 4-step call, measured)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


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


def test_cli_builds_a_klein_folder_that_is_detected_and_loads(
    tmp_path: Path, tiny_klein_settings: Settings, torch_threads: None
) -> None:
    from diffusers import Flux2KleinPipeline

    folder = tmp_path / "klein"
    assert main(["dev", "tiny-model", str(folder), "--family", "flux2-klein"]) == 0
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "Flux2KleinPipeline"
    assert index["text_encoder"] == ["transformers", "Qwen3ForCausalLM"]
    assert (folder / "tokenizer" / "tokenizer.json").is_file()
    assert detect_family(folder) == "flux2-klein"
    # A transformer family we do not support says so instead of loading as SD1.5.
    other = tmp_path / "flux1"
    other.mkdir()
    (other / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    with pytest.raises(ConfigurationError, match="supported families are sd15, sdxl, flux2-klein"):
        detect_family(other)
    source = resolve_model(tiny_klein_settings)
    assert source.family == "flux2-klein" and source.native_resolution == 64
    assert step_costs(source, "cpu") is not None  # the ETA knows a tiny klein
    pipe = load_base_pipeline(tiny_klein_settings)
    assert isinstance(pipe, Flux2KleinPipeline)
    # Chat template as Qwen3 writes it, thinking off: what the pipeline feeds its encoder.
    text = pipe.tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}],
        tokenize=False,
        add_generation_prompt=True,
        enable_thinking=False,
    )
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def test_text_layers_follow_the_real_model_and_spread_over_a_small_one() -> None:
    from types import SimpleNamespace

    def pipe(layers: int, hidden: int, joint: int) -> Any:
        text = SimpleNamespace(config=SimpleNamespace(num_hidden_layers=layers, hidden_size=hidden))
        transformer = SimpleNamespace(config=SimpleNamespace(joint_attention_dim=joint))
        return SimpleNamespace(text_encoder=text, transformer=transformer)

    assert klein_text_layers(pipe(36, 2560, 7680)) == (9, 18, 27)  # klein 4B
    assert klein_text_layers(pipe(3, 16, 48)) == (1, 2, 3)


def test_long_prompts_reach_qwen_whole_and_are_counted(tiny_klein_settings: Settings) -> None:
    resident = ResidentPipeline(tiny_klein_settings)
    pipe = resident.pipe
    words = ", ".join(f"detail number {n}" for n in range(60))
    prompt = f"portrait of ohwx woman, {words}"
    encoded = encode_prompts(pipe, prompt, "blurry", family="flux2-klein")
    record = encoded.to_record()
    assert record["prompt_encoder"] == "qwen3" and record["tokens_dropped"] == 0
    assert record["prompt_tokens"] == count_text_tokens(pipe.tokenizer, prompt) > 512
    assert record["prompt_tokens_encoded"] == record["prompt_tokens"]
    length = encoded.embeddings["prompt_embeds"].shape[1]
    assert length > KLEIN_MIN_SEQUENCE, "a longer sequence, not a truncated prompt"
    # The words past 512 tokens change the embedding: they reached the encoder.
    shorter = encode_prompts(
        pipe, f"portrait of ohwx woman, {words[:100]}", "", family="flux2-klein"
    )
    assert shorter.embeddings["prompt_embeds"].shape[1] == KLEIN_MIN_SEQUENCE
    # Compel weights mean nothing to Qwen3: they are dropped, the words kept.
    weighted = encode_prompts(pipe, "photo of (ohwx woman)1.1", "", family="flux2-klein")
    plain = encode_prompts(pipe, "photo of ohwx woman", "", family="flux2-klein")
    assert weighted.prompt == plain.prompt


def test_presets_give_klein_plain_language() -> None:
    for name, preset in load_presets().items():
        assert "{subject}" in preset.natural_prompt, name
        style = StyleChoice(
            preset=name,
            subject_class="woman",
            custom="in a navy blazer",
            attributes={"eye_colour": "hazel", "glasses": "none"},
        )
        spec = build_prompt_spec(style, job_id="j", native_resolution=64, family="flux2-klein")
        assert "ohwx woman" in spec.prompt and "hazel eyes" in spec.prompt, spec.prompt
        assert "(" not in spec.prompt and "(" not in spec.negative_prompt, name
        assert "eyeglasses" in spec.negative_prompt and "nsfw" in spec.negative_prompt
        assert (spec.steps, spec.cfg) == (50, 4.0)  # the klein base model card
        assert "Masterpiece" not in spec.prompt and len(spec.negative_prompt) < 300


def test_training_saves_a_klein_lora_that_load_lora_weights_reads(
    tiny_klein_model_path: Path, make_tiny_klein_lora: Callable[[int], bytes], tmp_path: Path
) -> None:
    import torch
    from diffusers import Flux2KleinPipeline

    lora = make_tiny_klein_lora(1)
    folder = tmp_path / "lora"
    folder.mkdir()
    (folder / "pytorch_lora_weights.safetensors").write_bytes(lora)
    weights = load_file(str(folder / "pytorch_lora_weights.safetensors"))
    assert weights and all(k.startswith("transformer.") for k in weights)
    assert any(".attn.to_q.lora_A." in k for k in weights)
    assert any(".attn.to_out.0.lora_B." in k for k in weights)
    # The single-stream blocks train too, as in diffusers' example.
    assert any("single_transformer_blocks.0.attn.to_qkv_mlp_proj.lora_A." in k for k in weights)
    assert any("single_transformer_blocks.0.attn.to_out.lora_B." in k for k in weights)

    # diffusers' own loader reads it, and it changes the picture.
    pipe = Flux2KleinPipeline.from_pretrained(tiny_klein_model_path)
    pipe.set_progress_bar_config(disable=True)
    layers = klein_text_layers(pipe)

    def sample() -> np.ndarray:
        out = pipe(
            prompt="photo of ohwx person",
            num_inference_steps=2,
            height=64,
            width=64,
            text_encoder_out_layers=layers,
            generator=torch.Generator().manual_seed(0),
            output_type="np",
        )
        return np.asarray(out.images)

    base = sample()
    pipe.load_lora_weights(str(folder), adapter_name="person")
    assert np.abs(sample() - base).max() > 0


def test_training_resumes_on_klein_to_the_same_lora(
    tiny_klein_model_path: Path, training_images: list[Any], tmp_path: Path
) -> None:
    from diffusers import Flux2KleinPipeline

    from headshots.generation.train import (
        LORA_WEIGHT_NAME,
        DirectoryCheckpoints,
        TrainConfig,
        train_lora,
    )

    pipe = Flux2KleinPipeline.from_pretrained(tiny_klein_model_path)
    config = TrainConfig(
        family="flux2-klein",
        resolution=64,
        steps=4,
        rank=4,
        learning_rate=5e-3,
        checkpoint_every=2,
        eval_samples=2,
        gradient_checkpointing=False,
    )
    straight = train_lora(pipe, training_images, config, output_dir=tmp_path / "a")
    assert straight.eval_loss_before is not None and straight.eval_loss_after is not None

    class Stop(Exception):
        pass

    def stop_at_three() -> None:
        if calls.append(1) or len(calls) == 3:
            raise Stop

    calls: list[int] = []
    store = DirectoryCheckpoints(tmp_path / "ck")
    with pytest.raises(Stop):
        train_lora(
            pipe,
            training_images,
            config,
            output_dir=tmp_path / "b",
            checkpoints=store,
            check_cancelled=stop_at_three,
        )
    assert not getattr(pipe.transformer, "peft_config", None), "the adapter was removed"
    resumed = train_lora(
        pipe, training_images, config, output_dir=tmp_path / "b", checkpoints=store
    )
    assert resumed.resumed_from == 2 and resumed.steps_run == 2
    a = load_file(str(tmp_path / "a" / LORA_WEIGHT_NAME))
    b = load_file(str(tmp_path / "b" / LORA_WEIGHT_NAME))
    for key, tensor in a.items():
        np.testing.assert_allclose(tensor.numpy(), b[key].numpy(), rtol=1e-5, atol=1e-6)


def test_face_refine_and_detail_pass_run_on_klein_img2img(
    tiny_klein_settings: Settings, face_photo_bytes: list[bytes], dlib_analyzer: Any
) -> None:
    from headshots.generation.faces import decode_image
    from headshots.generation.postprocess import (
        PostprocessOptions,
        diffusers_img2img,
        postprocess_image,
    )

    resident = ResidentPipeline(tiny_klein_settings)
    img2img = resident.img2img
    assert type(img2img.inpaint).__name__ == "Flux2KleinInpaintPipeline"
    encoded = encode_prompts(img2img, "portrait of ohwx woman", "blurry", family="flux2-klein")
    photo = decode_image(face_photo_bytes[0])
    options = PostprocessOptions(
        colour_grade="none",
        film_grain=False,
        output_size=(192, 240),
        aspect_ratio="4:5",
        refine=True,
    )
    face = diffusers_img2img(img2img, prompts=encoded, steps=2, cfg=4.0, seed=1, strength=0.5)
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
    assert image.size == (192, 240) and applied["refined"] is True
    lanczos, _ = postprocess_image(
        photo, options, analyzer=None, refine_resolution=resident.native_resolution
    )
    changed = np.abs(np.asarray(image, np.int16) - np.asarray(lanczos, np.int16)).max(axis=2)
    x0, y0, x1, y1 = (int(v) for v in dlib_analyzer.analyze(lanczos)[0].box)
    assert changed[y0:y1, x0:x1].mean() > 1.0, "the face was redrawn"
    assert changed[-10:, :].max() == 0 and changed[:, :10].max() == 0, "only the face region"

    tiles = diffusers_img2img(img2img, prompts=encoded, steps=2, cfg=4.0, seed=1, strength=0.3)
    crop = lanczos.crop((0, 0, 64, 64))
    a, b = (np.asarray(t, np.int16) for t in tiles.batch([crop, crop], first=0))
    assert a.shape == (64, 64, 3) and np.abs(a - b).max() > 0, "each tile has its own noise"


def test_more_like_new_style_team_and_quick_on_klein(
    tiny_klein_settings: Settings, make_tiny_klein_lora: Callable[[int], bytes], tmp_path: Path
) -> None:
    from headshots.queue.teams import BrandKit, KitBackground

    # 4 steps: flow-matching img2img at strength 0.55 over 2 steps would start from pure noise.
    stages = GenerationStages(tiny_klein_settings, replace(FAST, sample_steps=4))
    lora = make_tiny_klein_lora(1)
    # A new style on an existing LoRA, quick draft asked: the klein base cannot, and says so.
    first = _request(
        StyleChoice(preset="corporate", subject_class="woman", count=1, seed=11, quick=True),
        kind="new_style",
        lora_job_id="trained",
    )
    ctx = _context(tmp_path, tiny_klein_settings, first, lora, "trained")
    run_stages(ctx, stages.stage_set().generate)
    rank = ctx.output_of("rank") or {}
    generation = rank["generation"]
    assert generation["family"] == "flux2-klein" and generation["tokens_dropped"] == 0
    assert generation["scheduler"] == "flow_match_euler" and generation["cfg"] == 4.0
    assert generation["negative_prompt_used"] is True
    assert generation["quick"] == {"used": False, "note": generation["quick"]["note"]}
    assert KLEIN_NO_QUICK in generation["quick"]["note"]
    # The size rule: 2 x native on the long side, after the detail pass and the face refine.
    assert rank["delivered_size"] == list(output_size("4:5", 128))
    post = ctx.output_of("postprocess") or {}
    assert post["images"][0]["applied"]["upscale"]
    (chosen,) = rank["results"]

    # "More like #1": a klein img2img variation of the chosen image.
    more = first.model_copy(
        update={"kind": "more_like", "lora_job_id": ctx.job_id, "like_rank": 1, "nonce": "again"}
    )
    ctx2 = _context(tmp_path, tiny_klein_settings, more, lora, "trained")
    record = stages.generate(ctx2)
    assert record["generation"]["variation_of"]["seed"] == chosen["seed"]
    variation = _pixels(ctx2, record["images"][0]["path"])
    assert variation.shape[:2] == (80, 64)
    seed = record["generation"]["seeds"][0]
    fresh_request = _request(
        StyleChoice(preset="corporate", subject_class="woman", count=1, seed=seed)
    )
    fresh = stages.generate(_context(tmp_path, tiny_klein_settings, fresh_request, lora, "trained"))
    assert np.abs(variation - _pixels(ctx2, fresh["images"][0]["path"])).mean() > 1.0

    # A team: two members on the kit's style get one look.
    kit = BrandKit(
        team_name="Acme",
        background=KitBackground(kind="colour", colours=["#1f6feb"]),
        aspect_ratio="1:1",
        count=1,
        colour_grade="ektar",
    )
    records = [
        stages.generate(
            _context(
                tmp_path,
                tiny_klein_settings,
                _request(kit.style_for(cls), user_id=user, team_id="acme"),
                lora,
                f"m{user}",
            )
        )["generation"]
        for user, cls in ((21, "man"), (22, "woman"))
    ]
    assert records[0]["prompt"] != records[1]["prompt"]
    for field in ("negative_prompt", "seeds", "steps", "cfg", "width", "height", "colour_grade"):
        assert records[0][field] == records[1][field], field
    assert all("royal blue" in r["prompt"] and "(" not in r["prompt"] for r in records)
    assert stages.resident.base_loads == 1
    stages.close()


def test_distilled_klein_runs_its_four_steps_and_drafts(
    tiny_klein_model_path: Path, tmp_path: Path, make_tiny_klein_lora: Callable[[int], bytes]
) -> None:
    import shutil

    folder = tmp_path / "distilled"
    shutil.copytree(tiny_klein_model_path, folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "is_distilled": True}))
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        base_model=str(folder),
        state_dir=tmp_path / "state",
        store_backend="local",
        face_backend="dlib",
        hf_offline=True,
        device="cpu",
        dtype="float32",
    )
    stages = GenerationStages(settings, GenerationOptions(validate_likeness=False))
    request = _request(
        StyleChoice(preset="corporate", subject_class="man", count=1, seed=3, quick=True),
        kind="new_style",
        lora_job_id="trained",
    )
    record = stages.generate(_context(tmp_path, settings, request, make_tiny_klein_lora(1), "t"))
    generation = record["generation"]
    assert (generation["steps"], generation["cfg"]) == (4, 1.0)  # the distilled model card
    assert generation["negative_prompt_used"] is False  # no guidance, no negative prompt
    assert generation["quick"] == {"used": True, "note": None}
    stages.close()


def _selfies(tmp_path: Path, photos: list[bytes]) -> Path:
    folder = tmp_path / "selfies"
    folder.mkdir()
    for number, data in enumerate(photos):
        (folder / f"{number}.jpg").write_bytes(data)
    return folder


@pytest.mark.slow
def test_run_on_klein_delivers_whole_prompts_at_the_style_size(
    monkeypatch: pytest.MonkeyPatch,
    tiny_klein_model_path: Path,
    face_photo_bytes: list[bytes],
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "STATE_DIR": str(tmp_path / "state"),
        "FACE_BACKEND": "dlib",
        "DEVICE": "cpu",
        "DTYPE": "float32",
        "HF_OFFLINE": "true",
    }.items():
        monkeypatch.setenv(f"HEADSHOTS_{name}", value)
    out = tmp_path / "out"
    args = ["run", "--selfies", str(_selfies(tmp_path, face_photo_bytes[:4]))]
    args += ["--style", "legal", "--class", "woman", "--out", str(out)]
    args += ["--model", str(tiny_klein_model_path), "--steps", "2", "--n", "1"]
    args += ["--sample-steps", "2", "--eye-colour", "green"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["train"]["config"]["family"] == "flux2-klein"
    assert report["train"]["optimizer_steps"] == 2 and report["train"]["compile"] == "eager"
    generation = report["generation"]
    assert generation["family"] == "flux2-klein"
    assert "green eyes" in generation["prompt"] and "(" not in generation["prompt"]
    tokens = report["prompt_tokens"]
    assert tokens["tokens_dropped"] == 0
    assert tokens["prompt_tokens_encoded"] == tokens["prompt_tokens"] > 0
    assert tokens["negative_prompt_tokens_encoded"] == tokens["negative_prompt_tokens"] > 0
    preset = load_presets()["legal"]
    expected = list(output_size(preset.aspect_ratio, round(64 * preset.upscale_factor)))
    assert report["delivered_size"] == expected
    (result,) = report["results"]
    assert list(Image.open(result["file"]).size) == expected


def test_doctor_names_the_family_its_licence_and_memory(
    tiny_klein_settings: Settings, tmp_path: Path, capsys: Any
) -> None:
    import argparse
    import shutil

    from headshots.cli.core import cmd_doctor

    def doctor(settings: Settings) -> dict[str, Any]:
        cmd_doctor(argparse.Namespace(json=True), settings)
        return {c["check"]: c for c in json.loads(capsys.readouterr().out)}

    checks = doctor(tiny_klein_settings)
    family = checks["model family"]
    assert family["ok"] and family["detail"].startswith("flux2-klein (FLUX.2 [klein])")
    assert "Apache-2.0" in family["detail"] and "~13 GB" in family["detail"]
    assert not checks["quick drafts"]["ok"] and "undistilled" in checks["quick drafts"]["detail"]

    folder = tmp_path / "distilled"
    shutil.copytree(tiny_klein_settings.base_model, folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "is_distilled": True}))
    distilled = tiny_klein_settings.model_copy(update={"base_model": str(folder)})
    checks = doctor(distilled)
    assert checks["quick drafts"]["ok"] and "4 steps" in checks["quick drafts"]["detail"]

    # The chats show the quick-draft button by the same rule: no LCM-LoRA makes the klein
    # base draft, and the distilled klein needs none.
    lcm = {"lcm_lora": "latent-consistency/lcm-lora-sdv1-5"}
    assert not quick_drafts_possible(tiny_klein_settings.model_copy(update=lcm))
    assert quick_drafts_possible(distilled)
    assert quick_drafts_possible(
        tiny_klein_settings.model_copy(update={"base_model": "a/b", **lcm})
    )


@pytest.mark.slow
async def test_a_worker_trains_and_generates_on_klein_through_redis(
    settings_factory: Callable[..., Settings],
    queue_client_factory: Any,
    start_worker: Callable[..., Any],
    worker_processes: Any,
    tiny_klein_model_path: Path,
    face_photo_bytes: list[bytes],
) -> None:
    from headshots.queue.contracts import JobState
    from tests.plugins.queue import settings_env
    from tests.queue_helpers import wait_for_state

    finished = {JobState.DONE, JobState.FAILED, JobState.CANCELLED}
    settings = settings_factory(
        base_model=str(tiny_klein_model_path),
        hf_offline=True,
        device="cpu",
        dtype="float32",
        train_steps=2,
        sample_steps=2,
    )
    client = await queue_client_factory(settings)
    user = UserRef(platform="cli", user_id=77)
    upload = client.new_upload_id()
    for index, photo in enumerate(face_photo_bytes[:4], start=1):
        await client.add_selfie(user, upload, index, photo)
    request = JobRequest(
        user=user,
        target=ChatTarget(platform="cli", chat_id=77, user_id=77),
        upload_id=upload,
        style=StyleChoice(preset="corporate", subject_class="woman", count=1),
    )
    submission = await client.submit(request)
    # One thread in the worker too (see one_torch_thread).
    start_worker({**settings_env(settings), "OMP_NUM_THREADS": "1"})
    state = await wait_for_state(client, submission.job_id, finished, timeout_s=240)
    assert state is JobState.DONE, worker_processes.logs()[-3000:]
    info = await client.job(submission.job_id)
    assert info is not None and len(info.results) == 1

    # A new style on the trained klein LoRA: generation only, delivered the same way.
    new_style = request.model_copy(
        update={
            "kind": "new_style",
            "lora_job_id": submission.job_id,
            "style": StyleChoice(preset="legal", subject_class="woman", count=1),
        }
    )
    second = await client.submit(new_style)
    state = await wait_for_state(client, second.job_id, finished, timeout_s=120)
    assert state is JobState.DONE, worker_processes.logs()[-3000:]
    outbox = settings.state_dir / "outbox" / "77"
    assert len(list(outbox.glob("headshot-*.png"))) >= 1


def _other_klein(folder: Path) -> Path:
    """A tiny klein as diffusers' own klein tests build one, not by our builder: a one-block
    VAE with one latent channel, a two-layer Qwen3 read at one layer, a BPE tokenizer trained
    here with ``tokenizers`` (merges and all), no chat template of ours but Qwen3's own."""
    import torch
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = ["a professional headshot photograph of a person wearing a suit"] * 10
    backend.train_from_iterator(corpus, trainer=trainer)
    template = (
        "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + "
        "message.content + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}"
        "{{- '<|im_start|>assistant\\n' }}{%- if enable_thinking is defined and enable_thinking "
        "is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}"
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=template,
    )
    torch.manual_seed(0)
    transformer = Flux2Transformer2DModel(
        patch_size=1,
        in_channels=4,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=16,
        timestep_guidance_channels=256,
        axes_dims_rope=(4, 4, 4, 4),
        guidance_embeds=False,
    )
    text_encoder = Qwen3ForCausalLM(
        Qwen3Config(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            head_dim=8,
        )
    )
    vae = AutoencoderKLFlux2(
        sample_size=32,
        down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",),
        block_out_channels=(4,),
        layers_per_block=1,
        latent_channels=1,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    pipe = Flux2KleinPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def test_run_on_a_klein_built_elsewhere(
    monkeypatch: pytest.MonkeyPatch, face_photo_bytes: list[bytes], tmp_path: Path
) -> None:
    model = _other_klein(tmp_path / "other-klein")
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "STATE_DIR": str(tmp_path / "state"),
        "FACE_BACKEND": "dlib",
        "DEVICE": "cpu",
        "DTYPE": "float32",
        "HF_OFFLINE": "true",
    }.items():
        monkeypatch.setenv(f"HEADSHOTS_{name}", value)
    out = tmp_path / "out"
    args = ["run", "--selfies", str(_selfies(tmp_path, face_photo_bytes[:4]))]
    args += ["--style", "corporate", "--class", "man", "--out", str(out), "--model", str(model)]
    args += ["--steps", "2", "--n", "2", "--sample-steps", "2", "--no-validate"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["generation"]["family"] == "flux2-klein"
    assert report["prompt_tokens"]["tokens_dropped"] == 0
    assert report["delivered_size"] == list(output_size("4:5", 64))  # 2 x its 32 px
    assert len(report["results"]) == 2


def test_the_text_encoder_leaves_the_gpu_while_klein_trains() -> None:
    from types import SimpleNamespace

    from headshots.generation.train import _text_encoder_parked

    moves: list[str] = []
    encoder = SimpleNamespace(to=lambda where: moves.append(str(where)))
    pipe = SimpleNamespace(device=SimpleNamespace(type="cuda"), text_encoder=encoder)
    with pytest.raises(RuntimeError), _text_encoder_parked(pipe, "flux2-klein"):
        assert moves == ["cpu"]
        raise RuntimeError("training failed")
    assert moves == ["cpu", str(pipe.device)], "back on the GPU however training ends"
    with _text_encoder_parked(pipe, "sdxl"):
        pass
    assert len(moves) == 2, "the UNet families keep their encoders where they are"
