"""Decoding source bytes into a Frame and encoding an augmented Frame back to bytes.

Decoding applies EXIF orientation, takes the first frame of animations and keeps Pillow's
decompression-bomb guard on (over the limit is an error, not a warning). Encoding restores the source's
mode where the output format can hold it, and is deterministic: same frame and options, same bytes.
"""

from __future__ import annotations

import io
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from PIL import (  # noqa: F401 - Image.open(formats=) finds only registered decoders
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    ImageOps,
    JpegImagePlugin,
    MpoImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
    WebPImagePlugin,
)

from augment.render import png
from augment.render.frame import Frame, ModeInfo, UnsupportedImageError, decode_into_array, from_frame, to_frame

# Extensions read as images (anything else in an input folder is reported and skipped).
IMAGE_EXTENSIONS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".gif": "GIF",
}
# The only decoders ever tried, whatever the name: Pillow would otherwise sniff every format it knows (an EPS
# named .png would go to Ghostscript).
SNIFFED_FORMATS = ("PNG", "JPEG", "BMP", "WEBP", "TIFF", "GIF")  # JPEG also opens MPO
PNG_SIGNATURE = png.SIGNATURE
# Pillow refuses PNG text and ICC chunks over 1 MB decompressed (its bomb guard for text); ICC profiles of
# printers and cameras reach several MB and are valid.
PngImagePlugin.MAX_TEXT_CHUNK = max(PngImagePlugin.MAX_TEXT_CHUNK, 32 * 1024 * 1024)
OUTPUT_FORMATS = ("same", "png", "jpeg")
# "same" when the outputs go into an Edge Impulse project (set by the config, not a user choice): PNG and JPEG
# inputs keep their format, others become PNG. EI's tools upload images as .jpg/.jpeg/.png only
# (edge-impulse-cli cli-common/make-image.ts EXTENSION_MAPPING).
EI_SAME = "ei-same"
EI_IMAGE_FORMATS = ("PNG", "JPEG")
# zlib strategy for PNG: "rle" (Z_RLE) encodes photos 2-3x faster than the default at the same or smaller
# size (measured on the workshop set, its augmented outputs and 640x480 photos); "default" is zlib's own,
# better for graphics with repeated patterns.
PNG_STRATEGIES = ("rle", "default")
_Z_RLE = 3
_FORMAT_ALIASES = {"MPO": "JPEG"}  # phone JPEGs with extra frames decode as MPO
# Modes each writer takes as they are; anything else is converted (see _writable).
_WRITABLE = {
    "JPEG": {"L", "RGB", "CMYK"},
    "PNG": {"1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I;16B", "I"},
    "BMP": {"1", "L", "P", "RGB", "RGBA"},
    "WEBP": {"L", "LA", "RGB", "RGBA"},
    "GIF": {"L", "P"},
    "TIFF": {"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I;16B", "I;16L", "I", "YCbCr", "LAB"},
}
_EXIF_ORIENTATION = 0x0112


Needed = Callable[[tuple[int, int]], tuple[int, int]]  # an image's (oriented) size -> the least size wanted


class DecodeError(ValueError):
    """The bytes are not an image we can augment; the message says why."""


@dataclass(frozen=True)
class Decoded:
    frame: Frame
    mode: ModeInfo
    format: str  # Pillow format name of the source (PNG, JPEG, ...)
    oriented: bool  # EXIF orientation was applied, so the pixels differ from the stored ones
    source_size: tuple[int, int] = (0, 0)  # (width, height) as stored, oriented: the frame may be smaller (draft)


@dataclass(frozen=True)
class EncodeOptions:
    image_format: str = "same"  # same | png | jpeg | ei-same (same, but only formats EI ingests)
    jpeg_quality: int = 90
    png_compression: int = 6
    png_strategy: str = "rle"
    output_size: tuple[int, int] | None = None  # --output-size: every output at (width, height)
    resize_mode: str = "fit-short"  # how the source meets output_size (augment.render.resize.RESIZE_MODES)
    zoom: float = 1.0  # with output_size: the recipe's largest magnification (how much detail to decode)


def decode(data: bytes, needed: Needed | None = None) -> Decoded:
    """Decode image bytes; raise DecodeError with a one-line cause for anything unusable.

    ``needed`` maps the (oriented) stored size to the least size the caller needs: a JPEG is then decoded
    at the smallest DCT scale (1/2, 1/4, 1/8) that still gives it."""
    if not data:
        raise DecodeError("empty file (0 bytes)")
    image, stored, pixels = _open(data, needed)
    fmt = _FORMAT_ALIASES.get(image.format or "", image.format or "")
    orientation = _orientation(image)
    if orientation not in (None, 1):
        image, pixels = ImageOps.exif_transpose(image), None
    try:
        frame, mode = to_frame(image, pixels)
    except UnsupportedImageError as e:
        raise DecodeError(str(e)) from None
    key = image.info.get("transparency") if image.mode in ("L", "RGB", "I;16") else None
    if key is not None:  # the colour key becomes an alpha plane, so transparency follows the pixels
        color = frame.color
        frame = Frame(color, np.where(_is_key(color, key), 0, 255).astype(np.uint8))
    mode = replace(mode, icc=image.info.get("icc_profile") or None, exif=image.info.get("exif") or None, color_key=key)
    swapped = orientation in (5, 6, 7, 8)
    return Decoded(frame, mode, fmt, orientation not in (None, 1), stored[::-1] if swapped else stored)


Loaded = tuple[Image.Image, tuple[int, int], np.ndarray | None]  # image, stored size, its pixels' memory


def _load(data: bytes, needed: Needed | None = None) -> Loaded:
    """The first frame, decoded (L and RGB straight into numpy memory, also returned), and its stored size;
    only ``SNIFFED_FORMATS`` are tried; over the bomb limit is an error. With ``needed``, a JPEG is decoded at
    the smallest DCT scale that still gives that size."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=SNIFFED_FORMATS)
            image.seek(0)
            stored = image.size
            if needed is not None and image.format in ("JPEG", "MPO"):
                swap = _orientation(image) in (5, 6, 7, 8)  # a quarter turn: the stored axes are swapped
                want = needed(stored[::-1] if swap else stored)
                image.draft(image.mode, want[::-1] if swap else want)
            pixels = decode_into_array(image)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DecodeError(f"image too large (decompression-bomb guard): {e}") from None
    return image, stored, pixels


def _open(data: bytes, needed: Needed | None = None) -> Loaded:
    """``_load``, accepting what is valid but trips Pillow (an ancillary PNG chunk with a bad checksum, a
    JPEG that lacks only its end marker); otherwise a DecodeError that says what is wrong."""
    try:
        return _load(data, needed)
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # UnidentifiedImageError is an OSError
        failure: Exception = e
    for repaired, check in _repairs(data):
        try:
            loaded = _load(repaired)  # checked at full scale
        except (OSError, SyntaxError, ValueError, EOFError):
            continue
        if check(loaded[0]):
            return loaded
    raise DecodeError(_explain(data, failure))


def _repairs(data: bytes) -> Iterator[tuple[bytes, Callable[[Image.Image], bool]]]:
    """Other readings of ``data`` worth a try, each with a check of the decoded image."""
    if data.startswith(PNG_SIGNATURE):
        bad = [(start, end) for kind, start, end, ok in png_chunks(data) if not ok and end and kind[0] & 0x20]
        if bad:  # ancillary chunks (text, time, ...) with bad checksums: the pixels do not need them
            keep, last = [], 0
            for start, end in bad:
                keep.append(data[last:start])
                last = end
            yield b"".join([*keep, data[last:]]), lambda image: True
    if data.startswith(b"\xff\xd8\xff") and not data.endswith(b"\xff\xd9"):
        # Only the end marker missing: every block decodes. Cut short: libjpeg fills the missing blocks with
        # flat grey (128), the last block among them.
        yield data + b"\xff\xd9", lambda image: not (np.asarray(image)[-8:, -8:] == 128).all()


def png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int | None, bool]]:
    """(type, start, end or None if cut short, checksum ok) of each chunk of PNG ``data``, up to IEND."""
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            yield kind, pos, None, False
            return
        yield kind, pos, end, zlib.crc32(data[pos + 4 : end - 4]) == int.from_bytes(data[end - 4 : end], "big")
        if kind == b"IEND":
            return
        pos = end


def _explain(data: bytes, error: Exception) -> str:
    """One line on why ``data`` cannot be decoded."""
    if data.startswith(PNG_SIGNATURE):
        for kind, _, end, ok in png_chunks(data):
            name = kind.decode("latin-1")
            if end is None:
                return f"truncated PNG: the data ends inside its {name!r} chunk"
            if not ok:
                return f"corrupt PNG: its {name!r} chunk fails its checksum (CRC)"
    if isinstance(error, UnidentifiedImageError):
        return f"not an image this block reads (PNG, JPEG, BMP, WebP, TIFF, GIF): it starts with {data[:8]!r}"
    what = "truncated" if "truncated" in str(error).lower() else "corrupt"
    return f"{what} image data ({error})"


def name_mismatch(data: bytes, key: str, output_formats: set[str]) -> str | None:
    """Why a file whose content is not what its name says cannot be copied as asked, or None: an image with
    transparency named ``.jpg`` would lose it in its JPEG copies."""
    suffix = PurePosixPath(key).suffix.lower()
    if IMAGE_EXTENSIONS.get(suffix) != "JPEG" or "JPEG" not in output_formats:
        return None
    try:
        with Image.open(io.BytesIO(data), formats=SNIFFED_FORMATS) as image:
            actual = _FORMAT_ALIASES.get(image.format or "", image.format or "")
            alpha = image.mode in ("LA", "RGBA", "PA", "La", "RGBa") or "transparency" in image.info
    except Exception:  # noqa: BLE001 - decoding reports what is wrong
        return None
    if actual == "JPEG" or not alpha:
        return None
    return (
        f"{actual} data with transparency in a file named {suffix}: its JPEG copies would lose the transparency;"
        f" rename it to .{actual.lower()} (or pass --image-format png)"
    )


def _is_key(values: np.ndarray, key: int | tuple[int, ...]) -> np.ndarray:
    """Where the pixels have the transparent colour ``key``."""
    return np.all(values == np.asarray(key), axis=-1) if values.ndim == 3 else values == key


def keyed(image: Image.Image, alpha: np.ndarray, preferred: int | tuple[int, ...]) -> tuple[Image.Image, Any]:
    """An ``L``/``RGB``/``I;16`` image whose clear pixels (alpha under 128) get one transparent colour, and
    that colour (None: nothing is clear). It is ``preferred`` (the source's) unless an opaque pixel has it
    now (an op changed colours); then the first colour no opaque pixel has; if every colour is taken, opaque
    pixels of the ``preferred`` colour move by one level in the lowest bit."""
    clear = np.asarray(alpha) < 128
    if not clear.any():  # nothing clear: the source's key stays declared while no pixel has that colour
        return image, None if _is_key(np.asarray(image), preferred).any() else preferred
    values = np.asarray(image).copy()
    rgb = values.ndim == 3
    wide = values.astype(np.int64)
    packed = (wide[..., 0] << 16 | wide[..., 1] << 8 | wide[..., 2]) if rgb else wide
    levels = 1 << 24 if rgb else (256 if values.dtype == np.uint8 else 65536)
    key = (preferred[0] << 16 | preferred[1] << 8 | preferred[2]) if rgb else int(preferred)  # type: ignore[index]
    opaque = packed[~clear]
    if (opaque == key).any():
        taken = np.zeros(levels, dtype=bool)
        taken[opaque] = True
        free = np.flatnonzero(~taken)
        if free.size:
            key = int(free[0])
        else:
            values[(packed == key) & ~clear] ^= 1
    colour = (key >> 16, (key >> 8) & 255, key & 255) if rgb else key
    values[clear] = colour
    return Image.fromarray(values) if values.dtype == np.uint16 else Image.fromarray(values, image.mode), colour


def output_format(options: EncodeOptions, source_suffix: str) -> tuple[str, str]:
    """(Pillow format, file extension) for outputs of a source file with this suffix.

    Decided from the name alone, so output names are known before decoding (a rerun can skip them).
    """
    if options.image_format == "png":
        return "PNG", ".png"
    if options.image_format == "jpeg":
        return "JPEG", ".jpg"
    suffix = source_suffix.lower()
    fmt = IMAGE_EXTENSIONS.get(suffix)
    if fmt is None or (options.image_format == EI_SAME and fmt not in EI_IMAGE_FORMATS):
        return "PNG", ".png"
    return fmt, suffix


def encode(frame: Frame, mode: ModeInfo, fmt: str, options: EncodeOptions) -> bytes:
    """Encode a frame in the source's mode (converted only where ``fmt`` cannot hold it)."""
    restored = from_frame(frame, mode)
    if mode.color_key is not None and frame.alpha is not None and restored.mode == mode.mode:
        restored, key = keyed(restored, frame.alpha, mode.color_key)
        mode = replace(mode, color_key=key)
    image = _writable(restored, fmt)
    meta = _metadata(mode, fmt, same_mode=image.mode == restored.mode)
    out = io.BytesIO()
    if fmt == "PNG":
        strategy = _Z_RLE if options.png_strategy == "rle" else -1  # -1: Pillow's default
        if not meta and (data := png.plain(image, options.png_compression, strategy)) is not None:
            return data
        image.save(out, "PNG", compress_level=options.png_compression, compress_type=strategy, **meta)
    elif fmt == "JPEG":
        image.save(out, "JPEG", quality=options.jpeg_quality, **meta)
    elif fmt == "WEBP":
        image.save(out, "WEBP", quality=options.jpeg_quality, method=4, **meta)
    else:
        image.save(out, fmt, **meta)
    return out.getvalue()


def _metadata(mode: ModeInfo, fmt: str, same_mode: bool) -> dict[str, Any]:
    """Save arguments that keep the source's ICC profile (only when the pixels keep its mode: a CMYK
    profile does not describe RGB pixels), EXIF and transparent colour, where ``fmt`` can carry them."""
    meta: dict[str, Any] = {}
    if mode.color_key is not None and same_mode and fmt == "PNG":
        meta["transparency"] = mode.color_key
    if mode.icc and same_mode and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        meta["icc_profile"] = mode.icc
    if mode.exif and fmt in ("PNG", "JPEG", "WEBP"):
        meta["exif"] = mode.exif
    return meta


def _writable(image: Image.Image, fmt: str) -> Image.Image:
    if image.mode in _WRITABLE[fmt]:
        return image
    has_alpha = image.mode in ("LA", "RGBA", "PA") or "transparency" in image.info
    if has_alpha and "RGBA" in _WRITABLE[fmt]:
        return image.convert("RGBA")
    if has_alpha and image.mode == "P":  # through RGBA: Pillow warns on P-with-alpha straight to RGB
        image = image.convert("RGBA")
    if image.mode in ("I;16B", "I;16L") and "I;16" in _WRITABLE[fmt]:  # 16 bits kept, in the writer's order
        return Image.fromarray(np.asarray(image).astype(np.uint16))
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(image).astype(np.float64) / 257.0
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    if image.mode in ("1", "L", "LA"):
        return image.convert("L")
    rgb = image.convert("RGB")
    return rgb if "RGB" in _WRITABLE[fmt] else rgb.convert("P", palette=Image.Palette.ADAPTIVE)


def _orientation(image: Image.Image) -> int | None:
    try:
        return image.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the image
        return None
