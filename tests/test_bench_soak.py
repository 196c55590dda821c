"""``bench/soak.py --quick``: ten people, six on the Telegram bot, three on the Discord bot (over
the fake gateway) and one on the Slack bot (Socket Mode), while the Telegram and Discord bots, a
worker twice and Redis are killed and the Bot API and the Discord API answer 429 and 502 for a
while; nothing may be lost, posted twice, or left behind by a /delete."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.plugins.queue import ROOT, parent_env


@pytest.mark.slow
@pytest.mark.timeout(340)
def test_quick_soak_loses_nothing_and_posts_nothing_twice() -> None:
    env = parent_env()
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--quick"],
        env=env,
        capture_output=True,
        text=True,
        timeout=330,
        check=False,
    )
    report = done.stdout
    assert done.returncode == 0, f"{report}\n{done.stderr[-4000:]}"
    assert "verdict: PASS (lost 0, duplicated 0, keys left 0)" in report, report
    for figure in ("jobs ordered:", "jobs delivered:", "photo verdict latency", "bot peak RSS"):
        assert figure in report, report
    # Discord people ordered over the gateway and got results in their threads/DMs.
    assert re.search(r"jobs ordered: \d+ \(Discord [1-9]", report), report
    assert re.search(r"jobs delivered: \d+ \(Discord [1-9]", report), report
    assert "SIGKILL Discord bot mid-upload" in report, report
    # The Slack person ordered in the DM with the app and got the results there.
    assert re.search(r"jobs ordered: \d+ \(Discord \d+, Slack [1-9]", report), report
    assert re.search(r"jobs delivered: \d+ \(Discord \d+, Slack [1-9]", report), report
