"""Prompt text without a model: A1111 emphasis read and written in compel's syntax, terms joined.

The presets, the brand kit and the content policy build prompt *text*; the chat needs that
text too (summaries, kit previews), so it lives here, apart from the encoding in
``headshots.generation.prompts`` that needs torch and compel.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: A1111's weight for one pair of round brackets (square brackets divide by it).
A1111_EMPHASIS = 1.1

# A1111's own tokenisation of attention syntax (modules/prompt_parser.py, re_attention).
_A1111_ATTENTION = re.compile(
    r"\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:"
)
# What compel would read as syntax inside plain text: brackets, quotes, and +/- at a word's end
# ("tie-" is a down-weight in compel).
_COMPEL_SPECIAL = re.compile(r"[()\"]|(?<=\w)[+\-]+(?=[\s,]|$)")
_COMPEL_GROUP = re.compile(r"\(([^()]*)\)(\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Segment:
    """A run of prompt text with one weight."""

    text: str
    weight: float = 1.0


def parse_a1111(text: str) -> list[Segment]:
    """Split A1111 prompt text into weighted segments, exactly as A1111 weighs them."""
    parts: list[list[Any]] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply(start: int, factor: float) -> None:
        for part in parts[start:]:
            part[1] *= factor

    for match in _A1111_ATTENTION.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\"):
            parts.append([token[1:], 1.0])
        elif token == "(":
            round_open.append(len(parts))
        elif token == "[":
            square_open.append(len(parts))
        elif weight is not None and round_open:
            multiply(round_open.pop(), float(weight))
        elif token == ")" and round_open:
            multiply(round_open.pop(), A1111_EMPHASIS)
        elif token == "]" and square_open:
            multiply(square_open.pop(), 1 / A1111_EMPHASIS)
        else:
            parts.append([token, 1.0])
    # Unclosed brackets weigh to the end of the prompt, as in A1111.
    for start in round_open:
        multiply(start, A1111_EMPHASIS)
    for start in square_open:
        multiply(start, 1 / A1111_EMPHASIS)

    segments: list[Segment] = []
    for part_text, part_weight in parts:
        weight = round(float(part_weight), 4)
        if segments and abs(segments[-1].weight - weight) < 1e-6:
            segments[-1] = Segment(segments[-1].text + part_text, weight)
        else:
            segments.append(Segment(part_text, weight))
    return [s for s in segments if s.text.strip()]


def _escape(text: str) -> str:
    return _COMPEL_SPECIAL.sub("", text)


def _format_weight(weight: float) -> str:
    return f"{weight:.4f}".rstrip("0").rstrip(".")


def render_compel(segments: Sequence[Segment]) -> str:
    """Compel syntax for ``segments``; weighted lists of terms stay separate terms."""
    pieces: list[tuple[str, bool]] = []  # (compel text, is a weighted list of terms)
    for segment in segments:
        text = " ".join(_escape(segment.text).split())
        if abs(segment.weight - 1.0) > 1e-6:
            text = text.strip(" ,")
            if text:
                weight = _format_weight(segment.weight)
                pieces.append((f"({text}){weight}", "," in text))
        elif text:
            pieces.append((text, False))
    out = ""
    after_list = False
    for piece, is_list in pieces:
        if not out:
            out = piece
        elif is_list or after_list:
            # "blemish,(oversmoothed, 3d render) scar": the group is a term of its own.
            out = f"{out.rstrip(' ,')}, {piece.lstrip(' ,')}"
        elif piece[:1] in ",.;:":
            out += piece
        else:
            out = f"{out} {piece}"
        after_list = is_list
    return out.strip(" ,")


def a1111_to_compel(text: str) -> str:
    """The same prompt in compel's syntax (see the module docstring)."""
    return render_compel(parse_a1111(text))


def plain_text(compel_prompt: str) -> str:
    """The words of a prompt built by :func:`render_compel`, without weights."""
    return _COMPEL_GROUP.sub(lambda match: match.group(1), compel_prompt)


def weighted_terms(compel_prompt: str) -> dict[str, float]:
    """``{text: weight}`` of every weighted group of a prompt built by :func:`render_compel`."""
    return {m.group(1): float(m.group(2)) for m in _COMPEL_GROUP.finditer(compel_prompt)}


def join_terms(*parts: str | None) -> str:
    """Comma-joined non-empty parts."""
    return ", ".join(part.strip(" ,") for part in parts if part and part.strip(" ,"))
