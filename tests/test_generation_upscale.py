"""Super resolution through spandrel, on weights the test creates (Real-ESRGAN Compact layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from headshots.errors import ConfigurationError
from headshots.generation.upscale import load_super_resolution, upscale_with_detail


def _spandrel_or_skip() -> None:
    try:
        import spandrel  # noqa: F401
    except (ImportError, RuntimeError) as exc:
        # spandrel imports torchvision at import time; PyPI's torchvision does not load beside
        # a CPU-only torch build, so CPU test machines skip and GPU hosts run this.
        pytest.skip(f"spandrel cannot be imported here: {exc}")


def compact_state_dict(scale: int, features: int = 8, convs: int = 2, seed: int = 0) -> dict:
    """Random weights in Real-ESRGAN's SRVGGNetCompact layout (body.N conv / PReLU pairs)."""
    import torch

    generator = torch.Generator().manual_seed(seed)

    def conv(out_ch: int, in_ch: int) -> tuple[torch.Tensor, torch.Tensor]:
        weight = torch.randn(out_ch, in_ch, 3, 3, generator=generator) * 0.1
        return weight, torch.zeros(out_ch)

    state: dict[str, torch.Tensor] = {}
    index = 0
    for in_ch in [3, *([features] * convs)]:
        state[f"body.{index}.weight"], state[f"body.{index}.bias"] = conv(features, in_ch)
        state[f"body.{index + 1}.weight"] = torch.full((features,), 0.25)  # PReLU
        index += 2
    state[f"body.{index}.weight"], state[f"body.{index}.bias"] = conv(3 * scale * scale, features)
    return state


def test_super_resolution_loads_by_architecture_and_enlarges(tmp_path: Path) -> None:
    _spandrel_or_skip()
    from safetensors.torch import save_file

    path = tmp_path / "realesr-compact-x2.safetensors"
    save_file(compact_state_dict(scale=2), str(path))
    model = load_super_resolution(path, device="cpu")
    assert model.scale == 2 and model.architecture == "RealESRGAN Compact"
    rng = np.random.default_rng(0)
    source = Image.fromarray(rng.integers(0, 255, (20, 16, 3), dtype=np.uint8))
    enlarged = model(source)
    assert enlarged.size == (32, 40)
    image, record = upscale_with_detail(
        source, (26, 32), detail=None, tile=64, super_resolution=model
    )
    assert image.size == (26, 32) and record["enlarge"] == "RealESRGAN Compact x2"

    restoration = tmp_path / "restore-x1.safetensors"
    save_file(compact_state_dict(scale=1), str(restoration))
    with pytest.raises(ConfigurationError, match="not a super-resolution"):
        load_super_resolution(restoration)
    junk = tmp_path / "junk.safetensors"
    import torch

    save_file({"nothing.we.know": torch.zeros(2)}, str(junk))
    with pytest.raises(ConfigurationError, match="spandrel"):
        load_super_resolution(junk)
