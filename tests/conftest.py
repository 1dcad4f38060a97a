"""Shared fixtures: small image sets written on the fly, and the workshop dataset when present."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augment.demo import write_sample_set
from tests.support.s3server import s3server, slow_s3  # noqa: F401  (session fixtures: real S3 on loopback, and behind a proxy)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
WORKSHOP_FOLDERS = SHARED_DATA / "electronic-components-png"
WORKSHOP_FLAT = SHARED_DATA / "electronic-components-png-original"


@pytest.fixture
def sample_dir(tmp_path: Path) -> Path:
    """The built-in demo set: 3 classes x 8 RGB PNGs, 96x96."""
    folder = tmp_path / "in"
    write_sample_set(folder)
    return folder


@pytest.fixture
def workshop_folders() -> Path:
    if not WORKSHOP_FOLDERS.is_dir():
        pytest.skip(f"workshop dataset not found at {WORKSHOP_FOLDERS}")
    return WORKSHOP_FOLDERS


@pytest.fixture
def workshop_flat() -> Path:
    if not WORKSHOP_FLAT.is_dir():
        pytest.skip(f"workshop dataset not found at {WORKSHOP_FLAT}")
    return WORKSHOP_FLAT


def gradient(mode: str = "RGB", size: tuple[int, int] = (32, 24), seed: int = 0) -> Image.Image:
    """A deterministic, non-symmetric test image in ``mode``."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = (np.add.outer(np.arange(h) * 7, np.arange(w) * 3) % 256).astype(np.uint8)
    if mode in ("L", "1", "P"):
        img = Image.fromarray(base, "L")
        return img.convert(mode) if mode != "L" else img
    if mode == "I;16":
        return Image.fromarray(base.astype(np.uint16) * 257 + 3)
    rgb = np.stack([base, base[::-1], rng.integers(0, 256, (h, w), dtype=np.uint8)], axis=-1)
    img = Image.fromarray(rgb, "RGB")
    if mode == "LA":
        return Image.merge("LA", (img.convert("L"), Image.fromarray(base[::-1].copy(), "L")))
    if mode == "RGBA":
        return Image.merge("RGBA", (*img.split(), Image.fromarray(base[:, ::-1].copy(), "L")))
    return img.convert(mode)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without PyTorch, a test marked ``torch`` is skipped, saying how to run it (``make test`` deselects them)."""
    if importlib.util.find_spec("torch") is not None:
        return
    skip = pytest.mark.skip(reason="needs PyTorch: `make test-torch` installs it and runs the tests marked torch")
    for item in items:
        if "torch" in item.keywords:
            item.add_marker(skip)
