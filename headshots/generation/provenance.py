"""Provenance that survives where people look: XMP with IPTC's DigitalSourceType, and C2PA.

Every file we hand out says it is AI-generated in three places a reader may check:

- XMP (what exiftool, Lightroom, Photoshop and most photo sites read): IPTC's
  ``Iptc4xmpExt:DigitalSourceType`` = ``trainedAlgorithmicMedia`` (the IPTC code for "created
  by a model trained on sampled content"), a ``dc:description`` notice and the creator tool.
  PNG carries the packet in an ``iTXt`` chunk ``XML:com.adobe.xmp``, JPEG in an APP1 segment.
- EXIF ImageDescription / Software, and PNG text chunks with our own JSON record.
- A C2PA manifest (``c2pa.created`` with the same digital source type) when ``c2pa-python`` is
  installed and the operator configured a signing certificate and key
  (``HEADSHOTS_C2PA_CERT`` / ``HEADSHOTS_C2PA_KEY``): a signed, tamper-evident claim.

Chat photo albums are recompressed by the platform and lose all metadata: their captions say the
images are AI-generated, and "Originals as files" sends these bytes unchanged.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape

from PIL import Image, PngImagePlugin

from headshots.errors import ConfigurationError

logger = logging.getLogger(__name__)

AI_NOTICE = "AI-generated image (headshots)"
SOFTWARE = "headshots"
#: IPTC NewsCodes digital source type for generative-AI output.
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
XMP_PNG_KEY = "XML:com.adobe.xmp"
_JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_JPEG_EXIF_HEADER = b"Exif\x00\x00"
_EXIF_IMAGE_DESCRIPTION = 0x010E
_EXIF_SOFTWARE = 0x0131

ImageFormat = Literal["PNG", "JPEG"]


def xmp_packet(*, title: str | None = None) -> bytes:
    """An XMP packet marking the file as AI-generated (IPTC DigitalSourceType and a notice)."""
    title_xml = (
        f"<dc:title><rdf:Alt><rdf:li xml:lang='x-default'>{escape(title)}</rdf:li></rdf:Alt>"
        "</dc:title>"
        if title
        else ""
    )
    packet = (
        "<?xpacket begin='\ufeff' id='W5M0MpCehiHzreSzNTczkc9d'?>"
        "<x:xmpmeta xmlns:x='adobe:ns:meta/'>"
        "<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>"
        "<rdf:Description rdf:about=''"
        f" xmlns:Iptc4xmpExt='{IPTC_EXT_NS}'"
        " xmlns:dc='http://purl.org/dc/elements/1.1/'"
        " xmlns:xmp='http://ns.adobe.com/xap/1.0/'"
        f" Iptc4xmpExt:DigitalSourceType='{TRAINED_ALGORITHMIC_MEDIA}'"
        f" xmp:CreatorTool='{SOFTWARE}'>"
        f"<dc:description><rdf:Alt><rdf:li xml:lang='x-default'>{escape(AI_NOTICE)}</rdf:li>"
        "</rdf:Alt></dc:description>"
        f"{title_xml}"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        "<?xpacket end='w'?>"
    )
    return packet.encode("utf-8")


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[_EXIF_IMAGE_DESCRIPTION] = AI_NOTICE
    exif[_EXIF_SOFTWARE] = SOFTWARE
    return exif


def encode_png(image: Image.Image, metadata: dict[str, Any] | None = None) -> bytes:
    """PNG bytes with XMP, EXIF and text chunks (our JSON record under ``headshots``)."""
    info = PngImagePlugin.PngInfo()
    payload = {"ai_generated": True, **(metadata or {})}
    info.add_text("AI-Generated", "true")
    info.add_text("Description", AI_NOTICE)
    info.add_text("Software", SOFTWARE)
    info.add_text("headshots", json.dumps(payload, sort_keys=True, default=str))
    info.add_itxt(XMP_PNG_KEY, xmp_packet().decode("utf-8"))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG", pnginfo=info, exif=_exif())
    return buffer.getvalue()


def encode_jpeg(image: Image.Image, *, quality: int = 92) -> bytes:
    """JPEG bytes with the XMP packet (APP1) and EXIF notice."""
    buffer = io.BytesIO()
    image.convert("RGB").save(
        buffer, format="JPEG", quality=quality, xmp=xmp_packet(), exif=_exif()
    )
    return buffer.getvalue()


def add_provenance_to_jpeg(data: bytes) -> bytes:
    """``data`` (a JPEG) with our XMP packet and EXIF notice, pixels untouched (no re-encode).

    Any XMP segment already there is replaced, so marking twice leaves one packet; an EXIF
    segment already there keeps its other tags and gains the notice.
    """
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    segments: list[bytes] = []
    position = 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xDA or not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            break  # first non-APPn segment: the image data starts here
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        segment = data[position : position + 2 + length]
        if not (marker == 0xE1 and segment[4:].startswith((_JPEG_XMP_HEADER, _JPEG_EXIF_HEADER))):
            segments.append(segment)
        position += 2 + length
    exif = _exif_of(data)
    exif[_EXIF_IMAGE_DESCRIPTION] = AI_NOTICE
    exif[_EXIF_SOFTWARE] = SOFTWARE
    # Readers expect JFIF (APP0), then EXIF, then XMP (both APP1), then everything else.
    head = [s for s in segments if s[1] == 0xE0]
    tail = [s for s in segments if s[1] != 0xE0]
    new = [_app1(exif.tobytes()), _app1(_JPEG_XMP_HEADER + xmp_packet())]
    return b"\xff\xd8" + b"".join(head + new + tail) + data[position:]


def _exif_of(data: bytes) -> Image.Exif:
    with Image.open(io.BytesIO(data)) as image:
        exif = image.getexif()
    return exif


def _app1(payload: bytes) -> bytes:
    if len(payload) + 2 > 0xFFFF:
        raise ValueError("a JPEG APP1 segment holds at most 64 KiB")
    return b"\xff\xe1" + (2 + len(payload)).to_bytes(2, "big") + payload


def add_provenance(data: bytes) -> bytes:
    """PNG or JPEG bytes made elsewhere (a contact sheet, an export) with our XMP and notice."""
    if data[:2] == b"\xff\xd8":
        return add_provenance_to_jpeg(data)
    with Image.open(io.BytesIO(data)) as image:
        metadata = read_provenance(data)
        return encode_png(image.convert("RGB"), metadata)


def read_provenance(data: bytes) -> dict[str, Any]:
    """The ``headshots`` JSON record of a PNG from :func:`encode_png` ({} if none)."""
    with Image.open(io.BytesIO(data)) as image:
        text = getattr(image, "text", {}).get("headshots")
    if not text:
        return {}
    value: dict[str, Any] = json.loads(text)
    return value


def digital_source_type(data: bytes) -> str | None:
    """The IPTC DigitalSourceType in a file's XMP, read back with Pillow (None if absent)."""
    with Image.open(io.BytesIO(data)) as image:
        xmp = image.getxmp()
    description = xmp.get("xmpmeta", {}).get("RDF", {}).get("Description", {})
    if isinstance(description, list):
        description = next((d for d in description if "DigitalSourceType" in d), {})
    value = description.get("DigitalSourceType")
    return str(value) if value is not None else None


# --- C2PA -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class C2paSigner:
    """An operator's signing certificate chain (PEM) and private key (PEM)."""

    certificate: bytes
    private_key: bytes
    algorithm: str = "es256"
    timestamp_url: str | None = None

    @classmethod
    def from_files(
        cls, certificate: Path, private_key: Path, *, algorithm: str = "es256"
    ) -> C2paSigner:
        try:
            return cls(certificate.read_bytes(), private_key.read_bytes(), algorithm)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the C2PA certificate or key: {exc}; "
                "check HEADSHOTS_C2PA_CERT and HEADSHOTS_C2PA_KEY"
            ) from exc


def c2pa_manifest(title: str) -> dict[str, Any]:
    """The manifest we sign: created by a trained model, by this software."""
    return {
        "claim_generator_info": [{"name": SOFTWARE, "version": "0.1"}],
        "title": title,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                            "softwareAgent": {"name": SOFTWARE},
                        }
                    ]
                },
            }
        ],
    }


def sign_c2pa(data: bytes, signer: C2paSigner, *, title: str = "headshot") -> bytes:
    """``data`` (PNG or JPEG) with a signed C2PA manifest embedded."""
    import c2pa

    mime = "image/jpeg" if data[:2] == b"\xff\xd8" else "image/png"
    algorithm = getattr(c2pa.C2paSigningAlg, signer.algorithm.upper())
    info = c2pa.C2paSignerInfo(
        alg=algorithm,
        sign_cert=signer.certificate,
        private_key=signer.private_key,
        ta_url=signer.timestamp_url.encode() if signer.timestamp_url else None,
    )
    with (
        c2pa.Signer.from_info(info) as c2pa_signer,
        c2pa.Builder(c2pa_manifest(title)) as builder,
    ):
        source, dest = io.BytesIO(data), io.BytesIO()
        builder.sign(c2pa_signer, mime, source, dest)
        return dest.getvalue()


def read_c2pa(data: bytes) -> dict[str, Any] | None:
    """The C2PA manifest store of ``data`` as JSON (None when there is none)."""
    import c2pa

    mime = "image/jpeg" if data[:2] == b"\xff\xd8" else "image/png"
    try:
        with c2pa.Reader(mime, io.BytesIO(data)) as reader:
            store: dict[str, Any] = json.loads(reader.json())
    except c2pa.C2paError:
        return None
    return store


class Provenance:
    """What every delivered file gets: XMP always, C2PA when the operator configured a signer."""

    def __init__(self, signer: C2paSigner | None = None) -> None:
        self.signer = signer

    @classmethod
    def from_settings(cls, settings: Any) -> Provenance:
        cert, key = settings.c2pa_cert, settings.c2pa_key
        if cert is None and key is None:
            return cls(None)
        if cert is None or key is None:
            raise ConfigurationError("set both HEADSHOTS_C2PA_CERT and HEADSHOTS_C2PA_KEY")
        try:
            import c2pa  # noqa: F401
        except ImportError as exc:
            raise ConfigurationError(
                "HEADSHOTS_C2PA_CERT is set but c2pa-python is not installed "
                "(pip install 'headshots[c2pa]')"
            ) from exc
        return cls(C2paSigner.from_files(Path(cert), Path(key)))

    def png(
        self, image: Image.Image, metadata: dict[str, Any], *, title: str = "headshot"
    ) -> bytes:
        return self._signed(encode_png(image, metadata), title)

    def jpeg(self, image: Image.Image, *, quality: int = 92, title: str = "headshot") -> bytes:
        return self._signed(encode_jpeg(image, quality=quality), title)

    def mark(self, data: bytes, *, title: str = "headshot") -> bytes:
        return self._signed(add_provenance(data), title)

    def _signed(self, data: bytes, title: str) -> bytes:
        if self.signer is None:
            return data
        return sign_c2pa(data, self.signer, title=title)
