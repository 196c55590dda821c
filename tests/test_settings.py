from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from headshots.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_env_example_documents_every_setting() -> None:
    documented = set(
        re.findall(r"^HEADSHOTS_([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    )
    fields = {name.upper() for name in Settings.model_fields}
    assert fields == documented


def test_env_example_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    text = (ROOT / ".env.example").read_text().replace("~/.local/state/headshots", str(tmp_path))
    env_file.write_text(text)
    for name in list(Settings.model_fields):
        monkeypatch.delenv(f"HEADSHOTS_{name.upper()}", raising=False)
    settings = Settings(_env_file=env_file)
    assert settings.telegram_token is None and settings.redis_url in (None, "")
    assert settings.selfie_ttl_s == 24 * 3600 and settings.lora_ttl_s == 30 * 86400
    # Paths written with "~" mean the home folder, never a folder named "~".
    assert settings.cache_dir == Path.home() / ".cache" / "headshots"


def test_home_is_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADSHOTS_STATE_DIR", "~/somewhere")
    monkeypatch.setenv("HEADSHOTS_MODEL_DIR", "~/weights")
    settings = Settings(_env_file=None)
    assert settings.state_dir == Path.home() / "somewhere"
    assert settings.models_path == Path.home() / "weights"


def test_prefix_secret_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADSHOTS_TELEGRAM_TOKEN", "123:SECRET-TOKEN")
    monkeypatch.setenv("HEADSHOTS_MAX_JOBS_PER_DAY", "9")
    settings = Settings(_env_file=None)
    assert settings.max_jobs_per_day == 9
    assert settings.telegram_token is not None
    assert settings.telegram_token.get_secret_value() == "123:SECRET-TOKEN"
    assert "SECRET" not in repr(settings) and "SECRET" not in str(settings.model_dump())
    monkeypatch.setenv("HEADSHOTS_DISCORD_THREAD_ARCHIVE_MINUTES", "30")
    with pytest.raises(ValueError, match="60, 1440"):
        Settings(_env_file=None)


def test_cli_logging_hides_token_urls(caplog: pytest.LogCaptureFixture) -> None:
    from headshots.cli import configure_logging

    configure_logging(Settings(_env_file=None), verbose=False)
    # httpx logs request URLs (python-telegram-bot puts the token there) at INFO.
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING


def test_sample_compile_takes_the_train_compile_values(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).sample_compile == "auto"
    monkeypatch.setenv("HEADSHOTS_SAMPLE_COMPILE", "reduce-overhead")
    assert Settings(_env_file=None).sample_compile == "reduce-overhead"
    monkeypatch.setenv("HEADSHOTS_SAMPLE_COMPILE", "fastest")
    with pytest.raises(ValueError, match="sample_compile"):
        Settings(_env_file=None)
