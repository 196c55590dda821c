"""Safe decoding of untrusted image bytes, and the normalised copy of a selfie that we store.

Everything a chat user sends passes through :func:`decode_image` first. Pillow signals trouble
in several ways (``UnidentifiedImageError``, ``OSError`` for truncated files, ``SyntaxError`` from
some plugins, ``DecompressionBombWarning`` as a *warning*); all of them become one
:class:`ImageRejected` with a reason written for the chat.

Memory is bounded by what we need, not by what was sent: an 88 KB PNG can hold 6300x6300
16-bit pixels. With ``max_side`` a JPEG is decoded at a reduced DCT scale (Pillow's ``draft``)
and any other format is reduced by an integer factor (``Image.reduce``) right after decoding,
before any conversion; 16-bit and 32-bit pixels are converted with integer shifts on the
reduced image, never through float64 copies of the full one.
"""

from __future__ import annotations

import functools
import io
import logging
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from headshots.generation.faces.types import ImageRejected

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 25 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
#: The chat's selfie checks: a lower pixel cap (phones send 12-50 MP; a 30 MP non-JPEG still
#: decodes in ~120 MB) and a bounded decode size (detection runs at 800 px anyway).
CHECK_MAX_PIXELS = 30_000_000
CHECK_LONG_SIDE = 2048
#: A JPEG is decoded at 1/2-1/8 scale when ``max_side`` asks for less, so a 50-100 MP camera
#: JPEG costs no more than a 12 MP one: its cap stays high.
CHECK_MAX_JPEG_PIXELS = 100_000_000
#: Long side of the copy of a selfie we keep; enough for 1024 px training, far smaller on disk.
STORED_LONG_SIDE = 1024

_EXIF_ORIENTATION = 0x0112
_EXIF_MAKE = 0x010F
_EXIF_MODEL = 0x0110
_NOT_AN_IMAGE = "this file is not a photo I can read: send a JPEG or PNG"
_DAMAGED = "this photo seems cut off or damaged: please send it again"
_ANIMATED = "animated images can't be used: send a still photo"
#: ISO-BMFF ``ftyp`` boxes of HEIC/HEIF stills (bytes 4-12 of the file).
_HEIF_BRANDS = {b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1", b"ftypheim", b"ftypheis"}


def decode_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int | None = None,
    keep_alpha: bool = False,
) -> Image.Image:
    """Decode untrusted bytes into an RGB image with its EXIF orientation applied.

    With ``max_side`` the result's long side is at most that (decoded small, never full size
    first). With ``keep_alpha`` an image with transparency comes back as RGBA instead of
    flattened onto white (logos). Raises :class:`ImageRejected` for anything that is not a
    single, complete, reasonably sized still image. Never lets a Pillow exception or warning
    escape.
    """
    photo = decode_photo(
        data, max_bytes=max_bytes, max_pixels=max_pixels, max_side=max_side, keep_alpha=keep_alpha
    )
    return photo.image


@dataclass(frozen=True)
class DecodedPhoto:
    """A decoded photo and what its file said about it."""

    image: Image.Image
    #: The photo's own size, oriented, before any reduction of the decode.
    size: tuple[int, int]
    format: str | None
    #: The IJG quality the JPEG was saved at, estimated from its quantisation table.
    jpeg_quality: int | None
    #: Whether its EXIF names a camera (make or model): screenshots and edits have none.
    camera_exif: bool


def decode_photo(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int | None = None,
    keep_alpha: bool = False,
) -> DecodedPhoto:
    """:func:`decode_image`, with the photo's own size, format and compression."""
    if not data:
        raise ImageRejected("this file is empty")
    if len(data) > max_bytes:
        raise ImageRejected(f"this file is too large (over {max_bytes // (1024 * 1024)} MB)")
    with warnings.catch_warnings():
        # Pillow reports decompression bombs below its hard limit only as a warning; we refuse
        # them. Other Pillow warnings (odd EXIF, palette transparency) are noise here.
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image, (width, height) = _open_checked(data, max_pixels, max_side)
            exif = _exif(image)
            if exif.get(_EXIF_ORIENTATION) in (5, 6, 7, 8):  # a quarter turn
                width, height = height, width
            file_format = image.format
            quality = _jpeg_quality(image) if file_format == "JPEG" else None
            if max_side is not None:
                image = _reduce(image, max_side)
            image = _apply_orientation(image)
            image = _to_rgba(image) if keep_alpha and _has_alpha(image) else _to_rgb(image)
            if max_side is not None:
                image = shrink_to(image, max_side)
            camera = bool(exif.get(_EXIF_MAKE) or exif.get(_EXIF_MODEL))
            return DecodedPhoto(image, (width, height), file_format, quality, camera)
        except ImageRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected(_too_many_pixels(max_pixels)) from None
        except UnidentifiedImageError:
            raise ImageRejected(_NOT_AN_IMAGE) from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
            # Truncated data is an OSError; broken headers surface as any of the others.
            logger.debug("image decode failed: %r", exc)
            raise ImageRejected(_DAMAGED) from None
        except MemoryError:
            raise ImageRejected(_too_many_pixels(max_pixels)) from None


def _too_many_pixels(max_pixels: int) -> str:
    return f"this image is too large (over {max_pixels // 1_000_000} megapixels)"


@functools.cache
def _heif_support() -> bool:
    """Teach Pillow HEIC/HEIF (iPhone photos sent as files) once, if ``pi-heif`` is installed.

    pi-heif is the decode-only build of pillow-heif (libheif + libde265, no GPL encoder); it
    applies the file's rotation itself and resets the EXIF orientation accordingly.
    """
    try:
        import pi_heif
    except ImportError:
        logger.info("pi-heif is not installed: HEIC photos will be refused")
        return False
    pi_heif.register_heif_opener()
    return True


def _open_checked(
    data: bytes, max_pixels: int, max_side: int | None
) -> tuple[Image.Image, tuple[int, int]]:
    """The opened, loaded image (maybe decoded at a reduced scale) and its full header size."""
    if data[4:12] in _HEIF_BRANDS:
        _heif_support()
    image = Image.open(io.BytesIO(data))
    width, height = image.size
    # Checked from the header, before any pixel is decoded.
    drafted = max_side is not None and image.format == "JPEG"
    if width * height > (max(max_pixels, CHECK_MAX_JPEG_PIXELS) if drafted else max_pixels):
        raise ImageRejected(_too_many_pixels(max_pixels))
    if width < 1 or height < 1:
        raise ImageRejected(_DAMAGED)
    if getattr(image, "is_animated", False) or getattr(image, "n_frames", 1) > 1:
        raise ImageRejected(_ANIMATED)
    if drafted and max_side is not None and max(width, height) > max_side:
        # The JPEG decoder scales by 1/2, 1/4 or 1/8 while decoding: ask for the smallest
        # scale that keeps the long side at or above max_side.
        scale = max_side / max(width, height)
        image.draft("RGB", (max(1, round(width * scale)), max(1, round(height * scale))))
    image.load()
    return image, (width, height)


def _exif(image: Image.Image) -> dict[int, object]:
    try:
        return dict(image.getexif())
    except Exception:  # a corrupt EXIF block: exif_transpose will ignore it too
        return {}


# The IJG standard luminance quantisation table (JPEG Annex K), the quality-50 table.
_IJG_LUMINANCE = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
     14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
     18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    dtype=np.float64,
)  # fmt: skip


def _jpeg_quality(image: Image.Image) -> int | None:
    """Invert the IJG scaling (libjpeg's ``jpeg_quality_scaling``) of the luminance table.

    Pillow gives the tables in natural (row-major) order; the scale is read from the entries
    that baseline JPEG did not clip at 255 (low qualities clip most of them).
    """
    tables = getattr(image, "quantization", None) or {}
    luminance = tables.get(0)
    if not luminance or len(luminance) != 64:
        return None
    stored = np.asarray(luminance, dtype=np.float64)
    reference = _IJG_LUMINANCE
    unclipped = stored < 255
    if not unclipped.any():
        return 1
    scale = float(np.median(100.0 * stored[unclipped] / reference[unclipped]))
    quality = 5000.0 / scale if scale > 100 else (200.0 - scale) / 2
    return int(max(1, min(100, round(quality))))


def _reduce(image: Image.Image, max_side: int) -> Image.Image:
    """Shrink by the largest integer factor that keeps the long side >= ``max_side``."""
    factor = max(image.size) // max_side
    if factor < 2:
        return image
    if image.mode.startswith("I;16"):
        image = _sixteen_to_eight(image)
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    info = dict(image.info)
    reduced = image.reduce(factor)
    reduced.info.update(info)  # keep the EXIF orientation for exif_transpose
    return reduced


def _sixteen_to_eight(image: Image.Image) -> Image.Image:
    """16-bit grey to 8-bit by its high byte: an integer shift, no float copy."""
    array = np.asarray(image)
    return Image.fromarray((array >> 8).astype(np.uint8), "L")


def _apply_orientation(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image) or image
    except Exception as exc:  # a corrupt EXIF block must not cost us the photo
        logger.debug("ignoring unreadable EXIF orientation: %r", exc)
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is flattened onto white."""
    mode = image.mode
    if mode.startswith("I;16"):
        # Pillow's own conversion clips 16-bit values at 255 (a white image): rescale instead.
        return _sixteen_to_eight(image).convert("RGB")
    if mode in ("I", "F"):
        array = np.asarray(image, dtype=np.float32)
        top = max(float(array.max()), 1.0)
        if mode == "I" and top <= 255:
            top = 255.0
        gray = np.clip(array * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if mode == "P" or mode == "PA":
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode != "RGB":
        return image.convert("RGB")
    return image


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in image.info


def _to_rgba(image: Image.Image) -> Image.Image:
    """Convert a mode with transparency (an alpha band, a palette or colour key) to RGBA."""
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        # Pillow would clip these to 255; their colour key (rare) is dropped instead.
        return _to_rgb(image).convert("RGBA")
    return image.convert("RGBA")


def normalise_selfie(data: bytes) -> bytes:
    """Return the copy of a selfie we store: JPEG, long side <= 1024 px, no metadata at all.

    Orientation is applied to the pixels, so dropping EXIF loses nothing. Raises
    :class:`ImageRejected` like :func:`decode_image`.
    """
    # Decoded at twice the stored size at most: enough for a clean Lanczos step down.
    image = decode_image(data, max_side=2 * STORED_LONG_SIDE)
    image = shrink_to(image, STORED_LONG_SIDE)
    return encode_jpeg(image, quality=92)


def normalise_reference(data: bytes) -> bytes:
    """Return the copy of a reference photo we store: PNG (lossless, so every member of a team
    gets byte-identical control images from it), long side <= 1024 px, no metadata at all.

    The same bounded decode as a selfie; raises :class:`ImageRejected` like it.
    """
    image = shrink_to(decode_image(data, max_side=2 * STORED_LONG_SIDE), STORED_LONG_SIDE)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def shrink_to(image: Image.Image, long_side: int) -> Image.Image:
    """Return ``image`` scaled down so its long side is at most ``long_side`` (never enlarged)."""
    if max(image.size) <= long_side:
        return image
    scale = long_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def encode_jpeg(image: Image.Image, *, quality: int) -> bytes:
    """Encode as a baseline JPEG without EXIF, ICC or comments (Pillow writes none unless asked)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()
