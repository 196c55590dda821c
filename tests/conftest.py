"""Test configuration: every fixture module is a plugin under tests/plugins/."""

from __future__ import annotations

pytest_plugins = [
    "tests.plugins.queue",
    "tests.plugins.faces",
    "tests.plugins.generation",
    "tests.plugins.telegram",
    "tests.plugins.discord",
    "tests.plugins.slack",
    "tests.plugins.safety",
    "tests.plugins.provenance",
    "tests.plugins.style",
]
