"""Photometric ops: lighting, focus and colour. They change colour planes only, never geometry or alpha."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from augment.render.frame import Frame
from augment.render.ops import pixels
from augment.render.ops.base import Op, Range, uniform


class _Photometric(Op):
    """Changes colour planes only: boxes and alpha stay as they are."""


class Brightness(_Photometric):
    name = "brightness"
    summary = "multiply intensities (1 = unchanged)"
    schema = {"factor": Range((0.75, 1.25), (0.0, 4.0), "brightness factor range")}

    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        return {"factor": uniform(rng, settings["factor"])}

    def apply(self, frame: Frame, params: dict[str, Any]) -> Frame:
        f = params["factor"]
        return pixels.point_frame(frame, lambda x: x * f)


class Exposure(_Photometric):
    name = "exposure"
    summary = "change exposure by EV stops in linear light, as a camera's shutter or gain does (0 = unchanged)"
    schema = {"ev": Range((-1.0, 1.0), (-8.0, 8.0), "exposure change range, stops (+1 doubles the light)")}

    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        return {"ev": uniform(rng, settings["ev"])}

    def apply(self, frame: Frame, params: dict[str, Any]) -> Frame:
        gain = 2.0 ** params["ev"]
        return pixels.point_frame(frame, lambda x: _to_srgb(np.clip(_to_linear(x) * gain, 0, 1)))


class Contrast(_Photometric):
    name = "contrast"
    summary = "scale distances from the image's mean grey (1 = unchanged)"
    schema = {"factor": Range((0.75, 1.25), (0.0, 4.0), "contrast factor range")}

    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        return {"factor": uniform(rng, settings["factor"])}

    def apply(self, frame: Frame, params: dict[str, Any]) -> Frame:
        f = params["factor"]
        color = frame.color
        mean = float(np.mean(cv2.mean(color)[: _channels(color)])) / frame.max_value
        return frame.replace(color=pixels.point(color, lambda x: (x - mean) * f + mean))


class Gamma(_Photometric):
    name = "gamma"
    summary = "power curve on normalised intensities (<1 brightens shadows, >1 darkens)"
    schema = {"gamma": Range((0.8, 1.25), (0.05, 10.0), "gamma range")}

    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        return {"gamma": uniform(rng, settings["gamma"])}

    def apply(self, frame: Frame, params: dict[str, Any]) -> Frame:
        g = params["gamma"]
        return pixels.point_frame(frame, lambda x: np.power(np.clip(x, 0, 1), g))


class Blur(_Photometric):
    name = "blur"
    summary = "gaussian blur (defocus); sigma in pixels"
    schema = {"sigma": Range((0.3, 1.0), (0.0, 50.0), "standard deviation range, pixels")}

    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        return {"sigma": uniform(rng, settings["sigma"])}

    def apply(self, frame: Frame, params: dict[str, Any]) -> Frame:
        return frame.replace(color=pixels.gaussian_blur(frame.color, params["sigma"]))


class Sharpen(_Photometric):
    name = "sharpen"
    summary = "unsharp mask (radius 2 px); amount 1 = +100% edge contrast"
    schema = {"amount": Range((0.3, 1.0), (0.0, 5.0), "sharpening amount range")}

    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        return {"amount": uniform(rng, settings["amount"])}

    def apply(self, frame: Frame, params: dict[str, Any]) -> Frame:
        amount = params["amount"]
        color = frame.color
        blurred = pixels.gaussian_blur(color, 2.0)
        # color + amount * (color - blurred), rounded and saturated in one pass.
        return frame.replace(color=cv2.addWeighted(color, 1.0 + amount, blurred, -amount, 0.0))


class HueSaturation(_Photometric):
    name = "hue_saturation"
    summary = "rotate hue (fraction of the colour wheel) and scale saturation; RGB only, greys stay grey"
    schema = {
        "hue": Range((-0.03, 0.03), (-0.5, 0.5), "hue shift range, fraction of a full turn"),
        "saturation": Range((0.8, 1.2), (0.0, 4.0), "saturation factor range"),
    }

    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        return {
            "hue": uniform(rng, settings["hue"]),
            "saturation": uniform(rng, settings["saturation"]),
        }

    def apply(self, frame: Frame, params: dict[str, Any]) -> Frame:
        if frame.mode != "RGB":
            return frame
        matrix = _saturate(params["saturation"]) @ _hue_rotate(params["hue"] * 2 * np.pi)
        # One 3x3 colour matrix per pixel (rounded, saturated): ten times cheaper than an HSV round trip.
        return frame.replace(color=cv2.transform(frame.color, matrix))


# The sRGB transfer curve (IEC 61966-2-1), for values in [0, 1].
def _to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, np.power((x + 0.055) / 1.055, 2.4))


def _to_srgb(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def _channels(values: np.ndarray) -> int:
    return 1 if values.ndim == 2 else values.shape[2]


# Hue rotation and saturation as linear maps on RGB that keep greys grey (rows sum to 1): the matrices of
# the W3C Filter Effects spec (CSS `hue-rotate()` and `saturate()`), Rec. 709 luma weights.
_LUMA = np.array([0.213, 0.715, 0.072])


def _hue_rotate(radians: float) -> np.ndarray:
    c, s = np.cos(radians), np.sin(radians)
    return (
        np.tile(_LUMA, (3, 1))
        + c * np.array([[0.787, -0.715, -0.072], [-0.213, 0.285, -0.072], [-0.213, -0.715, 0.928]])
        + s * np.array([[-0.213, -0.715, 0.928], [0.143, 0.140, -0.283], [-0.787, 0.715, 0.072]])
    )


def _saturate(factor: float) -> np.ndarray:
    return np.tile(_LUMA, (3, 1)) * (1 - factor) + np.eye(3) * factor


OPS: tuple[Op, ...] = (
    Brightness(),
    Exposure(),
    Contrast(),
    Gamma(),
    Blur(),
    Sharpen(),
    HueSaturation(),
)
