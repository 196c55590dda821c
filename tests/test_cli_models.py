"""``headshots models fetch`` against a real HTTP server that speaks the Hugging Face hub's API.

The server serves folders built here (the tiny model, the random output check, a LoRA) under hub
ids, over real HTTP to a real ``headshots`` subprocess; then ``doctor``, offline, must find them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from tests.test_cli_core import clean_env, headshots

_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _hub_handler(repos: dict[str, Path]) -> type[BaseHTTPRequestHandler]:
    """The four calls huggingface_hub makes: repo info, file tree, HEAD and GET of a file."""

    class Hub(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(
            self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _api(self, path: str) -> None:
            owner, name, *rest = path.removeprefix("/api/models/").split("/")
            root = repos.get(f"{owner}/{name}")
            if root is None:
                self._send(404, headers={"X-Error-Code": "RepoNotFound"})
                return
            files = sorted(f for f in root.rglob("*") if f.is_file())
            if rest and rest[0] == "tree":
                listing: object = [
                    {
                        "type": "file",
                        "path": str(f.relative_to(root)),
                        "size": f.stat().st_size,
                        "oid": hashlib.sha1(f.read_bytes()).hexdigest(),
                    }
                    for f in files
                ]
            else:
                siblings = [{"rfilename": str(f.relative_to(root))} for f in files]
                listing = {"id": f"{owner}/{name}", "sha": _COMMIT, "siblings": siblings}
            self._send(200, json.dumps(listing).encode(), {"Content-Type": "application/json"})

        def do_GET(self) -> None:
            path = unquote(urlparse(self.path).path)
            if path.startswith("/api/models/"):
                self._api(path)
                return
            parts = path.lstrip("/").split("/")
            if "resolve" not in parts:
                self._send(404)
                return
            at = parts.index("resolve")
            root = repos.get("/".join(parts[:at]))
            file = root / "/".join(parts[at + 2 :]) if root else None
            if file is None or not file.is_file():
                self._send(404, headers={"X-Error-Code": "EntryNotFound"})
                return
            data = file.read_bytes()
            etag = f'"{hashlib.sha1(data).hexdigest()}"'
            self._send(200, data, {"ETag": etag, "X-Repo-Commit": _COMMIT})

        do_HEAD = do_GET

    return Hub


@pytest.fixture
def fake_hub(
    tiny_model_path: Path,
    safety_checker_path: Path,
    make_tiny_lora: Callable[[int], bytes],
    tiny_controlnet_path: Path,
    tmp_path: Path,
) -> Iterator[str]:
    from headshots.generation.train import LORA_WEIGHT_NAME

    lcm = tmp_path / "lcm-repo"
    lcm.mkdir()
    (lcm / LORA_WEIGHT_NAME).write_bytes(make_tiny_lora(0))
    repos = {
        "acme/tiny-headshot-base": tiny_model_path,
        "CompVis/stable-diffusion-safety-checker": safety_checker_path,
        "acme/lcm-lora-tiny": lcm,
        "acme/tiny-openpose": tiny_controlnet_path,
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _hub_handler(repos))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _env(endpoint: str, model_dir: Path, **extra: str) -> dict[str, str]:
    settings = {
        "HF_ENDPOINT": endpoint,
        "HEADSHOTS_STATE_DIR": str(model_dir.parent / "state"),
        "HEADSHOTS_MODEL_DIR": str(model_dir),
        "HEADSHOTS_BASE_MODEL": "acme/tiny-headshot-base",
        "HEADSHOTS_SAFETY_CHECKER": "auto",
        "HEADSHOTS_FACE_BACKEND": "auto",
        "HEADSHOTS_LCM_LORA": "acme/lcm-lora-tiny",
        "HEADSHOTS_CONTROLNET_SD15_POSE": "acme/tiny-openpose",
        # The point of fetching ahead: the host that fetches may itself be set up offline.
        "HEADSHOTS_HF_OFFLINE": "1",
    }
    return clean_env(**{**settings, **extra})


def _doctor(env: dict[str, str]) -> dict[str, dict[str, object]]:
    doctor = headshots("doctor", "--json", env=env)
    return {c["check"]: c for c in json.loads(doctor.stdout)}


def test_fetch_fills_the_folder_an_offline_worker_then_uses(fake_hub: str, tmp_path: Path) -> None:
    models = tmp_path / "models"
    env = _env(fake_hub, models)
    before = _doctor(env)
    assert not before["base model"]["ok"] and not before["output check"]["ok"]
    for hint in ("headshots models fetch", "HEADSHOTS_SAFETY_CHECKER=none", "WITHOUT an NSFW"):
        assert hint in str(before["output check"]["detail"]), hint

    fetched = headshots("models", "fetch", "--json", env=env, timeout=120)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    rows = {row["what"]: row for row in json.loads(fetched.stdout.split("\n", 1)[1])}
    assert rows["base model"]["outcome"] == "ready" and "(sd15)" in rows["base model"]["detail"]
    assert str(models / "hub") in rows["output check"]["detail"]
    assert rows["face models"] == {
        "what": "face models",
        "name": "dlib",
        "outcome": "ready",
        "detail": "shipped in the face-recognition-models package",
        "ok": True,
    }, "the insightface pack (non-commercial) is not fetched unless the operator chose it"
    assert rows["FaceID adapter"]["outcome"] == "skipped"
    assert rows["LCM-LoRA"]["outcome"] == "ready"
    assert rows["sd15 pose ControlNet"]["outcome"] == "ready"

    # Now the hub is gone: the same settings, offline, find everything in the folder.
    offline = _env("http://127.0.0.1:9", models)
    after = _doctor(offline)
    assert after["base model"]["ok"] and "cached" in str(after["base model"]["detail"])
    assert after["output check"]["ok"], after["output check"]
    assert after["quick drafts"]["ok"], after["quick drafts"]
    assert after["reference photo"]["ok"], after["reference photo"]
    again = headshots("models", "fetch", env=offline, timeout=120)
    assert again.returncode == 0 and "Ready." in again.stdout, "the cached copies still count"


def test_fetch_names_every_problem_at_once(fake_hub: str, tmp_path: Path) -> None:
    models = tmp_path / "models"
    pack = models / "insightface" / "models" / "buffalo_l"
    pack.mkdir(parents=True)
    (pack / "det_10g.onnx").write_bytes(b"an operator's own copy")
    env = _env(
        fake_hub,
        models,
        HEADSHOTS_BASE_MODEL="acme/no-such-model",
        HEADSHOTS_SAFETY_CHECKER="acme/no-such-checker",
        HEADSHOTS_LCM_LORA="acme/no-such-lora",
        HEADSHOTS_IP_ADAPTER_FACEID=str(tmp_path / "missing" / "faceid.bin"),
        HEADSHOTS_FACE_BACKEND="insightface",
        HEADSHOTS_CONTROLNET_SD15_POSE="acme/no-such-controlnet",
    )
    result = headshots("models", "fetch", env=env, timeout=120)
    assert result.returncode == 1
    lines = {line.split()[1]: line for line in result.stdout.splitlines()[1:-1]}
    assert lines["base"].startswith("✗") and "could not be fetched (online)" in lines["base"]
    assert lines["output"].startswith("✗") and "acme/no-such-checker" in lines["output"]
    assert lines["face"].startswith("✓") and str(pack) in lines["face"]
    assert lines["FaceID"].startswith("✗") and "does not exist" in lines["FaceID"]
    assert lines["LCM-LoRA"].startswith("✗")
    assert lines["sd15"].startswith("✗") and "acme/no-such-controlnet" in lines["sd15"]
    assert all("\n" not in line for line in lines.values())
    assert result.stdout.splitlines()[-1].startswith("Not ready: base model, output check")
