"""DreamBooth-style LoRA fine-tuning of the UNet (or FLUX.2 transformer) on one person's crops.

Follows the diffusers DreamBooth-LoRA recipe (peft ``LoraConfig`` on ``to_k/to_q/to_v/to_out.0``
added with ``unet.add_adapter``; saved with ``save_lora_weights``) with what a service needs on
top: VAE latents and text embeddings computed once per job, a typed config, progress and cancel
hooks between steps, and checkpoints (LoRA + optimizer + step + RNG) so a job killed on one host
resumes on another from the shared store.

The adapter trains on the resident pipeline's own UNet, under its own adapter name
(:data:`TRAINING_ADAPTER`), with every base weight frozen: a copy of the UNet cost 9.3 s and
3.3 GB on an SD1.5-shaped model on CPU (~5 GB of GPU memory for SDXL). Whatever way the run ends
(done, cancelled, an exception) :func:`_training_adapter` puts the UNet back as it found it:
adapter gone, peft wrappers removed, ``requires_grad``/train-mode flags and gradient
checkpointing as they were, so the next job's base output is bit-identical. A per-UNet lock
(:func:`unet_lock`, also taken by the resident pipeline while a job's LoRA is loaded) keeps a
generation job from loading its LoRA into a UNet that is being trained.

FLUX.2 [klein] trains its transformer the way diffusers' ``train_dreambooth_lora_flux2_klein.py``
does: LoRA on the attention projections of both block kinds (:func:`lora_target_modules`), latents
2x2-patchified and normalised by the VAE's batch-norm statistics, flow matching (noisy =
(1 - sigma) x + sigma noise, target = noise - x) with timesteps drawn uniformly from the
scheduler's ("none" weighting, the example's default), and the LoRA saved with
``Flux2KleinPipeline.save_lora_weights``. Its text encoder leaves the GPU once the captions
are encoded, and comes back when training ends. It trains eagerly (no compiled call).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import os
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict

from headshots.generation.models import (
    MODEL_LOADS,
    DiffusersPipeline,
    ModelFamily,
    denoiser,
    pipeline_class,
)

if TYPE_CHECKING:
    import torch
    from PIL import Image

logger = logging.getLogger(__name__)

LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
LORA_TARGET_MODULES = ("to_k", "to_q", "to_v", "to_out.0")


def lora_target_modules(model: Any) -> list[str]:
    """The modules the LoRA wraps: the attention projections of a UNet; on a FLUX.2
    transformer also its single-stream blocks (their fused ``to_qkv_mlp_proj`` and
    ``attn.to_out``), as diffusers' ``train_dreambooth_lora_flux2_klein.py`` does by default."""
    single = int(getattr(model.config, "num_single_layers", 0) or 0)
    if not single:
        return list(LORA_TARGET_MODULES)
    return [
        *LORA_TARGET_MODULES,
        "to_qkv_mlp_proj",
        *(f"single_transformer_blocks.{i}.attn.to_out" for i in range(single)),
    ]


#: The adapter name training uses on the resident UNet (job LoRAs load as ``job_<id>``, ``lcm``).
TRAINING_ADAPTER = "headshots_training"
_CHECKPOINT_FORMAT = 1

_UNET_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_UNET_LOCKS_GUARD = threading.Lock()


def unet_lock(unet: Any) -> threading.RLock:
    """The lock held by whoever changes ``unet``'s adapters (training, a job's LoRA).

    Stages take turns on the GPU, but a stage whose asyncio task was cancelled (arq's timeout)
    keeps running in its thread: without this lock the next job could load its LoRA into, or
    unload every adapter from, a UNet that is still training.
    """
    with _UNET_LOCKS_GUARD:
        lock = _UNET_LOCKS.get(unet)
        if lock is None:
            lock = _UNET_LOCKS[unet] = threading.RLock()
        return lock


class CaptionedImage(Protocol):
    """What training consumes (``faces.TrainingExample`` satisfies it)."""

    @property
    def image(self) -> Image.Image: ...

    @property
    def caption(self) -> str: ...


CompileMode = Literal["off", "default", "reduce-overhead", "max-autotune-no-cudagraphs"]
"""How a UNet call (the training step's, sampling's) is compiled: ``reduce-overhead`` captures
CUDA graphs (issue 20 measured 26 ms against 195 ms eager for the SD1.5 step on an H200);
``max-autotune-no-cudagraphs`` is for where graphs cannot be used; ``off`` runs eagerly."""


def _unet_noise_pred(
    unet: Any,
    noisy: torch.Tensor,
    timesteps: torch.Tensor,
    embeds: torch.Tensor,
    added_cond_kwargs: dict[str, torch.Tensor] | None,
) -> torch.Tensor:
    return unet(noisy, timesteps, embeds, added_cond_kwargs=added_cond_kwargs).sample  # type: ignore[no-any-return]


class CompiledCall:
    """What a UNet call through ``torch.compile`` shares, training's or sampling's: its mode
    and backend, and the one-way fall back to eager (:meth:`give_up`) when compiling fails."""

    #: What runs eagerly once compiling failed, for the log line ("training", "sampling").
    activity = "running"

    def __init__(self, mode: CompileMode, *, backend: Any = "inductor") -> None:
        if mode == "off":
            raise ValueError(f"mode 'off' means no {type(self).__name__} at all")
        self.mode = mode
        self.backend = backend
        self.failure: str | None = None

    @property
    def usable(self) -> bool:
        return self.failure is None

    def compile(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` through ``torch.compile`` with this mode and backend, one graph a shape."""
        import torch

        # A mode is an inductor setting; other backends (the tests' aot_eager) take none.
        options: dict[str, Any] = (
            {"mode": self.mode} if self.backend == "inductor" and self.mode != "default" else {}
        )
        return torch.compile(function, backend=self.backend, dynamic=False, **options)

    def give_up(self, exc: BaseException) -> None:
        """Run eagerly from now on; one log line says why."""
        if self.failure is None:
            # dynamo wraps a backend's error (BackendCompilerFailed); the cause says what broke.
            cause = getattr(exc, "inner_exception", None) or exc.__cause__ or exc
            text = " ".join(str(cause).split())
            self.failure = f"{type(cause).__name__}: {text}"[:300]
            logger.warning(
                "torch.compile (%s) failed, %s eagerly in this process: %s",
                self.mode,
                self.activity,
                self.failure,
            )


class CompiledUnetCall(CompiledCall):
    """The training step's UNet call through ``torch.compile``, compiled once per process.

    The UNet is an argument, not something the compiled function closes over: dynamo inlines
    ``nn.Module`` calls and treats their parameters as graph inputs, so the peft layers that
    every job adds anew (and :func:`_training_adapter` removes afterwards) pass the same guards,
    and the graph compiled for the first job serves every later one. A new graph is made only
    for a new input shape, grad mode or gradient-checkpointing setting (``dynamic=False``: one
    graph per shape, which is what CUDA graphs want).

    Compilation happens on the first call (and the first backward), inside a job: the first
    job's training stage pays it, and its wall time counts as cold start. Whatever fails in it
    (no C compiler, an op the backend cannot lower, graphs that do not fit) makes the call
    eager for the rest of the process, with one warning: :meth:`give_up`.
    """

    activity = "training"

    def __init__(self, mode: CompileMode, *, backend: Any = "inductor") -> None:
        super().__init__(mode, backend=backend)
        self._compiled: Callable[..., torch.Tensor] | None = None

    def __call__(
        self,
        unet: Any,
        noisy: torch.Tensor,
        timesteps: torch.Tensor,
        embeds: torch.Tensor,
        added_cond_kwargs: dict[str, torch.Tensor] | None,
    ) -> torch.Tensor:
        if self._compiled is None:
            self._compiled = self.compile(_unet_noise_pred)
        return self._compiled(unet, noisy, timesteps, embeds, added_cond_kwargs)


def resolve_compile_mode(mode: str, device: torch.device) -> CompileMode:
    """``mode`` as it applies on ``device``: ``auto`` is CUDA graphs on CUDA and eager elsewhere.

    On a CPU ``auto`` stays eager: inductor's C++ compile of an SD UNet takes minutes there and
    the UNet is bound by arithmetic, not by kernel launches.
    """
    if mode == "auto":
        mode = "reduce-overhead" if device.type == "cuda" else "off"
    if mode not in ("off", "default", "reduce-overhead", "max-autotune-no-cudagraphs"):
        raise ValueError(f"unknown compile mode {mode!r}")
    return mode  # type: ignore[return-value]


def compiled_unet_call(mode: str, device: torch.device) -> CompiledUnetCall | None:
    """The process's compiled training call for ``mode`` (:func:`resolve_compile_mode`)."""
    resolved = resolve_compile_mode(mode, device)
    return None if resolved == "off" else CompiledUnetCall(resolved)


def default_steps(photos: int) -> int:
    """EasyPhoto-style budget: 100 steps per photo, at least 400 and at most 1200."""
    return max(400, min(1200, photos * 100))


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (and so its checkpoint compatibility)."""

    family: ModelFamily = "sd15"
    resolution: int = 512
    steps: int = 800
    rank: int = 16
    alpha: int | None = None  # None = rank, i.e. LoRA scale 1
    learning_rate: float = 1e-4
    batch_size: int = 1
    max_grad_norm: float = 1.0
    gradient_checkpointing: bool = False
    #: Why checkpointing is on or off (:func:`decide_gradient_checkpointing`), for the report.
    gradient_checkpointing_reason: str = ""
    #: Validate at checkpoints and keep the best-scoring LoRA; off: validate once, at the end.
    early_stopping: bool = False
    prior_loss_weight: float = 1.0
    seed: int = 0
    progress_every: int = 10
    checkpoint_every: int = 100
    eval_samples: int = 8

    @classmethod
    def for_family(
        cls,
        family: ModelFamily,
        *,
        photos: int,
        resolution: int | None = None,
        steps: int | None = None,
        batch_size: int = 1,
        free_memory: int | None = None,
        device_type: str | None = None,
        checkpointing: CheckpointingPolicy = "auto",
        **overrides: Any,
    ) -> TrainConfig:
        """Defaults per family: SD1.5 512 px rank 16; SDXL 1024 px.

        ``steps`` (or the photo budget) counts batch-1 steps: a batch of B runs
        :func:`batched_steps` of them at :func:`batched_learning_rate`, unless ``overrides``
        sets the learning rate. Gradient checkpointing follows ``checkpointing``; ``auto`` turns
        it on only when ``free_memory`` (bytes free on a ``device_type`` device; None when
        unknown) is short of what a step needs without it.
        """
        base = cls(
            family=family,
            resolution=resolution or NATIVE_RESOLUTION[family],
            steps=batched_steps(steps if steps is not None else default_steps(photos), batch_size),
            batch_size=batch_size,
        )
        decision = decide_gradient_checkpointing(
            checkpointing,
            family,
            resolution=base.resolution,
            batch_size=batch_size,
            device_type=device_type,
            free_bytes=free_memory,
        )
        batched = {"learning_rate": batched_learning_rate(base.learning_rate, batch_size)}
        return replace(
            base,
            gradient_checkpointing=decision.enabled,
            gradient_checkpointing_reason=decision.reason,
            **{**batched, **overrides},
        )

    def fingerprint(self, examples: int, class_examples: int) -> str:
        # A checkpoint is only resumed by a run that would have produced it. Checkpointing
        # changes memory, not results: a retry on a device with more or less free memory resumes.
        values = {
            k: v
            for k, v in asdict(self).items()
            if k not in ("gradient_checkpointing", "gradient_checkpointing_reason")
        }
        material = json.dumps(
            {**values, "examples": examples, "class_examples": class_examples},
            sort_keys=True,
        )
        return hashlib.sha256(material.encode()).hexdigest()[:16]


def batched_steps(steps: int, batch_size: int) -> int:
    """Optimizer steps at ``batch_size`` that show as many images as ``steps`` at batch 1."""
    return max(1, math.ceil(steps / batch_size))


def batched_learning_rate(learning_rate: float, batch_size: int) -> float:
    """The learning rate for a batch of ``batch_size``: sqrt-scaled from batch 1.

    Adam normalises the gradient's scale away, so the linear rule (diffusers' ``--scale_lr``,
    made for SGD) overshoots; the square-root rule is the one that keeps Adam's trajectory
    (Malladi et al., "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms", 2022)
    when the batch grows B-fold and the steps shrink B-fold, as :func:`batched_steps` does.
    An unchanged rate would move the LoRA ~sqrt(B) times less over the shorter run. Adam's
    betas stay as they are: at B <= 4 the rule's beta correction is within their tolerance.
    """
    return learning_rate * math.sqrt(batch_size)


_GIB = 1 << 30
#: Free device memory one training step needs without gradient checkpointing, per example in
#: the batch (an instance and its prior example make two) at the family's native resolution:
#: the step's activations, kept for the backward, which checkpointing would recompute instead.
#: The weights are resident already (they are not in the free figure), and the LoRA's weights,
#: gradients and Adam state are a few MB.
#: - SD1.5, 512 px: the whole H200 job (weights 2.2 GB in bf16, training without
#:   checkpointing at batch 1, then generation at a CFG batch of 8) peaked at 5.0 GB in issue
#:   20's run, so a step's activations are under ~3 GB; 4 GiB per example (8 GiB for batch 1
#:   counted with a prior slot) is a margin of more than 2x.
#: - SDXL, 1024 px: not measured without checkpointing (its 18.6 GB peak was with it). Scaled
#:   from SD1.5: 4x the latent area (128x128 against 64x64), and ~2.5x the activations per
#:   latent pixel (10 transformer blocks at its lowest level, 2048-wide cross-attention):
#:   3 GB x 4 x 2.5 = 30 GB for the pair, ~24 GiB per example, with a wide margin.
#: - klein 4B, 1024 px: an estimate too: a 4B transformer over 4096 image tokens plus the
#:   text tokens.
#: A step that still runs out of memory turns checkpointing on for the rest of the run
#: (``_Trainer.step``), so an estimate that is too low costs one retried step, not the job.
_NO_CHECKPOINTING_BYTES_PER_EXAMPLE = {
    "sd15": 4 * _GIB,
    "sdxl": 24 * _GIB,
    "flux2-klein": 32 * _GIB,
}
#: Each family's native training resolution (what a folder without sizes is assumed to have).
NATIVE_RESOLUTION: dict[ModelFamily, int] = {"sd15": 512, "sdxl": 1024, "flux2-klein": 1024}

CheckpointingPolicy = Literal["auto", "on", "off"]


@dataclass(frozen=True)
class CheckpointingDecision:
    """Whether a run trains with gradient checkpointing, and why (for the report)."""

    enabled: bool
    reason: str


def activation_bytes(family: ModelFamily, *, resolution: int, batch_size: int) -> int:
    """The estimated device memory a step needs without gradient checkpointing (see above).

    Activations grow with the latent area, so with the square of the resolution.
    """
    native = NATIVE_RESOLUTION[family]
    # Prior preservation pairs every example with a class example: two per batch entry.
    examples = 2 * batch_size
    per_example = _NO_CHECKPOINTING_BYTES_PER_EXAMPLE[family]
    return int(per_example * examples * (resolution / native) ** 2)


def decide_gradient_checkpointing(
    policy: CheckpointingPolicy,
    family: ModelFamily,
    *,
    resolution: int,
    batch_size: int,
    device_type: str | None,
    free_bytes: int | None,
) -> CheckpointingDecision:
    """Whether to train with gradient checkpointing; ``auto``: only when memory is short.

    ``auto`` on a device other than CUDA (``device_type``) is off: host memory is not what
    limits a CPU run, and recomputing activations only slows it. An unknown device, or a CUDA
    device whose free memory is unknown (``free_bytes`` None), keeps the cautious defaults:
    on for SDXL and klein, off for SD1.5.
    """
    if policy != "auto":
        return CheckpointingDecision(policy == "on", f"{policy} (forced by the setting)")
    if device_type is not None and device_type != "cuda":
        return CheckpointingDecision(False, f"off (auto: a {device_type} device)")
    if free_bytes is None:
        enabled = family != "sd15"
        return CheckpointingDecision(
            enabled, f"{'on' if enabled else 'off'} (auto: free memory unknown)"
        )
    needed = activation_bytes(family, resolution=resolution, batch_size=batch_size)
    enabled = free_bytes < needed
    return CheckpointingDecision(
        enabled,
        f"{'on' if enabled else 'off'} (auto: {free_bytes / _GIB:.1f} GiB free, a step "
        f"without it needs ~{needed / _GIB:.1f} GiB)",
    )


class AdamWOptions(TypedDict, total=False):
    """The implementation keywords of ``torch.optim.AdamW``."""

    fused: bool
    foreach: bool


def adamw_options(device_type: str) -> AdamWOptions:
    """AdamW's implementation for a device: ``fused`` on CUDA, ``foreach`` elsewhere.

    Fused is one kernel for every LoRA tensor (a few hundred tensors: a launch each, or a few,
    is what the batch-1 step is bound by on a GPU). torch has no fused AdamW for the CPU in
    every version we allow; ``foreach`` is the multi-tensor path that runs there.
    """
    return {"fused": True} if device_type == "cuda" else {"foreach": True}


def free_device_memory(device: torch.device) -> int | None:
    """Bytes free on a CUDA device (``torch.cuda.mem_get_info``); None elsewhere."""
    import torch

    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


@dataclass(frozen=True)
class TrainProgress:
    step: int
    total: int
    loss: float

    @property
    def percent(self) -> float:
        return 100.0 * self.step / self.total if self.total else 100.0


@dataclass
class TrainResult:
    """What a run produced; ``to_record`` is JSON-friendly."""

    lora_path: Path
    total_steps: int
    steps_run: int
    resumed_from: int
    optimizer_steps: int
    losses: list[float] = field(default_factory=list)
    eval_loss_before: float | None = None
    eval_loss_after: float | None = None
    best_step: int | None = None
    best_score: float | None = None
    seconds: float = 0.0
    #: How the UNet call ran: a compile mode, or "eager" (off, or fell back).
    compile: str = "eager"
    #: Whether the run ended with gradient checkpointing on, and why.
    gradient_checkpointing: bool = False
    gradient_checkpointing_reason: str = ""
    #: Examples per step (``total_steps`` x ``batch_size`` images seen).
    batch_size: int = 1

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["lora_path"] = str(self.lora_path)
        record["losses"] = [round(loss, 6) for loss in self.losses[-50:]]
        return record


class CheckpointStore(Protocol):
    """Where checkpoints go: a folder locally, the shared blob store in a worker."""

    def load(self) -> bytes | None: ...

    def save(self, data: bytes, step: int) -> None: ...


class DirectoryCheckpoints:
    """One ``checkpoint.pt`` in a folder, replaced atomically so a kill never leaves half a file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def path(self) -> Path:
        return self.directory / "checkpoint.pt"

    def load(self) -> bytes | None:
        return self.path.read_bytes() if self.path.is_file() else None

    def save(self, data: bytes, step: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, self.path)


Validator = Callable[[Any, int], float | None]
"""``validate(unet_with_lora, step)`` -> a likeness score (higher is better), or None."""


@dataclass
class _Conditioning:
    """Per-caption text conditioning, computed once per job."""

    prompt_embeds: torch.Tensor
    pooled: torch.Tensor | None = None  # SDXL only


@dataclass
class _Cache:
    latent_params: torch.Tensor  # (N, 2*C, h, w): mean and logvar, sampled each step
    captions: list[int]  # index into conditioning per example
    conditioning: list[_Conditioning]
    is_prior: list[bool]


def _pixels(image: Image.Image, resolution: int) -> torch.Tensor:
    import numpy as np
    import torch
    from PIL import Image as PILImage

    if image.size != (resolution, resolution):
        image = image.convert("RGB").resize((resolution, resolution), PILImage.Resampling.LANCZOS)
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)


def _encode_once(
    pipe: DiffusersPipeline,
    examples: Sequence[CaptionedImage],
    class_examples: Sequence[CaptionedImage],
    config: TrainConfig,
) -> _Cache:
    """Encode every image with the VAE and every distinct caption with the text encoder(s)."""
    import torch

    device = pipe.device
    vae = pipe.vae
    everything = [*examples, *class_examples]
    params: list[torch.Tensor] = []
    # SDXL's VAE overflows to NaN in fp16 (its config says ``force_upcast``; diffusers' SDXL
    # scripts keep it in fp32): encode in fp32 once per job, then give the pipeline its fp16 VAE.
    upcast = vae.dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False))
    if upcast:
        vae.to(torch.float32)
    try:
        with torch.no_grad():
            for start in range(0, len(everything), 8):
                chunk = everything[start : start + 8]
                pixels = torch.stack([_pixels(ex.image, config.resolution) for ex in chunk])
                posterior = vae.encode(pixels.to(device, dtype=vae.dtype)).latent_dist
                params.append(posterior.parameters.float().cpu())
    finally:
        if upcast:
            vae.to(torch.float16)
    distinct = list(dict.fromkeys(example.caption for example in everything))
    with torch.no_grad():
        if config.family == "flux2-klein":
            conditioning = _encode_klein_captions(pipe, distinct)
        else:
            conditioning = [_encode_caption(pipe, caption, config.family) for caption in distinct]
    captions = {caption: number for number, caption in enumerate(distinct)}
    indices = [captions[example.caption] for example in everything]
    return _Cache(
        latent_params=torch.cat(params),
        captions=indices,
        conditioning=conditioning,
        is_prior=[False] * len(examples) + [True] * len(class_examples),
    )


def _encode_caption(pipe: DiffusersPipeline, caption: str, family: ModelFamily) -> _Conditioning:
    # The pipeline's own encode_prompt: training sees exactly the conditioning inference uses.
    device = pipe.device
    if family == "sdxl":
        embeds, _, pooled, _ = pipe.encode_prompt(
            prompt=caption,
            device=device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=False,
        )
        return _Conditioning(embeds.float().cpu(), pooled.float().cpu())
    embeds, _ = pipe.encode_prompt(caption, device, 1, False)
    return _Conditioning(embeds.float().cpu())


def _encode_klein_captions(pipe: DiffusersPipeline, captions: list[str]) -> list[_Conditioning]:
    """klein's own ``encode_prompt``, every caption whole and all of one length (one batch)."""
    from headshots.generation.prompts import klein_sequence_length, klein_text_layers

    embeds, _ = pipe.encode_prompt(
        prompt=captions,
        device=pipe.device,
        max_sequence_length=klein_sequence_length(pipe.tokenizer, *captions),
        text_encoder_out_layers=klein_text_layers(pipe),
    )
    return [
        _Conditioning(embeds[number : number + 1].float().cpu()) for number in range(len(captions))
    ]


@contextlib.contextmanager
def _text_encoder_parked(pipe: DiffusersPipeline, family: ModelFamily) -> Iterator[None]:
    """klein's text encoder (Qwen3, 8 GB for the 4B) on the CPU while the transformer trains.

    The captions are encoded by then, and the validator's prompt was encoded before training.
    """
    device = pipe.device
    if family != "flux2-klein" or device.type == "cpu":
        yield
        return
    import torch

    pipe.text_encoder.to("cpu")
    torch.cuda.empty_cache()
    try:
        yield
    finally:
        pipe.text_encoder.to(device)


def _sample_latents(
    cache: _Cache, indices: list[int], generator: torch.Generator, scaling: float
) -> torch.Tensor:
    import torch

    params = cache.latent_params[indices]
    mean, logvar = torch.chunk(params, 2, dim=1)
    std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))
    noise = torch.randn(mean.shape, generator=generator)
    return (mean + std * noise) * scaling


def _tuner_layers(unet: Any) -> list[Any]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [module for module in unet.modules() if isinstance(module, BaseTunerLayer)]


@contextlib.contextmanager
def _training_adapter(unet: Any, config: TrainConfig) -> Iterator[None]:
    """Add a trainable LoRA named :data:`TRAINING_ADAPTER` to ``unet``; undo everything on exit."""
    import torch
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig

    existing = dict(getattr(unet, "peft_config", None) or {})
    if TRAINING_ADAPTER in existing:
        raise RuntimeError("a LoRA is already being trained on this UNet")
    # Snapshot what training changes. Flags only: no tensor is copied.
    requires_grad = [(p, p.requires_grad) for p in unet.parameters()]
    modes = [(m, m.training) for m in unet.modules()]
    checkpointing = bool(unet.is_gradient_checkpointing)
    layers = _tuner_layers(unet)
    active = list(layers[0].active_adapters) if layers else []
    disabled = bool(layers[0].disable_adapters) if layers else False
    peft_flag = getattr(unet, "_hf_peft_config_loaded", None)
    try:
        unet.requires_grad_(False)
        # peft draws the initial lora_A from the global RNG: seed it, or runs are not repeatable.
        with MODEL_LOADS, torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            unet.add_adapter(
                LoraConfig(
                    r=config.rank,
                    lora_alpha=config.alpha or config.rank,
                    init_lora_weights="gaussian",
                    target_modules=lora_target_modules(unet),
                ),
                adapter_name=TRAINING_ADAPTER,
            )
        # Frozen weights stay in the pipeline dtype; the LoRA weights train in fp32.
        cast_training_params(unet, dtype=torch.float32)
        # The run's decision either way: a resident UNet left checkpointing would otherwise
        # slow every step of a run that has the memory to go without it.
        if config.gradient_checkpointing and not checkpointing:
            unet.enable_gradient_checkpointing()
        elif checkpointing and not config.gradient_checkpointing:
            unet.disable_gradient_checkpointing()
        yield
    finally:
        if existing:
            # Someone else's adapters were loaded: take out only ours, re-activate theirs.
            if TRAINING_ADAPTER in (getattr(unet, "peft_config", None) or {}):
                unet.delete_adapters(TRAINING_ADAPTER)
            unet.set_adapter(active)
            if disabled:
                unet.disable_adapters()
        elif _tuner_layers(unet):
            # Unwrap every peft layer: the UNet holds exactly its original modules again.
            unet.unload_lora()
        if not existing and peft_flag is not None:
            unet._hf_peft_config_loaded = peft_flag
        if unet.is_gradient_checkpointing and not checkpointing:
            unet.disable_gradient_checkpointing()
        elif checkpointing and not unet.is_gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        for module, mode in modes:
            module.training = mode
        for parameter, flag in requires_grad:
            parameter.requires_grad_(flag)


class _Trainer:
    """One run's state: the trained adapter on the resident UNet, optimizer, schedule, caches.

    Build it inside :func:`_training_adapter` (``train_lora`` does).
    """

    def __init__(
        self,
        pipe: DiffusersPipeline,
        cache: _Cache,
        config: TrainConfig,
        compiled: CompiledUnetCall | None = None,
    ) -> None:
        import torch
        from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler

        self.config = config
        self.flow = config.family == "flux2-klein"
        # The compiled call is a UNet's; klein's transformer runs eagerly.
        self.compiled = None if self.flow else compiled
        self.cache = cache
        self.device = pipe.device
        self.latent_stats: tuple[torch.Tensor, torch.Tensor] | None = None
        if self.flow:
            # Flow matching on the pipeline's own schedule (a copy: training never sets steps).
            self.noise_scheduler = FlowMatchEulerDiscreteScheduler.from_config(
                pipe.scheduler.config
            )
            self.scaling = 1.0
            bn = pipe.vae.bn
            eps = float(pipe.vae.config.batch_norm_eps)
            self.latent_stats = (
                bn.running_mean.detach().float().cpu().view(1, -1, 1, 1),
                torch.sqrt(bn.running_var.detach().float().cpu().view(1, -1, 1, 1) + eps),
            )
        else:
            self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
            self.scaling = float(pipe.vae.config.scaling_factor)
        #: The network the LoRA trains: the UNet, or klein's transformer.
        self.unet = denoiser(pipe)
        self.unet.train()
        self.params = [p for p in self.unet.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.params, lr=config.learning_rate, **adamw_options(self.device.type)
        )
        #: Whether a step ran out of memory and turned gradient checkpointing on.
        self.checkpointing_after_oom = False
        self.generator = torch.Generator().manual_seed(config.seed)
        self.autocast_dtype = self.unet.dtype if self.device.type == "cuda" else None
        self.time_ids: torch.Tensor | None = None
        if config.family == "sdxl":
            r = config.resolution
            self.time_ids = torch.tensor([[r, r, 0, 0, r, r]], dtype=torch.float32)

    def _forward_loss(
        self,
        indices: list[int],
        noise: torch.Tensor,
        timesteps: torch.Tensor,
        latents: torch.Tensor,
    ) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        cache = self.cache
        embeds = torch.cat([cache.conditioning[cache.captions[i]].prompt_embeds for i in indices])
        if self.flow:
            per_example = self._flow_loss(embeds, noise, timesteps, latents)
            return self._weighted(indices, per_example)
        added: dict[str, torch.Tensor] | None = None
        if self.time_ids is not None:
            pooled = torch.cat([cache.conditioning[cache.captions[i]].pooled for i in indices])  # type: ignore[misc]
            added = {
                "text_embeds": pooled.to(self.device),
                "time_ids": self.time_ids.repeat(len(indices), 1).to(self.device),
            }
        latents, noise, timesteps = (t.to(self.device) for t in (latents, noise, timesteps))
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        dtype = self.unet.dtype
        with torch.autocast(
            self.device.type,
            dtype=self.autocast_dtype or torch.float32,
            enabled=self.autocast_dtype is not None,
        ):
            pred = self._predict(noisy.to(dtype), timesteps, embeds.to(self.device, dtype), added)
        per_example = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        return self._weighted(indices, per_example)

    def _weighted(self, indices: list[int], per_example: torch.Tensor) -> torch.Tensor:
        """The batch loss, prior-preservation examples weighted by ``prior_loss_weight``."""
        import torch

        cache = self.cache
        weights = torch.tensor(
            [self.config.prior_loss_weight if cache.is_prior[i] else 1.0 for i in indices],
            device=self.device,
        )
        return (per_example * weights).sum() / weights.sum()

    def _flow_loss(
        self,
        embeds: torch.Tensor,
        noise: torch.Tensor,
        steps: torch.Tensor,
        latents: torch.Tensor,
    ) -> torch.Tensor:
        """Per-example flow-matching loss of klein's transformer (``steps``: schedule indices)."""
        import torch
        import torch.nn.functional as F
        from diffusers import Flux2KleinPipeline

        device, dtype = self.device, self.unet.dtype
        latents, noise = latents.to(device), noise.to(device)
        embeds = embeds.to(device, dtype)
        text_ids = Flux2KleinPipeline._prepare_text_ids(embeds).to(device)
        latent_ids = Flux2KleinPipeline._prepare_latent_ids(latents).to(device)
        sigmas = self.noise_scheduler.sigmas[steps].to(device).view(-1, 1, 1, 1)
        timesteps = self.noise_scheduler.timesteps[steps].to(device)
        packed = Flux2KleinPipeline._pack_latents((1.0 - sigmas) * latents + sigmas * noise)
        guidance = None
        if getattr(self.unet.config, "guidance_embeds", False):
            guidance = torch.ones(len(steps), device=device, dtype=dtype)
        with torch.autocast(
            device.type,
            dtype=self.autocast_dtype or torch.float32,
            enabled=self.autocast_dtype is not None,
        ):
            pred = self.unet(
                hidden_states=packed.to(dtype),
                encoder_hidden_states=embeds,
                timestep=(timesteps / 1000).to(dtype),
                img_ids=latent_ids,
                txt_ids=text_ids,
                guidance=guidance,
                return_dict=False,
            )[0]
        pred = Flux2KleinPipeline._unpack_latents_with_ids(pred[:, : packed.size(1)], latent_ids)
        target = noise - latents
        return F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))

    def _latents(self, indices: list[int], generator: torch.Generator) -> torch.Tensor:
        """A fresh draw of the examples' latents, as the denoiser sees them.

        klein's: 2x2-patchified and normalised by the VAE's batch-norm statistics, as its
        pipeline does before decoding (and the example before training).
        """
        latents = _sample_latents(self.cache, indices, generator, self.scaling)
        if self.latent_stats is None:
            return latents
        from diffusers import Flux2KleinPipeline

        mean, std = self.latent_stats
        patches: torch.Tensor = Flux2KleinPipeline._patchify_latents(latents)
        return (patches - mean) / std

    def _timesteps(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """DDPM: timesteps drawn uniformly. klein: schedule indices, drawn as the example draws
        them (``compute_density_for_timestep_sampling`` with its default "none" weighting)."""
        import torch

        total = int(self.noise_scheduler.config.num_train_timesteps)
        if not self.flow:
            return torch.randint(0, total, (count,), generator=generator)
        from diffusers.training_utils import compute_density_for_timestep_sampling

        u: torch.Tensor = compute_density_for_timestep_sampling("none", count, generator=generator)
        return (u * total).long().clamp(max=total - 1)

    def _predict(
        self,
        noisy: torch.Tensor,
        timesteps: torch.Tensor,
        embeds: torch.Tensor,
        added_cond_kwargs: dict[str, torch.Tensor] | None,
    ) -> torch.Tensor:
        import torch

        compiled = self.compiled
        if compiled is not None and compiled.usable:
            try:
                return compiled(self.unet, noisy, timesteps, embeds, added_cond_kwargs)
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as exc:  # a compile failure: the eager call below says if it was more
                compiled.give_up(exc)
        return _unet_noise_pred(self.unet, noisy, timesteps, embeds, added_cond_kwargs)

    def _pick(self) -> list[int]:
        import torch

        instance = [i for i, prior in enumerate(self.cache.is_prior) if not prior]
        prior = [i for i, p in enumerate(self.cache.is_prior) if p]
        picks = torch.randint(len(instance), (self.config.batch_size,), generator=self.generator)
        indices = [instance[int(i)] for i in picks]
        if prior:
            # DreamBooth prior preservation: each instance example is paired with a class one.
            extra = torch.randint(len(prior), (self.config.batch_size,), generator=self.generator)
            indices += [prior[int(i)] for i in extra]
        return indices

    def step(self) -> float:
        """One optimizer step; out of device memory without checkpointing, turn it on and retry.

        A retry redraws the same examples, noise and timesteps: the generator is rewound.
        """
        import torch

        rng = self.generator.get_state()
        try:
            return self._compiled_step(rng)
        except torch.cuda.OutOfMemoryError:
            if self.unet.is_gradient_checkpointing:
                raise
            logger.warning(
                "out of device memory without gradient checkpointing: turning it on for the "
                "rest of this run and trying the step again"
            )
            self.optimizer.zero_grad(set_to_none=True)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.unet.enable_gradient_checkpointing()
            self.checkpointing_after_oom = True
            self.generator.set_state(rng)
            return self._step()

    def _compiled_step(self, rng: torch.Tensor) -> float:
        """A step; one whose compiled backward fails to build is run again eagerly."""
        import torch

        compiled = self.compiled
        if compiled is None or not compiled.usable:
            return self._step()
        try:
            return self._step()
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as exc:  # AOTAutograd compiles the backward at its first call
            compiled.give_up(exc)
            self.optimizer.zero_grad(set_to_none=True)
            self.generator.set_state(rng)
            return self._step()

    def _step(self) -> float:
        import torch

        indices = self._pick()
        latents = self._latents(indices, self.generator)
        noise = torch.randn(latents.shape, generator=self.generator)
        timesteps = self._timesteps(len(indices), self.generator)
        loss = self._forward_loss(indices, noise, timesteps, latents)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def eval_loss(self) -> float:
        """Loss on a fixed draw of (example, noise, timestep): comparable before and after."""
        import torch

        generator = torch.Generator().manual_seed(10_000 + self.config.seed)
        instance = [i for i, prior in enumerate(self.cache.is_prior) if not prior]
        total = 0.0
        self.unet.eval()
        with torch.no_grad():
            for sample in range(self.config.eval_samples):
                indices = [instance[sample % len(instance)]]
                latents = self._latents(indices, generator)
                noise = torch.randn(latents.shape, generator=generator)
                timesteps = self._timesteps(1, generator)
                total += float(self._forward_loss(indices, noise, timesteps, latents))
        self.unet.train()
        return total / max(1, self.config.eval_samples)

    def optimizer_steps(self) -> int:
        # Adam keeps its own step count per parameter; it survives checkpoints, so it tells
        # how many updates the final weights really received.
        state = self.optimizer.state.get(self.params[0], {})
        step = state.get("step", 0)
        return int(step.item() if hasattr(step, "item") else step)

    def lora_state(self) -> dict[str, torch.Tensor]:
        from peft.utils import get_peft_model_state_dict

        state = get_peft_model_state_dict(self.unet, adapter_name=TRAINING_ADAPTER)
        return {k: v.detach().cpu().clone() for k, v in state.items()}

    def load_lora_state(self, state: dict[str, torch.Tensor]) -> None:
        from peft.utils import set_peft_model_state_dict

        set_peft_model_state_dict(self.unet, state, adapter_name=TRAINING_ADAPTER)


def _serialise_checkpoint(
    trainer: _Trainer, step: int, fingerprint: str, extra: dict[str, Any]
) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(
        {
            "format": _CHECKPOINT_FORMAT,
            "fingerprint": fingerprint,
            "step": step,
            "lora": trainer.lora_state(),
            "optimizer": trainer.optimizer.state_dict(),
            "rng": trainer.generator.get_state(),
            **extra,
        },
        buffer,
    )
    return buffer.getvalue()


def _restore_checkpoint(data: bytes, fingerprint: str) -> dict[str, Any] | None:
    import torch

    try:
        payload: dict[str, Any] = torch.load(
            io.BytesIO(data), map_location="cpu", weights_only=True
        )
    except Exception as exc:  # a truncated or foreign file must not kill the job: start over
        logger.warning("ignoring unreadable checkpoint: %s", exc)
        return None
    if payload.get("format") != _CHECKPOINT_FORMAT or payload.get("fingerprint") != fingerprint:
        logger.warning("ignoring checkpoint from a different training configuration")
        return None
    return payload


def save_lora(
    unet: Any,
    output_dir: Path,
    family: ModelFamily,
    state: dict[str, Any] | None = None,
    *,
    adapter_name: str = "default",
) -> Path:
    """Write ``pytorch_lora_weights.safetensors`` in the format ``load_lora_weights`` reads.

    ``state`` is a peft state dict (adapter name already stripped); without it, the weights of
    ``unet``'s adapter ``adapter_name`` are saved.
    """
    from diffusers.utils.state_dict_utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    peft_state = (
        state if state is not None else get_peft_model_state_dict(unet, adapter_name=adapter_name)
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    saver: Any = pipeline_class(family)
    if family == "flux2-klein":
        # peft's own key names, as diffusers' klein example saves them.
        saver.save_lora_weights(
            save_directory=output_dir,
            transformer_lora_layers=peft_state,
            weight_name=LORA_WEIGHT_NAME,
        )
    else:
        saver.save_lora_weights(
            save_directory=output_dir,
            unet_lora_layers=convert_state_dict_to_diffusers(peft_state),
            weight_name=LORA_WEIGHT_NAME,
        )
    return output_dir / LORA_WEIGHT_NAME


def train_lora(
    pipe: DiffusersPipeline,
    examples: Sequence[CaptionedImage],
    config: TrainConfig,
    *,
    output_dir: Path,
    class_examples: Sequence[CaptionedImage] = (),
    checkpoints: CheckpointStore | None = None,
    on_progress: Callable[[TrainProgress], None] | None = None,
    check_cancelled: Callable[[], None] | None = None,
    validate: Validator | None = None,
    compiled: CompiledUnetCall | None = None,
) -> TrainResult:
    """Train a LoRA on ``examples`` and save it to ``output_dir``; returns what happened.

    The LoRA trains on ``pipe.unet`` itself and is removed again before this returns or raises:
    ``pipe`` is left as it was. ``check_cancelled`` and ``on_progress`` may raise to stop the
    run; the last checkpoint survives and the next call with the same config and store resumes
    from it. ``validate`` gets ``pipe.unet`` with the adapter active, after the last step, and
    with ``config.early_stopping`` at every checkpoint too (the best score's LoRA is the one
    saved). ``compiled`` (the
    process's :class:`CompiledUnetCall`, shared by every job) runs the UNet call compiled.
    """
    if not examples:
        raise ValueError("training needs at least one example")

    started = time.monotonic()
    fingerprint = config.fingerprint(len(examples), len(class_examples))
    cache = _encode_once(pipe, examples, class_examples, config)
    network = denoiser(pipe)
    with (
        unet_lock(network),
        _text_encoder_parked(pipe, config.family),
        _training_adapter(network, config),
    ):
        trainer = _Trainer(pipe, cache, config, compiled)
        result = _run(
            trainer,
            fingerprint,
            output_dir=output_dir,
            checkpoints=checkpoints,
            on_progress=on_progress,
            check_cancelled=check_cancelled,
            validate=validate,
        )
        result.gradient_checkpointing = bool(network.is_gradient_checkpointing)
    result.seconds = time.monotonic() - started
    result.batch_size = config.batch_size
    result.gradient_checkpointing_reason = config.gradient_checkpointing_reason
    if trainer.checkpointing_after_oom:
        result.gradient_checkpointing_reason += "; turned on after a step ran out of memory"
    used = trainer.compiled
    result.compile = used.mode if used is not None and used.usable else "eager"
    logger.info(
        "trained %d steps (%d run here) in %.1fs, eval loss %s -> %s",
        result.total_steps,
        result.steps_run,
        result.seconds,
        result.eval_loss_before,
        result.eval_loss_after,
    )
    return result


def _run(
    trainer: _Trainer,
    fingerprint: str,
    *,
    output_dir: Path,
    checkpoints: CheckpointStore | None,
    on_progress: Callable[[TrainProgress], None] | None,
    check_cancelled: Callable[[], None] | None,
    validate: Validator | None,
) -> TrainResult:
    config = trainer.config

    start_step = 0
    losses: list[float] = []
    best_score: float | None = None
    best_step: int | None = None
    best_state: dict[str, torch.Tensor] | None = None
    eval_before: float | None = None
    payload = (
        _restore_checkpoint(data, fingerprint)
        if checkpoints and (data := checkpoints.load())
        else None
    )
    if payload is not None:
        trainer.load_lora_state(payload["lora"])
        trainer.optimizer.load_state_dict(payload["optimizer"])
        trainer.generator.set_state(payload["rng"])
        start_step = int(payload["step"])
        losses = list(payload.get("losses", []))
        eval_before = payload.get("eval_before")
        best_score, best_step = payload.get("best_score"), payload.get("best_step")
        best_state = payload.get("best_lora")
        logger.info("resuming training at step %d of %d", start_step, config.steps)
    elif config.eval_samples:
        eval_before = trainer.eval_loss()

    def checkpoint(step: int) -> None:
        if checkpoints is None:
            return
        extra = {
            "losses": losses,
            "eval_before": eval_before,
            "best_score": best_score,
            "best_step": best_step,
            "best_lora": best_state,
        }
        checkpoints.save(_serialise_checkpoint(trainer, step, fingerprint, extra), step)

    for step in range(start_step + 1, config.steps + 1):
        if check_cancelled is not None:
            check_cancelled()
        loss = trainer.step()
        if not math.isfinite(loss):
            raise FloatingPointError(f"training diverged at step {step} (loss {loss})")
        losses.append(loss)
        at_checkpoint = step % config.checkpoint_every == 0 or step == config.steps
        # Each validation samples images (seconds on a GPU): without early stopping only the
        # final LoRA is kept, and one validation at the end scores it for the record.
        validate_now = step == config.steps or (config.early_stopping and at_checkpoint)
        if validate_now and validate is not None:
            trainer.unet.eval()
            score = validate(trainer.unet, step)
            trainer.unet.train()
            if score is not None and (best_score is None or score > best_score):
                best_score, best_step, best_state = score, step, trainer.lora_state()
                logger.info("validation at step %d: likeness %.3f (best so far)", step, score)
        if at_checkpoint and step < config.steps:
            checkpoint(step)
        if on_progress is not None and (step % config.progress_every == 0 or step == config.steps):
            on_progress(TrainProgress(step=step, total=config.steps, loss=loss))

    eval_after = trainer.eval_loss() if config.eval_samples else None
    state = best_state if best_state is not None else trainer.lora_state()
    path = save_lora(trainer.unet, output_dir, config.family, state=state)
    return TrainResult(
        lora_path=path,
        total_steps=config.steps,
        steps_run=config.steps - start_step,
        resumed_from=start_step,
        optimizer_steps=trainer.optimizer_steps(),
        losses=losses,
        eval_loss_before=eval_before,
        eval_loss_after=eval_after,
        best_step=best_step,
        best_score=best_score,
    )
