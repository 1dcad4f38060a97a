"""Synthetic detection data: grey images with coloured rectangles at known boxes."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

RECTS = {"red": ((10, 20, 30, 15), (255, 0, 0)), "blue": ((55, 48, 25, 30), (0, 0, 255))}


def detection_folder(folder: Path, n: int = 3) -> Path:
    """``n`` 96x96 grey images with a red and a blue rectangle each, and their bounding_boxes.labels."""
    folder.mkdir(parents=True)
    entries = {}
    for i in range(n):
        image = Image.new("RGB", (96, 96), (128, 128, 128))
        pen = ImageDraw.Draw(image)
        boxes = []
        for label, ((x, y, w, h), colour) in RECTS.items():
            x, y = x + 2 * i, y + i
            pen.rectangle((x, y, x + w - 1, y + h - 1), fill=colour)
            boxes.append({"label": label, "x": x, "y": y, "width": w, "height": h})
        image.save(folder / f"img{i}.png")
        entries[f"img{i}.png"] = boxes
    labels = {"version": 1, "type": "bounding-box-labels", "boundingBoxes": entries}
    (folder / "bounding_boxes.labels").write_text(json.dumps(labels))
    return folder
