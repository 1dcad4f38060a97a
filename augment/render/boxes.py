"""Bounding-box geometry: how boxes follow the ops applied to their image.

A box follows a geometric op through that op's forward matrix: its four corners are mapped, the enclosing
axis-aligned box is clipped to the image, and the share of it still inside is tracked; a box whose visible
share falls below the threshold is dropped. Cutout rectangles hide parts of boxes the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in pixels, plus the share of its area still visible (1 = whole)."""

    label: str
    x: float
    y: float
    width: float
    height: float
    visible: float = 1.0
    where: str = field(default="", compare=False, repr=False)  # labels file and entry, for warnings

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "x": round(self.x), "y": round(self.y), "width": round(self.width),
                "height": round(self.height)}  # fmt: skip


def move(boxes: list[Box], forward: np.ndarray, size: tuple[int, int]) -> list[Box]:
    """Boxes after a geometric op: corners mapped, enclosing box clipped to the image, visibility tracked."""
    w, h = size
    out = []
    for b in boxes:
        corners = np.array([[b.x, b.y, 1], [b.x + b.width, b.y, 1], [b.x, b.y + b.height, 1],
                            [b.x + b.width, b.y + b.height, 1]], dtype=float).T  # fmt: skip
        xs, ys = (forward @ corners)[:2]
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max(), ys.max()
        area = (x1 - x0) * (y1 - y0)
        cx0, cy0, cx1, cy1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h))
        if cx1 <= cx0 or cy1 <= cy0 or area <= 0:
            continue
        share = (cx1 - cx0) * (cy1 - cy0) / area
        out.append(Box(b.label, cx0, cy0, cx1 - cx0, cy1 - cy0, b.visible * share))
    return out


def hide(boxes: list[Box], rects: list[list[int]]) -> list[Box]:
    """Boxes after cutout: each loses the share of its area the rectangles cover (coordinates unchanged)."""
    out = []
    for b in boxes:
        x0, y0 = math.floor(b.x), math.floor(b.y)
        x1, y1 = math.ceil(b.x + b.width), math.ceil(b.y + b.height)
        if x1 <= x0 or y1 <= y0:
            continue
        covered = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        for rx, ry, rw, rh in rects:
            covered[max(ry - y0, 0) : max(ry + rh - y0, 0), max(rx - x0, 0) : max(rx + rw - x0, 0)] = True
        out.append(replace(b, visible=b.visible * (1.0 - covered.mean())))
    return out


def clip(boxes: tuple[Box, ...], size: tuple[int, int]) -> tuple[list[Box], list[str]]:
    """Boxes cut to the image; one reaching outside it is clipped, one wholly outside dropped, each with a
    warning naming its labels file and entry."""
    w, h = size
    out, notes = [], []
    for b in boxes:
        x0, y0 = max(b.x, 0.0), max(b.y, 0.0)
        x1, y1 = min(b.x + b.width, float(w)), min(b.y + b.height, float(h))
        where = f"{b.where}: box ({b.x:g}, {b.y:g}, {b.width:g} x {b.height:g})"
        if x1 <= x0 or y1 <= y0:
            notes.append(f"{where} lies outside the {w}x{h} image; dropped")
        elif (x0, y0, x1, y1) != (b.x, b.y, b.x + b.width, b.y + b.height):
            notes.append(f"{where} reaches outside the {w}x{h} image; clipped to it")
            out.append(replace(b, x=x0, y=y0, width=x1 - x0, height=y1 - y0))
        else:
            out.append(b)
    return out, notes
