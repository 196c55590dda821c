"""The chat side must stay light: no torch, diffusers or onnxruntime in a bot process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import sys
import headshots.bot, headshots.bot.telegram, headshots.bot.discord
import headshots.bot.slack, headshots.bot.slack.app
import headshots.queue.client, headshots.queue.worker
import headshots.generation.faces
import headshots.style.presets
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


def _bot_imports() -> dict[str, set[str]]:
    """Module of headshots.bot -> the headshots.bot modules it imports (anywhere in it)."""
    import ast

    package = ROOT / "headshots" / "bot"
    modules = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for path in package.rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        base = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                parent = base.rsplit(".", node.level - 1)[0] if node.level else ""
                stem = ".".join(p for p in (parent, node.module or "") if p)
                found.add(stem)
                found.update(f"{stem}.{alias.name}" for alias in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    """An import cycle of ``graph`` (as a path that ends where it starts), or ``None``."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        for imported in sorted(graph.get(module, ())):
            found = visit(imported, [*path, module])
            if found:
                return found
        done.add(module)
        return None

    return next((c for c in (visit(m, []) for m in sorted(graph)) if c), None)


def test_bot_import_graph_has_no_cycle() -> None:
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    graph = _bot_imports()
    assert "headshots.bot.conversation.photos" in graph["headshots.bot.conversation.flow"]
    assert len(graph) > 15
    assert cycle_in(graph) is None, " -> ".join(cycle_in(graph) or [])


def test_the_core_imports_no_chat_platform_and_checks_selfies_in_one_place() -> None:
    import ast

    core = ROOT / "headshots" / "bot" / "conversation"
    for path in core.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        platforms = {n for n in names if n.split(".")[0] in ("telegram", "discord", "slack_sdk")}
        platforms |= {n for n in names if n.split(".")[0] == "slack_bolt"}
        fronts = (".bot.telegram", ".bot.discord", ".bot.slack")
        assert not platforms and not any(front in n for n in names for front in fronts)
    # Every selfie check (and every thread of face work) goes through photos.FaceWork.
    for path in (ROOT / "headshots" / "bot").rglob("*.py"):
        text = path.read_text()
        if path.name != "photos.py":
            assert "check_selfie(" not in text and "to_thread(" not in text, path
            assert "run_in_executor(" not in text and "ThreadPoolExecutor" not in text, path


def test_import_headshots_bot_stays_light() -> None:
    code = (
        "import sys, headshots.bot, headshots.bot.conversation.flow, "
        "headshots.bot.conversation.team; "
        "heavy = ('torch', 'diffusers', 'onnxruntime', 'dlib'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


def _imported_modules(path: Path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return names | {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}


def test_style_knowledge_has_a_home_of_its_own() -> None:
    """The chat takes presets, the policy and the brand kit from headshots.style, which knows
    no platform and no torch; from headshots.generation it takes the selfie checks only."""
    for path in (ROOT / "headshots" / "bot").rglob("*.py"):
        for name in _imported_modules(path):
            if name.startswith("headshots.generation"):
                assert name.startswith("headshots.generation.faces"), (path, name)
    for path in (ROOT / "headshots" / "style").rglob("*.py"):
        for name in _imported_modules(path):
            root = name.split(".")[0]
            assert root not in ("torch", "diffusers", "telegram", "discord", "slack_sdk"), (
                path,
                name,
            )
            assert not name.startswith("headshots.bot"), (path, name)
