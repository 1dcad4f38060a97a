"""Photometric ops: lighting, focus and colour. They change colour planes only, never geometry or alpha."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import ImageFilter

from augment.frame import Frame
from augment.ops import pixels
from augment.ops.base import Op, Range, uniform


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
        return frame.replace(color=pixels.point(frame.color, lambda x: x * f))


class Contrast(_Photometric):
    name = "contrast"
    summary = "scale distances from the image's mean grey (1 = unchanged)"
    schema = {"factor": Range((0.75, 1.25), (0.0, 4.0), "contrast factor range")}

    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        return {"factor": uniform(rng, settings["factor"])}

    def apply(self, frame: Frame, params: dict[str, Any]) -> Frame:
        f = params["factor"]
        mean = float(np.asarray(frame.color, dtype=np.float32).mean()) / frame.max_value
        return frame.replace(color=pixels.point(frame.color, lambda x: (x - mean) * f + mean))


class Gamma(_Photometric):
    name = "gamma"
    summary = "power curve on normalised intensities (<1 brightens shadows, >1 darkens)"
    schema = {"gamma": Range((0.8, 1.25), (0.05, 10.0), "gamma range")}

    def sample(self, settings: dict[str, Any], rng: np.random.Generator, size: tuple[int, int]) -> dict[str, Any]:
        return {"gamma": uniform(rng, settings["gamma"])}

    def apply(self, frame: Frame, params: dict[str, Any]) -> Frame:
        g = params["gamma"]
        return frame.replace(color=pixels.point(frame.color, lambda x: np.power(np.clip(x, 0, 1), g)))


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
        if color.mode != "I;16":
            return frame.replace(color=color.filter(ImageFilter.UnsharpMask(2, round(amount * 100), 0)))
        values = np.asarray(color).astype(np.float32)
        blurred = pixels.blur_array(values, 2.0)
        return frame.replace(color=pixels.to_image(values + amount * (values - blurred), "I;16"))


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
        if frame.color.mode != "RGB":
            return frame
        matrix = _saturate(params["saturation"]) @ _hue_rotate(params["hue"] * 2 * np.pi)
        # One 3x3 colour matrix in Pillow's C convert (rounded, clipped): ten times cheaper than an HSV round trip.
        out = frame.color.convert("RGB", tuple(np.hstack([matrix, np.zeros((3, 1))]).ravel().tolist()))
        return frame.replace(color=out)


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
    Contrast(),
    Gamma(),
    Blur(),
    Sharpen(),
    HueSaturation(),
)
