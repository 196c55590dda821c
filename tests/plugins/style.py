"""The style policy, built once per test session before the first bot runs.

The first review in a process reads the whole vocabulary and builds the refusal shield (about
25 s on two cores), and the chat reviews a description in its event loop. End-to-end tests
wait for replies with timeouts sized for a warm bot, so every bot fixture (telegram, discord,
slack) asks for the policy built first, as a long-running bot has it before its first customer.
"""

from __future__ import annotations

import pytest

from headshots.style.policy import review_description


@pytest.fixture(scope="session")
def style_policy_built() -> None:
    review_description("navy suit")
