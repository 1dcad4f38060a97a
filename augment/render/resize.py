"""``--output-size``: every output rendered straight at the model's input size, with EI's resize modes.

The resize is one more affine map (source -> output canvas), so it joins the chain's first warp: one
resample per output. A JPEG far larger than the output is decoded at a reduced DCT scale (Pillow's
``draft``), and whatever is still over twice the pixels the warp needs is area-averaged once per source
(shared by its copies), so the warp never skips source pixels (no aliasing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from augment.render.frame import Frame
from augment.render.ops import GeometricOp, get_op
from augment.render.ops.base import Border
from augment.render.recipe import Node, Step

# EI's image DSP block: "fit shortest axis" (crop the longer side; its default), "squash", "fit longest axis"
# (letterbox, black bars).
RESIZE_MODES = ("fit-short", "squash", "fit-long")
MAX_SIDE = 4096  # a model input; larger is a mistake (and --output-size is for shrinking)


@dataclass(frozen=True)
class OutputSize:
    width: int
    height: int
    mode: str = "fit-short"

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


def parse_output_size(text: str) -> tuple[int, int]:
    """``"WxH"`` -> (W, H); ValueError with the reason otherwise."""
    parts = text.lower().replace(" ", "").split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"expected WIDTHxHEIGHT such as 96x96, got {text!r}")
    w, h = int(parts[0]), int(parts[1])
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise ValueError(f"{w}x{h}: each side must be 1-{MAX_SIDE}")
    return w, h


def _scale(source: tuple[int, int], out: OutputSize) -> tuple[float, float]:
    sx, sy = out.width / source[0], out.height / source[1]
    if out.mode == "squash":
        return sx, sy
    s = max(sx, sy) if out.mode == "fit-short" else min(sx, sy)
    return s, s


def resize_matrix(source: tuple[int, int], out: OutputSize) -> np.ndarray:
    """Forward map from a ``source``-sized frame onto the output canvas, centred (the crop or the bars
    split evenly between the two sides)."""
    sx, sy = _scale(source, out)
    tx, ty = (out.width - source[0] * sx) / 2, (out.height - source[1] * sy) / 2
    return np.array([[sx, 0.0, tx], [0.0, sy, ty], [0.0, 0.0, 1.0]])


def resize_border(out: OutputSize) -> Border | None:
    """How the resize fills what it leaves uncovered: fit-long letterboxes in black; the others cover the
    canvas (None: any fill of the warp it joins will do)."""
    return ("constant", 0.0) if out.mode == "fit-long" else None


def max_zoom(pipelines: list[tuple[Node, ...] | None]) -> float:
    """The largest magnification any of these pipelines can apply (the product along the deepest path,
    bounded from above by the product over every step)."""
    zoom = 1.0
    for nodes in pipelines:
        zoom = max(zoom, _zoom(nodes or ()))
    return zoom


def _zoom(nodes: tuple[Node, ...]) -> float:
    total = 1.0
    for node in nodes:
        if isinstance(node, Step):
            op = get_op(node.op)
            total *= op.magnification(node.settings) if isinstance(op, GeometricOp) else 1.0
        else:
            total *= _zoom(tuple(node.nodes))
    return total


def needed_size(source: tuple[int, int], out: OutputSize, zoom: float) -> tuple[int, int]:
    """The smallest source size that still gives the warp one source pixel per output pixel at ``zoom``."""
    sx, sy = _scale(source, out)
    s = max(sx, sy) * zoom
    return min(source[0], math.ceil(source[0] * s)), min(source[1], math.ceil(source[1] * s))


def shrink(frame: Frame, needed: tuple[int, int]) -> Frame:
    """Area-average a frame down to ``needed`` if it is at least twice that on both sides (else as it is)."""
    w, h = frame.size
    if w < 2 * needed[0] or h < 2 * needed[1]:
        return frame
    alpha = cv2.resize(frame.alpha, needed, interpolation=cv2.INTER_AREA) if frame.alpha is not None else None
    return Frame(cv2.resize(frame.color, needed, interpolation=cv2.INTER_AREA), alpha)
