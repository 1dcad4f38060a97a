"""The in-memory image the ops work on, and the mapping to and from Pillow modes.

A Frame holds the colour planes as a numpy array (mode ``L``: uint8 HxW, ``RGB``: uint8 HxWx3, ``I;16``:
uint16 HxW) and, separately, an optional 8-bit alpha plane (uint8 HxW). The kernels (OpenCV, numpy) work on
the arrays in place of Pillow images, so a chain converts once at decode and once at encode. Geometric ops
move both planes; photometric and noise ops touch only the colour planes, so alpha never gets noise.
``to_frame``/``from_frame`` convert any supported Pillow mode to a Frame and back, so an output keeps its
input's mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

COLOR_MODES = ("L", "RGB", "I;16")


class UnsupportedImageError(ValueError):
    """The image cannot be augmented (unsupported mode, unreadable data)."""


class Frame:
    """Colour planes plus optional alpha (numpy arrays); both the same size.

    8-bit RGB colour may be held ``padded`` instead: in Pillow's layout, 4 bytes a pixel (HxWx4, the 4th byte
    unused), as decoding writes it and encoding reads it. Kernels that copy, resample or map each value on
    their own (flips, shifts, warps, lookup tables) run on it as it is: the same bytes per channel, faster
    (4-byte pixels vectorise better, and neither decode nor encode converts). ``color`` is then converted on
    each read (not kept: a decoded frame is shared by every copy of a sample, and memory is per pixel)."""

    __slots__ = ("_color", "_padded", "alpha")

    def __init__(
        self, color: np.ndarray | None = None, alpha: np.ndarray | None = None, *, padded: np.ndarray | None = None
    ) -> None:
        if (color is None) == (padded is None):
            raise TypeError("Frame: give either color or padded")
        self._color, self._padded, self.alpha = color, padded, alpha

    @property
    def color(self) -> np.ndarray:
        """The colour planes (L: HxW, RGB: HxWx3, I;16: HxW uint16)."""
        if self._color is not None:
            return self._color
        return cv2.cvtColor(self._padded, cv2.COLOR_RGBA2RGB)

    @property
    def padded(self) -> np.ndarray | None:
        """8-bit RGB in Pillow's layout (HxWx4, C-contiguous), as held or converted; None for other colours."""
        if self._padded is not None:
            return self._padded
        color = self._color
        if color.dtype == np.uint8 and color.ndim == 3:
            return cv2.cvtColor(color, cv2.COLOR_RGB2RGBA)
        return None

    @property
    def is_padded(self) -> bool:
        return self._padded is not None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as Pillow says it."""
        shape = (self._color if self._color is not None else self._padded).shape
        return shape[1], shape[0]

    @property
    def mode(self) -> str:
        """The Pillow mode of the colour planes: L, RGB or I;16."""
        if self._padded is not None:
            return "RGB"
        if self._color.dtype == np.uint16:
            return "I;16"
        return "RGB" if self._color.ndim == 3 else "L"

    @property
    def max_value(self) -> int:
        return 255 if self._padded is not None or self._color.dtype != np.uint16 else 65535

    def replace(
        self, color: np.ndarray | None = None, alpha: np.ndarray | None = None, padded: np.ndarray | None = None
    ) -> Frame:
        """A frame with new colour (``color``, or ``padded``) and/or alpha; the rest kept."""
        alpha = alpha if alpha is not None else self.alpha
        if color is None and padded is None:
            return Frame(self._color, alpha, padded=self._padded)
        return Frame(color, alpha, padded=padded)


def colour_planes(frame: Frame) -> tuple[np.ndarray, bool]:
    """(values, padded) for a kernel that treats every channel alike: 8-bit RGB in Pillow's layout (converted
    if need be: 4-byte pixels copy and warp faster, and the encoder takes them as they are), anything else
    as its colour planes; a 3-byte frame with alpha stays 3-byte (it is encoded from colour and alpha, so a
    conversion would only be undone). ``with_planes`` makes the result a frame."""
    padded = frame.padded if frame.is_padded or frame.alpha is None else None
    return (padded, True) if padded is not None else (frame.color, False)


def with_planes(values: np.ndarray, padded: bool, alpha: np.ndarray | None) -> Frame:
    """A frame of ``values`` from a kernel given ``colour_planes``, and ``alpha``."""
    return Frame(None, alpha, padded=values) if padded else Frame(values, alpha)


def from_image(color: Image.Image, alpha: Image.Image | None = None) -> Frame:
    """A Frame from Pillow planes (colour in L, RGB or I;16; alpha in L)."""
    if color.mode not in COLOR_MODES:
        raise ValueError(f"colour planes must be one of {COLOR_MODES}, not {color.mode}")
    return Frame(_array(color), _array(alpha) if alpha is not None else None)


def _array(image: Image.Image) -> np.ndarray:
    values = np.asarray(image)
    return values if image.mode != "I;16" else values.astype(np.uint16, copy=False)


def color_image(frame: Frame) -> Image.Image:
    """The colour planes as a Pillow image."""
    padded = frame.padded  # in Pillow's layout as it is, or in one pass (see view)
    return view(padded, "RGB") if padded is not None else Image.fromarray(frame.color)


# Pillow keeps L as 1 byte a pixel and RGB as 4 (the 4th unused): numpy memory in that layout can be an image's
# pixels, so decoding writes straight into an array and encoding reads straight from one. Image.fromarray and
# np.asarray instead copy through Pillow's packers (and asarray once more to join its chunks): at 1080p that is
# 3 and 12 ms an image, against 1 for OpenCV's copy to or from 4 bytes a pixel. Pillow maps files the same way.
_VIEW_MODES = {"L": 1, "RGB": 4}


def view(values: np.ndarray, mode: str, image: Image.Image | None = None) -> Image.Image:
    """``image`` (default: a new one) with ``values`` (HxW for L, HxWx4 for RGB) as its pixels, shared."""
    height, width = values.shape[:2]
    pixels = Image.core.map_buffer(values, (width, height), "raw", 0, (mode, 0, 1))
    if image is None:  # as Image.frombuffer does it (which maps only modes whose layout is the raw one)
        return Image.new(mode, (0, 0))._new(pixels)
    image.im = pixels
    return image


def decode_into_array(image: Image.Image) -> np.ndarray | None:
    """Before ``image.load()``: for L and RGB JPEGs and still PNGs, give the image numpy memory to decode into
    and return it, to pass to ``to_frame`` once loaded; None for anything else (decoded as usual: some loaders,
    e.g. GIF's and APNG's, put other memory in place of the image's own)."""
    still_png = image.format == "PNG" and not getattr(image, "is_animated", False)
    if image.mode not in _VIEW_MODES or not (still_png or image.format in ("JPEG", "MPO")):
        return None
    width, height = image.size
    values = np.empty((height, width, 4) if image.mode == "RGB" else (height, width), np.uint8)
    view(values, image.mode, image)
    return values


@dataclass(frozen=True)
class ModeInfo:
    """What is needed to restore the source's mode after augmenting."""

    mode: str
    palette: Image.Image | None = None  # a P image carrying the source palette
    transparency: int | None = None  # palette index that is transparent
    alphas: bytes | None = None  # per-entry palette alpha (PNG tRNS as bytes, what pngquant writes)
    icc: bytes | None = None  # the source's ICC profile, written to copies in the same mode
    exif: bytes | None = None  # the source's EXIF (orientation removed once applied)
    color_key: int | tuple[int, ...] | None = None  # L/RGB/I;16 PNG tRNS: the one colour that is transparent


def to_frame(image: Image.Image, decoded: np.ndarray | None = None) -> tuple[Frame, ModeInfo]:
    """Split a decoded Pillow image into a Frame and the info needed to restore its mode; ``decoded``: the
    memory ``decode_into_array`` gave it."""
    mode = image.mode
    if decoded is not None and mode in _VIEW_MODES:
        return (Frame(padded=decoded) if decoded.ndim == 3 else Frame(decoded)), ModeInfo(mode)
    if mode in ("L", "RGB", "I;16"):
        return from_image(image), ModeInfo(mode)
    if mode in ("LA", "RGBA"):
        values = np.asarray(image)  # LA arrives as HxWx2
        color = values[..., 0] if mode == "LA" else values[..., :3]
        return Frame(np.ascontiguousarray(color), np.ascontiguousarray(values[..., -1])), ModeInfo(mode)
    if mode == "P":
        transparency = image.info.get("transparency")
        palette = image.copy()
        if isinstance(transparency, bytes):  # alpha per palette entry: keep it as an alpha plane
            frame, _ = to_frame(image.convert("RGBA"))
            return frame, ModeInfo("P", palette, None, transparency)
        if isinstance(transparency, int):
            rgba = image.convert("RGBA")
            frame, _ = to_frame(rgba)
            return frame, ModeInfo("P", palette, transparency)
        return from_image(image.convert("RGB")), ModeInfo("P", palette, None)
    if mode in ("PA", "RGBa", "La"):  # palette+alpha, premultiplied alpha: kept as straight RGBA
        frame, _ = to_frame(image.convert("RGBA"))
        return frame, ModeInfo("RGBA")
    if mode in ("I;16B", "I;16L", "I;16N"):  # through numpy: Pillow's convert clips these to 0..255
        return Frame(np.asarray(image).astype(np.uint16)), ModeInfo(mode)
    if mode == "I":
        values = np.asarray(image)
        if values.min() < 0 or values.max() > 65535:
            raise UnsupportedImageError("32-bit integer image with values outside 0..65535")
        return Frame(values.astype(np.uint16)), ModeInfo("I")
    if mode == "1":
        return from_image(image.convert("L")), ModeInfo("1")
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return from_image(image.convert("RGB")), ModeInfo(mode)
    raise UnsupportedImageError(f"unsupported image mode {mode!r}")


def from_frame(frame: Frame, info: ModeInfo) -> Image.Image:
    """Rebuild a Pillow image in the source's mode from an augmented Frame."""
    mode, alpha = info.mode, frame.alpha
    if mode in ("LA", "RGBA"):
        planes = cv2.merge([frame.color, alpha if alpha is not None else _opaque_plane(frame)])
        return Image.fromarray(planes, mode)
    color = color_image(frame)
    if mode in ("L", "RGB", "I;16"):
        return color
    if mode == "P":
        assert info.palette is not None
        palette = info.palette.getpalette() or [0, 0, 0]
        if info.alphas is not None:
            return _palette_with_alphas(frame, palette, info.alphas)
        indices = nearest_palette_index(np.asarray(color.convert("RGB")), palette, info.transparency)
        if info.transparency is not None and alpha is not None:
            indices[alpha < 128] = info.transparency
        restored = Image.frombytes("P", color.size, indices.tobytes())
        restored.putpalette(palette)
        if info.transparency is not None:
            restored.info["transparency"] = info.transparency
        return restored
    if mode in ("I;16B", "I;16L"):
        order = ">u2" if mode == "I;16B" else "<u2"
        return Image.frombytes(mode, color.size, frame.color.astype(order).tobytes())
    if mode == "I;16N":
        return color
    if mode == "I":
        return Image.fromarray(frame.color.astype(np.int32))
    if mode == "1":
        return color.convert("1", dither=Image.Dither.NONE)
    return color.convert(mode)


def nearest_palette_index(rgb: np.ndarray, palette: list[int], skip: int | None = None) -> np.ndarray:
    """Index of the nearest palette colour for every pixel (exact colours map exactly).

    Pillow's own RGB->P mapping approximates colours through a coarse cache, which would change pixels
    that were never augmented; this does an exact search over the distinct colours instead.
    """
    entries = np.array(palette, dtype=np.int64).reshape(-1, 3)
    return _nearest(rgb, entries, skip)


def _nearest(pixels: np.ndarray, entries: np.ndarray, skip: int | None = None) -> np.ndarray:
    """Nearest entry (rows of ``entries``, 3 or 4 channels) for every pixel of ``pixels`` (H, W, channels)."""
    channels_n = entries.shape[1]
    candidates = np.array([i for i in range(len(entries)) if i != skip], dtype=np.int64)
    packed = np.zeros(pixels.shape[:2], dtype=np.int64)
    for c in range(channels_n):
        packed = (packed << 8) | pixels[..., c].astype(np.int64)
    colours, inverse = np.unique(packed.ravel(), return_inverse=True)
    shifts = [8 * (channels_n - 1 - c) for c in range(channels_n)]
    channels = np.stack([(colours >> s) & 255 for s in shifts], axis=1)
    best = np.empty(len(colours), dtype=np.uint8)
    for start in range(0, len(colours), 4096):  # bounded memory for images with many colours
        chunk = channels[start : start + 4096]
        distance = ((chunk[:, None, :] - entries[candidates][None, :, :]) ** 2).sum(axis=2)
        best[start : start + 4096] = candidates[distance.argmin(axis=1)]
    return best[inverse].reshape(packed.shape)


def _palette_with_alphas(frame: Frame, palette: list[int], alphas: bytes) -> Image.Image:
    """A P image whose palette entries carry alpha: each pixel gets the nearest (colour, alpha) entry."""
    entries = np.array(palette, dtype=np.int64).reshape(-1, 3)
    entry_alpha = np.full(len(entries), 255, dtype=np.int64)
    entry_alpha[: min(len(alphas), len(entries))] = list(alphas[: len(entries)])
    alpha = frame.alpha if frame.alpha is not None else _opaque_plane(frame)
    pixels = np.dstack([np.asarray(color_image(frame).convert("RGB")), alpha])
    indices = _nearest(pixels, np.column_stack([entries, entry_alpha]))
    restored = Image.frombytes("P", frame.size, indices.tobytes())
    restored.putpalette(palette)
    restored.info["transparency"] = alphas
    return restored


def _opaque_plane(frame: Frame) -> np.ndarray:
    """A fully opaque alpha plane the size of ``frame``."""
    return np.full(frame.color.shape[:2], 255, np.uint8)
