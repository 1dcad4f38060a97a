"""Geometric ops: each maps pixel coordinates through an affine matrix (which boxes can follow too)."""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from augment.render.frame import Frame, colour_planes, with_planes
from augment.render.ops import pixels
from augment.render.ops.base import Border, Choice, GeometricOp, Number, NumberList, Range, uniform

FILL = Choice("edge", pixels.FILL_MODES, "border fill: edge (repeat edge pixels), reflect, or constant")
FILL_VALUE = Number(0.0, (0.0, 1.0), "constant fill level, as a fraction of full scale")


class _Flip(GeometricOp):
    """A mirror: an exact transpose of the pixels, so it uncovers and resamples nothing."""

    flip_code: int  # OpenCV's: 1 mirrors left-right, 0 top-bottom

    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        return {}

    def apply(self, frame: Frame, params: dict[str, Any]) -> Frame:
        alpha = cv2.flip(frame.alpha, self.flip_code) if frame.alpha is not None else None
        values, padded = colour_planes(frame)
        return with_planes(cv2.flip(values, self.flip_code), padded, alpha)

    def border(self, params: dict[str, Any]) -> None:
        return None


class HFlip(_Flip):
    name = "hflip"
    summary = "mirror left-right"
    flip_code = 1

    def matrix(self, params: dict[str, Any], size: tuple[int, int]) -> np.ndarray:
        return np.array([[-1.0, 0.0, size[0]], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


class VFlip(_Flip):
    name = "vflip"
    summary = "mirror top-bottom"
    flip_code = 0

    def matrix(self, params: dict[str, Any], size: tuple[int, int]) -> np.ndarray:
        return np.array([[1.0, 0.0, 0.0], [0.0, -1.0, size[1]], [0.0, 0.0, 1.0]])


class _Warp(GeometricOp):
    """A geometric op applied by resampling through its matrix with a border fill."""

    def apply(self, frame: Frame, params: dict[str, Any]) -> Frame:
        return pixels.warp(frame, self.matrix(params, frame.size), *self.border(params))

    def border(self, params: dict[str, Any]) -> Border:
        """(fill, fill_value) for the pixels this op uncovers; ops with the same border can share one warp
        (engine.apply_chain fuses them)."""
        fill = params["fill"]
        return fill, params["fill_value"] if fill == "constant" else 0.0  # the value matters only when constant


class Rotate(_Warp):
    name = "rotate"
    summary = "rotate about the centre, canvas size kept (counter-clockwise degrees)"
    schema = {
        "degrees": Range((-15.0, 15.0), (-360.0, 360.0), "random angle range"),
        "angles": NumberList((-360.0, 360.0), "pick one of these fixed angles instead of the range"),
        "fill": FILL,
        "fill_value": FILL_VALUE,
    }

    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        if settings["angles"]:
            angles = settings["angles"]
            degrees = angles[0] if len(angles) == 1 else angles[int(rng.integers(len(angles)))]
        else:
            degrees = uniform(rng, settings["degrees"])
        return {
            "degrees": degrees,
            "fill": settings["fill"],
            "fill_value": settings["fill_value"],
        }

    def matrix(self, params: dict[str, Any], size: tuple[int, int]) -> np.ndarray:
        return pixels.rotation(params["degrees"], size)


class Zoom(_Warp):
    name = "zoom"
    summary = "zoom in: crop a window 1/scale of the size at a random position, resize it back"
    schema = {"scale": Range((1.0, 1.2), (1.0, 10.0), "zoom factor range (1 = none)")}

    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        scale = uniform(rng, settings["scale"])
        # Window position as a fraction of the free margin, so the params do not depend on image size.
        return {"scale": scale, "x": float(rng.random()), "y": float(rng.random())}

    def border(self, params: dict[str, Any]) -> Border:
        return "edge", 0.0  # a zoom window may reach the border only through sub-pixel resampling

    def magnification(self, settings: dict[str, Any]) -> float:
        return settings["scale"][1]

    def matrix(self, params: dict[str, Any], size: tuple[int, int]) -> np.ndarray:
        s = params["scale"]
        w, h = size
        x0 = params["x"] * (w - w / s)
        y0 = params["y"] * (h - h / s)
        return np.array([[s, 0.0, -x0 * s], [0.0, s, -y0 * s], [0.0, 0.0, 1.0]])


class Translate(_Warp):
    name = "translate"
    summary = "shift by a fraction of the width/height (rounded to whole pixels)"
    schema = {
        "x": Range((-0.1, 0.1), (-1.0, 1.0), "horizontal shift range, fraction of width"),
        "y": Range((-0.1, 0.1), (-1.0, 1.0), "vertical shift range, fraction of height"),
        "fill": FILL,
        "fill_value": FILL_VALUE,
    }

    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        dx = round(uniform(rng, settings["x"]) * size[0])
        dy = round(uniform(rng, settings["y"]) * size[1])
        return {
            "dx": dx,
            "dy": dy,
            "fill": settings["fill"],
            "fill_value": settings["fill_value"],
        }

    def matrix(self, params: dict[str, Any], size: tuple[int, int]) -> np.ndarray:
        return pixels.translation(params["dx"], params["dy"])


class Shear(_Warp):
    name = "shear"
    summary = "shear about the centre (degrees along x and y)"
    schema = {
        "x": Range((-10.0, 10.0), (-60.0, 60.0), "horizontal shear angle range"),
        "y": Range((0.0, 0.0), (-60.0, 60.0), "vertical shear angle range"),
        "fill": FILL,
        "fill_value": FILL_VALUE,
    }

    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        return {
            "x": uniform(rng, settings["x"]),
            "y": uniform(rng, settings["y"]),
            "fill": settings["fill"],
            "fill_value": settings["fill_value"],
        }

    def matrix(self, params: dict[str, Any], size: tuple[int, int]) -> np.ndarray:
        kx, ky = (
            math.tan(math.radians(params["x"])),
            math.tan(math.radians(params["y"])),
        )
        return pixels.about_center(np.array([[1.0, kx], [ky, 1.0]]), size)


class Scale(_Warp):
    name = "scale"
    summary = "scale about the centre, canvas size kept: below 1 the part is seen from farther (border filled)"
    schema = {
        "factor": Range((0.8, 1.0), (0.25, 4.0), "scale factor range (1 = none, 0.5 = half the size)"),
        "fill": FILL,
        "fill_value": FILL_VALUE,
    }

    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        return {
            "factor": uniform(rng, settings["factor"]),
            "fill": settings["fill"],
            "fill_value": settings["fill_value"],
        }

    def magnification(self, settings: dict[str, Any]) -> float:
        return max(1.0, settings["factor"][1])

    def matrix(self, params: dict[str, Any], size: tuple[int, int]) -> np.ndarray:
        s = params["factor"]
        return pixels.about_center(np.array([[s, 0.0], [0.0, s]]), size)


OPS: tuple[GeometricOp, ...] = (HFlip(), VFlip(), Rotate(), Zoom(), Translate(), Shear(), Scale())
