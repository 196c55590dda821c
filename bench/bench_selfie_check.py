"""Benchmark of the selfie check: per-image time per backend, peak RSS for a set of 30, and
peak RSS of normalising team logos built to cost memory (they share the checks' bounded decode).

Run: ``.venv/bin/python bench/bench_selfie_check.py``. Not a test. The insightface part runs on
the pack in ``<models_path>/insightface/models/<pack>`` when present; without one it times only
the ArcFace embedding path on a small exported model (the detector cannot be substituted).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from headshots.generation.faces import (
    DlibAnalyzer,
    InsightFaceAnalyzer,
    check_selfie,
    insightface_pack_dir,
)
from headshots.settings import Settings
from tests.plugins.faces import face_photo_variants, insightface_image_path

_CHILD = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from headshots.generation.faces import DlibAnalyzer, check_selfie, check_selfie_set
analyzer = DlibAnalyzer()
files = sorted(Path(sys.argv[2]).iterdir())
verdicts = [check_selfie(p.read_bytes(), analyzer, index=i) for i, p in enumerate(files, 1)]
result = check_selfie_set(verdicts, same_person_threshold=analyzer.same_person_threshold)
print(json.dumps({
    "photos": len(files),
    "accepted": len(result.accepted),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "torch_imported": "torch" in sys.modules,
}))
"""

_LOGO_CHILD = """
import json, re, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from headshots.style.brand import LogoRejected, normalise_logo
def rss(field):
    return int(re.search(field + r":\\s+(\\d+)", open("/proc/self/status").read())[1]) / 1024
rows = []
for path in sorted(Path(sys.argv[2]).iterdir()):
    data = path.read_bytes()
    with open("/proc/self/clear_refs", "w") as clear:  # peak RSS afresh for each logo
        clear.write("5")
    before, start = rss("VmRSS"), time.perf_counter()
    try:
        outcome = f"normalised to {len(normalise_logo(data)) // 1024} KB"
    except LogoRejected as exc:
        outcome = f"refused ({exc.detail or exc.kind})"
    rows.append({"name": path.name, "kb": len(data) // 1024, "outcome": outcome,
                 "ms": (time.perf_counter() - start) * 1000, "rss_before_mb": before,
                 "peak_mb": rss("VmHWM")})
print(json.dumps({"rows": rows, "torch_imported": "torch" in sys.modules}))
"""


def _time_checks(analyzer: object, photos: list[bytes], rounds: int = 3) -> list[float]:
    check_selfie(photos[0], analyzer, index=0)  # type: ignore[arg-type]  # warm-up: model load
    times = []
    for _ in range(rounds):
        for index, data in enumerate(photos, start=1):
            start = time.perf_counter()
            check_selfie(data, analyzer, index=index)  # type: ignore[arg-type]
            times.append(time.perf_counter() - start)
    return times


def _report(name: str, times: list[float]) -> None:
    print(
        f"{name:<28} median {statistics.median(times) * 1000:7.1f} ms/image"
        f"   max {max(times) * 1000:7.1f} ms   (n={len(times)})"
    )


def _time_embedding_path() -> None:
    """Time insightface's alignment + ONNX embedding on the small model the tests export."""
    import numpy as np
    from PIL import Image

    from headshots.generation.faces import ArcFaceEmbedder
    from tests.plugins.faces import save_tiny_arcface

    with tempfile.TemporaryDirectory() as folder:
        embedder = ArcFaceEmbedder.from_file(save_tiny_arcface(Path(folder) / "tiny.onnx"))
        from insightface.utils import face_align

        face = Image.open(insightface_image_path("Tom_Hanks_54745.png")).convert("RGB")
        landmarks = np.asarray(face_align.arcface_dst, dtype=np.float32)
        times = []
        for _ in range(50):
            start = time.perf_counter()
            embedder.embed(face, landmarks)
            times.append(time.perf_counter() - start)
    _report("insightface align+embed*", times)
    print("  * small exported model, not w600k_r50: measures the code path, not the real cost")


def _hostile_files() -> dict[str, bytes]:
    """Small files with huge pixel counts (the probe's), and a 48 MP camera-sized JPEG."""
    import io

    import numpy as np
    from PIL import Image

    files: dict[str, bytes] = {}
    for name, side, mode in (
        ("x1-16bit-5400.png", 5400, "I;16"),
        ("x2-rgba-5400.png", 5400, "RGBA"),
        ("x3-16bit-6300.png", 6300, "I;16"),
        ("x4-rgba-6300.png", 6300, "RGBA"),
    ):
        pixels = np.zeros((side, side), np.uint16 if mode == "I;16" else np.uint8)
        pixels[1000:2000, 1000:2000] = 40000 if mode == "I;16" else 150
        image = Image.fromarray(pixels)
        buffer = io.BytesIO()
        (image.convert("RGBA") if mode == "RGBA" else image).save(buffer, "PNG")
        files[name] = buffer.getvalue()
    buffer = io.BytesIO()
    Image.new("RGB", (8000, 6000), (128, 120, 110)).save(buffer, "JPEG", quality=90)
    files["x5-48mp.jpg"] = buffer.getvalue()
    return files


def _hostile_logos() -> dict[str, bytes]:
    """The probe's logo (13000x13000 px in a small PNG), a 48 MP JPEG, a 5000² RGBA PNG."""
    import io

    from PIL import Image, ImageDraw

    files: dict[str, bytes] = {}
    for name, size, mode, file_format in (
        ("l1-rgb-13000.png", (13000, 13000), "RGB", "PNG"),
        ("l2-48mp.jpg", (8000, 6000), "RGB", "JPEG"),
        ("l3-rgba-5000.png", (5000, 5000), "RGBA", "PNG"),
    ):
        image = Image.new(mode, size, (255, 255, 255, 0) if mode == "RGBA" else (250, 250, 250))
        ImageDraw.Draw(image).ellipse(
            (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2), "navy"
        )
        buffer = io.BytesIO()
        image.save(buffer, file_format)
        files[name] = buffer.getvalue()
        del image
    return files


def _logo_peaks() -> None:
    """Each hostile logo normalised in turn in a fresh process: its peak RSS (Linux)."""
    logos = _hostile_logos()
    with tempfile.TemporaryDirectory() as folder:
        for name, data in logos.items():
            Path(folder, name).write_bytes(data)
        child = subprocess.run(
            [sys.executable, "-c", _LOGO_CHILD, str(Path(__file__).resolve().parents[1]), folder],
            capture_output=True,
            text=True,
            check=True,
        )
    result = json.loads(child.stdout)
    print(f"\nteam logos (one process, in turn; torch imported: {result['torch_imported']}):")
    for row in result["rows"]:
        print(
            f"  {row['name']:<18} {row['kb']:6d} KB  {row['outcome']:<48} {row['ms']:7.1f} ms"
            f"  RSS {row['rss_before_mb']:4.0f} MB, peak {row['peak_mb']:4.0f} MB"
        )


def main() -> None:
    photos = face_photo_variants()
    group = insightface_image_path("t1.jpg").read_bytes()
    print(f"{len(photos)} selfies (512-600 px) + t1.jpg (1280x886)\n")
    dlib = DlibAnalyzer()
    _report("dlib selfies", _time_checks(dlib, photos))
    _report("dlib group photo", _time_checks(dlib, [group]))

    settings = Settings()
    pack = insightface_pack_dir(settings.models_path, settings.insightface_pack)
    if pack.is_dir() and any(pack.glob("det_*.onnx")):
        analyzer = InsightFaceAnalyzer(pack)
        _report("insightface selfies", _time_checks(analyzer, photos))
        _report("insightface group photo", _time_checks(analyzer, [group]))
    else:
        print(f"insightface detection: skipped, no pack in {pack}")
    _time_embedding_path()

    hostile = _hostile_files()
    with tempfile.TemporaryDirectory() as folder:
        for number in range(30 - len(hostile)):
            data = photos[number % len(photos)]
            Path(folder, f"{number:02d}.jpg").write_bytes(data)
        for name, data in hostile.items():
            Path(folder, name).write_bytes(data)
        start = time.perf_counter()
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, str(Path(__file__).resolve().parents[1]), folder],
            capture_output=True,
            text=True,
            check=True,
        )
        elapsed = time.perf_counter() - start
    result = json.loads(child.stdout)
    sizes = ", ".join(f"{name} {len(data) // 1024} KB" for name, data in hostile.items())
    print(f"\nthe 30 include {len(hostile)} files built to cost memory: {sizes}")
    print(
        f"subprocess, 30 photos with dlib: {elapsed:.1f} s wall, "
        f"peak RSS {result['peak_rss_mb']:.0f} MB, torch imported: {result['torch_imported']}, "
        f"accepted {result['accepted']} (duplicates of the 7 variants are rejected)"
    )
    _logo_peaks()


if __name__ == "__main__":
    main()
