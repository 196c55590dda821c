"""The operator commands as a person runs them: subprocesses, real Redis, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from headshots.queue.client import QueueClient
from headshots.settings import Settings
from tests.plugins.queue import ROOT, parent_env, settings_env
from tests.queue_helpers import make_request


def clean_env(**extra: str) -> dict[str, str]:
    env = parent_env()
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def headshots(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "headshots", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_up_runs_embedded_redis_and_worker_and_stops_cleanly(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = clean_env(HEADSHOTS_STATE_DIR=str(state), HEADSHOTS_STAGES="tests.stub_stages:build")
    up = subprocess.Popen(
        [sys.executable, "-m", "headshots", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url_file = state / "redis" / "url"
        deadline = time.monotonic() + 60
        while not url_file.exists():
            assert up.poll() is None, up.stdout.read() if up.stdout else ""
            assert time.monotonic() < deadline, "embedded Redis never announced"
            time.sleep(0.2)
        # Another command finds the running embedded Redis instead of starting its own.
        deadline = time.monotonic() + 60
        while True:
            status = headshots("status", "--json", env=env)
            assert status.returncode == 0, status.stderr
            report = json.loads(status.stdout)
            if report["train"]["workers"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert report["redis"] == url_file.read_text().strip()
        assert report["train"]["workers"], "the worker started by `up` is registered"
    finally:
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=60)
    assert up.returncode == 0, output
    assert "no bot token is set" in output
    assert not (state / "redis" / "url").exists()
    assert (state / "redis" / "appendonly.aof").exists() or (
        state / "redis" / "appendonlydir"
    ).exists()


async def test_status_of_a_job_and_doctor(
    settings_factory: Callable[..., Settings], redis_client: Any, tmp_path: Path
) -> None:
    settings = settings_factory()
    assert settings.redis_url
    client = await QueueClient.connect(settings, settings.redis_url)
    try:
        submission = await client.submit(await make_request(client))
    finally:
        await client.close()
    env = clean_env(**settings_env(settings))
    status = headshots("status", submission.job_id, env=env)
    assert status.returncode == 0, status.stderr
    assert f"job {submission.job_id}: queued" in status.stdout and "position 1" in status.stdout
    missing = headshots("status", "nope", env=env)
    assert missing.returncode == 1 and "no job nope" in missing.stderr

    doctor = headshots("doctor", "--json", env=env)
    checks = {c["check"]: c for c in json.loads(doctor.stdout)}
    assert checks["redis"]["ok"] and checks["torch"]["ok"]
    assert not checks["chat tokens"]["ok"]
    output_check = checks["output check"]
    assert output_check["ok"] and "safety checker from" in output_check["detail"]
    assert doctor.returncode == 0, doctor.stderr
    unchecked = headshots(
        "doctor", env=clean_env(**{**settings_env(settings), "HEADSHOTS_SAFETY_CHECKER": "none"})
    )
    assert "WITHOUT an NSFW check" in unchecked.stdout
    assert "WARNING: no output check is configured" in unchecked.stderr
    offline = headshots(
        "doctor",
        env=clean_env(
            **{
                **settings_env(settings),
                "HEADSHOTS_SAFETY_CHECKER": "auto",
                "HEADSHOTS_HF_OFFLINE": "1",
                "HEADSHOTS_MODEL_DIR": str(tmp_path / "empty-cache"),
            }
        ),
    )
    assert offline.returncode == 1 and "[ERR] output check" in offline.stdout
    broken = headshots(
        "doctor",
        env=clean_env(**{**settings_env(settings), "HEADSHOTS_REDIS_URL": "redis://127.0.0.1:1/0"}),
    )
    assert broken.returncode == 1 and "[ERR] redis" in broken.stdout
    bad_user = headshots("forget", "bob", env=env)
    assert bad_user.returncode == 1 and "tg:12345" in bad_user.stderr


def _wait_for_line(log: Path, text: str, timeout_s: float = 60, nth: int = 1) -> str:
    """The ``nth`` line of ``log`` that contains ``text``, once it has been written."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = [line for line in log.read_text(errors="replace").splitlines() if text in line]
        if len(lines) >= nth:
            return lines[nth - 1]
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared in:\n{log.read_text(errors='replace')}")


def test_up_restarts_a_dead_worker_and_its_redis_without_stopping(tmp_path: Path) -> None:
    import redis

    state = tmp_path / "state"
    env = clean_env(HEADSHOTS_STATE_DIR=str(state), HEADSHOTS_STAGES="tests.stub_stages:build")
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "headshots", "up"], env=env, stdout=out, stderr=out
        )
    try:
        first = _wait_for_line(log, "worker --queue all running (pid")
        worker_pid = int(first.rsplit("pid ", 1)[1].rstrip(")"))
        url = (state / "redis" / "url").read_text().strip()
        client = redis.Redis.from_url(url)
        client.set("hs:written-before-the-crash", "kept")
        redis_pid = int(client.info("server")["process_id"])

        os.kill(worker_pid, signal.SIGKILL)
        _wait_for_line(log, f"(pid {worker_pid}) exited with -9; restarting in 1 s")
        again = _wait_for_line(log, "worker --queue all running (pid", timeout_s=30, nth=2)
        os.kill(int(again.rsplit("pid ", 1)[1].rstrip(")")), 0)  # the new worker is alive

        os.kill(redis_pid, signal.SIGKILL)
        _wait_for_line(log, f"embedded Redis (pid {redis_pid}) died; restarting it on {url}")
        deadline = time.monotonic() + 30
        while True:  # same port, same data: what was written before the kill is there
            try:
                assert client.get("hs:written-before-the-crash") == b"kept"
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "Redis never came back on its port"
                time.sleep(0.2)
        assert int(client.info("server")["process_id"]) != redis_pid
        client.close()
        assert up.poll() is None, "up must keep running"
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
    assert up.returncode == 0, log.read_text()


def _doctor(settings: Settings, capsys: Any) -> dict[str, dict[str, Any]]:
    import argparse

    from headshots.cli.core import cmd_doctor

    cmd_doctor(argparse.Namespace(json=True), settings)
    return {c["check"]: c for c in json.loads(capsys.readouterr().out)}


def test_doctor_says_whether_faceid_previews_and_quick_drafts_can_run(
    settings_factory: Callable[..., Settings],
    tiny_model_path: Path,
    tmp_path: Path,
    capsys: Any,
) -> None:
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    from headshots.generation.faces import insightface_pack_dir
    from headshots.generation.preview import save_random_faceid_adapter
    from tests.plugins.faces import save_tiny_arcface

    settings = settings_factory(base_model=str(tiny_model_path), model_dir=tmp_path / "models")
    checks = _doctor(settings, capsys)
    assert not checks["faceid"]["ok"] and "not configured" in checks["faceid"]["detail"]
    assert not checks["quick drafts"]["ok"]
    assert "HEADSHOTS_LCM_LORA is not set" in checks["quick drafts"]["detail"]

    unet = UNet2DConditionModel.from_pretrained(tiny_model_path, subfolder="unet")
    adapter = save_random_faceid_adapter(tmp_path / "faceid", unet)
    lcm = tmp_path / "pytorch_lora_weights.safetensors"
    key = "lora_unet_down_blocks_0_attentions_0_proj_in"
    save_file(
        {
            f"{key}.lora_down.weight": torch.zeros(4, 32),
            f"{key}.lora_up.weight": torch.zeros(32, 4),
            f"{key}.alpha": torch.tensor(4.0),
        },
        str(lcm),
    )
    pack = insightface_pack_dir(tmp_path / "models", "buffalo_l")
    pack.mkdir(parents=True)
    save_tiny_arcface(pack / "w600k_r50.onnx")
    usable = settings.model_copy(
        update={"ip_adapter_faceid": str(adapter), "lcm_lora": str(lcm), "face_backend": "auto"}
    )
    checks = _doctor(usable, capsys)
    faceid, quick = checks["faceid"], checks["quick drafts"]
    assert faceid["ok"], faceid
    assert "4 cross-attention layers, LoRA inside" in faceid["detail"]
    assert "companion ip-adapter-faceid_sd15_lora.safetensors" in faceid["detail"]
    assert quick["ok"] and "1 UNet modules, kohya layout" in quick["detail"], quick

    adapter.write_bytes(b"not a checkpoint")
    lcm.write_bytes(b"garbage")
    broken = usable.model_copy(update={"face_backend": "dlib"})
    checks = _doctor(broken, capsys)
    faceid, quick = checks["faceid"], checks["quick drafts"]
    assert not faceid["ok"] and "cannot read" in faceid["detail"]
    assert not quick["ok"] and "cannot read the LCM-LoRA" in quick["detail"]
    fresh = save_random_faceid_adapter(tmp_path / "faceid2", unet, companion=False)
    checks = _doctor(broken.model_copy(update={"ip_adapter_faceid": str(fresh)}), capsys)
    assert not checks["faceid"]["ok"]
    assert "not available with the dlib backend" in checks["faceid"]["detail"]
    offline = settings.model_copy(
        update={
            "hf_offline": True,
            "lcm_lora": "latent-consistency/lcm-lora-sdv1-5",
            "ip_adapter_faceid": "h94/IP-Adapter-FaceID/ip-adapter-faceid_sd15.bin",
            "face_backend": "auto",
        }
    )
    checks = _doctor(offline, capsys)
    assert not checks["quick drafts"]["ok"] and "not cached" in checks["quick drafts"]["detail"]
    assert (
        not checks["faceid"]["ok"]
        and "h94/IP-Adapter-FaceID is not cached" in (checks["faceid"]["detail"])
    )


def test_doctor_says_whether_a_reference_photo_is_offered(
    settings_factory: Callable[..., Settings],
    tiny_model_path: Path,
    tiny_klein_model_path: Path,
    tiny_controlnet_path: Path,
    tmp_path: Path,
    capsys: Any,
) -> None:
    settings = settings_factory(base_model=str(tiny_model_path), model_dir=tmp_path / "models")
    check = _doctor(settings, capsys)["reference photo"]
    assert not check["ok"] and "HEADSHOTS_CONTROLNET_SD15_POSE" in check["detail"]
    configured = settings.model_copy(update={"controlnet_sd15_pose": str(tiny_controlnet_path)})
    check = _doctor(configured, capsys)["reference photo"]
    assert check["ok"] and f"sd15 pose: {tiny_controlnet_path}" in check["detail"], check
    offline = configured.model_copy(
        update={"hf_offline": True, "controlnet_sd15_canny": "lllyasviel/control_v11p_sd15_canny"}
    )
    check = _doctor(offline, capsys)["reference photo"]
    assert not check["ok"] and "control_v11p_sd15_canny is not cached" in check["detail"]
    klein = configured.model_copy(update={"base_model": str(tiny_klein_model_path)})
    check = _doctor(klein, capsys)["reference photo"]
    assert not check["ok"] and "FLUX.2 [klein]" in check["detail"]


def test_doctor_says_where_a_reference_photos_body_comes_from(
    settings_factory: Callable[..., Settings], tmp_path: Path, capsys: Any
) -> None:
    from tests.test_generation_body_pose import save_tiny_pose_model

    settings = settings_factory(model_dir=tmp_path / "models")
    check = _doctor(settings, capsys)["body pose"]
    assert check["ok"] and "HEADSHOTS_POSE_MODEL" in check["detail"]
    model = save_tiny_pose_model(tmp_path / "pose.onnx", {"nose": (1, 1)})
    check = _doctor(settings.model_copy(update={"pose_model": model}), capsys)["body pose"]
    assert check["ok"] and "48x64 input" in check["detail"], check
    missing = settings.model_copy(update={"pose_model": tmp_path / "absent.onnx"})
    check = _doctor(missing, capsys)["body pose"]
    assert not check["ok"] and "missing" in check["detail"]
