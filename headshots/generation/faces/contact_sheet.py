"""A single JPEG grid of results with their rank numbers, small enough for any chat."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

#: Telegram accepts photos up to 10 MB; Discord's default upload limit is 10 MiB.
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
CELL = 512
GAP = 8
LABEL_HEIGHT = 40
BACKGROUND = (245, 245, 245)
_QUALITIES = (90, 80, 70, 60, 50)


def contact_sheet(
    images: Sequence[Image.Image],
    labels: Sequence[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> bytes:
    """Return a JPEG grid of ``images`` captioned with ``labels``, at most ``max_bytes`` long.

    Lowers JPEG quality first, then the cell size, until the sheet fits.
    """
    if not images:
        raise ValueError("a contact sheet needs at least one image")
    if len(labels) != len(images):
        raise ValueError("one label per image")
    cell = CELL
    while True:
        sheet = _draw(images, labels, cell)
        for quality in _QUALITIES:
            buffer = io.BytesIO()
            sheet.save(buffer, format="JPEG", quality=quality, optimize=True)
            if buffer.tell() <= max_bytes:
                return buffer.getvalue()
        if cell <= 32:
            raise ValueError(f"cannot fit {len(images)} images into {max_bytes} bytes")
        cell = cell * 3 // 4


def _draw(images: Sequence[Image.Image], labels: Sequence[str], cell: int) -> Image.Image:
    columns = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    label_height = max(12, LABEL_HEIGHT * cell // CELL)
    width = columns * cell + (columns + 1) * GAP
    height = rows * (cell + label_height) + (rows + 1) * GAP
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=max(10, label_height * 3 // 4))
    for position, (image, label) in enumerate(zip(images, labels, strict=True)):
        row, column = divmod(position, columns)
        x = GAP + column * (cell + GAP)
        y = GAP + row * (cell + label_height + GAP)
        thumbnail = image.convert("RGB")
        # Fit the cell both ways: small images (previews, tiny test models) are enlarged too,
        # so the grid reads as a grid and labels sit under their picture.
        scale = min(cell / thumbnail.width, cell / thumbnail.height)
        size = (max(1, round(thumbnail.width * scale)), max(1, round(thumbnail.height * scale)))
        thumbnail = thumbnail.resize(size, Image.Resampling.LANCZOS)
        sheet.paste(
            thumbnail, (x + (cell - thumbnail.width) // 2, y + (cell - thumbnail.height) // 2)
        )
        draw.text((x + 4, y + cell + 2), label, fill=(20, 20, 20), font=font)
    return sheet
