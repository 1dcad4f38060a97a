"""A bench-side PROTOTYPE for issue #27, not a block feature: an AugMix-like form that keeps the geometry
single and the light change whole.

The block makes the copies' geometry (``bench/recipes/duo-geo.json``: the dihedral pose and one geometric op
per copy); this module then replaces each copy's pixels by a convex blend (Dirichlet(1) weights, as AugMix)
of ``WIDTH`` photometric-only chains of that copy, each chain one or two ops of ``LIGHT``. Unlike AugMix the
blend never includes the unchanged copy, so a light change is not diluted towards the original, and no
geometric op is blended, so nothing is ghosted and boxes would stay valid. The ops are the block's own
kernels (the registry's samplers and kernels), run here in-process; the originals (``*.orig.*``) are kept.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from augment.render.frame import Frame
from augment.render.ops import get_op

WIDTH = 3  # chains per blend (AugMix's default)
LIGHT: list[tuple[str, dict]] = [
    ("exposure", {"ev": [-2.3, -0.5]}),
    ("exposure", {"ev": [0.5, 1.7]}),
    ("contrast", {"factor": [0.35, 1.3]}),
    ("gamma", {"gamma": [0.45, 2.2]}),
    ("blur", {"sigma": [0.3, 2.0]}),
    ("gaussian_noise", {"sigma": [0.01, 0.1]}),
    ("poisson_noise", {"peak": 0}),
]


def _chain(frame: Frame, rng: np.random.Generator) -> np.ndarray:
    for index in rng.choice(len(LIGHT), size=int(rng.integers(1, 3)), replace=False):
        name, settings = LIGHT[index]
        op = get_op(name)
        frame = op.apply(frame, op.sample(op.validate(name, settings), rng, frame.size))
    return frame.color.astype(np.float32)


def blend(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One copy's pixels as a Dirichlet-weighted blend of ``WIDTH`` photometric chains of it."""
    weights = rng.dirichlet(np.ones(WIDTH))
    mixed = sum(w * _chain(Frame(rgb), rng) for w in weights)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def apply_to_folder(out: Path, seed: int) -> None:
    """Blend every copy the block wrote under ``out/<class>/`` in place (seeded per file name)."""
    for path in sorted(out.rglob("*.png")):
        if ".orig." in path.name:
            continue
        digest = hashlib.sha256(f"{seed}/{path.relative_to(out)}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        Image.fromarray(blend(rgb, rng)).save(path)
