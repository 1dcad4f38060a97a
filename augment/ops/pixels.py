"""Shared pixel helpers for the op kernels: affine warps with border fill, point functions, blur.

Pillow's C kernels do the heavy lifting; numpy handles padding, noise and the 16-bit paths Pillow lacks.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter

from augment.frame import Frame

Matrix = np.ndarray  # 3x3 forward affine: input pixel coords -> output pixel coords
FILL_MODES = ("edge", "reflect", "constant")
_PAD_MARGIN = 2  # extra border so bilinear sampling near the edge reads padded pixels, not the fill


def translation(tx: float, ty: float) -> Matrix:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def about_center(linear: np.ndarray, size: tuple[int, int]) -> Matrix:
    """A 2x2 linear map applied about the image centre, as a 3x3 forward matrix."""
    cx, cy = size[0] / 2.0, size[1] / 2.0
    m = np.eye(3)
    m[:2, :2] = linear
    return translation(cx, cy) @ m @ translation(-cx, -cy)


def rotation(degrees: float, size: tuple[int, int]) -> Matrix:
    """Counter-clockwise rotation on screen (y points down), as Pillow's ``rotate``."""
    t = math.radians(degrees)
    c, s = round(math.cos(t), 15), round(math.sin(t), 15)
    return about_center(np.array([[c, s], [-s, c]]), size)


def warp(frame: Frame, forward: Matrix, fill: str, fill_value: float) -> Frame:
    """Resample a frame through a forward affine map, keeping its size.

    Pixels that map from outside the source are filled by repeating the edge, reflecting, or with a
    constant (colour = ``fill_value`` as a fraction of full scale, alpha opaque). Colour and alpha are
    resampled as separate planes (not premultiplied), so colour values never lose precision to alpha;
    an all-opaque alpha stays as it is (every fill is opaque).
    """
    color = _warp_plane(frame.color, forward, fill, _fill_color(frame.color.mode, fill_value))
    if frame.alpha is None or _all_opaque(frame.alpha):
        return Frame(color, frame.alpha)
    return Frame(color, _warp_plane(frame.alpha, forward, fill, 255))


def _warp_plane(image: Image.Image, forward: Matrix, fill: str, constant: int | tuple[int, ...]) -> Image.Image:
    if image.mode == "I;16":  # Pillow's bilinear transform garbles I;16: resample in 32-bit I, round back
        wide = _warp_plane(image.convert("I"), forward, fill, constant)
        return to_image(np.asarray(wide), "I;16")
    size = image.size
    inverse = invert_affine(forward)
    if fill == "constant":
        data = tuple(inverse[:2].ravel())
        return image.transform(size, Image.Transform.AFFINE, data, Image.Resampling.BILINEAR, fillcolor=constant)
    left, top, right, bottom = _padding_needed(inverse, size)
    padded = _pad(image, (left, top, right, bottom), fill)
    shifted = translation(left, top) @ inverse
    if _whole_shift(shifted):  # e.g. translate: resampling at whole-pixel offsets is a plain copy
        x, y = round(shifted[0, 2]), round(shifted[1, 2])
        return padded.crop((x, y, x + size[0], y + size[1]))
    return padded.transform(size, Image.Transform.AFFINE, tuple(shifted[:2].ravel()), Image.Resampling.BILINEAR)


def invert_affine(forward: Matrix) -> Matrix:
    """The inverse of a 3x3 affine matrix (last row 0 0 1), in closed form (no LAPACK call)."""
    (a, b, c), (d, e, f) = forward[0], forward[1]
    det = a * e - b * d
    if det == 0:
        raise ValueError("singular affine matrix")
    return np.array(
        [[e / det, -b / det, (b * f - c * e) / det], [-d / det, a / det, (c * d - a * f) / det], [0.0, 0.0, 1.0]]
    )


def _whole_shift(m: Matrix) -> bool:
    """The matrix only moves by whole pixels (identity linear part, integer offsets)."""
    return bool(np.array_equal(m[:2, :2], np.eye(2)) and float(m[0, 2]).is_integer() and float(m[1, 2]).is_integer())


def _padding_needed(inverse: Matrix, size: tuple[int, int]) -> tuple[int, int, int, int]:
    w, h = size
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=float).T
    src = inverse @ corners
    xs, ys = src[0], src[1]
    left = max(0, math.ceil(-xs.min())) + _PAD_MARGIN
    top = max(0, math.ceil(-ys.min())) + _PAD_MARGIN
    right = max(0, math.ceil(xs.max() - w)) + _PAD_MARGIN
    bottom = max(0, math.ceil(ys.max() - h)) + _PAD_MARGIN
    return left, top, right, bottom


def _pad(image: Image.Image, pad: tuple[int, int, int, int], fill: str) -> Image.Image:
    left, top, right, bottom = pad
    arr = np.asarray(image)
    widths = [(top, bottom), (left, right)] + [(0, 0)] * (arr.ndim - 2)
    np_mode = "edge" if fill == "edge" else "reflect"
    return array_image(np.pad(arr, widths, mode=np_mode), image.mode)


def _fill_color(mode: str, fraction: float) -> int | tuple[int, ...]:
    if mode == "I;16":
        return round(fraction * 65535)
    v = round(fraction * 255)
    return (v, v, v) if mode == "RGB" else v


def _all_opaque(alpha: Image.Image) -> bool:
    """All 255: warping it would give all 255 again (every fill is opaque), so it is not warped."""
    return alpha.getextrema() == (255, 255)


def point(color: Image.Image, fn: Callable[[np.ndarray], np.ndarray]) -> Image.Image:
    """Apply ``fn`` to values normalised to [0, 1]; round and clip back to the image's range.

    8-bit images go through a 256-entry lookup table (Pillow's ``point``), 16-bit ones through numpy.
    """
    if color.mode == "I;16":
        values = np.asarray(color).astype(np.float32) / 65535.0
        return to_image(fn(values) * 65535.0, color.mode)
    lut = np.clip(np.rint(fn(np.arange(256, dtype=np.float64) / 255.0) * 255.0), 0, 255).astype(np.uint8)
    # The public API. Pillow's private ``_new(im.point(...))`` would skip re-rounding the table in Python:
    # 35-60 us a call on 96x96 RGB, one call per output, of 2-2.8 ms per output, so 1-2 % (workshop set,
    # medium preset; bench/pixels_private.py): not worth depending on Pillow internals.
    return color.point(lut.tolist() * len(color.getbands()))


def to_image(values: np.ndarray, mode: str) -> Image.Image:
    """Round and clip float pixel values into an image of ``mode`` (L, RGB or I;16)."""
    top = 65535 if mode == "I;16" else 255
    dtype = np.uint16 if mode == "I;16" else np.uint8
    return array_image(np.clip(np.rint(values), 0, top).astype(dtype), mode)


def array_image(values: np.ndarray, mode: str) -> Image.Image:
    """An image from an array whose dtype and shape already imply ``mode`` (checked, not converted)."""
    image = Image.fromarray(values)
    if image.mode != mode:
        raise ValueError(f"array of {values.dtype} {values.shape} gives mode {image.mode}, not {mode}")
    return image


def gaussian_blur(color: Image.Image, sigma: float) -> Image.Image:
    """Gaussian blur with standard deviation ``sigma`` pixels (Pillow for 8-bit, numpy for 16-bit)."""
    if sigma <= 0:
        return color
    if color.mode != "I;16":
        return color.filter(ImageFilter.GaussianBlur(sigma))
    return to_image(blur_array(np.asarray(color).astype(np.float32), sigma), "I;16")


def blur_array(values: np.ndarray, sigma: float) -> np.ndarray:
    """Separable gaussian blur of a 2-D float array with edge-replicated borders."""
    radius = max(1, math.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    padded = np.pad(values, radius, mode="edge")
    h, w = values.shape
    rows = sum(t * padded[:, i : i + w] for i, t in enumerate(taps))
    return sum(t * rows[i : i + h, :] for i, t in enumerate(taps))
