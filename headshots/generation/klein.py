"""What is particular to the FLUX.2 [klein] family: sampling defaults, its img2img, the variant.

klein comes as a step-distilled model (``FLUX.2-klein-4B``: 4 steps, no classifier-free
guidance) and an undistilled base (``FLUX.2-klein-base-4B``: 50 steps, guidance 4.0); the
model cards give those numbers, and ``model_index.json`` says which one a folder holds
(``is_distilled``). The base is the one to train a LoRA on (diffusers' DreamBooth example
does); the distilled one samples a quick draft.

diffusers has no klein img2img pipeline; :class:`KleinImg2Img` is its inpaint pipeline with a
mask that covers the whole image, which is img2img: the image is noised to ``strength`` and
redrawn everywhere. "More like #N", the upscale's detail pass and the face refine use it.
"""

from __future__ import annotations

import logging
from typing import Any

from PIL import Image

logger = logging.getLogger(__name__)

#: Model card of the step-distilled FLUX.2 [klein]: 4 steps, guidance 1.0 (none).
DISTILLED_STEPS = 4
DISTILLED_GUIDANCE = 1.0
SCHEDULER_NAME = "flow_match_euler"


def is_distilled(pipe: Any) -> bool:
    """Whether ``pipe`` holds the step-distilled klein (few steps, no guidance)."""
    return bool(getattr(pipe.config, "is_distilled", False))


def sampling(distilled: bool, steps: int, cfg: float) -> tuple[int, float]:
    """(steps, guidance) as klein runs them: the distilled model's card allows nothing else.

    The undistilled base takes the preset's numbers (``natural_steps``/``natural_cfg`` in
    presets.toml: 50 and 4.0, its model card's).
    """
    if distilled:
        return min(steps, DISTILLED_STEPS), DISTILLED_GUIDANCE
    return steps, cfg


class KleinImg2Img:
    """img2img on klein: its inpaint pipeline with a white (redraw everything) mask.

    Called like diffusers' img2img pipelines (``image=``, ``strength=``); shares the modules
    of the text-to-image pipeline it is built from, and so any LoRA loaded into them.
    """

    def __init__(self, pipe: Any) -> None:
        from diffusers import Flux2KleinInpaintPipeline

        inpaint: Any = Flux2KleinInpaintPipeline(**pipe.components)
        inpaint.set_progress_bar_config(disable=True)
        self.inpaint = inpaint

    @property
    def scheduler(self) -> Any:
        return self.inpaint.scheduler

    @scheduler.setter
    def scheduler(self, value: Any) -> None:
        self.inpaint.scheduler = value

    def set_progress_bar_config(self, **kwargs: Any) -> None:
        self.inpaint.set_progress_bar_config(**kwargs)

    def __getattr__(self, name: str) -> Any:
        # Modules and helpers (tokenizer, text_encoder, encode_prompt, device) are the
        # inpaint pipeline's, which are the text-to-image pipeline's.
        return getattr(self.__dict__["inpaint"], name)

    def __call__(self, *, image: Any, strength: float, **kwargs: Any) -> Any:
        images = image if isinstance(image, list) else [image]
        images = [picture.convert("RGB") for picture in images]
        width, height = images[0].size
        masks = [Image.new("L", picture.size, 255) for picture in images]
        return self.inpaint(
            image=images,
            mask_image=masks,
            strength=strength,
            width=width,
            height=height,
            **kwargs,
        )
