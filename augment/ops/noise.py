"""Sensor-noise ops. Kernels draw their noise from a seed sampled into the params."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from augment.frame import Frame
from augment.ops import pixels
from augment.ops.base import Number, Op, Range, noise_seed, uniform


def _values(frame: Frame) -> np.ndarray:
    return np.asarray(frame.color).astype(np.float32)


class GaussianNoise(Op):
    name = "gaussian_noise"
    summary = "add zero-mean gaussian noise; sigma as a fraction of full scale (0.1 = the workshop's)"
    schema = {"sigma": Range((0.01, 0.05), (0.0, 1.0), "noise standard deviation range")}

    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        return {"sigma": uniform(rng, settings["sigma"]), "seed": noise_seed(rng)}

    def apply(self, frame: Frame, params: dict[str, Any]) -> Frame:
        values = _values(frame)
        noise = np.random.default_rng(params["seed"]).standard_normal(values.shape, dtype=np.float32)
        noisy = values + noise * np.float32(params["sigma"] * frame.max_value)
        return frame.replace(color=pixels.to_image(noisy, frame.color.mode))


class PoissonNoise(Op):
    name = "poisson_noise"
    summary = "shot noise: intensities become Poisson counts at `peak` counts for full scale (0 = auto, as skimage)"
    schema = {
        "peak": Range(
            (0.0, 0.0),
            (0.0, 1e6),
            "counts at full scale; 0 = from the number of distinct values",
        )
    }

    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        return {"peak": uniform(rng, settings["peak"]), "seed": noise_seed(rng)}

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
    summary = "set a fraction of samples to full scale (salt) or zero (pepper)"
    schema = {
        "amount": Range((0.005, 0.02), (0.0, 1.0), "fraction of samples replaced"),
        "salt_ratio": Number(0.5, (0.0, 1.0), "share of replaced samples that become salt"),
    }

    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        return {
            "amount": uniform(rng, settings["amount"]),
            "salt_ratio": settings["salt_ratio"],
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


OPS: tuple[Op, ...] = (GaussianNoise(), PoissonNoise(), SaltPepper())
