"""Safe decoding of untrusted image bytes, and the normalised copy of a selfie that we store.

Everything a chat user sends passes through :func:`decode_image` first. Pillow signals trouble
in several ways (``UnidentifiedImageError``, ``OSError`` for truncated files, ``SyntaxError`` from
some plugins, ``DecompressionBombWarning`` as a *warning*); all of them become one
:class:`ImageRejected` with a reason written for the chat.
"""

from __future__ import annotations

import functools
import io
import logging
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from headshots.generation.faces.types import ImageRejected

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 25 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
#: Long side of the copy of a selfie we keep; enough for 1024 px training, far smaller on disk.
STORED_LONG_SIDE = 1024

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
) -> Image.Image:
    """Decode untrusted bytes into an RGB image with its EXIF orientation applied.

    Raises :class:`ImageRejected` for anything that is not a single, complete, reasonably sized
    still image. Never lets a Pillow exception or warning escape.
    """
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
            image = _open_checked(data, max_pixels)
            image = _apply_orientation(image)
            return _to_rgb(image)
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


def _open_checked(data: bytes, max_pixels: int) -> Image.Image:
    if data[4:12] in _HEIF_BRANDS:
        _heif_support()
    image = Image.open(io.BytesIO(data))
    width, height = image.size
    # Checked from the header, before any pixel is decoded.
    if width * height > max_pixels:
        raise ImageRejected(_too_many_pixels(max_pixels))
    if width < 1 or height < 1:
        raise ImageRejected(_DAMAGED)
    if getattr(image, "is_animated", False) or getattr(image, "n_frames", 1) > 1:
        raise ImageRejected(_ANIMATED)
    image.load()
    return image


def _apply_orientation(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image) or image
    except Exception as exc:  # a corrupt EXIF block must not cost us the photo
        logger.debug("ignoring unreadable EXIF orientation: %r", exc)
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is flattened onto white."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # Pillow's own conversion clips 16-bit values at 255 (a white image): rescale instead.
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") else max(float(array.max()), 1.0)
        if mode == "I" and top <= 255:
            top = 255.0
        gray = np.clip(array / top * 255.0, 0, 255).astype(np.uint8)
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


def normalise_selfie(data: bytes) -> bytes:
    """Return the copy of a selfie we store: JPEG, long side <= 1024 px, no metadata at all.

    Orientation is applied to the pixels, so dropping EXIF loses nothing. Raises
    :class:`ImageRejected` like :func:`decode_image`.
    """
    image = decode_image(data)
    image = shrink_to(image, STORED_LONG_SIDE)
    return encode_jpeg(image, quality=92)


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
