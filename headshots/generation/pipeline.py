"""The resident pipeline: the base model loaded once per worker, a person's LoRA per job.

Loading an SD1.5 checkpoint takes seconds to tens of seconds; a LoRA takes milliseconds. So the
base stays resident and each job loads its LoRA under its own adapter name, activates it with
``set_adapters``, generates, and unloads every LoRA again (``unload_lora_weights`` removes the
peft layers, so the next job starts from the exact base weights).

diffusers' LoRA hot-swap (``enable_lora_hotswap`` + ``load_lora_weights(..., hotswap=True)``)
was measured and not adopted: on the SD1.5 shape it saves ~0.15 s per load (bench/GENERATION.md),
but it needs one fixed adapter name for every job (the stages address a job's adapter as
``job_<id>``), one rank and one set of target modules for every LoRA it will ever hold (the
LCM-LoRA differs), and a resident adapter that every other user of the UNet (training, the
FaceID preview) must work around. Training uses the same UNet between jobs (train.py) and takes
the same per-UNet lock, so a job's LoRA is never loaded into a UNet that is being trained.

Sampling's UNet forward is compiled once per process (:class:`CompiledSampleCall`,
``HEADSHOTS_SAMPLE_COMPILE``) and installed on the resident UNet only while ``generate`` runs:
txt2img, img2img and the ControlNet pipelines all call that one UNet, so they share it. The VAE
decodes in one piece unless the size needs tiles (:func:`needs_vae_tiling`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from headshots.errors import ModelMissing
from headshots.generation.models import (
    MODEL_LOADS,
    DiffusersPipeline,
    ModelFamily,
    ModelSource,
    denoiser,
    load_base_pipeline,
    resolve_model,
)
from headshots.generation.prompts import encode_prompts
from headshots.generation.train import (
    LORA_WEIGHT_NAME,
    CompiledCall,
    CompiledUnetCall,
    CompileMode,
    compiled_unet_call,
    resolve_compile_mode,
    unet_lock,
)
from headshots.style.presets import PromptSpec, SchedulerName

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from headshots.queue.contracts import ControlHint
    from headshots.settings import Settings

logger = logging.getLogger(__name__)

LoraSource = bytes | Path | dict[str, "torch.Tensor"]
"""A LoRA as safetensors bytes (from the store), a file or folder, or a state dict."""

LCM_ADAPTER = "lcm"
LCM_STEPS = (4, 8)
LCM_CFG = (1.0, 2.0)

#: The adapter name every job's LoRA samples under while sampling is compiled. peft indexes
#: its layers by adapter name and dynamo guards on that string, so ``job_<id>`` would compile
#: new graphs for every job; one name keeps the first job's graphs for all of them.
SAMPLE_ADAPTER = "job"

#: The VAE decodes in tiles only above this many times the model's native area (twice the
#: native side both ways). Every size ``generate`` makes is the native short side with an
#: aspect ratio (at most 1.5x the area, 2:3), so it decodes in one piece: tiles would only add
#: seams and time there. Decode memory grows with the area; 4x is a margin past every size the
#: model was made for, not a measured limit (no GPU has measured one).
VAE_TILING_AREA = 4


@dataclass
class GeneratedImage:
    image: Image.Image
    seed: int
    index: int


@dataclass(frozen=True)
class Control:
    """A reference photo's steer on one generation (a ControlNet of ``hint``).

    ``image`` is the control image at the generation size. With ``init`` (the reference fitted
    to the same size) the images start from the reference and redraw ``strength`` of it, as
    Astria's "prompt strength" does; without it the control image alone steers.
    """

    hint: ControlHint
    image: Image.Image
    scale: float
    init: Image.Image | None = None
    strength: float = 1.0


@dataclass
class SampleCompileStats:
    """How one job's UNet calls ran: compiled (a mode) or eagerly, and what compiling cost."""

    mode: str = "eager"
    #: Graphs dynamo compiled during the job: 0 once the process is warm.
    new_graphs: int = 0
    #: Seconds of the UNet calls that compiled a graph: cold start, not steady-state sampling.
    #: (Under CUDA graphs the call after a compile also records its graph: not counted here.)
    warmup_s: float = 0.0

    def to_record(self) -> dict[str, Any]:
        return {"mode": self.mode, "new_graphs": self.new_graphs, "warmup_s": self.warmup_s}


@dataclass
class GenerationResult:
    images: list[GeneratedImage]
    #: The settings actually used (after LCM clamping or fallbacks): enough to reproduce.
    record: dict[str, Any] = field(default_factory=dict)
    #: How the sampling UNet ran (also in ``record["sample_compile"]``).
    compile: SampleCompileStats = field(default_factory=SampleCompileStats)


def _unet_call(unet: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # _call_impl, not unet(...): the call routed here comes from nn.Module.__call__ already.
    return unet._call_impl(*args, **kwargs)


class CompiledSampleCall(CompiledCall):
    """Sampling's UNet forward through ``torch.compile``, compiled once per process.

    :meth:`installed` routes every ``unet(...)`` call to it for the length of a job, through
    ``nn.Module``'s own slot for a compiled call (``_compiled_call_impl``, what
    ``Module.compile`` sets), and takes it away afterwards: each diffusers pipeline (txt2img,
    img2img, ControlNet, SDXL's added conditioning) reaches it without a change, and training,
    the FaceID preview and the upscale keep their own calls. As in :class:`CompiledUnetCall`
    the UNet is an argument, so the peft layers each job adds anew pass the same guards (with
    one adapter name, :data:`SAMPLE_ADAPTER`); a new graph comes only with a new input shape
    or call signature (a ControlNet's residuals, the LCM-LoRA, no LoRA at all). A compile
    that fails makes sampling eager for the process, with one warning.
    """

    activity = "sampling"

    def __init__(self, mode: CompileMode, *, backend: Any = "inductor") -> None:
        super().__init__(mode, backend=backend)
        self._compiled: Callable[..., Any] | None = None

    @contextlib.contextmanager
    def installed(self, unet: Any) -> Iterator[SampleCompileStats]:
        """``unet``'s calls compiled until exit; the stats fill in as the job samples."""
        stats = SampleCompileStats(mode=self.mode)
        previous = unet._compiled_call_impl
        unet._compiled_call_impl = functools.partial(self._call, unet, stats)
        try:
            yield stats
        finally:
            unet._compiled_call_impl = previous
            if not self.usable:
                stats.mode = "eager"

    def _call(self, unet: Any, stats: SampleCompileStats, *args: Any, **kwargs: Any) -> Any:
        if not self.usable:
            return unet._call_impl(*args, **kwargs)
        import torch
        from torch._dynamo.utils import counters

        # From here: the first call also imports the backend (inductor: seconds), cold start too.
        started = time.monotonic()
        if self._compiled is None:
            self._compiled = self.compile(_unet_call)
        if args and isinstance(args[0], torch.Tensor):
            # img2img's latents come from the VAE in channels-last strides; dynamo guards on
            # strides, so one layout for every pipeline keeps one graph (a copy of the latents).
            args = (args[0].contiguous(), *args[1:])
        if self.mode == "reduce-overhead":
            # The scheduler has consumed the last step's output: its graph memory is free again.
            torch.compiler.cudagraph_mark_step_begin()
        graphs = counters["stats"]["unique_graphs"]
        try:
            output = self._compiled(unet, args, kwargs)
        except Exception as exc:  # a compile failure: the eager call below says if it was more
            self.give_up(exc)
            stats.warmup_s += time.monotonic() - started
            return unet._call_impl(*args, **kwargs)
        compiled = counters["stats"]["unique_graphs"] - graphs
        if compiled:
            stats.new_graphs += compiled
            stats.warmup_s += time.monotonic() - started
        return output


def compiled_sample_call(mode: str, device: torch.device) -> CompiledSampleCall | None:
    """The process's compiled sampling call for ``mode`` (``auto``: CUDA graphs on CUDA only)."""
    resolved = resolve_compile_mode(mode, device)
    return None if resolved == "off" else CompiledSampleCall(resolved)


def needs_vae_tiling(width: int, height: int, native_resolution: int) -> bool:
    """Whether the VAE decodes ``width`` x ``height`` in tiles (:data:`VAE_TILING_AREA`)."""
    return width * height > VAE_TILING_AREA * native_resolution * native_resolution


@contextlib.contextmanager
def _vae_tiling(vae: Any, tiled: bool) -> Iterator[None]:
    """The VAE tiled (or not) for one job, and as it was afterwards (it is shared)."""
    if not hasattr(vae, "enable_tiling"):  # a VAE without tiles decodes in one piece anyway
        yield
        return
    previous = bool(getattr(vae, "use_tiling", False))
    _set_vae_tiling(vae, tiled)
    try:
        yield
    finally:
        _set_vae_tiling(vae, previous)


def _set_vae_tiling(vae: Any, tiled: bool) -> None:
    if tiled:
        vae.enable_tiling()
    else:
        vae.disable_tiling()


def lora_state_dict(source: LoraSource) -> dict[str, torch.Tensor]:
    """Read a LoRA into a fresh state dict (``load_lora_weights`` consumes its argument)."""
    from safetensors.torch import load, load_file

    if isinstance(source, dict):
        return dict(source)
    if isinstance(source, bytes):
        return load(source)
    path = source / LORA_WEIGHT_NAME if source.is_dir() else source
    if not path.is_file():
        raise ModelMissing(f"no LoRA weights at {path}")
    return load_file(str(path))


def make_scheduler(name: SchedulerName, base_config: Any) -> Any:
    """A scheduler for ``name`` built from the base model's scheduler config."""
    from diffusers import (
        DPMSolverMultistepScheduler,
        EulerAncestralDiscreteScheduler,
        LCMScheduler,
    )

    if name == "euler_a":
        return EulerAncestralDiscreteScheduler.from_config(base_config)
    if name == "dpm++2m_karras":
        return DPMSolverMultistepScheduler.from_config(
            base_config, algorithm_type="dpmsolver++", use_karras_sigmas=True
        )
    if name == "dpm++sde_karras":
        # A1111's "DPM++ SDE Karras" needs torchsde; the multistep SDE variant is the closest
        # diffusers sampler without that dependency.
        return DPMSolverMultistepScheduler.from_config(
            base_config, algorithm_type="sde-dpmsolver++", use_karras_sigmas=True
        )
    if name == "lcm":
        return LCMScheduler.from_config(base_config)
    raise ValueError(f"unknown scheduler {name!r}")


ProgressCallback = Callable[[float, int], None]
"""``progress(images_done, images_total)``; ``images_done`` is fractional within a batch."""


class ResidentPipeline:
    """The base pipeline, loaded on first use and kept; one job at a time (a lock enforces it)."""

    def __init__(
        self,
        settings: Settings,
        *,
        model: str | None = None,
        loader: Callable[[Settings, str | None], DiffusersPipeline] = load_base_pipeline,
        controlnet_loader: Callable[[Settings, ModelFamily, ControlHint], Any] | None = None,
        sample_compiler: Callable[
            [str, torch.device], CompiledSampleCall | None
        ] = compiled_sample_call,
    ) -> None:
        self.settings = settings
        self.model = model
        self._loader = loader
        self._controlnet_loader = controlnet_loader
        #: The ControlNets by hint, loaded on first use and kept like the base.
        self._controlnets: dict[str, Any] = {}
        self._control_pipes: dict[tuple[str, bool], DiffusersPipeline] = {}
        self._pipe: DiffusersPipeline | None = None
        self._img2img: DiffusersPipeline | None = None
        self._base_scheduler: Any = None
        self._source: ModelSource | None = None
        self._lcm_state: dict[str, torch.Tensor] | None = None
        self._lock = threading.RLock()
        #: Held only while the base loads: a cancelled job's thread may still be loading it,
        #: and a second load would double the memory; generation (``_lock``) need not wait.
        self._load_lock = threading.Lock()
        #: How many times the base weights were loaded (1 for the life of a worker).
        self.base_loads = 0
        self._train_call: CompiledUnetCall | Literal[False] | None = False
        self._sample_compiler = sample_compiler
        self._sample_call: CompiledSampleCall | Literal[False] | None = False

    @property
    def source(self) -> ModelSource:
        if self._source is None:
            self._source = resolve_model(self.settings, self.model)
        return self._source

    @property
    def pipe(self) -> DiffusersPipeline:
        pipe = self._pipe
        if pipe is not None:
            return pipe
        with self._load_lock:
            if self._pipe is None:
                started = time.monotonic()
                loaded = self._loader(self.settings, self.model)
                self._base_scheduler = loaded.scheduler
                self._pipe = loaded  # published last: a reader never sees a half-set pipeline
                self.base_loads += 1
                logger.info("base pipeline resident after %.1fs", time.monotonic() - started)
            return self._pipe

    @property
    def train_call(self) -> CompiledUnetCall | None:
        """The training step's compiled UNet call, made once for the life of the worker.

        Every job's training uses the same one, so its graphs are compiled by the first job
        only (``HEADSHOTS_TRAIN_COMPILE``; None: eager). On CUDA the resident UNet is also put
        in channels-last layout, which cuDNN's convolutions and inductor's kernels prefer.
        """
        if self._train_call is False:
            pipe = self.pipe
            # The compiled call is the UNet's (SD1.5, SDXL); klein's transformer trains eagerly.
            call = (
                None
                if self.source.family == "flux2-klein"
                else compiled_unet_call(self.settings.train_compile, pipe.device)
            )
            if call is not None and pipe.device.type == "cuda":
                import torch

                pipe.unet.to(memory_format=torch.channels_last)
            self._train_call = call
        return self._train_call

    @property
    def sample_call(self) -> CompiledSampleCall | None:
        """Sampling's compiled UNet forward, made once for the life of the worker.

        ``HEADSHOTS_SAMPLE_COMPILE`` (None: eager); klein's transformer samples eagerly.
        """
        if self._sample_call is False:
            pipe = self.pipe
            call = (
                None
                if self.source.family == "flux2-klein"
                else self._sample_compiler(self.settings.sample_compile, pipe.device)
            )
            if call is not None and pipe.device.type == "cuda":
                import torch

                pipe.unet.to(memory_format=torch.channels_last)
            self._sample_call = call
        return self._sample_call

    @contextlib.contextmanager
    def _sampling(self, pipe: DiffusersPipeline) -> Iterator[SampleCompileStats]:
        """The UNet compiled (when it is, and usable) for one job's sampling."""
        call = self.sample_call
        if call is None or not call.usable:
            yield SampleCompileStats()
            return
        with call.installed(pipe.unet) as stats:
            yield stats

    @property
    def native_resolution(self) -> int:
        return self.source.native_resolution

    @property
    def img2img(self) -> DiffusersPipeline:
        """An img2img pipeline sharing the resident modules (and so any loaded LoRA)."""
        if self._img2img is None:
            from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline

            pipe = self.pipe
            img2img: Any
            if self.source.family == "flux2-klein":
                from headshots.generation.klein import KleinImg2Img

                img2img = KleinImg2Img(pipe)
            elif self.source.family == "sdxl":
                img2img = StableDiffusionXLImg2ImgPipeline(**pipe.components)
            else:
                img2img = StableDiffusionImg2ImgPipeline(
                    **pipe.components, requires_safety_checker=False
                )
            img2img.set_progress_bar_config(disable=True)
            self._img2img = img2img
        return self._img2img

    def controlnet(self, hint: ControlHint) -> Any:
        """The ``hint`` ControlNet of the base's family, loaded once and kept resident."""
        if hint not in self._controlnets:
            from headshots.generation.controlnet import load_controlnet

            loader = self._controlnet_loader or load_controlnet
            started = time.monotonic()
            model = loader(self.settings, self.source.family, hint)
            pipe = self.pipe
            dtype = denoiser(pipe).dtype
            # Cast only when the loader did not already load in the base's dtype.
            model = model.to(pipe.device) if model.dtype == dtype else model.to(pipe.device, dtype)
            self._controlnets[hint] = model
            logger.info("%s ControlNet resident after %.1fs", hint, time.monotonic() - started)
        return self._controlnets[hint]

    def control_pipeline(self, hint: ControlHint, *, img2img: bool) -> DiffusersPipeline:
        """The ControlNet pipeline of ``hint`` over the resident modules (and so the LoRA)."""
        key = (hint, img2img)
        if key not in self._control_pipes:
            from headshots.generation.controlnet import controlnet_pipeline

            self._control_pipes[key] = controlnet_pipeline(
                self.pipe, self.controlnet(hint), self.source.family, img2img=img2img
            )
        return self._control_pipes[key]

    @contextlib.contextmanager
    def adapters(
        self, lora: LoraSource | None, adapter_name: str, *, lcm: bool = False, scale: float = 1.0
    ) -> Iterator[DiffusersPipeline]:
        """Hold the pipeline with the job's LoRA (and the LCM-LoRA) active; unload on exit."""
        with self._lock, unet_lock(denoiser(self.pipe)):
            pipe = self.pipe
            names: list[str] = []
            weights: list[float] = []
            try:
                if lora is not None:
                    state = lora_state_dict(lora)
                    with MODEL_LOADS:
                        pipe.load_lora_weights(state, adapter_name=adapter_name)
                    names.append(adapter_name)
                    weights.append(scale)
                if lcm:
                    state = self._lcm_lora()
                    with MODEL_LOADS:
                        pipe.load_lora_weights(state, adapter_name=LCM_ADAPTER)
                    names.append(LCM_ADAPTER)
                    weights.append(1.0)
                if names:
                    pipe.set_adapters(names, adapter_weights=weights)
                yield pipe
            finally:
                if names or getattr(denoiser(pipe), "peft_config", None):
                    # Removes the peft layers altogether: nothing of this job reaches the next.
                    pipe.unload_lora_weights()
                pipe.scheduler = self._base_scheduler

    def _lcm_lora(self) -> dict[str, torch.Tensor]:
        if self._lcm_state is None:
            from headshots.generation.fetch import lcm_lora_file

            path = lcm_lora_file(self.settings)
            self._lcm_state = lora_state_dict(path)
        return dict(self._lcm_state)

    def effective_settings(self, spec: PromptSpec) -> dict[str, Any]:
        """Scheduler, steps and cfg as they will really run (LCM needs few steps, low cfg).

        klein keeps its own flow-matching scheduler; its step-distilled variant runs its
        model card's 4 steps without guidance (a quick draft there is just that).
        """
        scheduler: str = spec.scheduler
        steps, cfg = spec.steps, spec.cfg
        note = None
        negative_used: bool | None = None
        if self.source.family == "flux2-klein":
            from headshots.generation import klein

            steps, cfg = klein.sampling(klein.is_distilled(self.pipe), steps, cfg)
            scheduler = klein.SCHEDULER_NAME
            # klein reads a negative prompt only when it samples with guidance (the base).
            negative_used = cfg > 1.0
        elif scheduler == "lcm":
            if self.settings.lcm_lora:
                steps = max(LCM_STEPS[0], min(LCM_STEPS[1], steps))
                cfg = max(LCM_CFG[0], min(LCM_CFG[1], cfg))
            else:
                scheduler = "euler_a"
                note = "lcm requested but HEADSHOTS_LCM_LORA is not set: used euler_a"
                logger.warning(note)
        return {
            "scheduler": scheduler,
            "steps": steps,
            "cfg": cfg,
            "note": note,
            "negative_prompt_used": negative_used,
        }

    def generate(
        self,
        spec: PromptSpec,
        *,
        lora: LoraSource | None,
        adapter_name: str,
        progress: ProgressCallback | None = None,
        check_cancelled: Callable[[], None] | None = None,
        batch_size: int = 4,
        init_image: Image.Image | None = None,
        strength: float = 0.55,
        control: Control | None = None,
    ) -> GenerationResult:
        """One image per seed of ``spec``; ``check_cancelled`` may raise between steps.

        With ``init_image`` every seed is a variation of that image (img2img at ``strength``):
        "More like #N" keeps the composition and light the user picked, and changes details.
        With ``control`` a ControlNet steers every image by the reference's pose or edges; a
        variation then starts from ``init_image``, anything else from the fitted reference.
        """
        import torch

        effective = self.effective_settings(spec)
        seeds = list(spec.seeds)
        images: list[GeneratedImage] = []
        call = self.sample_call
        if call is not None and call.usable:
            adapter_name = SAMPLE_ADAPTER
        tiled = needs_vae_tiling(spec.width, spec.height, self.native_resolution)
        with (
            self.adapters(lora, adapter_name, lcm=effective["scheduler"] == "lcm") as pipe,
            _vae_tiling(pipe.vae, tiled),
            self._sampling(pipe) as compile_stats,
        ):
            if self.source.family != "flux2-klein":
                pipe.scheduler = make_scheduler(effective["scheduler"], self._base_scheduler.config)
            steps = int(effective["steps"])
            runner: Any = pipe
            size_or_image: dict[str, Any] = {"width": spec.width, "height": spec.height}
            # img2img runs only the last `strength` share of the schedule.
            progress_steps = steps
            start_image, start_strength = (
                (init_image, strength)
                if init_image is not None or control is None
                else (control.init, control.strength)
            )
            if control is not None:
                runner = self.control_pipeline(control.hint, img2img=start_image is not None)
                runner.scheduler = pipe.scheduler  # the pipe shares modules, not this
                size_or_image["controlnet_conditioning_scale"] = control.scale
                if start_image is None:
                    size_or_image["image"] = control.image
                else:
                    size_or_image["control_image"] = control.image
            elif start_image is not None:
                runner = self.img2img
                runner.scheduler = pipe.scheduler  # the img2img pipe shares modules, not this
            if start_image is not None:
                source = start_image.convert("RGB").resize((spec.width, spec.height))
                # img2img takes its size from the image.
                del size_or_image["width"], size_or_image["height"]
                size_or_image.update(image=source, strength=start_strength)
                progress_steps = max(1, int(steps * start_strength))
            # compel: weighted, never truncated, positive and negative padded to one length.
            encoded = encode_prompts(
                runner, spec.prompt, spec.negative_prompt, family=self.source.family
            )
            for start in range(0, len(seeds), batch_size):
                chunk = seeds[start : start + batch_size]
                # One generator per image: each image is reproducible from its own seed.
                generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in chunk]

                def on_step_end(
                    _pipe: Any,
                    step: int,
                    _timestep: Any,
                    kwargs: dict[str, Any],
                    _start: int = start,
                    _n: int = len(chunk),
                ) -> dict[str, Any]:
                    if check_cancelled is not None:
                        check_cancelled()
                    if progress is not None:
                        progress(_start + _n * min(1.0, (step + 1) / progress_steps), len(seeds))
                    return kwargs

                output = runner(
                    **encoded.pipe_kwargs(),
                    num_inference_steps=steps,
                    guidance_scale=effective["cfg"],
                    **size_or_image,
                    num_images_per_prompt=len(chunk),
                    generator=generators,
                    callback_on_step_end=on_step_end,
                )
                for offset, image in enumerate(output.images):
                    images.append(
                        GeneratedImage(image=image, seed=chunk[offset], index=start + offset)
                    )
        record = {
            **spec.to_record(),
            **{k: v for k, v in effective.items() if v is not None},
            **({"variation_strength": strength} if init_image is not None else {}),
            **({"control": _control_record(control, init_image)} if control is not None else {}),
            **encoded.to_record(),
            "model": self.source.name,
            "family": self.source.family,
            "vae_tiling": tiled,
            "sample_compile": compile_stats.to_record(),
        }
        return GenerationResult(images=images, record=record, compile=compile_stats)

    def close(self) -> None:
        """Drop the resident modules (and free accelerator memory)."""
        with self._lock:
            self._pipe = None
            self._img2img = None
            self._controlnets.clear()
            self._control_pipes.clear()
            self._lcm_state = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover - torch is a worker dependency
            pass


def _control_record(control: Control, init_image: Image.Image | None) -> dict[str, Any]:
    """How the ControlNet steered: enough, with the stored control image, to reproduce it."""
    record: dict[str, Any] = {"hint": control.hint, "conditioning_scale": control.scale}
    if init_image is None and control.init is not None:
        record["reference_strength"] = control.strength
    return record
