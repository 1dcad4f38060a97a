"""Shared pixel helpers for the op kernels: affine warps with border fill, point functions, blur.

OpenCV's C++ kernels do the heavy lifting (5-12x Pillow's on photos, README "Performance"); they run on
the Frame's numpy arrays. Every kernel used is deterministic with one thread (set where workers start,
``configure_threads``): fixed-point bilinear warps and bit-exact gaussian blur for 8-bit data.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from augment.render.frame import Frame, colour_planes, with_planes

Matrix = np.ndarray  # 3x3 forward affine: input pixel coords -> output pixel coords
FILL_MODES = ("edge", "reflect", "constant")


def configure_threads() -> None:
    """One kernel thread per process: the block's parallelism is its worker processes (and OpenCV's own
    thread pool would only add contention and start-up cost)."""
    cv2.setNumThreads(1)
    cv2.ocl.setUseOpenCL(False)


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


def warp(frame: Frame, forward: Matrix, fill: str, fill_value: float, size: tuple[int, int] | None = None) -> Frame:
    """Resample a frame through a forward affine map onto a canvas of ``size`` (default: the frame's own).

    Pixels that map from outside the source are filled by repeating the edge, reflecting, or with a
    constant (colour = ``fill_value`` as a fraction of full scale, alpha opaque). Colour and alpha are
    resampled as separate planes (not premultiplied), so colour values never lose precision to alpha;
    an all-opaque alpha stays all-opaque (every fill is opaque). A map that moves whole pixels only (a
    flip, a quarter turn, a whole-pixel shift, or any mix) is an exact copy, never a resample.
    """
    size = size or frame.size
    inverse = _cv_inverse(forward)
    values, padded = colour_planes(frame)
    color = _warp_plane(values, inverse, size, fill, fill_value * frame.max_value)
    if frame.alpha is None:
        alpha = None
    elif _all_opaque(frame.alpha):
        alpha = np.full(color.shape[:2], 255, np.uint8)
    else:
        alpha = _warp_plane(frame.alpha, inverse, size, fill, 255.0)
    return with_planes(color, padded, alpha)


def _cv_inverse(forward: Matrix) -> Matrix:
    """The inverse map in OpenCV's convention. The matrices here put pixel (i, j)'s centre at (i + 0.5,
    j + 0.5), as Pillow and the boxes do; OpenCV puts it at (i, j)."""
    return translation(-0.5, -0.5) @ invert_affine(forward) @ translation(0.5, 0.5)


def _warp_plane(values: np.ndarray, inverse: Matrix, size: tuple[int, int], fill: str, constant: float) -> np.ndarray:
    exact = _exact_copy(values, inverse, size, fill, constant)
    if exact is not None:
        return exact
    border = _BORDERS[fill]
    value = (round(constant),) * 4
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(values, inverse[:2], size, flags=flags, borderMode=border, borderValue=value)


_BORDERS = {"edge": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101, "constant": cv2.BORDER_CONSTANT}


def _exact_copy(
    values: np.ndarray, inverse: Matrix, size: tuple[int, int], fill: str, constant: float
) -> np.ndarray | None:
    """The output of a map that sends pixel centres to pixel centres (flips, quarter turns, whole-pixel
    shifts), by copying; None for any other map, or for a far shift whose reflection would need pixels the
    copied window lacks (the warp does those, exactly too: every sample lands on a pixel centre)."""
    linear, offset = inverse[:2, :2], inverse[:2, 2]
    entries = linear.ravel().tolist()
    if not (
        set(entries) <= {-1.0, 0.0, 1.0} and entries.count(0.0) == 2 and all(v.is_integer() for v in offset.tolist())
    ):
        return None
    swap = linear[0, 0] == 0  # output x reads source y: a quarter turn or a transpose (invertible: one 1 a row)
    su, sv = (linear[0, 1], linear[1, 0]) if swap else (linear[0, 0], linear[1, 1])
    turned = values.swapaxes(0, 1) if swap else values  # turned[y', x'] = values[v, u]
    u_axis = 0 if swap else 1
    flips = tuple(axis for axis, sign in ((u_axis, su), (1 - u_axis, sv)) if sign < 0)
    turned = np.flip(turned, flips) if flips else turned
    # turned(x', y') reads source L (x', y') + c; output (x, y) reads L (x, y) + offset: x' = x + L^T (offset - c)
    c = np.array([0.0 if su > 0 else values.shape[1] - 1, 0.0 if sv > 0 else values.shape[0] - 1])
    sx, sy = (int(v) for v in linear.T @ (offset - c))
    hs, ws = turned.shape[:2]
    w, h = size
    x0, x1, y0, y1 = max(sx, 0), min(sx + w, ws), max(sy, 0), min(sy + h, hs)
    left, right, top, bottom = x0 - sx, sx + w - x1, y0 - sy, sy + h - y1
    if x0 >= x1 or y0 >= y1:
        return None
    if fill == "reflect" and (max(left, right) >= x1 - x0 or max(top, bottom) >= y1 - y0):
        return None
    window = turned[y0:y1, x0:x1]
    if not (left or right or top or bottom) or flips or swap:  # OpenCV would copy a reversed view slowly
        window = np.ascontiguousarray(window)
        if not (left or right or top or bottom):
            return window
    # A plain shift: OpenCV reads the window in place (rows apart in memory) and copies it once, with the border.
    return cv2.copyMakeBorder(window, top, bottom, left, right, _BORDERS[fill], value=(round(constant),) * 4)


def invert_affine(forward: Matrix) -> Matrix:
    """The inverse of a 3x3 affine matrix (last row 0 0 1), in closed form (no LAPACK call)."""
    (a, b, c), (d, e, f) = forward[0], forward[1]
    det = a * e - b * d
    if det == 0:
        raise ValueError("singular affine matrix")
    return np.array(
        [[e / det, -b / det, (b * f - c * e) / det], [-d / det, a / det, (c * d - a * f) / det], [0.0, 0.0, 1.0]]
    )


def _all_opaque(alpha: np.ndarray) -> bool:
    """All 255: warping it would give all 255 again (every fill is opaque), so it is not warped."""
    return bool(cv2.minMaxLoc(alpha)[0] == 255)


def point(color: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``fn`` to values normalised to [0, 1]; round and clip back to the image's range.

    8-bit images go through a 256-entry lookup table (OpenCV's LUT), 16-bit ones through numpy in float32.
    """
    if color.dtype == np.uint16:
        return to_image(fn(color.astype(np.float32) / np.float32(65535.0)) * np.float32(65535.0), np.uint16)
    lut = np.clip(np.rint(fn(np.arange(256, dtype=np.float64) / 255.0) * 255.0), 0, 255).astype(np.uint8)
    return cv2.LUT(color.reshape(color.shape[0], -1), lut).reshape(color.shape)  # one channel: the same, faster


def point_frame(frame: Frame, fn: Callable[[np.ndarray], np.ndarray]) -> Frame:
    """``point`` over a frame's colour (padded as it is: the unused 4th byte goes through the table too)."""
    values, padded = colour_planes(frame) if frame.is_padded else (frame.color, False)
    return with_planes(point(values, fn), padded, frame.alpha)


def to_image(values: np.ndarray, dtype: type[np.integer]) -> np.ndarray:
    """Round and clip pixel values into ``dtype`` (uint8 or uint16)."""
    top = 65535 if dtype == np.uint16 else 255
    return np.clip(np.rint(values), 0, top).astype(dtype)


def gaussian_blur(color: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels, edge pixels repeated beyond the border
    (OpenCV: bit-exact fixed point for 8-bit)."""
    if sigma <= 0:
        return color
    return cv2.GaussianBlur(color, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
