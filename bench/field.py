"""The field-conditions test set: held-out photos "re-photographed" as a deployed camera would see them.

Each condition is a fixed, named transformation written here with numpy and Pillow's public API, on purpose
independent of the block's ops (``augment/render/ops``), so the block is not graded by its own code. A condition
makes a few fixed instances (e.g. three quarter turns), so each one is measured on several images per
held-out photo. Everything works on RGB uint8 arrays; the model's greyscale conversion comes after.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image

Instance = Callable[[np.ndarray, np.random.Generator], np.ndarray]
_PAD = 48


def _table(rgb: np.ndarray) -> np.ndarray:
    """The photo set in more of the same table: a wider view shows the table's colour (the median of the
    photo's outer ring), not a mirror image or smeared edge pixels, which no camera sees."""
    ring = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    h, w = rgb.shape[:2]
    big = np.empty((h + 2 * _PAD, w + 2 * _PAD, 3), np.uint8)
    big[:] = np.median(ring, axis=0).astype(np.uint8)
    big[_PAD : _PAD + h, _PAD : _PAD + w] = rgb
    return big


def _padded(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(_table(rgb))


def _centre(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    x0, y0 = (img.width - w) // 2, (img.height - h) // 2
    return np.asarray(img.crop((x0, y0, x0 + w, y0 + h)))


def quarter_turn(k: int) -> Instance:
    return lambda rgb, rng: np.rot90(rgb, k).copy()


def turned(degrees: float) -> Instance:
    def run(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        big = _padded(rgb).rotate(degrees, resample=Image.Resampling.BICUBIC)
        return _centre(big, (rgb.shape[1], rgb.shape[0]))

    return run


def tilted(kx: float, ky: float) -> Instance:
    """The camera tilted off the optical axis: a keystone (perspective) of the scene, the far side smaller."""

    def run(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        img = _padded(rgb)
        w, h = img.size
        a, b = kx * w, ky * h
        # The source corners the output's corners sample (Pillow's order: UL, LL, LR, UR).
        quad = (-a, -b, a, h + b, w - a, h - b, w + a, b)
        out = img.transform(img.size, Image.Transform.QUAD, quad, resample=Image.Resampling.BICUBIC)
        return _centre(out, (rgb.shape[1], rgb.shape[0]))

    return run


def distance(scale: float) -> Instance:
    """Seen from farther (scale < 1: more table around a smaller part) or nearer (scale > 1)."""

    def run(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = rgb.shape[:2]
        img = _padded(rgb)
        big = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
        return _centre(big, (w, h))

    return run


def framed(fx: float, fy: float) -> Instance:
    """The part off-centre: the frame moved by a fraction of its size."""

    def run(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = rgb.shape[:2]
        big = _table(rgb)
        x0, y0 = _PAD + round(fx * w), _PAD + round(fy * h)
        return big[y0 : y0 + h, x0 : x0 + w].copy()

    return run


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def exposure(stops: float) -> Instance:
    """Shutter or gain off by ``stops`` EV: scales linear light, so highlights clip as a sensor's do."""

    def run(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return _to_u8(_linear_to_srgb(_srgb_to_linear(rgb / 255.0) * 2.0**stops))

    return run


def flat_light(amount: float, lift: float) -> Instance:
    """Flat, hazy light: contrast squeezed toward a raised mid-grey (diffuse light, glare on a window)."""

    def run(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = rgb / 255.0
        return _to_u8(lift + amount * (x - x.mean()))

    return run


def tone_curve(kind: str) -> Instance:
    """A camera's tone curve: a strong S-curve, or crushed shadows with lifted highlights (a cheap sensor)."""

    def run(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = rgb / 255.0
        s_curve = 0.5 + 0.5 * np.tanh(3.0 * (x - 0.5)) / math.tanh(1.5)
        return _to_u8(s_curve if kind == "s_curve" else x**1.8)

    return run


def colour_cast(gains: tuple[float, float, float]) -> Instance:
    """White balance off: per-channel gains in linear light (tungsten, shade, fluorescent)."""

    def run(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return _to_u8(_linear_to_srgb(_srgb_to_linear(rgb / 255.0) * np.asarray(gains)))

    return run


def _convolve(rgb: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    kh, kw = kernel.shape
    big = np.pad(rgb.astype(np.float64), ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)), mode="edge")
    out = np.zeros(rgb.shape, np.float64)
    for (i, j), weight in np.ndenumerate(kernel):
        if weight:
            out += weight * big[i : i + rgb.shape[0], j : j + rgb.shape[1]]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def defocus(radius: float) -> Instance:
    """Out of focus: a disc (lens aperture) point-spread function."""
    r = math.ceil(radius)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disc = (np.hypot(yy, xx) <= radius + 0.5).astype(np.float64)
    return lambda rgb, rng: _convolve(rgb, disc / disc.sum())


def motion(length: int, degrees: float) -> Instance:
    """The part or the camera moved during the exposure: a line point-spread function."""
    half = length // 2
    kernel = np.zeros((length, length))
    for t in np.linspace(-half, half, 4 * length):
        kernel[round(half - t * math.sin(math.radians(degrees))), round(half + t * math.cos(math.radians(degrees)))] = 1
    return lambda rgb, rng: _convolve(rgb, kernel / kernel.sum())


def sensor_noise(read: float, shot: float) -> Instance:
    """Sensor noise in a dim scene: signal-dependent shot noise plus read noise (grey levels at mid-grey)."""

    def run(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = rgb.astype(np.float64)
        sigma = np.sqrt(read**2 + shot**2 * x / 128.0)
        return np.clip(np.rint(x + rng.normal(0.0, 1.0, x.shape) * sigma), 0, 255).astype(np.uint8)

    return run


def jpeg(quality: int) -> Instance:
    """A camera or link that compresses hard."""

    def run(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))

    return run


CONDITIONS: dict[str, dict[str, Instance]] = {
    "quarter_turn": {f"rot{90 * k}": quarter_turn(k) for k in (1, 2, 3)},
    "oblique_turn": {f"rot{d}": turned(d) for d in (30, 135, 240)},
    "camera_tilt": {"tilt_x": tilted(0.12, 0.0), "tilt_y": tilted(0.0, 0.12), "tilt_xy": tilted(-0.1, 0.1)},
    "farther": {"x0.65": distance(0.65), "x0.8": distance(0.8)},
    "nearer": {"x1.25": distance(1.25), "x1.4": distance(1.4)},
    "off_centre": {"right_down": framed(0.18, 0.12), "left_up": framed(-0.15, -0.18)},
    "underexposed": {"-1.5EV": exposure(-1.5), "-2EV": exposure(-2.0)},
    "overexposed": {"+1EV": exposure(1.0), "+1.5EV": exposure(1.5)},
    "flat_light": {"haze": flat_light(0.45, 0.6), "dim_flat": flat_light(0.4, 0.35)},
    "tone_curve": {"s_curve": tone_curve("s_curve"), "crushed": tone_curve("crushed")},
    "colour_cast": {"tungsten": colour_cast((1.5, 1.0, 0.55)), "fluorescent": colour_cast((0.8, 1.15, 1.0))},
    "defocus": {"r1.5": defocus(1.5), "r2.5": defocus(2.5)},
    "motion_blur": {"h7": motion(7, 0.0), "d9": motion(9, 60.0)},
    "sensor_noise": {"iso_high": sensor_noise(6.0, 10.0), "iso_max": sensor_noise(10.0, 16.0)},
    "compression": {"q20": jpeg(20), "q8": jpeg(8)},
}


def field_set(originals: dict[str, np.ndarray], seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Every condition applied to every held-out RGB photo: {condition: {key/instance: rgb}}.

    Random conditions (sensor noise) draw from a generator seeded by the photo's key and the instance, so the
    set is the same whatever the order.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    for condition, instances in CONDITIONS.items():
        images: dict[str, np.ndarray] = {}
        for key, rgb in originals.items():
            for name, instance in instances.items():
                rng = np.random.default_rng([seed, zlib.crc32(f"{condition}/{name}/{key}".encode())])
                images[f"{key}/{name}"] = instance(rgb, rng)
        out[condition] = images
    return out
