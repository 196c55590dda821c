"""``headshots dev tiny-model | train | generate | run``: the generation pipeline on a laptop.

These run the very stage code the worker runs, on a :class:`LocalContext` (a folder as the
store), so what works here works in the service.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, get_args

from headshots.errors import UserError
from headshots.queue.contracts import (
    ChatTarget,
    ControlHint,
    EyeColour,
    Glasses,
    HairColour,
    HairLength,
    JobRequest,
    PersonAttributes,
    ReferenceChoice,
    StyleChoice,
    UserRef,
)
from headshots.settings import Settings

logger = logging.getLogger(__name__)

_CLI_UPLOAD = "cli"
_CLI_LORA_JOB = "cli-lora"
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".bmp"}
_CLASSES = ("man", "woman", "person")
_EYE_COLOURS: tuple[str, ...] = get_args(EyeColour)
_GLASSES: tuple[str, ...] = get_args(Glasses)
_HAIR_COLOURS: tuple[str, ...] = get_args(HairColour)
_HINTS: tuple[str, ...] = get_args(ControlHint)
_HAIR_LENGTHS: tuple[str, ...] = get_args(HairLength)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = subparsers.add_parser("dev", help="developer tools")
    dev_sub = dev.add_subparsers(dest="dev_command", metavar="TOOL", required=True)
    tiny = dev_sub.add_parser(
        "tiny-model", help="write a tiny random-weight SD1.5-, SDXL- or FLUX.2 klein-shaped model"
    )
    tiny.add_argument("path", type=Path)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument(
        "--family",
        choices=("sd15", "sdxl", "flux2-klein"),
        default="sd15",
        help="sd15: one text encoder; sdxl: two text encoders and text_time conditioning; "
        "flux2-klein: a Qwen3 text encoder and a FLUX.2 transformer",
    )
    tiny.set_defaults(func=cmd_tiny_model)
    tiny_cn = dev_sub.add_parser(
        "tiny-controlnet",
        help="write a random ControlNet shaped like a tiny model's UNet (SD1.5 or SDXL)",
    )
    tiny_cn.add_argument("base", type=Path, help="a folder written by `dev tiny-model`")
    tiny_cn.add_argument("path", type=Path)
    tiny_cn.set_defaults(func=cmd_tiny_controlnet)

    train = subparsers.add_parser("train", help="check selfies and train a LoRA of the person")
    _add_selfies(train)
    _add_model(train)
    train.add_argument("--out", type=Path, required=True, help="output folder (also the store)")
    train.set_defaults(func=cmd_train)

    generate = subparsers.add_parser("generate", help="generate headshots with a trained LoRA")
    generate.add_argument(
        "--lora", type=Path, required=True, help="folder written by `train` (its lora/)"
    )
    generate.add_argument("--out", type=Path, required=True)
    _add_style(generate)
    generate.add_argument("--model", help="base model (default HEADSHOTS_BASE_MODEL)")
    generate.set_defaults(func=cmd_generate)

    run = subparsers.add_parser("run", help="selfies in, ranked headshots out: the whole pipeline")
    _add_selfies(run)
    _add_model(run)
    _add_style(run, with_class=False)
    run.add_argument(
        "--quick",
        action="store_true",
        help="quick draft: 4-8 sampling steps with the LCM-LoRA (HEADSHOTS_LCM_LORA); "
        "without one the job says why and samples as usual",
    )
    run.add_argument("--out", type=Path, required=True)
    run.set_defaults(func=cmd_run)


def _add_selfies(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--selfies", type=Path, required=True, help="folder of photos of one person"
    )
    parser.add_argument("--class", dest="subject_class", choices=_CLASSES, default="person")
    _add_attributes(parser)


def _add_attributes(parser: argparse.ArgumentParser) -> None:
    """The person's own features (default: as in the photos); captions and prompts use them."""
    group = parser.add_argument_group("the person's features (default: as in the photos)")
    group.add_argument("--eye-colour", dest="eye_colour", choices=_EYE_COLOURS)
    group.add_argument("--glasses", choices=_GLASSES, default="as_in_photos")
    group.add_argument("--hair-colour", dest="hair_colour", choices=_HAIR_COLOURS)
    group.add_argument("--hair-length", dest="hair_length", choices=_HAIR_LENGTHS)


def _add_model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="base model id or folder (default HEADSHOTS_BASE_MODEL)")
    parser.add_argument(
        "--steps", type=int, help="training steps (default: 100 per photo, 400-1200)"
    )
    parser.add_argument(
        "--no-validate", action="store_true", help="skip likeness validation at checkpoints"
    )


def _add_style(parser: argparse.ArgumentParser, *, with_class: bool = True) -> None:
    parser.add_argument("--style", default="corporate", help="preset name")
    if with_class:
        parser.add_argument("--class", dest="subject_class", choices=_CLASSES, default="person")
        _add_attributes(parser)
    parser.add_argument("--n", type=int, default=8, help="images to deliver (1-40)")
    parser.add_argument("--background")
    parser.add_argument("--attire")
    parser.add_argument(
        "--grade", dest="colour_grade", choices=("none", "film_portra", "film_velvia", "ektar")
    )
    parser.add_argument("--aspect", dest="aspect_ratio", choices=("1:1", "4:5", "2:3"))
    parser.add_argument("--custom", help="extra description (sanitised)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--sample-steps", type=int, help="override the preset's sampling steps")
    parser.add_argument("--no-refine", action="store_true", help="skip the face refine pass")
    parser.add_argument(
        "--reference",
        type=Path,
        help="a photo to frame the headshots like (its pose or edges steer a ControlNet: "
        "HEADSHOTS_CONTROLNET_<FAMILY>_<HINT>)",
    )
    parser.add_argument(
        "--hint",
        choices=_HINTS,
        default="pose",
        help="what of the reference steers: pose (face and shoulders) or canny (edges)",
    )


def _settings_for(args: argparse.Namespace, settings: Settings) -> Settings:
    update: dict[str, Any] = {"store_backend": "local"}
    if getattr(args, "model", None):
        update["base_model"] = args.model
    if getattr(args, "steps", None):
        update["train_steps"] = args.steps
    return settings.model_copy(update=update)


def _options(args: argparse.Namespace) -> Any:
    from headshots.generation.stages import GenerationOptions

    return GenerationOptions(
        sample_steps=getattr(args, "sample_steps", None),
        refine_faces=not getattr(args, "no_refine", False),
        validate_likeness=not getattr(args, "no_validate", False),
    )


def _reference(args: argparse.Namespace) -> tuple[ReferenceChoice, bytes] | None:
    """The ``--reference`` photo as the chats store it (bounded decode, PNG, no metadata)."""
    from headshots.generation.faces import ImageRejected, normalise_reference

    path: Path | None = getattr(args, "reference", None)
    if path is None:
        return None
    if not path.is_file():
        raise UserError(f"--reference {path}: no such file")
    try:
        data = normalise_reference(path.read_bytes())
    except ImageRejected as exc:
        raise UserError(f"--reference {path}: {exc.reason}") from None
    return ReferenceChoice.of(data, args.hint), data


def _store_reference(
    ctx: Any, settings: Settings, reference: tuple[ReferenceChoice, bytes]
) -> None:
    """Store the reference where the worker reads it; say an unset ControlNet before training."""
    from headshots.generation.context import Retention
    from headshots.generation.controlnet import require_controlnet
    from headshots.generation.models import resolve_model

    choice, data = reference
    require_controlnet(settings, resolve_model(settings).family, choice.hint)
    ctx.write_blob(choice.path, data, Retention.SELFIE)


def _request(
    args: argparse.Namespace,
    *,
    kind: str = "full",
    lora_job_id: str | None = None,
    reference: ReferenceChoice | None = None,
) -> JobRequest:
    style = StyleChoice(
        preset=getattr(args, "style", "corporate"),
        subject_class=args.subject_class,
        background=getattr(args, "background", None),
        attire=getattr(args, "attire", None),
        colour_grade=getattr(args, "colour_grade", None),
        count=getattr(args, "n", 8),
        aspect_ratio=getattr(args, "aspect_ratio", None),
        custom=getattr(args, "custom", None),
        seed=getattr(args, "seed", None),
        quick=getattr(args, "quick", False),
        reference=reference,
        attributes=PersonAttributes(
            eye_colour=getattr(args, "eye_colour", None),
            glasses=getattr(args, "glasses", None) or "as_in_photos",
            hair_colour=getattr(args, "hair_colour", None),
            hair_length=getattr(args, "hair_length", None),
        ),
    )
    return JobRequest(
        user=UserRef(platform="cli", user_id=0),
        target=ChatTarget(platform="cli", chat_id=0, user_id=0),
        upload_id=_CLI_UPLOAD,
        style=style,
        kind=kind,  # type: ignore[arg-type]
        lora_job_id=lora_job_id,
    )


def _print_progress(stage: str, percent: float | None, text: str) -> None:
    suffix = f" ({percent:.0f}%)" if percent is not None else ""
    print(f"  [{stage}] {text}{suffix}", flush=True)


def _context(out: Path, request: JobRequest, settings: Settings, **kwargs: Any) -> Any:
    from headshots.generation.local_context import LocalContext

    out.mkdir(parents=True, exist_ok=True)
    return LocalContext(out, request, settings, on_progress=_throttled(), **kwargs)


def _throttled() -> Any:
    last: dict[str, Any] = {"text": None, "at": 0.0}

    def sink(stage: str, percent: float | None, text: str) -> None:
        now = time.monotonic()
        if text != last["text"] and (now - last["at"] > 0.5 or percent in (None, 0.0, 100.0)):
            last.update(text=text, at=now)
            _print_progress(stage, percent, text)

    return sink


def _store_selfies(ctx: Any, folder: Path) -> int:
    from headshots.generation.context import Retention, upload_prefix
    from headshots.generation.faces import ImageRejected, normalise_selfie

    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder of photos")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    stored = 0
    for file in files:
        try:
            data = normalise_selfie(file.read_bytes())
        except ImageRejected as exc:
            print(f"  skipping {file.name}: {exc.reason}")
            continue
        stored += 1
        ctx.write_blob(f"{upload_prefix(_CLI_UPLOAD)}{stored:02d}.jpg", data, Retention.SELFIE)
    if not stored:
        raise UserError(f"no photos found in {folder}")
    return stored


def _export_lora(ctx: Any, out: Path, subject_class: str) -> Path:
    from headshots.generation.context import lora_path, reference_embedding_path

    folder = out / "lora"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ctx.file(lora_path(ctx.job_id)), folder / "pytorch_lora_weights.safetensors")
    shutil.copyfile(ctx.file(reference_embedding_path(ctx.job_id)), folder / "reference.npy")
    info = {
        "train_job_id": ctx.job_id,
        "subject_class": subject_class,
        "base_model": ctx.settings.base_model,
    }
    (folder / "model.json").write_text(json.dumps(info, indent=2))
    return folder


def _export_results(ctx: Any, out: Path, record: dict[str, Any]) -> list[Path]:
    folder = out / "results"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    written = []
    for result in record["results"]:
        target = folder / Path(result["path"]).name
        shutil.copyfile(ctx.file(result["path"]), target)
        written.append(target)
    if record.get("contact_sheet"):
        shutil.copyfile(ctx.file(record["contact_sheet"]), out / "contact_sheet.jpg")
    return written


def _write_report(out: Path, ctx: Any, timings: list[Any], extra: dict[str, Any]) -> Path:
    rank = ctx.output_of("rank") or {}
    report = {
        "job_id": ctx.job_id,
        "train_job_id": ctx.train_job_id,
        "base_model": ctx.settings.base_model,
        "stages": {t.name: {"seconds": round(t.seconds, 3), "skipped": t.skipped} for t in timings},
        "results": [
            {**r, "file": str(out / "results" / Path(r["path"]).name)}
            for r in rank.get("results", [])
        ],
        "low_likeness": rank.get("low_likeness"),
        # Every image of one style is delivered at this size (the style's rule).
        "delivered_size": rank.get("delivered_size"),
        "ordered": rank.get("ordered"),
        "passed": rank.get("passed"),
        "missing": rank.get("missing"),
        "shortfall_reasons": rank.get("reasons"),
        "prompt_tokens": _prompt_tokens(rank.get("generation") or {}),
        "generation": rank.get("generation"),
        "train": ctx.output_of("train"),
        "check": ctx.output_of("check"),
        **extra,
    }
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    return path


def _prompt_tokens(generation: dict[str, Any]) -> dict[str, Any] | None:
    """Token counts of the prompts by the pipeline's own tokenizer, and how many were dropped."""
    if "prompt_tokens" not in generation:
        return None
    keys = (
        "prompt_tokens",
        "negative_prompt_tokens",
        "prompt_tokens_encoded",
        "negative_prompt_tokens_encoded",
        "prompt_chunks",
        "negative_prompt_chunks",
        "tokens_dropped",
    )
    return {key: generation.get(key) for key in keys}


def cmd_tiny_model(args: argparse.Namespace, settings: Settings) -> int:
    from headshots.generation.tiny import save_tiny_model

    save_tiny_model(args.path, seed=args.seed, family=args.family)
    print(f"tiny {args.family} model written to {args.path} (use HEADSHOTS_BASE_MODEL={args.path})")
    return 0


def cmd_tiny_controlnet(args: argparse.Namespace, settings: Settings) -> int:
    from headshots.generation.models import detect_family
    from headshots.generation.tiny import save_tiny_controlnet

    family = detect_family(args.base)
    if family == "flux2-klein":
        raise UserError("FLUX.2 [klein] has no ControlNet in diffusers")
    save_tiny_controlnet(args.base, args.path)
    print(
        f"tiny {family} ControlNet written to {args.path} "
        f"(use HEADSHOTS_CONTROLNET_{family.upper()}_POSE={args.path})"
    )
    return 0


def _train_into(
    args: argparse.Namespace,
    settings: Settings,
    request: JobRequest,
    reference: tuple[ReferenceChoice, bytes] | None = None,
) -> tuple[Any, list[Any], Any]:
    from headshots.generation.local_context import run_stages
    from headshots.generation.stages import GenerationStages

    ctx = _context(args.out, request, settings)
    if reference is not None:
        _store_reference(ctx, settings, reference)
    count = _store_selfies(ctx, args.selfies)
    print(f"{count} photos stored; checking and training on {settings.base_model}")
    stages = GenerationStages(settings, _options(args))
    return ctx, run_stages(ctx, stages.stage_set().train), stages


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    settings = _settings_for(args, settings)
    request = _request(args)
    ctx, timings, stages = _train_into(args, settings, request)
    try:
        folder = _export_lora(ctx, args.out, args.subject_class)
    finally:
        stages.close()
    check = ctx.output_of("check") or {}
    print(check.get("summary", ""))
    _write_report(args.out, ctx, timings, {})
    print(f"LoRA written to {folder}")
    return 0


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from headshots.generation.context import Retention, lora_path, reference_embedding_path
    from headshots.generation.local_context import run_stages
    from headshots.generation.stages import GenerationStages

    settings = _settings_for(args, settings)
    weights = args.lora / "pytorch_lora_weights.safetensors"
    if not weights.is_file():
        raise UserError(f"{weights} not found: pass the lora/ folder written by `headshots train`")
    info_file = args.lora / "model.json"
    if info_file.is_file() and args.subject_class == "person":
        args.subject_class = json.loads(info_file.read_text()).get("subject_class", "person")
    reference = _reference(args)
    request = _request(
        args,
        kind="new_style",
        lora_job_id=_CLI_LORA_JOB,
        reference=reference[0] if reference else None,
    )
    ctx = _context(args.out, request, settings, train_job_id=_CLI_LORA_JOB)
    if reference is not None:
        _store_reference(ctx, settings, reference)
    ctx.write_blob(lora_path(_CLI_LORA_JOB), weights.read_bytes(), Retention.LORA)
    reference = args.lora / "reference.npy"
    if reference.is_file():
        ctx.write_blob(
            reference_embedding_path(_CLI_LORA_JOB), reference.read_bytes(), Retention.LORA
        )
    else:
        print("no reference.npy next to the LoRA: results will not be ranked by likeness")
    stages = GenerationStages(settings, _options(args))
    try:
        timings = run_stages(ctx, stages.stage_set().generate)
    finally:
        stages.close()
    record = ctx.output_of("rank") or {}
    written = _export_results(ctx, args.out, record)
    report = _write_report(args.out, ctx, timings, {})
    print(f"{len(written)} headshots in {args.out / 'results'}; report {report}")
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from headshots.generation.local_context import run_stages

    settings = _settings_for(args, settings)
    reference = _reference(args)
    request = _request(args, reference=reference[0] if reference else None)
    ctx, train_timings, stages = _train_into(args, settings, request, reference)
    try:
        generate_timings = run_stages(ctx, stages.stage_set().generate)
    finally:
        stages.close()
    record = ctx.output_of("rank") or {}
    written = _export_results(ctx, args.out, record)
    report = _write_report(args.out, ctx, [*train_timings, *generate_timings], {})
    if record.get("low_likeness"):
        print("warning: no image passed the likeness check; delivered the closest attempts")
    print(
        f"{len(written)} headshots in {args.out / 'results'}; "
        f"contact sheet and {report.name} in {args.out}"
    )
    return 0
