"""Fetch every configured model ahead of time, so a worker host is ready before it takes jobs.

``headshots models fetch`` runs this on a host with network: the base model, the output check,
the FaceID adapter, the LCM-LoRA and the ControlNets when configured, and the insightface pack
only when the operator chose that backend (its packs are licensed for non-commercial research;
dlib's models ship in a pip package). Everything lands where the worker looks
(``settings.models_path``), so the same folder then serves ``HEADSHOTS_HF_OFFLINE=1`` workers.

Each model is fetched with the loader the worker itself uses, so "fetched" means "the worker
will find it". One failure does not stop the others: the operator sees every problem at once.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from headshots.errors import HeadshotsError, ModelMissing

if TYPE_CHECKING:
    from headshots.model_family import ModelFamily
    from headshots.queue.contracts import ControlHint
    from headshots.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fetched:
    """One configured model and where it now is."""

    what: str
    name: str
    #: ``ready``: on disk where the worker looks; ``skipped``: not configured or not ours to
    #: fetch (``detail`` says why); ``failed``: configured but not fetched (``detail`` says why).
    outcome: str
    detail: str

    @property
    def ok(self) -> bool:
        return self.outcome != "failed"


def hub_file(settings: Settings, repo: str, filename: str) -> Path:
    """One file of a Hugging Face repo, from ``settings.models_path/hub`` or fetched into it."""
    from huggingface_hub import hf_hub_download

    return Path(
        hf_hub_download(
            repo,
            filename,
            cache_dir=settings.models_path / "hub",
            local_files_only=settings.hf_offline,
        )
    )


def lcm_lora_file(settings: Settings) -> Path:
    """The configured LCM-LoRA weights: a local file or folder, or fetched from the hub."""
    from headshots.generation.train import LORA_WEIGHT_NAME

    name = settings.lcm_lora
    if not name:
        raise ModelMissing("the lcm scheduler needs an LCM-LoRA: set HEADSHOTS_LCM_LORA")
    path = Path(name).expanduser()
    if path.exists():
        return path
    try:
        return hub_file(settings, name, LORA_WEIGHT_NAME)
    except Exception as exc:  # huggingface_hub raises a zoo of network/offline errors
        raise ModelMissing(
            f"cannot fetch LCM-LoRA {name!r}: {type(exc).__name__}: {exc}; check "
            "HEADSHOTS_LCM_LORA, HEADSHOTS_MODEL_DIR and HEADSHOTS_HF_OFFLINE"
        ) from exc


def fetch_all(settings: Settings) -> list[Fetched]:
    """Fetch what ``settings`` configures, ignoring ``HEADSHOTS_HF_OFFLINE`` (that is the point)."""
    from headshots.generation.models import resolve_model

    online = settings.model_copy(update={"hf_offline": False})
    base_paths: list[Path] = []

    def base() -> str:
        source = resolve_model(online)
        base_paths.append(source.path)
        return f"{source.path} ({source.family})"

    results = [_attempt("base model", online.base_model, base)]
    results.append(_checker(online, base_paths[0] if base_paths else None))
    results.append(_faces(online))
    if online.ip_adapter_faceid:
        results.append(
            _attempt("FaceID adapter", online.ip_adapter_faceid, lambda: _faceid(online))
        )
    else:
        results.append(Fetched("FaceID adapter", "-", "skipped", "not configured"))
    if online.lcm_lora:
        results.append(_attempt("LCM-LoRA", online.lcm_lora, lambda: str(lcm_lora_file(online))))
    else:
        results.append(Fetched("LCM-LoRA", "-", "skipped", "not configured"))
    results.extend(_controlnets(online))
    return results


def _controlnets(settings: Settings) -> list[Fetched]:
    """Every configured ControlNet (the reference photo), whatever the base's family."""
    from headshots.generation.controlnet import resolve_controlnet
    from headshots.model_family import CONTROL_HINTS, configured_controlnet

    def fetcher(family: ModelFamily, hint: ControlHint) -> Callable[[], str]:
        return lambda: str(resolve_controlnet(settings, family, hint))

    families: tuple[ModelFamily, ...] = ("sd15", "sdxl")
    return [
        _attempt(f"{family} {hint} ControlNet", name, fetcher(family, hint))
        for family in families
        for hint in CONTROL_HINTS
        if (name := configured_controlnet(settings, family, hint)) is not None
    ]


def _attempt(what: str, name: str, fetch: Callable[[], str]) -> Fetched:
    try:
        return Fetched(what, name, "ready", fetch())
    except HeadshotsError as exc:
        # huggingface_hub's messages span lines; one line per model reads better.
        reason = " ".join(str(exc).split())
        logger.warning("could not fetch the %s %s: %s", what, name, reason)
        return Fetched(what, name, "failed", reason)


def _checker(settings: Settings, base_path: Path | None) -> Fetched:
    from headshots.generation.safety import checker_setting, resolve_checker

    name = checker_setting(settings, base_path)
    if name is None:
        return Fetched(
            "output check",
            "none",
            "skipped",
            "HEADSHOTS_SAFETY_CHECKER=none: images are delivered WITHOUT an NSFW check",
        )

    def fetch() -> str:
        path, subfolder = resolve_checker(settings, name)
        return str(path / subfolder if subfolder else path)

    return _attempt("output check", name, fetch)


def _faces(settings: Settings) -> Fetched:
    from headshots.generation.faces.insightface_backend import (
        insightface_pack_dir,
        pack_is_present,
    )

    pack = settings.insightface_pack
    pack_dir = insightface_pack_dir(settings.models_path, pack)
    if settings.face_backend == "dlib" or (
        settings.face_backend == "auto" and not pack_is_present(pack_dir)
    ):
        if _dlib_present():
            return Fetched(
                "face models", "dlib", "ready", "shipped in the face-recognition-models package"
            )
        return Fetched(
            "face models",
            "dlib",
            "failed",
            "install the 'face-recognition-models' package (pip install 'headshots[worker]')",
        )
    return _attempt("face models", f"insightface {pack}", lambda: _insightface(settings, pack_dir))


def _dlib_present() -> bool:
    from headshots.generation.faces.dlib_backend import dlib_model_dir

    try:
        return dlib_model_dir().is_dir()
    except ModelMissing:
        return False


def _insightface(settings: Settings, pack_dir: Path) -> str:
    """The pack, from insightface's model zoo into the folder the backend reads.

    Only reached when the operator chose insightface (HEADSHOTS_FACE_BACKEND=insightface, or a
    pack they put there themselves): its packs are for non-commercial research only.
    """
    from headshots.generation.faces.insightface_backend import pack_is_present

    if pack_is_present(pack_dir):
        return str(pack_dir)
    try:
        from insightface.utils.storage import download
    except ImportError as exc:
        raise ModelMissing(
            "fetching an insightface pack needs the insightface package: "
            "pip install 'headshots[worker]'"
        ) from exc
    try:
        download("models", pack_dir.name, force=True, root=str(pack_dir.parent.parent))
    except Exception as exc:  # urllib and zipfile errors, whatever the network does
        raise ModelMissing(
            f"cannot fetch the insightface pack {pack_dir.name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    # Some packs zip their files inside a folder of the pack's name: lift them up.
    for nested in list(pack_dir.glob("*/*.onnx")):
        shutil.move(str(nested), pack_dir / nested.name)
    if not pack_is_present(pack_dir):
        raise ModelMissing(f"the insightface pack {pack_dir.name!r} holds no .onnx files")
    return str(pack_dir)


def _faceid(settings: Settings) -> str:
    from headshots.generation.preview import adapter_location

    location, _subfolder, weight = adapter_location(settings.ip_adapter_faceid or "")
    if Path(location).is_dir():
        path = Path(location) / weight
        if not path.is_file():
            raise ModelMissing(f"IP-Adapter FaceID file {path} does not exist")
        return str(path)
    try:
        return str(hub_file(settings, location, weight))
    except Exception as exc:  # huggingface_hub raises a zoo of network/offline errors
        raise ModelMissing(
            f"cannot fetch IP-Adapter FaceID {location}/{weight}: {type(exc).__name__}: {exc}"
        ) from exc
