"""Occluding ops: cutout blanks rectangles out, and boxes under them lose visibility (engine.follow_boxes)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from augment.render.frame import Frame
from augment.render.ops.base import Choice, IntRange, Number, Op, Range, integer, noise_seed, uniform

# What paints a cutout rectangle. The recipe key is ``fill`` (kept so recipes and recorded manifests stay
# valid), but it is not a border fill: the warps' ``fill`` (pixels.FILL_MODES) says how uncovered pixels are
# made, this says what covers pixels that are there.
PAINT = Choice("constant", ("constant", "mean", "noise"), "what paints a rectangle: constant, mean, or noise")


class Cutout(Op):
    name = "cutout"
    summary = "random erasing: blank out rectangles (size as a fraction of each side)"
    schema = {
        "count": IntRange((1, 1), (1, 100), "number of rectangles"),
        "size": Range((0.1, 0.25), (0.0, 1.0), "rectangle side range, fraction of the image side"),
        "fill": PAINT,
        "fill_value": Number(0.0, (0.0, 1.0), "constant paint level, fraction of full scale"),
    }

    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        w, h = size
        rects = []
        for _ in range(integer(rng, settings["count"])):
            rw = max(1, round(uniform(rng, settings["size"]) * w))
            rh = max(1, round(uniform(rng, settings["size"]) * h))
            x = int(rng.integers(0, w - rw + 1))
            y = int(rng.integers(0, h - rh + 1))
            rects.append([x, y, rw, rh])
        return {
            "rects": rects,
            "fill": settings["fill"],
            "fill_value": settings["fill_value"],
            "seed": noise_seed(rng),
        }

    def occlusions(self, params: dict[str, Any]) -> list[list[int]]:
        return params["rects"]

    def apply(self, frame: Frame, params: dict[str, Any]) -> Frame:
        values = np.array(frame.color)
        top = frame.max_value
        noise_rng = np.random.default_rng(params["seed"])
        paint = params["fill"]
        if paint == "mean":
            channels = 1 if values.ndim == 2 else values.shape[2]
            mean = np.rint(cv2.mean(values)[:channels]).astype(values.dtype)
            mean = mean[0] if values.ndim == 2 else mean
        for x, y, rw, rh in params["rects"]:
            region = values[y : y + rh, x : x + rw]
            if paint == "mean":
                region[...] = mean
            elif paint == "noise":
                region[...] = noise_rng.integers(0, top + 1, region.shape, dtype=values.dtype)
            else:
                region[...] = round(params["fill_value"] * top)
        return frame.replace(color=values)


OPS: tuple[Op, ...] = (Cutout(),)
