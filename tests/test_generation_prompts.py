"""Prompts reach the model whole: counted with SD1.5's real CLIP tokenizer, encoded by compel."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import pytest

from headshots.generation.prompts import count_text_tokens, encode_prompts, plain_text
from headshots.queue.contracts import PersonAttributes, StyleChoice
from headshots.style.presets import SAFETY_NEGATIVE, build_prompt_spec, load_presets
from tests.clip_bpe import VOCAB_SIZE, sd15_tokenizer


@pytest.fixture(scope="module")
def sd15_text_side() -> Any:
    """SD1.5's tokenizer with a tiny random text encoder of the same vocabulary."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = sd15_tokenizer()
    torch.manual_seed(0)
    encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=VOCAB_SIZE,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    ).eval()
    # What compel reads of a pipeline: its tokenizer and text encoder.
    return SimpleNamespace(tokenizer=tokenizer, text_encoder=encoder)


def test_the_tokenizer_is_sd15s() -> None:
    tokenizer = sd15_tokenizer()
    assert len(tokenizer) == VOCAB_SIZE
    # Token ids of OpenAI's CLIP (the SD1.5 tokenizer), as other CLIP ports test them.
    assert tokenizer("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tokenizer("a photo of a dog")["input_ids"][-2] == 1929
    assert tokenizer("Hello, world!")["input_ids"] == [49406, 3306, 267, 1002, 256, 49407]


def test_the_reference_negative_prompt_is_far_past_77_tokens() -> None:
    tokenizer = sd15_tokenizer()
    spec = build_prompt_spec(StyleChoice(preset="legal", subject_class="woman"), job_id="j")
    negative = count_text_tokens(tokenizer, plain_text(spec.negative_prompt))
    safety = count_text_tokens(tokenizer, SAFETY_NEGATIVE)
    # The measurement: ~54 of ~190 preset tokens would survive truncation at 77.
    assert negative - safety > 180 and 77 - 2 - safety < 60


def _combinations() -> list[StyleChoice]:
    choices = []
    for name, preset in load_presets().items():
        for cls, background, attire in itertools.product(
            ("man", "woman", "person"), (None, *preset.backgrounds), (None, *preset.attire)
        ):
            choices.append(
                StyleChoice(preset=name, subject_class=cls, background=background, attire=attire)  # type: ignore[arg-type]
            )
    return choices


def _check_whole(side: Any, style: StyleChoice) -> int:
    spec = build_prompt_spec(style, job_id="j")
    encoded = encode_prompts(side, spec.prompt, spec.negative_prompt)
    assert encoded.to_record()["tokens_dropped"] == 0, (style, encoded.to_record())
    assert encoded.prompt.encoded == encoded.prompt.text > 0
    assert encoded.negative_prompt.encoded == encoded.negative_prompt.text
    assert encoded.negative_prompt.chunks >= 3
    # compel pads both prompts to one length (a whole number of 77-token windows).
    positive = encoded.embeddings["prompt_embeds"]
    negative = encoded.embeddings["negative_prompt_embeds"]
    assert positive.shape == negative.shape
    assert positive.shape[1] == 77 * max(encoded.prompt.chunks, encoded.negative_prompt.chunks)
    return encoded.prompt.text


def test_every_preset_class_background_and_attire_is_encoded_whole(sd15_text_side: Any) -> None:
    tokenizer = sd15_text_side.tokenizer
    combinations = _combinations()
    assert len(combinations) > 300
    # Every combination counted by SD1.5's tokenizer (the tokenizer is fast; compel's parser is
    # not: ~0.1 s a prompt); compel then encodes, per preset, each class, each background and
    # each attire option, and the combination with the most tokens, and loses none of them.
    longest: dict[str, tuple[int, StyleChoice]] = {}
    negatives = set()
    for style in combinations:
        spec = build_prompt_spec(style, job_id="j")
        tokens = count_text_tokens(tokenizer, plain_text(spec.prompt))
        if tokens > longest.get(style.preset, (0, style))[0]:
            longest[style.preset] = (tokens, style)
        negatives.add(spec.negative_prompt)
    assert len(negatives) == 1  # one negative prompt for all presets
    encoded = 0
    for name, preset in load_presets().items():
        styles = [StyleChoice(preset=name, subject_class=cls) for cls in ("man", "person")]  # type: ignore[arg-type]
        styles += [
            StyleChoice(preset=name, subject_class="woman", background=b)
            for b in preset.backgrounds
        ]
        styles += [StyleChoice(preset=name, subject_class="woman", attire=a) for a in preset.attire]
        for style in styles:
            _check_whole(sd15_text_side, style)
            encoded += 1
        tokens, style = longest[name]
        assert _check_whole(sd15_text_side, style) == tokens
    assert encoded > 60


def test_attributes_and_long_custom_text_stay_whole(sd15_text_side: Any) -> None:
    attributes = PersonAttributes(
        eye_colour="dark_brown", glasses="none", hair_colour="blonde", hair_length="long"
    )
    style = StyleChoice(
        preset="healthcare",
        subject_class="woman",
        attributes=attributes,
        custom="navy scrubs with a name badge, warm window light, calm confident expression, "
        "natural skin texture, natural makeup, small stud earrings, navy lanyard, soft smile",
    )
    spec = build_prompt_spec(style, job_id="j")
    encoded = encode_prompts(sd15_text_side, spec.prompt, spec.negative_prompt)
    assert encoded.prompt.text > 75, "long enough to need a second window"
    assert encoded.prompt.chunks == 2 and encoded.to_record()["tokens_dropped"] == 0


def test_weights_reach_the_embeddings(sd15_text_side: Any) -> None:
    plain = encode_prompts(sd15_text_side, "portrait of ohwx man, blurry", "")
    weighted = encode_prompts(sd15_text_side, "portrait of (ohwx man)1.1, blurry", "")
    again = encode_prompts(sd15_text_side, "portrait of (ohwx man)1.1, blurry", "")
    assert not plain.embeddings["prompt_embeds"].equal(weighted.embeddings["prompt_embeds"])
    assert weighted.embeddings["prompt_embeds"].equal(again.embeddings["prompt_embeds"])
    assert weighted.prompt.text == plain.prompt.text


def test_sdxl_mode_uses_both_encoders_and_the_pooled_embedding() -> None:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = sd15_tokenizer()

    def config(hidden: int) -> CLIPTextConfig:
        return CLIPTextConfig(
            vocab_size=VOCAB_SIZE,
            hidden_size=hidden,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            projection_dim=16,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )

    torch.manual_seed(0)
    # SDXL's shape: CLIP ViT-L hidden states + OpenCLIP bigG hidden states and its projection.
    sdxl = SimpleNamespace(
        tokenizer=tokenizer,
        tokenizer_2=sd15_tokenizer(),
        text_encoder=CLIPTextModel(config(32)).eval(),
        text_encoder_2=CLIPTextModelWithProjection(config(48)).eval(),
    )
    spec = build_prompt_spec(
        StyleChoice(preset="legal", subject_class="woman"), job_id="j", native_resolution=1024
    )
    encoded = encode_prompts(sdxl, spec.prompt, spec.negative_prompt, family="sdxl")
    embeds = encoded.embeddings
    windows = max(encoded.prompt.chunks, encoded.negative_prompt.chunks)
    assert embeds["prompt_embeds"].shape == (1, 77 * windows, 32 + 48)
    assert embeds["negative_prompt_embeds"].shape == embeds["prompt_embeds"].shape
    assert embeds["pooled_prompt_embeds"].shape == (1, 16)
    assert embeds["negative_pooled_prompt_embeds"].shape == (1, 16)
    assert not embeds["pooled_prompt_embeds"].equal(embeds["negative_pooled_prompt_embeds"])
    assert encoded.to_record()["tokens_dropped"] == 0 and windows >= 3
    assert (spec.output_width, spec.output_height) == (1638, 2048)
