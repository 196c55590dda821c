"""Provenance on every delivered file kind, read back as a reader would (Pillow's getxmp, c2pa)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from headshots.errors import ConfigurationError
from headshots.generation.faces import contact_sheet
from headshots.generation.provenance import (
    AI_NOTICE,
    TRAINED_ALGORITHMIC_MEDIA,
    C2paSigner,
    Provenance,
    add_provenance_to_jpeg,
    digital_source_type,
    encode_jpeg,
    encode_png,
    read_c2pa,
    read_provenance,
)
from headshots.settings import Settings
from headshots.style.brand import ExportEntry, export_headshot, team_zip, with_logo_mark


def _image(width: int = 80, height: int = 100, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (5, 4, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_png_and_jpeg_carry_the_iptc_digital_source_type() -> None:
    png = encode_png(_image(), {"preset": "corporate", "seed": 42})
    jpeg = encode_jpeg(_image())
    for data in (png, jpeg):
        _assert_marked(data)
    assert read_provenance(png) == {"ai_generated": True, "preset": "corporate", "seed": 42}
    with Image.open(io.BytesIO(png)) as image:
        assert image.text["AI-Generated"] == "true"


def _assert_marked(data: bytes) -> None:
    """The same provenance a reader finds in every file we deliver: XMP and the EXIF notice."""
    assert digital_source_type(data) == TRAINED_ALGORITHMIC_MEDIA
    with Image.open(io.BytesIO(data)) as image:
        description = image.getxmp()["xmpmeta"]["RDF"]["Description"]
        assert description["description"]["Alt"]["li"]["text"] == AI_NOTICE
        exif = image.getexif()
        assert exif[0x010E] == AI_NOTICE and exif[0x0131].startswith("headshots")


def test_provenance_goes_into_an_existing_jpeg_without_touching_its_pixels() -> None:
    sheet = contact_sheet([_image(seed=1), _image(seed=2)], ["#1", "#2"])
    assert digital_source_type(sheet) is None
    with Image.open(io.BytesIO(sheet)) as image:
        assert 0x010E not in image.getexif()
    marked = add_provenance_to_jpeg(sheet)
    _assert_marked(marked)
    twice = add_provenance_to_jpeg(marked)
    assert twice.count(b"trainedAlgorithmicMedia") == 1, "one packet, not two"
    assert twice.count(AI_NOTICE.encode()) == 2, "one EXIF notice and one XMP notice"
    with Image.open(io.BytesIO(sheet)) as before, Image.open(io.BytesIO(marked)) as after:
        assert np.array_equal(np.asarray(before), np.asarray(after))
    with pytest.raises(ValueError, match="JPEG"):
        add_provenance_to_jpeg(_png(_image()))


def test_a_jpeg_keeps_its_own_exif_tags_when_marked() -> None:
    exif = Image.Exif()
    exif[0x0112] = 1  # Orientation
    exif[0x8298] = "Acme Inc."  # Copyright
    buffer = io.BytesIO()
    _image().save(buffer, format="JPEG", exif=exif)
    marked = add_provenance_to_jpeg(buffer.getvalue())
    _assert_marked(marked)
    with Image.open(io.BytesIO(marked)) as image:
        assert image.getexif()[0x8298] == "Acme Inc."


def test_every_delivered_file_kind_carries_the_same_provenance() -> None:
    provenance = Provenance()
    for data in (
        provenance.png(_image(), {"seed": 1}, title="Corporate headshot #1"),
        provenance.jpeg(_image(), title="profile picture"),
        provenance.mark(contact_sheet([_image(), _image(seed=3)], ["#1", "#2"]), title="sheet"),
        provenance.mark(_png(_image()), title="an export made elsewhere"),
    ):
        _assert_marked(data)


def test_team_export_headshots_profile_pictures_and_sheet_all_carry_it() -> None:
    logo = _png(Image.new("RGB", (32, 32), (200, 10, 10)))
    delivered = encode_png(_image(1638, 2048), {})
    image = export_headshot(delivered, "4:5")
    assert image.size == (1638, 2048), "the delivered size is kept, not resampled"
    small = export_headshot(encode_png(_image(64, 80), {}), "4:5")
    assert small.size == (819, 1024)
    entries = [
        ExportEntry("ada", image, with_logo_mark(image, logo)),
        ExportEntry("bea", export_headshot(delivered, "4:5"), None),
    ]
    (part,) = team_zip(entries, team_name="Acme", max_bytes=10_000_000)
    with zipfile.ZipFile(io.BytesIO(part)) as archive:
        names = sorted(archive.namelist())
        assert names == [
            "acme-contact-sheet.jpg",
            "ada.jpg",
            "bea.jpg",
            "profile-pictures/ada.jpg",
        ]
        for name in names:
            _assert_marked(archive.read(name))


def test_c2pa_manifest_signed_with_the_operators_certificate(
    operator_certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    chain, key = operator_certificate
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        state_dir=tmp_path,
        c2pa_cert=chain,
        c2pa_key=key,
    )
    provenance = Provenance.from_settings(settings)
    assert provenance.signer is not None
    for data in (
        provenance.png(_image(), {"seed": 1}, title="Corporate headshot #1"),
        provenance.jpeg(_image(), title="profile picture"),
        provenance.mark(contact_sheet([_image()], ["#1"]), title="contact sheet"),
    ):
        store = read_c2pa(data)
        assert store is not None
        manifest = store["manifests"][store["active_manifest"]]
        actions = next(a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions"))
        created = actions["data"]["actions"][0]
        assert created["action"] == "c2pa.created"
        assert created["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
        assert manifest["signature_info"]["common_name"] == "headshots signer"
        # A test CA is not on any trust list: valid signature, untrusted signer.
        codes = {status["code"] for status in store.get("validation_status", [])}
        assert codes <= {"signingCredential.untrusted"}
        assert digital_source_type(data) == TRAINED_ALGORITHMIC_MEDIA  # XMP survives signing
    assert read_c2pa(encode_png(_image(), {})) is None


def test_c2pa_settings_are_checked(tmp_path: Path) -> None:
    def settings(**values: object) -> Settings:
        return Settings(_env_file=None, state_dir=tmp_path, **values)  # type: ignore[call-arg,arg-type]

    assert Provenance.from_settings(settings()).signer is None
    with pytest.raises(ConfigurationError, match="both"):
        Provenance.from_settings(settings(c2pa_cert=tmp_path / "chain.pem"))
    with pytest.raises(ConfigurationError, match="HEADSHOTS_C2PA_CERT"):
        Provenance.from_settings(
            settings(c2pa_cert=tmp_path / "missing.pem", c2pa_key=tmp_path / "missing.key")
        )
    assert C2paSigner(b"", b"").algorithm == "es256"
