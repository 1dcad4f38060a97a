"""Sensor-noise ops. Kernels draw their noise from a seed sampled into the params."""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from augment.render.frame import Frame
from augment.render.ops import pixels
from augment.render.ops.base import Number, Op, Range, noise_seed, uniform


def gaussian_deviates(shape: tuple[int, ...], sigma: float, seed: int, dtype: type[np.integer]) -> np.ndarray:
    """Normal deviates (mean 0, standard deviation ``sigma``), rounded to integers of ``dtype``: one seeded
    uniform byte per sample (OpenCV's generator) through a table of the 256 normal quantiles, scaled so the
    table's own standard deviation is ``sigma`` (tails end at 2.9 sigma). 8x cheaper than drawing float
    deviates; same seed, same deviates (the generator is the calling thread's, reseeded here)."""
    cv2.setRNGSeed(seed % 2**31)
    uniform = np.empty(shape, np.uint8)
    cv2.randu(uniform.reshape(shape[0], -1), 0, 256)
    table = np.rint(_QUANTILES * sigma).astype(dtype)
    return cv2.LUT(uniform, table)


def _normal_quantiles(n: int) -> np.ndarray:
    """The ``n`` mid-quantiles of the standard normal, rescaled to unit standard deviation."""
    p = (np.arange(n) + 0.5) / n
    z = np.array([math.sqrt(2) * _erfinv(2 * q - 1) for q in p])
    return z / z.std()


def _erfinv(y: float) -> float:
    """Inverse error function by Newton's method on math.erf (256 calls, once, at import)."""
    x = 0.0
    for _ in range(60):
        x -= (math.erf(x) - y) / (2 / math.sqrt(math.pi) * math.exp(-x * x))
    return x


_QUANTILES = _normal_quantiles(256)


class GaussianNoise(Op):
    name = "gaussian_noise"
    summary = "add zero-mean gaussian noise; sigma as a fraction of full scale (0.1 = the workshop's)"
    schema = {"sigma": Range((0.01, 0.05), (0.0, 1.0), "noise standard deviation range")}

    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        return {"sigma": uniform(rng, settings["sigma"]), "seed": noise_seed(rng)}

    def apply(self, frame: Frame, params: dict[str, Any]) -> Frame:
        color = frame.color
        wide = np.int32 if color.dtype == np.uint16 else np.int16
        noise = gaussian_deviates(color.shape, params["sigma"] * frame.max_value, params["seed"], wide)
        return frame.replace(color=cv2.add(color, noise, dtype=cv2.CV_16U if wide == np.int32 else cv2.CV_8U))


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
        peak, color = params["peak"], frame.color
        if peak <= 0:
            distinct = _distinct_values(color)
            peak = 2.0 ** math.ceil(math.log2(max(distinct, 2)))
        flat = color.ravel()
        out = np.empty_like(flat)
        rng = np.random.default_rng(params["seed"])
        for start in range(0, flat.size, _CHUNK):  # in chunks: float64 rates and int64 counts are 16 B a sample
            rates = flat[start : start + _CHUNK] * (peak / frame.max_value)
            out[start : start + _CHUNK] = pixels.to_image(rng.poisson(rates) * (frame.max_value / peak), out.dtype)
        return frame.replace(color=out.reshape(color.shape))


_CHUNK = 1 << 18


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
        # One uniform draw per sample (float32): below amount * salt_ratio is salt, up to amount pepper.
        draw = np.random.default_rng(params["seed"]).random(values.shape, dtype=np.float32)
        salt = params["amount"] * params["salt_ratio"]
        values[draw < np.float32(params["amount"])] = 0
        values[draw < np.float32(salt)] = frame.max_value
        return frame.replace(color=values)


OPS: tuple[Op, ...] = (GaussianNoise(), PoissonNoise(), SaltPepper())
