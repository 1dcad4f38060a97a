"""Decoding source bytes into a Frame and encoding an augmented Frame back to bytes.

Decoding applies EXIF orientation, takes the first frame of animations and keeps Pillow's
decompression-bomb guard on (over the limit is an error, not a warning). Encoding restores the source's
mode where the output format can hold it, and is deterministic: same frame and options, same bytes.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from augment.frame import Frame, ModeInfo, UnsupportedImageError, from_frame, to_frame

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
SNIFFED_FORMATS = ("PNG", "JPEG", "MPO", "BMP", "WEBP", "TIFF", "GIF")
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
    "PNG": {"1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I"},
    "BMP": {"1", "L", "P", "RGB", "RGBA"},
    "WEBP": {"L", "LA", "RGB", "RGBA"},
    "GIF": {"L", "P"},
    "TIFF": {"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "YCbCr", "LAB"},
}
_EXIF_ORIENTATION = 0x0112


class DecodeError(ValueError):
    """The bytes are not an image we can augment; the message says why."""


@dataclass(frozen=True)
class Decoded:
    frame: Frame
    mode: ModeInfo
    format: str  # Pillow format name of the source (PNG, JPEG, ...)
    oriented: bool  # EXIF orientation was applied, so the pixels differ from the stored ones


@dataclass(frozen=True)
class EncodeOptions:
    image_format: str = "same"  # same | png | jpeg | ei-same (same, but only formats EI ingests)
    jpeg_quality: int = 90
    png_compression: int = 6
    png_strategy: str = "rle"


def decode(data: bytes) -> Decoded:
    """Decode image bytes; raise DecodeError with a one-line cause for anything unusable."""
    if not data:
        raise DecodeError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            fmt = _FORMAT_ALIASES.get(image.format or "", image.format or "")
            image.seek(0)
            image.load()
    except UnidentifiedImageError:
        raise DecodeError("not an image (Pillow cannot identify the data)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DecodeError(f"image too large (decompression-bomb guard): {e}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise DecodeError(f"corrupt or truncated image data ({e})") from None
    orientation = _orientation(image)
    if orientation not in (None, 1):
        image = ImageOps.exif_transpose(image)
    try:
        frame, mode = to_frame(image)
    except UnsupportedImageError as e:
        raise DecodeError(str(e)) from None
    key = image.info.get("transparency") if image.mode in ("L", "RGB", "I;16") else None
    mode = replace(mode, icc=image.info.get("icc_profile") or None, exif=image.info.get("exif") or None, color_key=key)
    return Decoded(frame, mode, fmt, orientation not in (None, 1))


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
    image = _writable(restored, fmt)
    meta = _metadata(mode, fmt, same_mode=image.mode == restored.mode)
    out = io.BytesIO()
    if fmt == "PNG":
        strategy = {"compress_type": _Z_RLE} if options.png_strategy == "rle" else {}
        image.save(out, "PNG", compress_level=options.png_compression, **strategy, **meta)
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
