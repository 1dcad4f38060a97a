"""The built-in sample set: a few classes of simple drawn shapes, so the block runs with no data at hand.

python -m augment.demo <folder>     # writes <folder>/<class>/<n>.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")
PER_CLASS = 8
SIZE = 96


def draw(shape: str, rng: np.random.Generator, size: int = SIZE) -> Image.Image:
    """One 96x96 RGB picture of ``shape`` on a textured background, position/colour from ``rng``."""
    base = rng.integers(90, 200, 3)
    noise = rng.normal(0, 6, (size, size, 3))
    gradient = np.linspace(-20, 20, size)[None, :, None]
    background = np.clip(base + noise + gradient, 0, 255).astype(np.uint8)
    image = Image.fromarray(background, "RGB")
    pen = ImageDraw.Draw(image)
    r = int(rng.integers(size // 6, size // 3))
    cx, cy = (int(v) for v in rng.integers(r + 4, size - r - 4, 2))
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        pen.ellipse(box, fill=colour, outline=(20, 20, 20), width=2)
    elif shape == "square":
        pen.rectangle(box, fill=colour, outline=(20, 20, 20), width=2)
    else:
        pen.polygon(
            [(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)],
            fill=colour,
            outline=(20, 20, 20),
        )
    return image


def write_sample_set(folder: Path, per_class: int = PER_CLASS, seed: int = 7) -> int:
    """Write the sample set under ``folder``; return the number of images."""
    rng = np.random.default_rng(seed)
    count = 0
    for shape in CLASSES:
        (folder / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(shape, rng).save(folder / shape / f"{i:02d}.png")
            count += 1
    return count


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "demo/input")
    n = write_sample_set(target)
    print(f"wrote {n} sample images in {len(CLASSES)} classes to {target}")
