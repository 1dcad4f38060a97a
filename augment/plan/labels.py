"""EI's labels files in and out: bounding boxes per image.

Formats (ei-contract.md section 4.1): ``bounding_boxes.labels`` =
``{"version": 1, "type": "bounding-box-labels", "boundingBoxes": {"<file>": [{label, x, y, width, height}]}}``
(pixels, per folder), and EI's ``info.labels`` export (``files[].path`` + ``boundingBoxes``).
"""

from __future__ import annotations

import json
import math
import posixpath
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from augment.errors import BlockError
from augment.plan.samples import label_problem
from augment.render.boxes import Box
from augment.storage import jsontext

BOXES_FILE = "bounding_boxes.labels"
INFO_FILE = "info.labels"
LABELS_FILES = (BOXES_FILE, INFO_FILE)
MAX_COORDINATE = 1_000_000  # pixels; beyond this a box value is a broken file, not an image
WARNINGS_PER_FILE = 20  # duplicate-entry warnings logged per labels file; the rest are counted in one line


class LabelsError(BlockError, ValueError):
    """A labels file is malformed; the message names the file and the entry."""


def parse_boxes_file(text: str, where: str, warnings: list[str] | None = None) -> dict[str, tuple[Box, ...]]:
    """``bounding_boxes.labels`` -> {file name: boxes}; duplicated entries are noted in ``warnings``."""
    notes: list[str] = []
    data = _load(text, where, notes)
    if data.get("version") != 1 or data.get("type") != "bounding-box-labels":
        raise LabelsError(f"{where}: expected version 1 and type 'bounding-box-labels'")
    entries = data.get("boundingBoxes")
    if not isinstance(entries, dict):
        raise LabelsError(f"{where}: 'boundingBoxes' must be an object of file name -> list of boxes")
    out = {name: _boxes(boxes, f"{where}: {name!r}", notes) for name, boxes in entries.items()}
    _summarise(notes, where, warnings)
    return out


def parse_info_file(text: str, where: str, warnings: list[str] | None = None) -> dict[str, tuple[Box, ...]]:
    """EI's ``info.labels`` export -> {relative path: boxes} for the files that have boxes."""
    notes: list[str] = []
    data = _load(text, where, notes)
    files = data.get("files")
    if data.get("version") != 1 or not isinstance(files, list):
        raise LabelsError(f"{where}: expected version 1 and a 'files' list")
    out: dict[str, tuple[Box, ...]] = {}
    for i, entry in enumerate(files):
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise LabelsError(f"{where}: files[{i}] needs a 'path'")
        if "boundingBoxes" in entry:
            if entry["path"] in out:
                notes.append(f"{where}: {entry['path']!r} is listed more than once; the last entry is used")
            out[entry["path"]] = _boxes(entry["boundingBoxes"], f"{where}: files[{i}] ({entry['path']})", notes)
    _summarise(notes, where, warnings)
    return out


def _summarise(notes: list[str], where: str, warnings: list[str] | None) -> None:
    """The first ``WARNINGS_PER_FILE`` notes of a labels file, then one line counting the rest."""
    if warnings is None:
        return
    warnings += notes[:WARNINGS_PER_FILE]
    if len(notes) > WARNINGS_PER_FILE:
        warnings.append(f"{where}: {len(notes) - WARNINGS_PER_FILE} more duplicated entries like these (not listed)")


def labels_file_text(boxes_by_name: dict[str, list[dict[str, Any]]]) -> str:
    """A ``bounding_boxes.labels`` document (sorted, so reruns write the same bytes)."""
    body = {"version": 1, "type": "bounding-box-labels", "boundingBoxes": dict(sorted(boxes_by_name.items()))}
    return json.dumps(body, indent=1, sort_keys=True) + "\n"


def boxes_by_key(
    labels_keys: list[str], read_text: Callable[[str], str], warnings: list[str] | None = None
) -> dict[str, tuple[Box, ...]]:
    """Every box the labels files list, by the key of the image it belongs to."""
    by_key: dict[str, tuple[Box, ...]] = {}
    source_of: dict[str, str] = {}
    overlaps: dict[tuple[str, str], list[str]] = {}  # (earlier file, later file) -> images in both
    for key in sorted(labels_keys, key=lambda k: posixpath.basename(k) == BOXES_FILE):  # per-folder files win
        folder = posixpath.dirname(key)
        parse = parse_boxes_file if posixpath.basename(key) == BOXES_FILE else parse_info_file
        try:
            text = read_text(key)
        except UnicodeDecodeError:
            raise LabelsError(f"{key}: not UTF-8 text") from None
        except OSError as e:  # a FIFO or device named like a labels file, gone, unreadable, too large
            raise LabelsError(f"{key}: cannot read: {e.strerror or e}") from None
        for name, boxes in parse(text, key, warnings).items():
            image = posixpath.normpath(posixpath.join(folder, name)) if folder else posixpath.normpath(name)
            if image in source_of:
                overlaps.setdefault((source_of[image], key), []).append(image)
            by_key[image], source_of[image] = boxes, key
    for (earlier, later), images in overlaps.items() if warnings is not None else ():
        who = f"{images[0]!r}" + (f" and {len(images) - 1} more images" if len(images) > 1 else "")
        warnings.append(f"{who} have boxes in {earlier} and in {later}; those in {later} are used")
    return by_key


def with_boxes(sample: Any, by_key: dict[str, tuple[Box, ...]], override: str | None) -> Any:
    """``sample`` with its boxes (none listed: ``()``, an image with no objects in a detection dataset)."""
    boxes = by_key.get(sample.key)
    if boxes is None:
        return replace(sample, boxes=())
    label = sample.label
    if override is None and "/" not in sample.key and "." not in posixpath.splitext(sample.key)[0] and boxes:
        label = sorted(Counter(b.label for b in boxes).items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    return replace(sample, label=label, boxes=boxes)


def _load(text: str, where: str, warnings: list[str] | None = None) -> dict[str, Any]:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        data = dict(items)
        if len(data) < len(items) and warnings is not None:  # keys repeated: say which, once per object
            seen: set[str] = set()
            repeated = [k for k, _ in items if k in seen or seen.add(k)]
            more = f" ({len(repeated) - 1} more repeated keys in this object)" if len(repeated) > 1 else ""
            warnings.append(f"{where}: {repeated[0]!r} appears more than once; the last one is used{more}")
        return data

    try:
        data = jsontext.loads(text.removeprefix("\ufeff"), object_pairs_hook=pairs)  # a BOM: Windows tools write it
    except json.JSONDecodeError as e:
        raise LabelsError(f"{where}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except jsontext.NumberTooLong as e:
        raise LabelsError(f"{where}: {e}") from None
    except RecursionError:
        raise LabelsError(f"{where}: nested too deeply") from None
    if not isinstance(data, dict):
        raise LabelsError(f"{where}: expected a JSON object")
    return data


def _boxes(raw: Any, where: str, warnings: list[str] | None = None) -> tuple[Box, ...]:
    if not isinstance(raw, list):
        raise LabelsError(f"{where}: expected a list of boxes")
    boxes: list[Box] = []
    seen: set[tuple[str, float, float, float, float]] = set()
    repeats: list[int] = []
    for i, box in enumerate(raw):
        if not isinstance(box, dict):
            raise LabelsError(f"{where}[{i}]: expected an object with label, x, y, width, height")
        label = box.get("label")
        if not isinstance(label, str):
            raise LabelsError(f"{where}[{i}]: 'label' must be a string, got {label!r}")
        if problem := label_problem(label):
            raise LabelsError(f"{where}[{i}]: label {label!r} {problem}")
        values = [box.get(k) for k in ("x", "y", "width", "height")]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise LabelsError(f"{where}[{i}]: x, y, width and height must be numbers, got {values}")
        if values[2] <= 0 or values[3] <= 0:
            raise LabelsError(f"{where}[{i}]: width and height must be positive, got {values[2]} x {values[3]}")
        if any(abs(v) > MAX_COORDINATE for v in values):
            raise LabelsError(f"{where}[{i}]: x, y, width and height must be within ±{MAX_COORDINATE} px, got {values}")
        box = Box(label, *(float(v) for v in values), where=f"{where}[{i}]")
        identity = (box.label, box.x, box.y, box.width, box.height)
        if identity in seen:
            repeats.append(i)
            continue
        seen.add(identity)
        boxes.append(box)
    if repeats and warnings is not None:
        more = f" (and {len(repeats) - 1} more in this list)" if len(repeats) > 1 else ""
        warnings.append(f"{where}[{repeats[0]}]: the same box as an earlier entry{more}; kept once")
    return tuple(boxes)
