"""The worker's generation stages: check, crops, preview, train; generate, postprocess, rank.

``build_stages(settings)`` is the entry the worker imports (``HEADSHOTS_STAGES``). Each stage
reads and writes only through the :class:`StageContext`, so a stage re-run on another host
finds everything it needs in the shared store, and returns a JSON-friendly record.

Likeness policy of ``rank`` (what a demanding user wants: honesty over padding): only images
whose face passes the backend's same-person threshold are delivered, best first, up to the
count asked for. When *none* passes, the job still delivers the best attempts (by similarity,
or in generation order when no face is found at all), each captioned "low likeness", and the
record says ``low_likeness: true`` so the chat can offer a retry instead of silently failing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from headshots.errors import (
    ConfigurationError,
    HeadshotsError,
    JobCancelled,
    ModelMissing,
    NotFound,
    OperationalError,
    SelfieRejected,
    StoreUnavailable,
    UserError,
)
from headshots.generation.context import (
    Retention,
    Stage,
    StageContext,
    StageSet,
    lora_path,
    reference_embedding_path,
    upload_prefix,
)
from headshots.queue.contracts import JobState

if TYPE_CHECKING:
    from collections.abc import Sequence

    from PIL import Image

    from headshots.generation.body_pose import BodyPoseModel
    from headshots.generation.control import DlibLandmarks
    from headshots.generation.faces import Face, FaceAnalyzer
    from headshots.generation.faces.ranking import BackgroundDetection
    from headshots.generation.pipeline import Control, GenerationResult, ResidentPipeline
    from headshots.generation.provenance import Provenance
    from headshots.generation.safety import SafetyChecker
    from headshots.generation.upscale import SuperResolution
    from headshots.settings import Settings
    from headshots.style.presets import PromptSpec

logger = logging.getLogger(__name__)

TOKEN = "ohwx"
#: Generate a few more than asked and keep the best (FaceChain generates 10 and filters).
OVERSAMPLE = 1.25
MAX_GENERATED = 48
REFINE_STRENGTH = 0.35
_SELFIE_SUFFIXES = (".jpg", ".jpeg")
#: A quick draft's sampling steps: LCM needs 4-8 (the resident pipeline clamps to that range).
QUICK_STEPS = 6
QUICK_CAPTION = "quick draft"
#: Said when a job asks for a reference this worker cannot steer by (the log says why).
REFERENCE_UNAVAILABLE = (
    "A reference photo can't be used with this service's current model: choose "
    '"No reference photo" and try again.'
)


def quick_unavailable(settings: Settings) -> str | None:
    """Why a quick draft (LCM scheduler + LCM-LoRA) cannot be made here, or ``None``."""
    name = (settings.lcm_lora or "").strip()
    if not name:
        return "HEADSHOTS_LCM_LORA is not set"
    path = Path(name).expanduser()
    if (path.is_absolute() or name.startswith((".", "~"))) and not path.exists():
        return f"the LCM-LoRA file {path} (HEADSHOTS_LCM_LORA) does not exist"
    return None


def describe_lcm_lora(name: str, family: str | None = None) -> str:
    """What the configured LCM-LoRA holds (for ``headshots doctor``); raises if unreadable.

    A hub id is only named (it is fetched on the first quick draft).
    """
    from headshots.generation.train import LORA_WEIGHT_NAME

    path = Path(name).expanduser()
    if not path.exists():
        return f"{name} (Hugging Face; fetched on the first quick draft)"
    path = path / LORA_WEIGHT_NAME if path.is_dir() else path
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            keys = list(handle.keys())
    except Exception as exc:  # safetensors raises several types for a damaged file
        raise ModelMissing(f"cannot read the LCM-LoRA {path}: {type(exc).__name__}: {exc}") from exc
    unet_keys = [k for k in keys if k.startswith(("lora_unet_", "unet."))]
    if not any(k.endswith(("lora_down.weight", "lora_A.weight")) for k in unet_keys):
        raise ModelMissing(f"{path} holds no UNet LoRA weights (is it an LCM-LoRA?)")
    layout = "kohya" if unet_keys[0].startswith("lora_unet_") else "diffusers"
    modules = sum(k.endswith(("lora_down.weight", "lora_A.weight")) for k in unet_keys)
    on = f" on a {family} base" if family else ""
    return f"{path} ({modules} UNet modules, {layout} layout){on}: 4-8 steps, LCM scheduler"


#: Why a quick draft is not made on the undistilled klein (its steps are its quality).
KLEIN_NO_QUICK = "this FLUX.2 [klein] model is the undistilled base, which needs its full steps"


def quick_fallback_note(reason: str) -> str:
    return f"Quick draft not available here ({reason}), so these were made at full quality."


@dataclass(frozen=True)
class GenerationOptions:
    """Knobs the CLI and tests turn; the worker uses the defaults."""

    sample_steps: int | None = None  # override the preset's sampling steps
    refine_faces: bool = True
    validate_likeness: bool = True
    checkpoint_every: int = 100
    progress_every: int = 10


def _encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _encode_jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _decode(data: bytes) -> Image.Image:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


#: Sampler steps of a likeness validation sample: enough for a recognisable face to compare
#: two checkpoints by, not for a deliverable image.
VALIDATION_STEPS = 12


def validation_steps(total: int, every: int) -> set[int]:
    """The checkpoints a likeness validation runs at: the first in the second half, and the end.

    Two samples are enough to keep the better of an early and a late LoRA (a late one can
    overfit); one at every checkpoint of the second half cost a validation per 100 steps.
    """
    checkpoints = sorted({*range(every, total + 1, every), total}) if every > 0 else [total]
    late = [step for step in checkpoints if step >= total // 2]
    return {late[0], total} if late else {total}


def _job_seed(job_id: str) -> int:
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:4], "big") % 2**31


def _require(ctx: StageContext, stage: str) -> dict[str, Any]:
    record = ctx.output_of(stage)
    if record is None:
        raise OperationalError(f"stage {stage!r} has no record for job {ctx.job_id}")
    return record


class _StoreCheckpoints:
    """Training checkpoints in the shared store: a re-run on any host resumes from them."""

    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx
        self.path = f"jobs/{ctx.job_id}/checkpoints/latest.pt"

    def load(self) -> bytes | None:
        try:
            return self.ctx.read_blob(self.path)
        except NotFound:
            return None

    def save(self, data: bytes, step: int) -> None:
        self.ctx.write_blob(self.path, data, Retention.SELFIE)
        logger.info("job %s: checkpoint at step %d", self.ctx.job_id, step)


class GenerationStages:
    """The stage functions plus the resident things they share (created lazily, once)."""

    def __init__(self, settings: Settings, options: GenerationOptions | None = None) -> None:
        self.settings = settings
        self.options = options or GenerationOptions(sample_steps=settings.sample_steps)
        self._resident: ResidentPipeline | None = None
        self._analyzer: FaceAnalyzer | None = None
        self._safety: SafetyChecker | None = None
        self._safety_loaded = False
        self._super_resolution: SuperResolution | None = None
        self._provenance: Provenance | None = None
        self._landmarks: DlibLandmarks | None = None
        self._body_pose: BodyPoseModel | None = None

    # --- resident things ----------------------------------------------------------------

    @property
    def resident(self) -> ResidentPipeline:
        if self._resident is None:
            from headshots.generation.pipeline import ResidentPipeline

            self._resident = ResidentPipeline(self.settings)
        return self._resident

    @property
    def analyzer(self) -> FaceAnalyzer:
        if self._analyzer is None:
            from headshots.generation.faces import load_analyzer

            self._analyzer = load_analyzer(self.settings)
        return self._analyzer

    @property
    def safety(self) -> SafetyChecker | None:
        """The output check (``None`` only when an operator switched it off)."""
        if not self._safety_loaded:
            from headshots.generation.safety import load_safety_checker

            self._safety = load_safety_checker(self.settings, self.resident.source.path)
            self._safety_loaded = True
        return self._safety

    @property
    def super_resolution(self) -> SuperResolution | None:
        """The operator's super-resolution network (``HEADSHOTS_SUPER_RESOLUTION``), or None."""
        path = self.settings.super_resolution
        if path is None:
            return None
        if self._super_resolution is None:
            from headshots.generation.models import resolve_device
            from headshots.generation.upscale import load_super_resolution

            device = str(resolve_device(self.settings))
            self._super_resolution = load_super_resolution(Path(path), device=device)
        return self._super_resolution

    @property
    def provenance(self) -> Provenance:
        """XMP on every delivered file, and a C2PA manifest when the operator set a signer."""
        if self._provenance is None:
            from headshots.generation.provenance import Provenance

            self._provenance = Provenance.from_settings(self.settings)
        return self._provenance

    @property
    def landmarks(self) -> DlibLandmarks:
        """dlib's 68 face landmarks: the pose of a reference photo (loaded on first use)."""
        if self._landmarks is None:
            from headshots.generation.control import DlibLandmarks

            self._landmarks = DlibLandmarks()
        return self._landmarks

    @property
    def body_pose(self) -> BodyPoseModel | None:
        """The operator's body-pose model (``HEADSHOTS_POSE_MODEL``) for a reference photo's
        body, or None: the body is derived from the face."""
        path = self.settings.pose_model
        if path is None:
            return None
        if self._body_pose is None:
            from headshots.generation.body_pose import BodyPoseModel

            self._body_pose = BodyPoseModel.load(Path(path))
        return self._body_pose

    def close(self) -> None:
        self._super_resolution = None
        self._landmarks = None
        self._body_pose = None
        if self._resident is not None:
            self._resident.close()
        self._resident = None
        self._analyzer = None
        self._safety, self._safety_loaded = None, False

    def stage_set(self) -> StageSet:
        return StageSet(
            train=[
                Stage("check", JobState.CHECKING, self.check),
                Stage("crops", JobState.CHECKING, self.crops),
                Stage("preview", JobState.TRAINING, self.preview),
                Stage("train", JobState.TRAINING, self.train),
            ],
            generate=[
                Stage("generate", JobState.GENERATING, self.generate),
                Stage("postprocess", JobState.GENERATING, self.postprocess),
                Stage("rank", JobState.GENERATING, self.rank),
            ],
            close=self.close,
            ready=self.ready,
        )

    def ready(self) -> None:
        """Find the base model and load the output check now, not at a job's end.

        Found by bench/soak.py: a checker that could not load (``auto`` with the hub offline)
        let the worker train and generate every job and then fail it at the output check.
        """
        source = self.resident.source
        checker = self.safety
        logger.info(
            "stages ready: base model %s, output check %s",
            source.path,
            checker.name if checker is not None else "OFF",
        )

    # --- train stages ---------------------------------------------------------------------

    def check(self, ctx: StageContext) -> dict[str, Any]:
        """Re-check the stored selfies; keep the usable ones and the person's reference face."""
        from headshots.generation.faces import check_selfie_set, check_selfies, reference_embedding

        paths = [
            path
            for path in ctx.list_blobs(upload_prefix(ctx.request.upload_id))
            if path.lower().endswith(_SELFIE_SUFFIXES)
        ]
        if not paths:
            raise NotFound(
                "Your photos are no longer stored (they expire after a day): "
                "please send them again."
            )
        # A reference that cannot be used fails the job now, not after the LoRA has trained.
        control = self._control(ctx)
        ctx.progress(None, f"checking {len(paths)} photos")
        analyzer = self.analyzer
        ctx.check_cancelled()
        # Several photos at once where the backend gains from it (the verdicts are the same).
        verdicts = check_selfies(
            [ctx.read_blob(path) for path in paths], analyzer, check_cancelled=ctx.check_cancelled
        )
        verdict = check_selfie_set(
            verdicts,
            same_person_threshold=analyzer.same_person_threshold,
            min_count=self.settings.min_selfies,
            max_count=self.settings.max_selfies,
        )
        if not verdict.usable:
            raise SelfieRejected(verdict.summary(), reasons=list(verdict.reasons))
        by_index = {v.index: v for v in verdicts}
        accepted = [by_index[i] for i in verdict.accepted]
        reference = verdict.reference
        if reference is None:
            reference = reference_embedding(
                [v.face.embedding for v in accepted if v.face is not None]
            )
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(reference, dtype=np.float32))
        ctx.write_blob(reference_embedding_path(ctx.job_id), buffer.getvalue(), Retention.LORA)
        return {
            "accepted": list(verdict.accepted),
            "rejected": {str(k): v for k, v in verdict.rejected.items()},
            "summary": verdict.summary(),
            "backend": getattr(analyzer, "name", "unknown"),
            # Boxes only: embeddings stay out of records (the reference is in the store).
            "selfies": [
                {
                    "index": v.index,
                    "path": paths[v.index - 1],
                    "box": list(v.face.box) if v.face else None,
                    "glasses": v.glasses,
                }
                for v in accepted
            ],
            "reference": reference_embedding_path(ctx.job_id),
            **({"control": control[1]} if control is not None else {}),
        }

    def crops(self, ctx: StageContext) -> dict[str, Any]:
        """Cut head-and-shoulders and close-up crops at the model's resolution."""
        from headshots.generation.faces import Face, decode_image, make_training_crops
        from headshots.style.presets import training_caption

        check = _require(ctx, "check")
        resolution = self.resident.native_resolution
        crops: list[dict[str, Any]] = []
        for selfie in check["selfies"]:
            ctx.check_cancelled()
            image = decode_image(ctx.read_blob(selfie["path"]))
            box = selfie["box"]
            face = Face(
                box=tuple(box),
                landmarks=np.zeros((5, 2), np.float32),
                score=1.0,
                embedding=np.zeros(0, np.float32),
            )
            # The person's stated features (and glasses where the check saw them in this very
            # photo) go into the caption, so the LoRA does not bind them to the token.
            caption = training_caption(
                ctx.request.style.subject_class,
                ctx.request.style.attributes,
                token=TOKEN,
                glasses_in_photo=selfie.get("glasses"),
            )
            examples = make_training_crops(
                image,
                face,
                resolution=resolution,
                subject_class=ctx.request.style.subject_class,
                token=TOKEN,
                caption=caption,
            )
            for number, example in enumerate(examples):
                path = f"jobs/{ctx.job_id}/crops/{selfie['index']:02d}_{number}.jpg"
                ctx.write_blob(path, _encode_jpeg(example.image), Retention.SELFIE)
                crops.append({"path": path, "caption": example.caption})
        return {"crops": crops, "resolution": resolution}

    def preview(self, ctx: StageContext) -> dict[str, Any]:
        """Publish an instant IP-Adapter FaceID preview when configured; say why not otherwise.

        A preview is a courtesy: whatever goes wrong making it (a missing or corrupt adapter
        file, a shape mismatch, the output check) is logged and recorded, and the paid job goes
        on. Only a cancellation stops the job here.
        """
        from headshots.generation.postprocess import encode_with_provenance
        from headshots.generation.preview import make_preview, preview_unavailable

        reason = preview_unavailable(self.settings, self.analyzer, self.resident.source.family)
        if reason is not None:
            logger.info("job %s: no instant preview: %s", ctx.job_id, reason)
            return {"skipped": reason}
        spec = self._spec(ctx, count=1)
        try:
            embedding = np.load(io.BytesIO(ctx.read_blob(reference_embedding_path(ctx.job_id))))
            made = make_preview(self.resident, spec, embedding, check_cancelled=ctx.check_cancelled)
            flagged = self.safety is not None and self.safety.flags([made.image])[0]
        except (JobCancelled, StoreUnavailable):
            raise  # the job's own business: cancelled, or the store it needs is down
        except Exception as exc:  # any failure of the courtesy preview, whatever its type
            logger.warning("job %s: preview failed: %s", ctx.job_id, exc, exc_info=True)
            return {"skipped": f"the preview failed: {type(exc).__name__}: {exc}", "failed": True}
        if flagged:
            logger.warning("job %s: output check withheld the preview", ctx.job_id)
            return {
                "skipped": "the preview was withheld by our safety check and not sent",
                "withheld": True,
                "output_check": self.safety.name if self.safety is not None else None,
                **made.record,
            }
        path = f"jobs/{ctx.job_id}/preview.png"
        metadata = {
            "kind": "preview",
            "preset": spec.preset,
            "seed": spec.seeds[0],
            "model": self.resident.source.name,
        }
        ctx.write_blob(path, encode_with_provenance(made.image, metadata), Retention.RESULT)
        ctx.publish_preview(
            path,
            "A quick preview while your personal model trains. "
            "The final photos look more like you.",
        )
        return {
            "path": path,
            "seed": spec.seeds[0],
            "backend": getattr(self.analyzer, "name", "unknown"),
            "output_check": self.safety.name if self.safety is not None else None,
            **made.record,
        }

    def train(self, ctx: StageContext) -> dict[str, Any]:
        """Train the person's LoRA (resuming from the store's checkpoint) and store it."""
        from headshots.generation.faces import TrainingExample
        from headshots.generation.train import (
            LORA_WEIGHT_NAME,
            TrainConfig,
            TrainProgress,
            free_device_memory,
            train_lora,
        )

        check = _require(ctx, "check")
        crops = _require(ctx, "crops")
        examples = [
            TrainingExample(_decode(ctx.read_blob(c["path"])), c["caption"]) for c in crops["crops"]
        ]
        resident = self.resident
        config = TrainConfig.for_family(
            resident.source.family,
            photos=len(check["accepted"]),
            resolution=int(crops["resolution"]),
            steps=self.settings.train_steps,
            batch_size=self.settings.train_batch_size,
            free_memory=free_device_memory(resident.pipe.device),
            device_type=resident.pipe.device.type,
            checkpointing=self.settings.train_gradient_checkpointing,
            early_stopping=self.settings.train_early_stopping,
            seed=_job_seed(ctx.job_id),
            checkpoint_every=self.options.checkpoint_every,
            progress_every=self.options.progress_every,
        )

        def on_progress(progress: TrainProgress) -> None:
            ctx.progress(progress.percent, f"training {int(progress.percent)}%")

        validate = self._likeness_validator(ctx, config) if self.options.validate_likeness else None
        ctx.progress(0.0, "training 0%")
        with tempfile.TemporaryDirectory(prefix="headshots-lora-") as tmp:
            result = train_lora(
                resident.pipe,
                examples,
                config,
                output_dir=Path(tmp),
                checkpoints=_StoreCheckpoints(ctx),
                on_progress=on_progress,
                check_cancelled=ctx.check_cancelled,
                validate=validate,
                compiled=resident.train_call,
            )
            ctx.write_blob(
                lora_path(ctx.job_id), (Path(tmp) / LORA_WEIGHT_NAME).read_bytes(), Retention.LORA
            )
        record = result.to_record()
        record.update(
            lora=lora_path(ctx.job_id),
            config=dataclasses.asdict(config),
            model=resident.source.name,
        )
        return record

    def _likeness_validator(self, ctx: StageContext, config: Any) -> Any:
        """Score a checkpoint by how much two quick samples look like the person (None: no face).

        Runs at two checkpoints only (:func:`validation_steps`), with :data:`VALIDATION_STEPS`
        sampler steps and the prompt encoded once: on the H200 it cost ~18 s of a 74 s train
        stage when it ran at every checkpoint of the second half with 20 steps.
        """
        import torch

        from headshots.generation.prompts import encode_prompts

        reference = np.load(io.BytesIO(ctx.read_blob(reference_embedding_path(ctx.job_id))))
        resident = self.resident
        analyzer = self.analyzer
        prompt = f"portrait photo of {TOKEN} {ctx.request.style.subject_class}, professional photo"
        when = validation_steps(config.steps, config.checkpoint_every)
        # The text encoders do not train: one encoding, on the base pipeline, serves every call.
        encoded = encode_prompts(resident.pipe, prompt, "", family=resident.source.family)

        family = resident.source.family
        steps, guidance = VALIDATION_STEPS, 7.0
        if family == "flux2-klein":
            from headshots.generation import klein

            # klein base's own guidance; the distilled klein's 4 steps and none.
            steps, guidance = klein.sampling(klein.is_distilled(resident.pipe), steps, 4.0)

        def validate(unet: Any, step: int) -> float | None:
            if step not in when:
                return None
            base = resident.pipe
            name = "transformer" if family == "flux2-klein" else "unet"
            pipe = type(base)(**{**base.components, name: unet})
            pipe.set_progress_bar_config(disable=True)
            size = resident.native_resolution
            with torch.no_grad():
                images = pipe(
                    **encoded.pipe_kwargs(),
                    num_inference_steps=steps,
                    guidance_scale=guidance,
                    width=size,
                    height=size,
                    num_images_per_prompt=2,
                    generator=[torch.Generator().manual_seed(seed) for seed in (1, 2)],
                ).images
            scores = [
                faces[0].similarity(reference)
                for faces in (analyzer.analyze(image) for image in images)
                if faces
            ]
            return float(np.mean(scores)) if scores else None

        return validate

    # --- generate stages ------------------------------------------------------------------

    def _spec(self, ctx: StageContext, *, count: int, quick: bool = False) -> PromptSpec:
        from headshots.style.presets import build_prompt_spec

        style = ctx.request.style
        if ctx.request.kind == "more_like":
            style = style.model_copy(update={"seed": None})  # new seeds, from this job's id
        steps = self.options.sample_steps
        return build_prompt_spec(
            style,
            job_id=ctx.job_id,
            native_resolution=self.resident.native_resolution,
            count=count,
            token=TOKEN,
            steps=(steps or QUICK_STEPS) if quick else steps,
            scheduler="lcm" if quick else None,
            output_long_side=self.settings.output_long_side,
            family=self.resident.source.family,
        )

    def _quick(self, ctx: StageContext) -> tuple[bool, str | None]:
        """(use LCM, note for the user) for this job's ``style.quick``."""
        if not ctx.request.style.quick:
            return False, None
        if self.resident.source.family == "flux2-klein":
            from headshots.generation.klein import is_distilled

            # klein drafts with its own few steps (the step-distilled variant), no LCM-LoRA.
            reason = None if is_distilled(self.resident.pipe) else KLEIN_NO_QUICK
        else:
            reason = quick_unavailable(self.settings)
        if reason is not None:
            logger.info("job %s: quick draft unavailable: %s", ctx.job_id, reason)
            return False, quick_fallback_note(reason)
        return True, None

    def _lora(self, ctx: StageContext) -> bytes:
        try:
            return ctx.read_blob(lora_path(ctx.train_job_id))
        except NotFound:
            raise NotFound(
                "Your personal model is no longer stored (models are deleted after "
                f"{self.settings.lora_ttl_days:g} days): please send your photos again."
            ) from None

    def _variation_source(self, ctx: StageContext) -> tuple[Image.Image, dict[str, Any]] | None:
        """For "More like #N": the chosen headshot of the earlier job, and where it came from."""
        request = ctx.request
        if request.kind != "more_like" or request.like_rank is None or not request.lora_job_id:
            return None
        earlier = ctx.output_of_job(request.lora_job_id, "rank")
        chosen = next(
            (r for r in (earlier or {}).get("results", []) if int(r["rank"]) == request.like_rank),
            None,
        )
        if chosen is None:
            raise NotFound(
                f"Headshot #{request.like_rank} of that set is no longer stored "
                f"(results are kept {self.settings.results_ttl_days:g} days): try a new style."
            )
        image = _decode(ctx.read_blob(str(chosen["path"])))
        source = {"job": request.lora_job_id, "rank": request.like_rank, "seed": chosen.get("seed")}
        return image, source

    def _control(self, ctx: StageContext) -> tuple[Control, dict[str, Any]] | None:
        """The reference photo's control image at the generation size, stored with the job.

        The same photo gives byte-identical control images, so every member of a team whose kit
        has a reference is steered alike. The photo passes the output check first: a reference
        is a picture someone sent, and it shapes what is drawn on a real person's face.
        """
        choice = ctx.request.style.reference
        if choice is None:
            return None
        from headshots.generation.control import make_control_image
        from headshots.generation.controlnet import require_controlnet
        from headshots.generation.pipeline import Control

        try:
            require_controlnet(self.settings, self.resident.source.family, choice.hint)
        except ConfigurationError as exc:
            logger.error("job %s: reference photo refused: %s", ctx.job_id, exc)
            raise UserError(REFERENCE_UNAVAILABLE) from exc
        try:
            data = ctx.read_blob(choice.path)
        except NotFound:
            data = b""
        if hashlib.sha256(data).hexdigest() != choice.sha256:
            raise NotFound(
                "Your reference photo is no longer stored (photos are kept "
                f"{self.settings.selfie_ttl_hours:g} hours): send it again, or go on without one."
            )
        reference = _decode(data)
        checker = self.safety
        if checker is not None and checker.flags([reference])[0]:
            raise UserError(
                "Your reference photo did not pass the content check, so it cannot be used: "
                "send another one, or go on without one."
            )
        spec = self._spec(ctx, count=1)
        made = make_control_image(
            reference,
            choice.hint,
            (spec.width, spec.height),
            landmarks=self.landmarks,
            body=self.body_pose if choice.hint == "pose" else None,
        )
        path = f"jobs/{ctx.job_id}/control.png"
        ctx.write_blob(path, _encode_png(made.image), Retention.SELFIE)
        strength = self.settings.reference_strength
        control = Control(
            hint=choice.hint,
            image=made.image,
            scale=self.settings.controlnet_scale,
            # Strength 1 redraws everything: the control image alone steers (no img2img).
            init=made.fitted if strength < 1.0 else None,
            strength=strength,
        )
        record = {
            **made.to_record(),
            "image": path,
            "reference": choice.path,
            "reference_sha256": choice.sha256,
            "size": [spec.width, spec.height],
        }
        return control, record

    def generate(self, ctx: StageContext) -> dict[str, Any]:
        """Generate the images of the request with the person's LoRA on the resident base.

        A quick draft (``style.quick``) samples in 4-8 steps with the LCM scheduler and the
        operator's LCM-LoRA; without one, or when it cannot be used, the job is made at full
        quality and the record and the chat say why.
        """
        count = ctx.request.style.count
        wanted = min(MAX_GENERATED, max(count, math.ceil(count * OVERSAMPLE)))
        quick, note = self._quick(ctx)
        lora = self._lora(ctx)
        variation = self._variation_source(ctx)
        control = self._control(ctx)

        def progress(done: float, total: int) -> None:
            ctx.progress(100.0 * done / total, f"generating {int(done)}/{total}")

        def run(use_lcm: bool) -> GenerationResult:
            return self.resident.generate(
                self._spec(ctx, count=wanted, quick=use_lcm),
                lora=lora,
                adapter_name=f"job_{ctx.job_id}",
                progress=progress,
                check_cancelled=ctx.check_cancelled,
                init_image=variation[0] if variation else None,
                control=control[0] if control else None,
            )

        try:
            result = run(quick)
        except Exception as exc:
            if not quick or (isinstance(exc, HeadshotsError) and not isinstance(exc, ModelMissing)):
                raise
            # The LCM-LoRA did not load (wrong family, corrupt, not cached): the user still
            # gets their headshots, at full quality, and is told why.
            logger.warning("job %s: quick draft failed, full quality instead: %s", ctx.job_id, exc)
            quick, note = False, quick_fallback_note(f"the LCM-LoRA could not be used: {exc}")
            result = run(False)
        if variation:
            result.record["variation_of"] = variation[1]
        if control:
            result.record["control"] = {**result.record.get("control", {}), **control[1]}
        if ctx.request.style.quick:
            result.record["quick"] = {"used": quick, "note": note}
        images = []
        for generated in result.images:
            path = f"jobs/{ctx.job_id}/raw/{generated.index:02d}.png"
            ctx.write_blob(path, _encode_png(generated.image), Retention.SELFIE)
            images.append({"path": path, "seed": generated.seed, "index": generated.index})
        return {"images": images, "generation": result.record}

    def postprocess(self, ctx: StageContext) -> dict[str, Any]:
        """Upscale to the delivered size with a tiled detail pass, then face refine, grade, grain.

        Both img2img passes run with the person's LoRA: at reduced weight for the detail pass
        (texture without drift), at full weight for the face.
        """
        from headshots.generation.models import denoiser
        from headshots.generation.postprocess import (
            PostprocessOptions,
            diffusers_img2img,
            postprocess_image,
        )
        from headshots.generation.prompts import encode_prompts
        from headshots.generation.upscale import DetailSettings

        generated = _require(ctx, "generate")
        settings = generated["generation"]
        detail = DetailSettings()
        output_size = (
            (int(settings["output_width"]), int(settings["output_height"]))
            if settings.get("output_width")
            else None
        )
        # A quick draft is upscaled and graded only: the detail pass and the face refine sample
        # at the job's steps and cfg, which for LCM (4-8 steps, cfg <= 2) need the LCM scheduler
        # and LoRA, and would undo the point of a draft.
        quick = bool((settings.get("quick") or {}).get("used"))
        options = PostprocessOptions(
            colour_grade=settings["colour_grade"],
            film_grain=bool(settings["film_grain"]),
            output_size=output_size,
            aspect_ratio=settings["aspect_ratio"],
            refine=self.options.refine_faces and not quick,
            detail=detail,
        )
        resident = self.resident
        analyzer = self.analyzer
        super_resolution = self.super_resolution
        adapter = f"job_{ctx.job_id}"
        steps = int(settings["steps"])
        cfg = float(settings["cfg"])
        outputs = []
        early = self._background_detection(ctx)
        with early, resident.adapters(self._lora(ctx), adapter) as pipe:
            img2img_pipe = resident.img2img
            encoded = encode_prompts(
                img2img_pipe,
                settings["prompt"],
                settings["negative_prompt"],
                family=resident.source.family,
            )

            def lora_weight(scale: float) -> None:
                if getattr(denoiser(pipe), "peft_config", None):
                    pipe.set_adapters([adapter], adapter_weights=[scale])

            for number, item in enumerate(generated["images"]):
                ctx.check_cancelled()
                ctx.progress(100.0 * number / len(generated["images"]), "finishing touches")
                seed = int(item["seed"])
                tiles = diffusers_img2img(
                    img2img_pipe,
                    prompts=encoded,
                    steps=min(steps, detail.steps),
                    cfg=cfg,
                    seed=seed,
                    strength=detail.strength,
                )
                face = diffusers_img2img(
                    img2img_pipe,
                    prompts=encoded,
                    steps=steps,
                    cfg=cfg,
                    seed=seed,
                    strength=REFINE_STRENGTH,
                )

                def detail_tiles(
                    batch: list[Image.Image], first: int, _run: Any = tiles
                ) -> list[Image.Image]:
                    ctx.check_cancelled()
                    lora_weight(detail.lora_scale)
                    redrawn: list[Image.Image] = _run.batch(batch, first)
                    return redrawn

                def refine(crop: Image.Image, _run: Any = face) -> Image.Image:
                    lora_weight(1.0)
                    result: Image.Image = _run.run(crop)
                    return result

                image, applied = postprocess_image(
                    _decode(ctx.read_blob(item["path"])),
                    options,
                    analyzer=analyzer,
                    img2img=None if quick else refine,
                    detail=None if quick else detail_tiles,
                    super_resolution=super_resolution,
                    refine_resolution=resident.native_resolution,
                    seed=seed,
                )
                lora_weight(1.0)
                # Final: the rank stage's face analysis starts while the next one is made.
                early.submit(image)
                path = f"jobs/{ctx.job_id}/post/{item['index']:02d}.png"
                ctx.write_blob(path, _encode_png(image), Retention.SELFIE)
                outputs.append({**item, "path": path, "applied": applied})
            faces = _save_faces(ctx, analyzer, early.results())
        return {"images": outputs, "prompt_tokens": encoded.to_record(), "faces": faces}

    def _background_detection(self, ctx: StageContext) -> BackgroundDetection | _NoDetection:
        """Face analysis for ``rank`` alongside postprocessing; none when it would not rank.

        ``rank`` detects faces only to compare them with the person's reference embedding.
        """
        from headshots.generation.faces.ranking import BackgroundDetection

        try:
            ctx.read_blob(reference_embedding_path(ctx.train_job_id))
        except NotFound:
            return _NoDetection()
        return BackgroundDetection(self.analyzer)

    def rank(self, ctx: StageContext) -> dict[str, Any]:
        """Rank by likeness, write the deliverables with provenance, and a contact sheet."""
        from headshots.generation.faces import contact_sheet, rank_by_likeness
        from headshots.generation.faces.ranking import detect_faces
        from headshots.style.presets import get_preset

        ctx.progress(None, "ranking")
        generation = _require(ctx, "generate")["generation"]
        items = _require(ctx, "postprocess")["images"]
        # The output check comes first: a flagged image is never ranked, stored or sent.
        images = [_decode(ctx.read_blob(item["path"])) for item in items]
        withheld = self._flagged(ctx, images)
        items = [item for number, item in enumerate(items) if number not in withheld]
        images = [image for number, image in enumerate(images) if number not in withheld]
        count = ctx.request.style.count
        analyzer = self.analyzer
        threshold = analyzer.same_person_threshold
        try:
            reference: np.ndarray | None = np.load(
                io.BytesIO(ctx.read_blob(reference_embedding_path(ctx.train_job_id)))
            )
        except NotFound:
            reference = None

        picks: list[tuple[int, float | None, float | None]] = []  # (item index, score, similarity)
        low_likeness = False
        passed: int | None = None
        detected: list[list[Face]] | None = None
        if reference is not None:
            # Each image is detected once (while postprocessing made the next, where it could);
            # the ranking, its fallback and the shortfall reuse it.
            early = _load_faces(ctx, _require(ctx, "postprocess"), analyzer, reference)
            detected = (
                detect_faces(images, analyzer)
                if early is None
                else [faces for number, faces in enumerate(early) if number not in withheld]
            )
            ranked = rank_by_likeness(images, reference, analyzer, top_k=count, detected=detected)
            picks = [(r.index, r.score, r.similarity) for r in ranked]
            passed = len(picks)
            if not picks:
                low_likeness = True
                # Nobody passed: the closest attempts, however far (-1 is the cosine floor).
                ranked = rank_by_likeness(
                    images, reference, analyzer, top_k=count, min_similarity=-1.0, detected=detected
                )
                picks = [(r.index, r.score, r.similarity) for r in ranked]
        if not picks:
            low_likeness = reference is not None
            picks = [(index, None, None) for index in range(min(count, len(images)))]

        title = get_preset(generation["preset"]).title
        quick = generation.get("quick") or {}
        quick_used = bool(quick.get("used"))
        results = []
        sheet_images: list[Image.Image] = []
        labels: list[str] = []
        for rank, (index, score, similarity) in enumerate(picks, start=1):
            item = items[index]
            # Words a person understands; the seed and the number stay in the record and the
            # file's metadata (and behind "More like #N").
            caption = f"#{rank} · {title}"
            if quick_used:
                caption += f" · {QUICK_CAPTION}"
            if reference is not None:
                caption += f" · {likeness_words(similarity, threshold, low=low_likeness)}"
            path = f"jobs/{ctx.job_id}/results/{rank:02d}.png"
            metadata = {
                "preset": generation["preset"],
                "seed": item["seed"],
                "model": generation.get("model"),
                "rank": rank,
                "similarity": similarity,
                "job_id": ctx.job_id,
                "size": list(images[index].size),
                # Every word of the style reached the model (compel, no 77-token cut).
                "prompt_tokens": generation.get("prompt_tokens"),
                "negative_prompt_tokens": generation.get("negative_prompt_tokens"),
                "tokens_dropped": generation.get("tokens_dropped"),
            }
            data = self.provenance.png(images[index], metadata, title=f"{title} headshot #{rank}")
            ctx.write_blob(path, data, Retention.RESULT)
            results.append(
                {
                    "path": path,
                    "rank": rank,
                    "score": score,
                    "seed": item["seed"],
                    "caption": caption,
                    "similarity": similarity,
                }
            )
            sheet_images.append(images[index])
            labels.append(f"#{rank}" + (f" {similarity:.2f}" if similarity is not None else ""))

        sheet_path: str | None = None
        if sheet_images:
            sheet_path = f"jobs/{ctx.job_id}/contact_sheet.jpg"
            sheet = self.provenance.mark(
                contact_sheet(sheet_images, labels), title=f"{title} contact sheet"
            )
            ctx.write_blob(sheet_path, sheet, Retention.RESULT)
        shortfall: dict[str, Any] = {"ordered": count, "passed": passed}
        if passed is not None and passed < count:
            # No silent shortfall: say how many passed and why the others did not.
            # The closest attempts delivered in their place are not among "the others".
            shortfall.update(
                missing=count - passed,
                reasons=likeness_failures(
                    images, reference, analyzer, kept={p[0] for p in picks}, detected=detected
                ),
            )
        else:
            shortfall["missing"] = 0
        if withheld and shortfall["missing"]:
            shortfall["reasons"] = {**shortfall.get("reasons", {}), "withheld": len(withheld)}
        record = {
            "results": results,
            "contact_sheet": sheet_path,
            "low_likeness": low_likeness,
            "likeness_threshold": threshold,
            "generated": len(images) + len(withheld),
            "dropped": len(images) - len(results),
            "withheld": len(withheld),
            "output_check": self.safety.name if self.safety is not None else None,
            **shortfall,
            "delivered_size": list(images[picks[0][0]].size) if picks else None,
            "generation": generation,
        }
        record.update(_rank_message(record, withheld=len(withheld), quick_note=quick.get("note")))
        return record

    def _flagged(self, ctx: StageContext, images: list[Image.Image]) -> set[int]:
        """Indices of the images the output check flags (they are never delivered)."""
        checker = self.safety
        if checker is None or not images:
            return set()
        ctx.progress(None, "checking the results")
        flagged = {number for number, flag in enumerate(checker.flags(images)) if flag}
        if flagged:
            logger.warning(
                "job %s: output check withheld %d of %d", ctx.job_id, len(flagged), len(images)
            )
        return flagged


def _rank_message(
    record: dict[str, Any], *, withheld: int, quick_note: str | None
) -> dict[str, Any]:
    """The record's ``message`` (the chat shows it instead of the shortfall text, if any).

    Withheld images are said in the shortfall message when there is one; otherwise on their
    own. Why a quick draft was not possible is always said, before the rest.
    """
    from headshots.queue.deliver import shortfall_message

    parts: list[str] = [quick_note] if quick_note else []
    if withheld and not record.get("missing"):
        parts.append(_withheld_message(withheld))
    elif parts:
        # The chat shows the message instead of the shortfall text: keep that text in it.
        parts.append(shortfall_message(record) or "")
    text = " ".join(part for part in parts if part)
    return {"message": text} if text else {}


def _withheld_message(count: int) -> str:
    images = "image was" if count == 1 else "images were"
    return (
        f"{count} generated {images} withheld by our safety check and will not be sent. "
        "Nothing you asked for caused it; it can happen by chance."
    )


#: How far above the same-person threshold a similarity reads as "strong" (cosine units; about
#: a third of the gap between the threshold and a near-identical face on either backend).
STRONG_LIKENESS_MARGIN = 0.15


def likeness_words(similarity: float | None, threshold: float, *, low: bool) -> str:
    """The caption's likeness: strong, good, or low (a closest attempt that did not pass)."""
    if low or similarity is None or similarity < threshold:
        return "low likeness"
    return (
        "strong likeness" if similarity >= threshold + STRONG_LIKENESS_MARGIN else "good likeness"
    )


class _NoDetection:
    """Stands in for :class:`BackgroundDetection` when ``rank`` will not need faces."""

    def __enter__(self) -> _NoDetection:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def submit(self, image: Image.Image) -> None:
        return None

    def results(self) -> None:
        return None


def _save_faces(
    ctx: StageContext, analyzer: FaceAnalyzer, found: list[list[Face]] | None
) -> str | None:
    """Store the faces postprocessing found for ``rank``; their path, or None without any."""
    if found is None:
        return None
    path = f"jobs/{ctx.job_id}/post/faces.json"
    data = {
        "backend": getattr(analyzer, "name", "unknown"),
        "images": [[face.to_json() for face in faces] for faces in found],
    }
    ctx.write_blob(path, json.dumps(data).encode(), Retention.SELFIE)
    return path


def _load_faces(
    ctx: StageContext, post: dict[str, Any], analyzer: FaceAnalyzer, reference: np.ndarray
) -> list[list[Face]] | None:
    """The faces postprocessing found, when they can stand for ``rank``'s own detection.

    Not when another backend found them (its embeddings do not compare with this reference,
    e.g. postprocess ran on a worker with the insightface pack and rank on one without), nor
    when they do not match the images one for one.
    """
    from headshots.generation.faces import Face

    path = post.get("faces")
    if not path:
        return None
    try:
        data = json.loads(ctx.read_blob(path))
    except NotFound:
        return None
    found = [[Face.from_json(face) for face in faces] for faces in data.get("images", [])]
    sizes = {face.embedding.shape for faces in found for face in faces}
    if (
        data.get("backend") != getattr(analyzer, "name", "unknown")
        or len(found) != len(post["images"])
        or not sizes <= {np.shape(reference)}
    ):
        logger.info("job %s: faces of postprocess not reusable, detecting again", ctx.job_id)
        return None
    return found


def likeness_failures(
    images: list[Image.Image],
    reference: np.ndarray | None,
    analyzer: FaceAnalyzer,
    *,
    kept: set[int],
    detected: Sequence[list[Face]] | None = None,
) -> dict[str, int]:
    """Why the images not in ``kept`` were not delivered, counted by reason.

    The same tests as ``rank_by_likeness`` in the same order: one prominent face, of sensible
    size, similar enough; what passes all three but was not kept was a near-duplicate.
    ``detected``: the faces ranking found in ``images``, so nothing is detected twice.
    """
    from headshots.generation.faces.prominence import MIN_FACE_FRACTION, prominent_faces

    reasons = {"no_face": 0, "several_faces": 0, "face_too_small": 0, "low_likeness": 0}
    reasons["near_duplicate"] = 0
    for index, image in enumerate(images):
        if index in kept:
            continue
        rgb = image.convert("RGB")
        found = detected[index] if detected is not None else analyzer.analyze(rgb)
        faces = prominent_faces(found, analyzer)
        if not faces:
            reasons["no_face"] += 1
        elif len(faces) > 1:
            reasons["several_faces"] += 1
        elif max(faces[0].width, faces[0].height) / min(rgb.size) < MIN_FACE_FRACTION:
            reasons["face_too_small"] += 1
        elif reference is None or faces[0].similarity(reference) < analyzer.same_person_threshold:
            reasons["low_likeness"] += 1
        else:
            reasons["near_duplicate"] += 1
    return {reason: number for reason, number in reasons.items() if number}


def build_stages(settings: Settings, options: GenerationOptions | None = None) -> StageSet:
    """The worker's stages; resident pipeline and face analyzer are shared across jobs."""
    return GenerationStages(settings, options).stage_set()
