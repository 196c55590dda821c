"""The brand kit's Pillow side: logos decoded like selfies, export names that never collide."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from headshots.bot.conversation import texts
from headshots.errors import UserError
from headshots.settings import Settings
from headshots.style.brand import (
    ExportEntry,
    LogoRejected,
    logo_refusal,
    normalise_logo,
    team_zip,
    unique_stems,
)

ROOT = Path(__file__).resolve().parents[1]


def _encoded(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


# --- logos -------------------------------------------------------------------------------

_PEAK = """
import json, re, sys
from headshots.style.brand import LogoRejected, normalise_logo
def rss(field):
    return int(re.search(field + r":\\s+(\\d+)", open("/proc/self/status").read())[1]) / 1024
data = open(sys.argv[1], "rb").read()
# A forked child inherits its parent's peak: start the high-water mark afresh (Linux >= 4.0).
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")
before = rss("VmRSS")
try:
    outcome = len(normalise_logo(data))
except LogoRejected as exc:
    outcome = exc.kind + ": " + exc.detail
print(json.dumps({"grew_mb": rss("VmHWM") - before, "outcome": outcome,
                  "torch": "torch" in sys.modules}))
"""


def _peak(path: Path) -> dict[str, Any]:
    """Normalise the logo at ``path`` in a fresh process: how much its peak RSS grew."""
    child = subprocess.run(
        [sys.executable, "-c", _PEAK, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(child.stdout)
    return result


def test_a_logo_of_huge_dimensions_is_refused_from_its_header(tmp_path: Path) -> None:
    """The probe's bomb: a small PNG of 13000x13000 px peaked at ~2 GB before the decode was
    bounded; now its header alone refuses it, like the selfie checks (30 MP cap)."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_encoded(Image.new("1", (13000, 13000)), "PNG"))
    assert bomb.stat().st_size < 700 * 1024
    result = _peak(bomb)
    assert result["outcome"] == "unreadable: this image is too large (over 30 megapixels)"
    assert result["grew_mb"] < 40, result  # was 1.3 GB for this file (2 GB for an RGB one)
    assert result["torch"] is False


def test_a_camera_sized_jpeg_logo_is_decoded_small(tmp_path: Path) -> None:
    """48 MP is over the cap for a full decode, not for a JPEG read at a reduced DCT scale."""
    photo = tmp_path / "logo.jpg"
    photo.write_bytes(_encoded(Image.new("RGB", (8000, 6000), (200, 30, 30)), "JPEG"))
    result = _peak(photo)
    assert isinstance(result["outcome"], int), result
    # Decoded at half scale (~95 MB); a full decode alone is 192 MB (Pillow holds RGB in four
    # bytes a pixel), and the path before the bounded decode peaked 557 MB higher.
    assert result["grew_mb"] < 150, result


def test_logo_normalisation_keeps_transparency() -> None:
    big = _encoded(Image.new("RGBA", (2000, 1000), (10, 200, 30, 128)), "PNG")
    logo = Image.open(io.BytesIO(normalise_logo(big)))
    assert logo.format == "PNG" and logo.mode == "RGBA" and logo.size == (512, 256)
    red, green, blue, alpha = logo.getpixel((10, 10))  # type: ignore[misc]
    assert alpha == 128 and abs(red - 10) + abs(green - 200) + abs(blue - 30) <= 3
    palette = Image.new("P", (64, 64), 0)
    palette.putpalette([255, 255, 255, 200, 0, 0] + [0] * 762)
    palette.paste(1, (16, 16, 48, 48))
    keyed = Image.open(io.BytesIO(normalise_logo(_encoded(palette, "PNG", transparency=0))))
    assert keyed.mode == "RGBA"
    assert keyed.getchannel("A").getpixel((0, 0)) == 0
    assert keyed.getpixel((32, 32)) == (200, 0, 0, 255)
    opaque = Image.open(io.BytesIO(normalise_logo(_encoded(Image.new("RGB", (40, 20)), "JPEG"))))
    assert opaque.mode == "RGBA" and opaque.size == (40, 20)


def _animated(format: str) -> bytes:
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    return _encoded(frames[0], format, save_all=True, append_images=frames[1:], duration=100)


def _zipped_png() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("logo.png", _encoded(Image.new("RGB", (8, 8)), "PNG"))
    return buffer.getvalue()


SVG = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" '
    b'height="10"/></svg>'
)
REFUSED = {
    "svg": (SVG, "vector"),
    "svg-bom-utf16": ("\ufeff  <svg xmlns='x'/>".encode("utf-16"), "vector"),
    "svg-bare": (b"\n  <svg viewBox='0 0 1 1'></svg>", "vector"),
    "html": (b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>", "web_page"),
    "html-lower": (b"\xef\xbb\xbf<html><head><title>logo</title></head></html>", "web_page"),
    "pdf": (b"%PDF-1.4 not an image", "vector"),
    "zip": (_zipped_png(), "archive"),
    "gzip": (b"\x1f\x8b\x08\x00" + bytes(20), "archive"),
    "animated-gif": (_animated("GIF"), "animated"),
    "animated-png": (_animated("PNG"), "animated"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_files_that_are_no_still_image_are_refused_by_kind(name: str) -> None:
    data, kind = REFUSED[name]
    assert logo_refusal(data) == kind
    with pytest.raises(LogoRejected) as refused:
        normalise_logo(data)
    assert refused.value.kind == kind
    # The chat says which kind of file it was, in its own words.
    assert texts.logo_refused(kind) == texts.LOGO_REFUSED[kind]


def test_an_animated_webp_is_refused() -> None:
    from PIL import features

    if not features.check("webp"):
        pytest.skip("this Pillow has no WebP")
    assert logo_refusal(_animated("WEBP")) == "animated"
    single = _encoded(Image.new("RGB", (32, 32), (1, 2, 3)), "GIF")
    assert logo_refusal(single) is None, "a still GIF is a still image"


def test_an_unreadable_logo_says_why() -> None:
    with pytest.raises(LogoRejected) as refused:
        normalise_logo(b"\x89PNG\r\n\x1a\n" + bytes(40))
    assert refused.value.kind == "unreadable" and refused.value.detail
    reply = texts.logo_refused("unreadable", refused.value.detail)
    assert reply.startswith("I can't use that logo: ") and "PNG or JPEG" in reply


def test_logos_go_through_the_selfie_checks_limiter(tmp_path: Path) -> None:
    """At most HEADSHOTS_CHECK_CONCURRENCY logos are held and decoded at once, and a refused
    one becomes the chat's reply."""
    from headshots.bot.conversation.photos import FaceWork

    faces = FaceWork(Settings(_env_file=None, state_dir=tmp_path, check_concurrency=2))  # type: ignore[call-arg]
    logo = _encoded(Image.new("RGBA", (300, 100), (0, 0, 0, 0)), "PNG")
    running = peak = 0

    async def fetch(data: bytes) -> bytes:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        return data

    async def normalised(data: bytes) -> bytes:
        nonlocal running
        try:
            return await faces.logo(lambda: fetch(data))
        finally:
            running -= 1

    async def main() -> list[bytes]:
        return await asyncio.gather(*(normalised(logo) for _ in range(6)))

    try:
        results = asyncio.run(main())
        with pytest.raises(UserError) as refused:
            asyncio.run(normalised(SVG))
    finally:
        faces.close()
    assert peak == 2 and all(Image.open(io.BytesIO(r)).size == (300, 100) for r in results)
    assert str(refused.value) == texts.LOGO_REFUSED["vector"]


# --- export names ------------------------------------------------------------------------


def test_unique_stems_number_collisions_case_insensitively() -> None:
    names = ["Alex", "alex", "ALEX", "alex-2", "Zoë O'Neil", "", "Acme contact sheet"]
    stems = unique_stems(names, reserved=["acme-contact-sheet"])
    assert stems == [
        "alex",
        "alex-2",
        "alex-3",
        "alex-2-2",
        "zoe-oneil",
        "member",
        "acme-contact-sheet-2",
    ]
    assert len({s.casefold() for s in stems}) == len(stems)
    assert unique_stems(["../../etc/passwd"]) == ["etc-passwd"], "no path leaves the folder"


def test_an_export_with_colliding_names_extracts_every_file(tmp_path: Path) -> None:
    """The probe's export: "Alex" twice and a member named like the team's contact sheet."""
    image = Image.new("RGB", (64, 80), (90, 120, 150))
    profile = Image.new("RGB", (64, 80), (150, 120, 90))
    names = ["Alex", "Alex", "alex", "Acme contact sheet", "Bea"]
    entries = [
        ExportEntry(name, image, profile if i % 2 == 0 else None) for i, name in enumerate(names)
    ]
    parts = team_zip(entries, team_name="Acme", max_bytes=10_000_000)
    written = []
    for part in parts:
        with zipfile.ZipFile(io.BytesIO(part)) as archive:
            listed = archive.namelist()
            assert len(listed) == len(set(listed))
            written += listed
            archive.extractall(tmp_path)
    extracted = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.jpg"))
    assert (
        extracted
        == sorted(written)
        == [
            "acme-contact-sheet-2.jpg",
            "acme-contact-sheet.jpg",
            "alex-2.jpg",
            "alex-3.jpg",
            "alex.jpg",
            "bea.jpg",
            "profile-pictures/alex-3.jpg",
            "profile-pictures/alex.jpg",
            "profile-pictures/bea.jpg",
        ]
    )
    # Every file is what it claims: the contact sheet is the sheet, not a member's headshot.
    sheet = Image.open(tmp_path / "acme-contact-sheet.jpg")
    assert sheet.size != (64, 80)
    assert Image.open(tmp_path / "acme-contact-sheet-2.jpg").size == (64, 80)


_SIDE = """
import sys
from headshots.style.brand import KitLook, export_headshot, render_kit_preview
look = KitLook("Acme", "colour", ("#1f6feb",), "4:5", "film_portra", "corner", "Corporate")
render_kit_preview(look)
generation = sorted(
    m for m in sys.modules
    if m.startswith("headshots.generation.") and not m.startswith("headshots.generation.faces")
)
print(",".join(generation), "torch" in sys.modules)
"""


def test_the_brand_kit_needs_nothing_of_the_worker() -> None:
    """The chat draws the preview and the export: no torch, no worker module (item 9)."""
    result = subprocess.run(
        [sys.executable, "-c", _SIDE], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["headshots.generation.provenance", "False"]
