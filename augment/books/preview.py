"""The preview contact sheet: per class, a few originals each followed by augmented copies, captioned
with their op chains, boxes drawn. Rendered with the same engine and seeds as the run, so a preview shows
exactly the bytes the run writes; no I/O here (callers pass a reader and store the PNG)."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from augment.plan.tasks import Task
from augment.render.boxes import Box
from augment.render.codec import SNIFFED_FORMATS, EncodeOptions
from augment.render.engine import render

CELL = 128  # longest side of a thumbnail, px
CAPTION = 30  # caption height under a thumbnail
LABEL_W = 110  # class name column
PAD = 6
SHEET_CLASSES = 8  # classes on preview.png; with more, each also gets its own sheet
MAX_CLASSES = 32  # classes shown at all (the first in plan order): time and memory stay flat with thousands
BOX_COLOURS = ("#ff2d55", "#34c759", "#0a84ff", "#ffcc00", "#af52de", "#ff9500")
_SHORT = {
    "hflip": lambda p: "hflip",
    "vflip": lambda p: "vflip",
    "rotate": lambda p: f"rot {_angle(p['degrees'])}",
    "zoom": lambda p: f"zoom {p['scale']:.2f}",
    "scale": lambda p: f"scale {p['factor']:.2f}",
    "translate": lambda p: f"shift {p['dx']:+d},{p['dy']:+d}",
    "shear": lambda p: f"shear {_angle(p['x'])}",
    "brightness": lambda p: f"bright {p['factor']:.2f}",
    "exposure": lambda p: f"{p['ev']:+.1f} EV",
    "contrast": lambda p: f"contrast {p['factor']:.2f}",
    "gamma": lambda p: f"gamma {p['gamma']:.2f}",
    "blur": lambda p: f"blur {p['sigma']:.1f}",
    "sharpen": lambda p: f"sharpen {p['amount']:.1f}",
    "hue_saturation": lambda p: f"hue {p['hue']:+.2f} sat {p['saturation']:.2f}",
    "gaussian_noise": lambda p: f"noise {p['sigma']:.2f}",
    "poisson_noise": lambda p: "poisson",
    "salt_pepper": lambda p: f"s&p {p['amount']:.3f}",
    "cutout": lambda p: f"cutout x{len(p['rects'])}",
}


def _angle(degrees: float) -> str:
    return f"{degrees:+.1f}°" if abs(degrees) < 9.95 else f"{degrees:+.0f}°"


class Sheets(dict[str, Image.Image]):
    """File name -> contact sheet, and how many classes were left out (over ``MAX_CLASSES``)."""

    left_out: int = 0


@dataclass(frozen=True)
class Cell:
    image: Image.Image
    caption: str
    boxes: list[Box] | None


def caption(ops: list[dict[str, Any]]) -> str:
    """A short text for an op chain, e.g. ``hflip · rot -6.9° · gamma 1.21``."""
    if not ops:
        return "original"
    return " · ".join(_SHORT.get(op["op"], lambda p, n=op["op"]: n)(op) for op in ops)


def build(
    tasks: list[Task],
    read: Callable[[Any], bytes],
    seed: int,
    options: EncodeOptions,
    min_visibility: float,
    per_class: int = 3,
    copies: int = 4,
    max_classes: int = MAX_CLASSES,
) -> Sheets:
    """Contact sheets: ``{"preview.png": sheet}``, plus ``preview-<label>.png`` per class when there are
    more than ``SHEET_CLASSES`` (one sheet would be unreadable); classes beyond ``max_classes`` are only
    counted (``left_out``)."""
    rows: dict[str, list[list[Cell]]] = {}
    others: set[str] = set()
    for task in tasks:
        label = task.sample.label
        if label not in rows and len(rows) >= max_classes:
            others.add(label)
            continue
        label_rows = rows.setdefault(label, [])
        if len(label_rows) >= per_class:
            continue
        originals = [o for o in task.outputs if o.pipeline is None]
        augmented = [o for o in task.outputs if o.pipeline is not None][:copies]
        try:
            data = read(task.sample)
            rendered = render(task.sample.key, data, (*originals, *augmented), seed, options,
                              task.sample.boxes, min_visibility)  # fmt: skip
        except Exception:  # noqa: BLE001 - a bad input is reported by the run itself; the preview skips it
            continue
        if not originals:  # originals not kept: show the source anyway, for comparison
            source = Image.open(io.BytesIO(data), formats=SNIFFED_FORMATS)
            source.load()
            first = [Cell(source, "original (not kept)", list(task.sample.boxes or []) or None)]
        else:
            first = []
        cells = first + [Cell(Image.open(io.BytesIO(r.data)), caption(r.ops), r.boxes) for r in rendered]
        label_rows.append(cells)
    sheets = Sheets({"preview.png": sheet(dict(list(rows.items())[:SHEET_CLASSES]), len(rows) - SHEET_CLASSES)})
    if len(rows) > SHEET_CLASSES:
        sheets.update({f"preview-{label}.png": sheet({label: r}) for label, r in rows.items()})
    sheets.left_out = len(others)
    return sheets


def sheet(rows: dict[str, list[list[Cell]]], more: int = 0) -> Image.Image:
    """Lay the rows out: class name, then each original followed by its copies; a last line says how many
    ``more`` classes have sheets of their own."""
    font = ImageFont.load_default(size=11)
    width = LABEL_W + max((len(r) for rs in rows.values() for r in rs), default=1) * (CELL + PAD) + PAD
    height = PAD + sum(max(len(rs), 1) * (CELL + CAPTION + PAD) for rs in rows.values()) + PAD
    height += CAPTION if more > 0 else 0
    canvas = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(canvas)
    y = PAD
    for label, label_rows in rows.items():
        pen.text((PAD, y + CELL // 2), label[:16], fill="black", font=font)
        for cells in label_rows:
            x = LABEL_W
            for cell in cells:
                _paste(canvas, pen, cell, x, y, font)
                x += CELL + PAD
            y += CELL + CAPTION + PAD
        y += 0 if label_rows else CELL + CAPTION + PAD
    if more > 0:
        pen.text((PAD, y), f"+ {more} more classes: see preview-<class>.png", fill="black", font=font)
    return canvas


def _paste(canvas: Image.Image, pen: ImageDraw.ImageDraw, cell: Cell, x: int, y: int, font: Any) -> None:
    image = cell.image.convert("RGBA")
    scale = CELL / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
    thumb = image.resize(size, resample)
    checker = Image.new("RGBA", size, (235, 235, 235, 255))
    canvas.paste(Image.alpha_composite(checker, thumb).convert("RGB"), (x, y))
    for i, box in enumerate(cell.boxes or []):
        colour = BOX_COLOURS[i % len(BOX_COLOURS)]
        x0, y0 = x + box.x * scale, y + box.y * scale
        pen.rectangle((x0, y0, x0 + box.width * scale, y0 + box.height * scale), outline=colour, width=2)
        pen.text((x0 + 2, y0 + 1), box.label[:12], fill=colour, font=font)
    words, lines, line = cell.caption.split(" · "), [], ""
    for word in words:
        candidate = f"{line} · {word}" if line else word
        if pen.textlength(candidate, font=font) > CELL and line:
            lines.append(line)
            line = word
        else:
            line = candidate
    lines.append(line)
    for i, text in enumerate(lines[:2]):
        pen.text((x, y + CELL + 2 + i * 13), text if i < 1 or len(lines) <= 2 else text + " …", fill="#333", font=font)
