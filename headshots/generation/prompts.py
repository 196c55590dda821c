"""Prompts as the model sees them: A1111 emphasis translated to compel, long prompts kept whole.

CLIP reads 77 tokens at a time. Plain diffusers truncates everything past that, which drops
three quarters of the reference negative prompt, and treats ``(ohwx man)`` as text. So:

- ``a1111_to_compel`` (:mod:`headshots.style.prompt_text`) translates the presets' A1111
  emphasis (``(word)`` = x1.1, ``[word]`` = /1.1, ``(word:1.3)``, nesting multiplies) into
  compel's syntax (``(word)1.1``). A weighted group that is itself a list of terms
  (``(oversmoothed, 3d render) scar``) is kept apart from its neighbours with commas, so
  stripping the brackets never glues terms together.
- :func:`encode_prompts` encodes positive and negative prompts with compel
  (``truncate_long_prompts=False``: as many 77-token chunks as the text needs, both prompts
  padded to the same length), for SD1.5 and SDXL (both tokenizers and encoders, pooled
  embeddings; an empty negative prompt is zeros, as SDXL's own pipelines make it).
  Text-to-image, img2img (face refine, "More like", the upscale's detail pass) and the
  training-time likeness validator all call it.
- :class:`PromptTokens` says how many tokens each prompt had and how many reached the model, by
  the pipeline's own tokenizer (on SDXL, the one of the two that dropped more): the generation
  record carries it, and ``dropped`` must be 0.
- FLUX.2 [klein] reads prompts with Qwen3 through the pipeline's own ``encode_prompt`` (chat
  template, hidden states of three layers stacked): plain text, weights dropped, and a
  sequence as long as the longer prompt needs (at least the pipeline's 512) instead of its
  cut at 512 tokens; :class:`PromptTokens` counts them the same way (one "chunk").

The pure-text part (A1111 emphasis to compel, joining terms) is
:mod:`headshots.style.prompt_text`, which the chat uses too; this module imports torch and
compel lazily.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from headshots.generation.models import ModelFamily as Family
from headshots.style.prompt_text import plain_text

# --- encoding ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptTokens:
    """Token counts of one prompt by the pipeline's tokenizer (without start/end markers)."""

    text: int  # tokens in the prompt's words
    encoded: int  # tokens the text encoder actually saw
    chunks: int  # 77-token windows used

    @property
    def dropped(self) -> int:
        return max(0, self.text - self.encoded)


@dataclass
class EncodedPrompts:
    """Embeddings for a pipeline call, and what each prompt cost in tokens."""

    embeddings: dict[str, Any]
    prompt: PromptTokens
    negative_prompt: PromptTokens
    #: Who encoded: compel (CLIP, 77-token windows) or the pipeline's own Qwen3 encoder.
    encoder: str = "compel"

    def pipe_kwargs(self, images_per_prompt: int = 1) -> dict[str, Any]:
        """``prompt_embeds=...`` (and negative, pooled) repeated for ``images_per_prompt``.

        The pipelines repeat embeddings themselves for ``num_images_per_prompt``; this is for
        callers that batch several images in one call without it.
        """
        if images_per_prompt == 1:
            return dict(self.embeddings)
        return {
            key: value.repeat(images_per_prompt, *([1] * (value.dim() - 1)))
            for key, value in self.embeddings.items()
        }

    def to_record(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt.text,
            "negative_prompt_tokens": self.negative_prompt.text,
            "prompt_tokens_encoded": self.prompt.encoded,
            "negative_prompt_tokens_encoded": self.negative_prompt.encoded,
            "prompt_chunks": self.prompt.chunks,
            "negative_prompt_chunks": self.negative_prompt.chunks,
            "tokens_dropped": self.prompt.dropped + self.negative_prompt.dropped,
            "prompt_encoder": self.encoder,
        }


def count_text_tokens(tokenizer: Any, text: str) -> int:
    """Tokens of ``text`` by ``tokenizer``, never truncated, without start/end markers."""
    ids = tokenizer(text, truncation=False, add_special_tokens=False)["input_ids"]
    return len(ids)


def _encoded_tokens(tokenizer: Any, tokens: Any) -> tuple[int, int]:
    """(content tokens, chunks) in compel's chunked token ids: what lies between each chunk's
    start marker and its first end marker (padding may reuse the end token)."""
    ids = [int(t) for t in tokens.reshape(-1).tolist()]
    window = int(tokenizer.model_max_length)
    content = 0
    chunks = 0
    for start in range(0, len(ids), window):
        chunk = ids[start : start + window]
        chunks += 1
        body = chunk[1:] if chunk and chunk[0] == tokenizer.bos_token_id else chunk
        end = body.index(tokenizer.eos_token_id) if tokenizer.eos_token_id in body else len(body)
        content += end
    return content, chunks


def _tokens_for(tokenizer: Any, text: str, tokenization: Any) -> PromptTokens:
    encoded, chunks = _encoded_tokens(tokenizer, tokenization)
    return PromptTokens(text=count_text_tokens(tokenizer, text), encoded=encoded, chunks=chunks)


@functools.lru_cache(maxsize=256)
def _parsed(prompt: str) -> Any:
    """compel's parse of ``prompt``, cached: its pyparsing grammar takes ~0.5 s on the reference
    negative prompt, which every image of every job shares."""
    from compel import Compel

    return Compel.parse_prompt_string(prompt)


@functools.lru_cache(maxsize=1)
def _compel_class() -> Any:
    """``compel.Compel`` parsing through :func:`_parsed` (built on first use: compel imports
    diffusers)."""
    from compel import Compel

    class CachedCompel(Compel):  # type: ignore[misc]
        @classmethod
        def parse_prompt_string(cls, prompt_string: str) -> Any:
            return _parsed(prompt_string)

    return CachedCompel


def _compel(tokenizer: Any, text_encoder: Any, device: Any, **options: Any) -> Any:
    """A compel encoder that never truncates (as many 77-token windows as the text needs)."""
    return _compel_class()(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        truncate_long_prompts=False,
        device=str(device),
        **options,
    )


def _pad_windows(embeds: Any, windows: int, empty: Any) -> Any:
    """``embeds`` extended with the empty prompt's embedding to ``windows`` x 77 tokens."""
    import torch

    missing = windows - embeds.shape[1] // empty.shape[1]
    if missing <= 0:
        return embeds
    return torch.cat([embeds, empty.repeat(embeds.shape[0], missing, 1)], dim=1)


def encode_prompts(
    pipe: Any, prompt: str, negative_prompt: str, *, family: Family = "sd15"
) -> EncodedPrompts:
    """Embeddings of ``prompt`` and ``negative_prompt`` (compel syntax) for ``pipe``'s encoders.

    Works on any pipeline sharing the base's tokenizers and text encoders (text-to-image,
    img2img, or one built around a training UNet). Positive and negative come out padded to the
    same number of 77-token windows, as the UNet's cross-attention batch needs. SDXL, as
    compel's ``CompelForSDXL`` does it: both encoders' penultimate hidden states side by side,
    and the second encoder's pooled embedding.
    """
    if family == "flux2-klein":
        return _encode_qwen(pipe, prompt, negative_prompt)
    import torch
    from compel import ReturnedEmbeddingsType

    device = getattr(pipe, "_execution_device", None) or pipe.text_encoder.device
    texts = [prompt, negative_prompt]
    with torch.no_grad():
        if family == "sdxl":
            hidden = ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED
            first = _compel(
                pipe.tokenizer, pipe.text_encoder, device, returned_embeddings_type=hidden
            )
            second = _compel(
                pipe.tokenizer_2,
                pipe.text_encoder_2,
                device,
                returned_embeddings_type=hidden,
                requires_pooled=True,
            )
            left, tokens = first(texts, return_tokenization=True)
            right, tokens_2, pooled = second(texts, return_tokenization=True)
            windows = max(left.shape[1], right.shape[1]) // 77
            left = _pad_windows(left, windows, first([""]))
            right = _pad_windows(right, windows, second([""])[0])
            embeds = torch.cat([left, right], dim=-1)
            negative, negative_pooled = embeds[1:2], pooled[1:2]
            if not negative_prompt.strip() and _forces_zeros(pipe):
                # SDXL was trained with zeros as the unconditional input: an empty negative
                # prompt is zeros there, as diffusers' own encode_prompt makes it.
                negative, negative_pooled = negative.zero_(), negative_pooled.zero_()
            embeddings = {
                "prompt_embeds": embeds[0:1],
                "negative_prompt_embeds": negative,
                "pooled_prompt_embeds": pooled[0:1],
                "negative_pooled_prompt_embeds": negative_pooled,
            }
        else:
            compel = _compel(pipe.tokenizer, pipe.text_encoder, device)
            embeds, tokens = compel(texts, return_tokenization=True)
            tokens_2 = None
            embeddings = {"prompt_embeds": embeds[0:1], "negative_prompt_embeds": embeds[1:2]}
    prompt_tokens = _tokens_for(pipe.tokenizer, plain_text(prompt), tokens[0])
    negative_tokens = _tokens_for(pipe.tokenizer, plain_text(negative_prompt), tokens[1])
    if tokens_2 is not None:
        # Both SDXL encoders must have seen every word: the record keeps the worse of the two.
        prompt_tokens = _fewer_encoded(
            prompt_tokens, _tokens_for(pipe.tokenizer_2, plain_text(prompt), tokens_2[0])
        )
        negative_tokens = _fewer_encoded(
            negative_tokens,
            _tokens_for(pipe.tokenizer_2, plain_text(negative_prompt), tokens_2[1]),
        )
    return EncodedPrompts(
        embeddings=embeddings, prompt=prompt_tokens, negative_prompt=negative_tokens
    )


def _forces_zeros(pipe: Any) -> bool:
    """Whether ``pipe`` (an SDXL pipeline) encodes an empty negative prompt as zeros."""
    config = getattr(pipe, "config", None)
    return bool(getattr(config, "force_zeros_for_empty_prompt", True))


def _fewer_encoded(first: PromptTokens, second: PromptTokens) -> PromptTokens:
    """The count of the encoder that dropped more tokens (``first`` on a tie)."""
    return second if second.dropped > first.dropped else first


# --- FLUX.2 [klein]: the Qwen3 encoder ----------------------------------------------------------

#: ``Flux2KleinPipeline``'s sequence length: every prompt is padded to it, as in training.
KLEIN_MIN_SEQUENCE = 512
#: The Qwen3 layers klein stacks (the 4B and 9B encoders have 36 layers or more).
KLEIN_TEXT_LAYERS = (9, 18, 27)


def klein_text_layers(pipe: Any) -> tuple[int, ...]:
    """The text encoder layers whose hidden states condition ``pipe``'s transformer.

    The real models read layers 9, 18 and 27; a smaller encoder (a tiny test model) has fewer
    layers, so as many as the transformer takes are spread evenly over the ones it has.
    """
    layers = int(pipe.text_encoder.config.num_hidden_layers)
    stacked = int(pipe.transformer.config.joint_attention_dim) // int(
        pipe.text_encoder.config.hidden_size
    )
    if layers >= max(KLEIN_TEXT_LAYERS) and stacked == len(KLEIN_TEXT_LAYERS):
        return KLEIN_TEXT_LAYERS
    return tuple(max(1, round(layers * (k + 1) / stacked)) for k in range(stacked))


def _chat_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` wrapped in the chat template, as the klein pipeline builds them."""
    templated = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}],
        tokenize=False,
        add_generation_prompt=True,
        enable_thinking=False,
    )
    ids: list[int] = tokenizer(templated, truncation=False, add_special_tokens=False)["input_ids"]
    return ids


def klein_sequence_length(tokenizer: Any, *texts: str) -> int:
    """The encoder sequence length that holds every one of ``texts`` whole (at least 512).

    The pipeline truncates at ``max_sequence_length`` (512 by default); a longer prompt gets a
    longer sequence instead, so nothing is dropped.
    """
    return max([KLEIN_MIN_SEQUENCE, *(len(_chat_ids(tokenizer, text)) for text in texts)])


def _klein_tokens(tokenizer: Any, text: str, length: int) -> PromptTokens:
    ids = _chat_ids(tokenizer, text)
    inside = len(ids) - len(_chat_ids(tokenizer, ""))  # the words' tokens in the template
    words = count_text_tokens(tokenizer, text)
    # What the pipeline's tokenizer call (truncation at ``length``) keeps of the words.
    encoded = max(0, min(words, inside - max(0, len(ids) - length)))
    return PromptTokens(text=words, encoded=encoded, chunks=1)


def _encode_qwen(pipe: Any, prompt: str, negative_prompt: str) -> EncodedPrompts:
    """Embeddings of plain-text prompts by klein's own ``encode_prompt``, never truncated.

    Weights mean nothing to Qwen3, so any compel weights are dropped from the text. An empty
    negative prompt is the empty string's embedding, as the pipeline makes it itself.
    """
    import torch

    texts = [plain_text(prompt), plain_text(negative_prompt)]
    length = klein_sequence_length(pipe.tokenizer, *texts)
    layers = klein_text_layers(pipe)
    device = getattr(pipe, "_execution_device", None) or pipe.text_encoder.device
    with torch.no_grad():
        embeds, _ = pipe.encode_prompt(
            prompt=texts, device=device, max_sequence_length=length, text_encoder_out_layers=layers
        )
    return EncodedPrompts(
        embeddings={"prompt_embeds": embeds[0:1], "negative_prompt_embeds": embeds[1:2]},
        prompt=_klein_tokens(pipe.tokenizer, texts[0], length),
        negative_prompt=_klein_tokens(pipe.tokenizer, texts[1], length),
        encoder="qwen3",
    )
