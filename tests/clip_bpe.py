"""SD1.5's real CLIP tokenizer, built offline from the BPE merges ``open-clip-torch`` ships.

``open_clip/bpe_simple_vocab_16e6.txt.gz`` holds the same merges as OpenAI's CLIP (which SD1.5's
``tokenizer/`` folder also has as ``vocab.json`` + ``merges.txt``). The vocabulary follows from
them exactly as OpenAI's ``SimpleTokenizer`` builds it: the 256 byte symbols of
``bytes_to_unicode``, the same with ``</w>``, one entry per merge, then ``<|startoftext|>`` and
``<|endoftext|>``: 49408 entries.

The file is read through package metadata, without importing ``open_clip`` (which imports
torchvision, and PyPI's torchvision does not load beside the CPU build of torch used here).
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

from headshots.generation.tiny import _byte_level_alphabet

VOCAB_SIZE = 49408
#: OpenAI's SimpleTokenizer keeps merges[1 : 49152 - 256 - 2 + 1] (line 0 is a header).
_MERGES_END = 49152 - 256 - 2 + 1


def bpe_file() -> Path:
    return Path(
        str(distribution("open_clip_torch").locate_file("open_clip/bpe_simple_vocab_16e6.txt.gz"))
    )


@lru_cache(maxsize=1)
def clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    lines = gzip.decompress(bpe_file().read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:_MERGES_END]]
    symbols = _byte_level_alphabet()
    tokens = [*symbols, *(s + "</w>" for s in symbols), *("".join(m) for m in merges)]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}, [(a, b) for a, b in merges]


def sd15_tokenizer() -> Any:
    """A ``CLIPTokenizer`` equal to SD1.5's (``runwayml/stable-diffusion-v1-5/tokenizer``)."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab_and_merges()
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=77)
