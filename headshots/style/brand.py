"""Brand look of a team, with Pillow only (the chat side uses it; no torch here).

- :func:`background_phrase` turns the kit's background (a hex brand colour, a two-colour
  gradient, an office) into prompt text: diffusion models know colour *names*, not hex codes,
  so a hex colour is mapped to its nearest named colour.
- :func:`render_kit_preview` draws the kit on a stock composition (a neutral head-and-shoulders
  silhouette) so the admin sees backdrop, crop, grade and logo placement before anyone sends a
  selfie.
- :func:`export_headshot` / :func:`with_logo_mark` make the exported files: the chosen headshot
  at the kit's crop and size, and a profile-picture version with the logo as a small corner mark
  (never painted on a face or clothes: it sits in the corner margin, scaled small).
- :func:`normalise_logo` turns an uploaded logo into a small PNG through the selfies' bounded
  decode (same pixel cap, never decoded above 2048 px); vector files, web pages, archives and
  animations are refused with a :class:`LogoRejected` whose ``kind`` the chat words.
- :func:`team_zip` packs an export, split into parts under a byte limit, one unique file name
  per member (numbered on collision, never the contact sheet's). Every JPEG in it (headshots,
  profile pictures, the contact sheet) carries the XMP provenance packet (IPTC
  DigitalSourceType = trainedAlgorithmicMedia), and a C2PA manifest when a signer is passed.
"""

from __future__ import annotations

import io
import re
import unicodedata
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageDraw, ImageFilter, ImageOps

from headshots.errors import UserError
from headshots.generation.faces.contact_sheet import contact_sheet
from headshots.generation.faces.images import CHECK_LONG_SIDE, CHECK_MAX_PIXELS, decode_image
from headshots.generation.faces.types import ImageRejected
from headshots.generation.provenance import Provenance
from headshots.style.look import apply_colour_grade, crop_to_aspect

# Named colours a diffusion prompt understands, with representative sRGB values.
_NAMED_COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "light grey": (200, 200, 200),
    "grey": (128, 128, 128),
    "charcoal": (54, 69, 79),
    "black": (20, 20, 20),
    "dark navy": (14, 28, 56),
    "navy blue": (0, 0, 128),
    "royal blue": (65, 105, 225),
    "sky blue": (135, 206, 235),
    "teal": (0, 128, 128),
    "turquoise": (64, 224, 208),
    "forest green": (34, 139, 34),
    "olive green": (107, 142, 35),
    "mint green": (152, 255, 152),
    "lime green": (50, 205, 50),
    "yellow": (255, 215, 0),
    "mustard": (225, 173, 1),
    "orange": (255, 140, 0),
    "coral": (255, 127, 80),
    "red": (200, 30, 30),
    "burgundy": (128, 0, 32),
    "pink": (255, 182, 193),
    "magenta": (255, 0, 144),
    "purple": (128, 0, 128),
    "lavender": (181, 126, 220),
    "beige": (225, 205, 170),
    "brown": (120, 72, 40),
    "cream": (255, 253, 208),
}


def hex_to_rgb(value: str) -> tuple[int, int, int]:
    digits = value.lstrip("#")
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def colour_name(value: str) -> str:
    """The nearest named colour to a ``#rrggbb`` value (perceptually weighted RGB distance)."""
    r, g, b = hex_to_rgb(value)

    def distance(named: tuple[int, int, int]) -> float:
        # "Redmean" approximation: cheap and far closer to perception than plain RGB distance.
        mean_r = (r + named[0]) / 2
        dr, dg, db = r - named[0], g - named[1], b - named[2]
        return (2 + mean_r / 256) * dr * dr + 4 * dg * dg + (2 + (255 - mean_r) / 256) * db * db

    return min(_NAMED_COLOURS, key=lambda name: distance(_NAMED_COLOURS[name]))


def background_phrase(kind: str, colours: Sequence[str]) -> str:
    """Prompt text for a kit background."""
    if kind == "colour":
        return f"plain seamless {colour_name(colours[0])} studio backdrop"
    if kind == "gradient":
        return (
            f"smooth studio backdrop graduating from {colour_name(colours[0])} "
            f"to {colour_name(colours[1])}"
        )
    if kind == "blurred_office":
        return "softly blurred modern office background, shallow depth of field"
    return "bright modern office background"


def _backdrop(size: tuple[int, int], kind: str, colours: Sequence[str]) -> Image.Image:
    width, height = size
    if kind == "colour":
        return Image.new("RGB", size, hex_to_rgb(colours[0]))
    if kind == "gradient":
        top, bottom = hex_to_rgb(colours[0]), hex_to_rgb(colours[1])
        column = Image.new("RGB", (1, height))
        for y in range(height):
            t = y / max(1, height - 1)
            column.putpixel(
                (0, y), tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
            )
        return column.resize(size)
    # An "office": light wall, window panes and a desk line; blurred for the blurred option.
    office = Image.new("RGB", size, (214, 218, 222))
    draw = ImageDraw.Draw(office)
    for x in range(width // 12, width, width // 4):
        draw.rectangle((x, height // 10, x + width // 6, height // 2), fill=(236, 242, 248))
    draw.rectangle((0, int(height * 0.72), width, height), fill=(150, 120, 95))
    radius = 6 if kind == "blurred_office" else 1
    return office.filter(ImageFilter.GaussianBlur(radius))


def _silhouette(canvas: Image.Image, attire: tuple[int, int, int]) -> None:
    width, height = canvas.size
    draw = ImageDraw.Draw(canvas)
    cx = width / 2
    draw.ellipse((cx - width * 0.42, height * 0.62, cx + width * 0.42, height * 1.25), fill=attire)
    draw.rectangle(
        (cx - width * 0.07, height * 0.5, cx + width * 0.07, height * 0.66), fill=(198, 160, 135)
    )
    draw.ellipse(
        (cx - width * 0.17, height * 0.2, cx + width * 0.17, height * 0.58), fill=(210, 172, 146)
    )


@dataclass(frozen=True)
class KitLook:
    """What the preview needs of a kit (kept free of the queue's models)."""

    team_name: str
    background_kind: str
    background_colours: tuple[str, ...]
    aspect_ratio: str
    colour_grade: str
    logo_placement: str
    preset_title: str


def _aspect_size(aspect_ratio: str, long_side: int) -> tuple[int, int]:
    w, h = (int(part) for part in aspect_ratio.split(":"))
    return (
        (round(long_side * w / h), long_side) if h >= w else (long_side, round(long_side * h / w))
    )


LOGO_SIDE = 512
MAX_LOGO_BYTES = 2 * 1024 * 1024

#: Why a logo file is refused before any decoding; the chat words each (``texts.logo_refused``).
LogoRefusal = Literal["vector", "web_page", "archive", "animated", "unreadable"]


class LogoRejected(UserError):
    """A logo we will not use: ``kind`` says why, ``detail`` is the decoder's reason, if any."""

    def __init__(self, kind: LogoRefusal, detail: str = "") -> None:
        super().__init__(f"I can't use that logo ({detail or kind.replace('_', ' ')}).")
        self.kind: LogoRefusal = kind
        self.detail = detail


# Leading bytes of the archive and compressed formats people send (zip and its kin: docx,
# apk, jar; gzip also wraps .svgz), checked before Pillow sees the file.
_ARCHIVES = (
    b"PK\x03\x04",
    b"PK\x05\x06",
    b"PK\x07\x08",
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ\x00",
    b"7z\xbc\xaf\x27\x1c",
    b"Rar!\x1a\x07",
    b"\x28\xb5\x2f\xfd",
    b"MSCF",
)
#: PDF (and Illustrator), EPS, binary EPS; in lower case, as the header is compared.
_VECTOR_DOCUMENTS = (b"%pdf", b"%!ps", b"\xc5\xd0\xd3\xc6")


def logo_refusal(data: bytes) -> LogoRefusal | None:
    """Why ``data`` can't be a logo whatever its pixels (SVG, HTML, archive, animation), or
    ``None``; reads the header only."""
    head = data[:1024]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 text (SVG/HTML saved so)
        head = head.decode("utf-16", "ignore").encode("utf-8", "ignore")
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if head.startswith(b"<"):
        return "vector" if b"<svg" in head else "web_page"
    if head.startswith(_VECTOR_DOCUMENTS):
        return "vector"
    if data.startswith(_ARCHIVES) or data[257:262] == b"ustar":  # tar has its mark at 257
        return "archive"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a decompression-bomb warning: the decode refuses it
        try:
            with Image.open(io.BytesIO(data)) as image:  # the header: no pixel is decoded
                if getattr(image, "is_animated", False) or getattr(image, "n_frames", 1) > 1:
                    return "animated"
        except Exception:  # unreadable: the decode below says why in its own words
            return None
    return None


def normalise_logo(data: bytes) -> bytes:
    """An uploaded logo as a PNG of at most 512 px, transparency kept.

    Decoded like a selfie check (:func:`decode_image` with the same pixel cap, at most
    2048 px on the long side), so a small file of huge dimensions costs no more than a
    selfie. Raises :class:`LogoRejected` for a file that is not a still raster image, and
    :class:`UserError` when the result stays too large.
    """
    kind = logo_refusal(data)
    if kind is not None:
        raise LogoRejected(kind)
    try:
        image = decode_image(
            data, max_pixels=CHECK_MAX_PIXELS, max_side=CHECK_LONG_SIDE, keep_alpha=True
        )
    except ImageRejected as exc:
        raise LogoRejected("unreadable", str(exc)) from None
    image = image.convert("RGBA")
    image.thumbnail((LOGO_SIDE, LOGO_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    if buffer.tell() > MAX_LOGO_BYTES:
        raise UserError("That logo is too large: send a simpler or smaller image.")
    return buffer.getvalue()


def with_logo_mark(image: Image.Image, logo: bytes, *, share: float = 0.14) -> Image.Image:
    """``image`` with the logo as a small mark in the bottom-right corner margin."""
    out = image.convert("RGB").copy()
    with Image.open(io.BytesIO(logo)) as raw:
        mark = ImageOps.exif_transpose(raw).convert("RGBA")
    side = max(8, round(min(out.size) * share))
    mark.thumbnail((side, side), Image.Resampling.LANCZOS)
    margin = max(4, round(min(out.size) * 0.03))
    out.paste(mark, (out.width - mark.width - margin, out.height - mark.height - margin), mark)
    return out


def render_kit_preview(
    look: KitLook,
    logo: bytes | None = None,
    reference: bytes | None = None,
    *,
    long_side: int = 800,
) -> bytes:
    """A JPEG of the kit on a stock composition, with a caption bar naming the choices; with
    a ``reference`` portrait, an inset of it at the kit's crop ("everyone framed like this")."""
    size = _aspect_size(look.aspect_ratio, long_side)
    canvas = _backdrop(size, look.background_kind, look.background_colours)
    _silhouette(canvas, (40, 48, 66))
    canvas = apply_colour_grade(canvas, look.colour_grade)
    if logo is not None and look.logo_placement == "corner":
        canvas = with_logo_mark(canvas, logo)
    if reference is not None:
        _reference_inset(canvas, reference, look.aspect_ratio)
    bar = Image.new("RGB", (canvas.width, 56), (250, 250, 250))
    draw = ImageDraw.Draw(bar)
    draw.text((12, 8), look.team_name, fill=(20, 20, 20))
    background = look.background_kind.replace("_", " ")
    if look.background_colours:
        background += " " + " to ".join(look.background_colours)
    draw.text(
        (12, 30), f"{look.preset_title} · {background} · {look.aspect_ratio}", fill=(90, 90, 90)
    )
    sheet = Image.new("RGB", (canvas.width, canvas.height + bar.height))
    sheet.paste(canvas, (0, 0))
    sheet.paste(bar, (0, canvas.height))
    buffer = io.BytesIO()
    sheet.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


#: The inset's width as a share of the preview's, and its frame in pixels.
REFERENCE_INSET_SHARE = 0.3
_INSET_BORDER = 4


def _reference_inset(canvas: Image.Image, reference: bytes, aspect_ratio: str) -> None:
    """The reference portrait, cropped to the kit's shape as the generation fits it, in a
    framed inset at the bottom left with a "Framed like" label (drawn into ``canvas``)."""
    with Image.open(io.BytesIO(reference)) as raw:
        photo = crop_to_aspect(raw.convert("RGB"), aspect_ratio)  # type: ignore[arg-type]
    width = max(24, round(canvas.width * REFERENCE_INSET_SHARE))
    inset = photo.resize((width, max(1, round(width * photo.height / photo.width))))
    framed = ImageOps.expand(inset, border=_INSET_BORDER, fill=(250, 250, 250))
    margin = max(8, canvas.width // 40)
    top = canvas.height - framed.height - margin
    canvas.paste(framed, (margin, top))
    draw = ImageDraw.Draw(canvas)
    label = "Framed like"
    box = draw.textbbox((0, 0), label)
    draw.rectangle(
        (margin, top - (box[3] - box[1]) - 8, margin + (box[2] - box[0]) + 8, top),
        fill=(250, 250, 250),
    )
    draw.text((margin + 4, top - (box[3] - box[1]) - 5), label, fill=(20, 20, 20))


#: The smallest long side of an exported headshot (SD1.5's delivered size).
EXPORT_MIN_LONG_SIDE = 1024


def export_headshot(data: bytes, aspect_ratio: str, *, long_side: int | None = None) -> Image.Image:
    """The chosen headshot at the kit's crop; its long side ``long_side``, or by default its
    delivered size but at least :data:`EXPORT_MIN_LONG_SIDE`.

    Every member's headshot of a kit is delivered at the same size (the style's output rule), so
    the export keeps it (an SDXL kit's 2048 px stay 2048) instead of resampling to a fixed size;
    an older, smaller favourite is brought up to the minimum.
    """
    with Image.open(io.BytesIO(data)) as raw:
        image = raw.convert("RGB")
    cropped = crop_to_aspect(image, aspect_ratio)  # type: ignore[arg-type]
    size = _aspect_size(aspect_ratio, long_side or max(EXPORT_MIN_LONG_SIDE, *cropped.size))
    if cropped.size == size:
        return cropped
    return cropped.resize(size, Image.Resampling.LANCZOS)


def safe_filename(name: str, fallback: str) -> str:
    """ASCII file name from a member's display name (``Zoë O'Neil`` -> ``zoe-oneil``)."""
    # Apostrophes join (O'Neil -> oneil) rather than split a name.
    name = name.replace("'", "").replace("\u2019", "")
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:60] or fallback


def unique_stems(names: Sequence[str], *, reserved: Sequence[str] = ()) -> list[str]:
    """A safe file stem per name, in order, none equal to another or to a ``reserved`` one.

    Compared case-insensitively (macOS and Windows fold case on extraction): the second
    ``alex`` becomes ``alex-2``, the next ``alex-3``, skipping any number already taken.
    """
    taken = {stem.casefold() for stem in reserved}
    stems = []
    for name in names:
        base = safe_filename(name, "member")
        stem, number = base, 1
        while stem.casefold() in taken:
            number += 1
            stem = f"{base}-{number}"
        taken.add(stem.casefold())
        stems.append(stem)
    return stems


@dataclass(frozen=True)
class ExportEntry:
    name: str  # the member's file stem; :func:`team_zip` makes it safe and unique
    image: Image.Image
    profile: Image.Image | None = None  # the logo-marked profile-picture version


_ZIP_ENTRY_OVERHEAD = 512
#: Bytes the XMP packet (and a C2PA manifest, a few KB with its certificate) adds to a file.
_PROVENANCE_HEADROOM = 16 * 1024


def _jpeg(image: Image.Image, limit: int, provenance: Provenance, title: str) -> bytes:
    """JPEG bytes of ``image`` with provenance, within ``limit``: lower quality, then smaller."""
    current = image
    while True:
        for quality in (92, 85, 75, 65):
            data = provenance.jpeg(current, quality=quality, title=title)
            if len(data) <= limit:
                return data
        current = current.resize((max(1, current.width * 3 // 4), max(1, current.height * 3 // 4)))


def team_zip(
    entries: Sequence[ExportEntry],
    *,
    team_name: str,
    max_bytes: int,
    provenance: Provenance | None = None,
) -> list[bytes]:
    """ZIP parts, each under ``max_bytes``: members' files, profile versions, a contact sheet.

    Every file carries ``provenance`` (XMP alone by default).
    """
    mark = provenance or Provenance()
    # One file alone never exceeds a part: it is re-encoded smaller instead. The headroom is
    # for the provenance packet added to a contact sheet after it was fitted.
    limit = max(1024, max_bytes - 2 * _ZIP_ENTRY_OVERHEAD)
    sheet_stem = f"{safe_filename(team_name, 'team')}-contact-sheet"
    stems = unique_stems([entry.name for entry in entries], reserved=[sheet_stem])
    files: list[tuple[str, bytes]] = []
    for stem, entry in zip(stems, entries, strict=True):
        files.append((f"{stem}.jpg", _jpeg(entry.image, limit, mark, stem)))
        if entry.profile is not None:
            files.append(
                (
                    f"profile-pictures/{stem}.jpg",
                    _jpeg(entry.profile, limit, mark, f"{stem} profile picture"),
                )
            )
    if entries:
        sheet = contact_sheet(
            [e.image for e in entries], stems, max_bytes=max(1024, limit - _PROVENANCE_HEADROOM)
        )
        files.append((f"{sheet_stem}.jpg", mark.mark(sheet, title=f"{team_name} contact sheet")))
    parts: list[list[tuple[str, bytes]]] = [[]]
    size = 0
    for name, data in files:
        # ZIP overhead per entry is small; JPEGs do not compress further (stored, not deflated).
        if parts[-1] and size + len(data) + _ZIP_ENTRY_OVERHEAD > max_bytes:
            parts.append([])
            size = 0
        parts[-1].append((name, data))
        size += len(data) + _ZIP_ENTRY_OVERHEAD
    zips = []
    for part in parts:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            for name, data in part:
                archive.writestr(name, data)
        zips.append(buffer.getvalue())
    return zips
