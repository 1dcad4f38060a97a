"""Sensor-noise ops and cutout. Kernels draw their noise from a seed sampled into the params."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from augment.frame import Frame
from augment.ops import pixels
from augment.ops.base import (
    Choice,
    IntRange,
    Number,
    Op,
    Range,
    integer,
    noise_seed,
    uniform,
)


def _values(frame: Frame) -> np.ndarray:
    return np.asarray(frame.color).astype(np.float32)


class GaussianNoise(Op):
    name = "gaussian_noise"
    kind = "noise"
    summary = "add zero-mean gaussian noise; sigma as a fraction of full scale (0.1 = the workshop's)"
    spec = {"sigma": Range((0.01, 0.05), (0.0, 1.0), "noise standard deviation range")}

    def sample(self, spec: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        return {"sigma": uniform(rng, spec["sigma"]), "seed": noise_seed(rng)}

    def apply(self, frame: Frame, params: dict[str, Any]) -> Frame:
        values = _values(frame)
        noise = np.random.default_rng(params["seed"]).standard_normal(values.shape, dtype=np.float32)
        noisy = values + noise * np.float32(params["sigma"] * frame.max_value)
        return frame.replace(color=pixels.to_image(noisy, frame.color.mode))


class PoissonNoise(Op):
    name = "poisson_noise"
    kind = "noise"
    summary = "shot noise: intensities become Poisson counts at `peak` counts for full scale (0 = auto, as skimage)"
    spec = {
        "peak": Range(
            (0.0, 0.0),
            (0.0, 1e6),
            "counts at full scale; 0 = from the number of distinct values",
        )
    }

    def sample(self, spec: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        return {"peak": uniform(rng, spec["peak"]), "seed": noise_seed(rng)}

    def apply(self, frame: Frame, params: dict[str, Any]) -> Frame:
        values = _values(frame) / frame.max_value
        peak = params["peak"]
        if peak <= 0:
            distinct = _distinct_values(np.asarray(frame.color))
            peak = 2.0 ** math.ceil(math.log2(max(distinct, 2)))
        counts = np.random.default_rng(params["seed"]).poisson(values * peak)
        return frame.replace(color=pixels.to_image(counts / peak * frame.max_value, frame.color.mode))


def _distinct_values(values: np.ndarray) -> int:
    """How many different sample values (a 256-bin count for 8-bit: same answer as np.unique, faster)."""
    if values.dtype == np.uint8:
        return int(np.count_nonzero(np.bincount(values.ravel(), minlength=256)))
    return len(np.unique(values))


class SaltPepper(Op):
    name = "salt_pepper"
    kind = "noise"
    summary = "set a fraction of samples to full scale (salt) or zero (pepper)"
    spec = {
        "amount": Range((0.005, 0.02), (0.0, 1.0), "fraction of samples replaced"),
        "salt_ratio": Number(0.5, (0.0, 1.0), "share of replaced samples that become salt"),
    }

    def sample(self, spec: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        return {
            "amount": uniform(rng, spec["amount"]),
            "salt_ratio": spec["salt_ratio"],
            "seed": noise_seed(rng),
        }

    def apply(self, frame: Frame, params: dict[str, Any]) -> Frame:
        values = np.array(frame.color)
        noise_rng = np.random.default_rng(params["seed"])
        hit = noise_rng.random(values.shape) < params["amount"]
        salt = noise_rng.random(values.shape) < params["salt_ratio"]
        values[hit & salt] = frame.max_value
        values[hit & ~salt] = 0
        return frame.replace(color=pixels.to_image(values, frame.color.mode))


class Cutout(Op):
    name = "cutout"
    kind = "noise"
    summary = "random erasing: blank out rectangles (size as a fraction of each side)"
    spec = {
        "count": IntRange((1, 1), (1, 100), "number of rectangles"),
        "size": Range((0.1, 0.25), (0.0, 1.0), "rectangle side range, fraction of the image side"),
        "fill": Choice("constant", ("constant", "mean", "noise"), "what fills a rectangle"),
        "fill_value": Number(0.0, (0.0, 1.0), "constant fill level, fraction of full scale"),
    }

    def sample(self, spec: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        w, h = size
        rects = []
        for _ in range(integer(rng, spec["count"])):
            rw = max(1, round(uniform(rng, spec["size"]) * w))
            rh = max(1, round(uniform(rng, spec["size"]) * h))
            x = int(rng.integers(0, w - rw + 1))
            y = int(rng.integers(0, h - rh + 1))
            rects.append([x, y, rw, rh])
        return {
            "rects": rects,
            "fill": spec["fill"],
            "fill_value": spec["fill_value"],
            "seed": noise_seed(rng),
        }

    def occlusions(self, params: dict[str, Any]) -> list[list[int]]:
        return params["rects"]

    def apply(self, frame: Frame, params: dict[str, Any]) -> Frame:
        values = np.array(frame.color)
        top = frame.max_value
        noise_rng = np.random.default_rng(params["seed"])
        mean = np.rint(values.reshape(-1, *values.shape[2:]).mean(axis=0)).astype(values.dtype)
        for x, y, rw, rh in params["rects"]:
            region = values[y : y + rh, x : x + rw]
            if params["fill"] == "mean":
                region[...] = mean
            elif params["fill"] == "noise":
                region[...] = noise_rng.integers(0, top + 1, region.shape, dtype=values.dtype)
            else:
                region[...] = round(params["fill_value"] * top)
        return frame.replace(color=pixels.to_image(values, frame.color.mode))


OPS: tuple[Op, ...] = (GaussianNoise(), PoissonNoise(), SaltPepper(), Cutout())
