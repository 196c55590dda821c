"""Benchmark of the selfie check: per-image time per backend, peak RSS for a set of 30, and
peak RSS of normalising team logos built to cost memory (they share the checks' bounded decode).

Run: ``.venv/bin/python bench/bench_selfie_check.py``. Not a test. The insightface part runs on
the pack in ``<models_path>/insightface/models/<pack>`` when present; without one it times only
the ArcFace embedding path on a small exported model (the detector cannot be substituted).

``--large`` runs only the issue-20 case instead: the check stage (10 selfies sent at 2048 px)
and the rank stage (10 images of 2048 px) with the face code of ``--baseline`` (a git revision,
default HEAD) against the working tree's, interleaved; cold (a fresh process: model load and
first pass) apart from steady (later passes in one process).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

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


_ROOT = Path(__file__).resolve().parents[1]
_LARGE_SIDE = 2048


def _baseline(revision: str, name: str) -> types.ModuleType:
    """A face module as it is at ``revision``, loaded beside the working tree's own."""
    path = f"headshots/generation/faces/{name}.py"
    source = subprocess.run(
        ["git", "show", f"{revision}:{path}"], cwd=_ROOT, capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType(f"baseline_{name}")
    module.__file__ = f"{revision}:{path}"
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def _analyzer(variant: str, revision: str) -> Any:
    """``before``: the baseline's; ``after``: the working tree's; ``after-1``: it, one at a time."""
    if variant == "before":
        return _baseline(revision, "dlib_backend").DlibAnalyzer()
    return DlibAnalyzer(workers=1 if variant == "after-1" else None)


def _large_images() -> list[Any]:
    """Ten photos of one person (the seven selfie variants and three more) at 2048 px."""
    import io

    from PIL import Image, ImageEnhance, ImageOps

    from tests.plugins.faces import astronaut_image

    base = astronaut_image()
    images = [Image.open(io.BytesIO(data)).convert("RGB") for data in face_photo_variants()]
    images += [
        ImageOps.mirror(base.rotate(-5, resample=Image.Resampling.BICUBIC)),
        ImageEnhance.Color(base.crop((10, 0, 500, 490))).enhance(0.6),
        ImageEnhance.Brightness(ImageOps.mirror(base.crop((50, 20, 512, 482)))).enhance(1.1),
    ]
    enlarged = []
    for image in images:
        factor = _LARGE_SIDE / max(image.size)
        size = (round(image.width * factor), round(image.height * factor))
        enlarged.append(image.resize(size, Image.Resampling.LANCZOS))
    return enlarged


def _check_pass(analyzer: Any, photos: list[bytes]) -> float:
    """The check stage's way: ``check_selfies`` (parallel where the analyzer says it can)."""
    from headshots.generation.faces import check_selfies

    start = time.perf_counter()
    check_selfies(photos, analyzer)
    return time.perf_counter() - start


def _rank_pass(analyzer: Any, images: list[Any], reference: Any) -> float:
    from headshots.generation.faces import rank_by_likeness

    start = time.perf_counter()
    rank_by_likeness(images, reference, analyzer, top_k=4)
    return time.perf_counter() - start


def _large_inputs() -> tuple[list[Any], list[bytes], Any]:
    from headshots.generation.faces import reference_embedding
    from tests.plugins.faces import to_jpeg

    images = _large_images()
    photos = [to_jpeg(image) for image in images]
    # The person's reference, as the train stage stores it: from their (small) selfies.
    reference = reference_embedding(
        [DlibAnalyzer().analyze(image.resize((512, 512)))[0].embedding for image in images[:4]]
    )
    return images, photos, reference


def _cold_child(stage: str, variant: str, revision: str) -> None:
    """One first pass in this fresh process, model load included; prints seconds as JSON."""
    images, photos, reference = _large_inputs()
    start = time.perf_counter()
    analyzer = _analyzer(variant, revision)
    if stage == "check":
        _check_pass(analyzer, photos)
    else:
        _rank_pass(analyzer, images, reference)
    print(json.dumps({"seconds": time.perf_counter() - start}))


def _stats(name: str, times: list[float]) -> str:
    return (
        f"{name:<26} min {min(times):6.2f} s   median {statistics.median(times):6.2f} s"
        f"   per pass of 10 (n={len(times)})"
    )


def _large_cold(revision: str, repeats: int) -> None:
    results: dict[tuple[str, str], list[float]] = {}
    for repeat in range(repeats):
        for stage in ("check", "rank"):
            order = ("before", "after") if repeat % 2 == 0 else ("after", "before")
            for variant in order:
                child = subprocess.run(
                    [sys.executable, __file__, "--cold-child", stage, variant, revision],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                seconds = json.loads(child.stdout.strip().splitlines()[-1])["seconds"]
                results.setdefault((stage, variant), []).append(seconds)
    print("cold (fresh process; dlib model load and first pass):")
    for (stage, variant), times in sorted(results.items()):
        print("  " + _stats(f"{stage} {variant}", times))


def _large_steady(revision: str, rounds: int) -> None:
    images, photos, reference = _large_inputs()
    variants = ("before", "after-1", "after")
    analyzers = {variant: _analyzer(variant, revision) for variant in variants}
    for analyzer in analyzers.values():  # models loaded, first pass done: steady from here
        _check_pass(analyzer, photos[:1])
    results: dict[tuple[str, str], list[float]] = {}
    for number in range(rounds):
        for variant in variants if number % 2 == 0 else variants[::-1]:
            analyzer = analyzers[variant]
            results.setdefault(("check", variant), []).append(_check_pass(analyzer, photos))
            results.setdefault(("rank", variant), []).append(
                _rank_pass(analyzer, images, reference)
            )
    print("steady (one process, models loaded, variants interleaved; after-1: one at a time):")
    for (stage, variant), times in sorted(results.items()):
        print("  " + _stats(f"{stage} {variant}", times))


def _large_embedding(revision: str, rounds: int) -> None:
    """insightface's align + embed of one face in a 2048 and a 4000 px photo, before/after.

    On the small exported model (no pack here): it measures the code around the model (the
    photo's conversion and warp), which is what changed; the model's own cost is the same.
    """
    import numpy as np
    from insightface.utils import face_align
    from PIL import Image

    from headshots.generation.faces import ArcFaceEmbedder
    from tests.plugins.faces import save_tiny_arcface

    old_module = _baseline(revision, "insightface_backend")
    face = Image.open(insightface_image_path("Tom_Hanks_54745.png")).convert("RGB")
    template = np.asarray(face_align.arcface_dst, dtype=np.float32)
    with tempfile.TemporaryDirectory() as folder:
        after = ArcFaceEmbedder.from_file(save_tiny_arcface(Path(folder) / "tiny.onnx"))
        before = old_module.ArcFaceEmbedder(after._model)
        print("insightface align+embed* of one 448 px face (tiny model, per face):")
        for side in (2048, 4000):
            photo = Image.new("RGB", (side, side * 3 // 4), (40, 90, 60))
            photo.paste(face.resize((448, 448), Image.Resampling.LANCZOS), (side // 2, 300))
            landmarks = template * 4 + np.array([side // 2, 300], dtype=np.float32)
            times: dict[str, list[float]] = {"before": [], "after": []}
            for number in range(rounds * 4):
                pair = (("before", before), ("after", after))
                for variant, embedder in pair if number % 2 == 0 else pair[::-1]:
                    start = time.perf_counter()
                    embedder.embed(photo, landmarks)
                    times[variant].append(time.perf_counter() - start)
            for variant, values in times.items():
                print(
                    f"  {side} px {variant:<7} min {min(values) * 1000:6.1f} ms"
                    f"   median {statistics.median(values) * 1000:6.1f} ms   (n={len(values)})"
                )
    print("  * small exported model, not w600k_r50: the code around the model, not its cost")


def large_case(revision: str, rounds: int, cold_repeats: int) -> None:
    command = " ".join(shlex.quote(arg) for arg in [".venv/bin/python", *sys.argv])
    print(f"$ {command}")
    print(
        f"10 photos of one person at {_LARGE_SIDE} px; dlib; before = {revision}, "
        f"after = working tree ({DlibAnalyzer().parallelism} analyses at once)\n"
    )
    # Parallel analyses need idle cores: other load on the host shows here, not in the times.
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    _large_steady(revision, rounds)
    _large_cold(revision, cold_repeats)
    _large_embedding(revision, rounds)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--large", action="store_true", help="only the 2048 px before/after case")
    parser.add_argument("--baseline", default="HEAD", help="git revision of the 'before' code")
    parser.add_argument("--rounds", type=int, default=5, help="steady passes per variant")
    parser.add_argument("--cold", type=int, default=2, help="fresh processes per variant")
    parser.add_argument("--cold-child", nargs=3, metavar=("STAGE", "VARIANT", "REV"))
    return parser.parse_args()


if __name__ == "__main__":
    arguments = _arguments()
    if arguments.cold_child:
        _cold_child(*arguments.cold_child)
    elif arguments.large:
        large_case(arguments.baseline, arguments.rounds, arguments.cold)
    else:
        main()
