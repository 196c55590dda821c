"""The chat side must stay light: no torch, diffusers or onnxruntime in a bot process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import sys
import headshots.bot, headshots.bot.telegram, headshots.bot.discord
import headshots.queue.client, headshots.queue.worker
import headshots.generation.faces
import headshots.generation.presets
names = ("torch", "diffusers", "onnxruntime", "transformers", "insightface", "dlib")
heavy = sorted(m for m in names if m in sys.modules)
print(",".join(heavy))
"""


def test_bot_side_imports_no_heavy_libraries() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"heavy modules imported: {result.stdout}"


def test_no_top_level_queue_package() -> None:
    # A top-level queue/ would shadow the standard library's queue and break asyncio.
    assert not (ROOT / "queue").exists()
    import queue

    assert hasattr(queue, "SimpleQueue")
