"""What an output folder holds beside the outputs: images no manifest records, per-shard file names, and
the ``bounding_boxes.labels`` of each folder.

The manifest header is written before the first output, so every file a run of these settings wrote is
either recorded or was cut off by a hard kill; a rerun regenerates planned outputs that are not recorded
(the same bytes, so it adopts them verified). Images that are neither planned nor recorded by any manifest
in the folder belong to someone or something else: the run refuses to write beside them.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Iterable
from pathlib import Path

from augment.boxes import BOXES_FILE, labels_file_text
from augment.codec import IMAGE_EXTENSIONS
from augment.config import RunConfig
from augment.plan import Task
from augment.report import MANIFEST, Manifest
from augment.samples import printable
from augment.selection import Shard
from augment.sinks import Sink

_OWN = ("preview.png", "preview-")  # contact sheets the block writes at the top level


def recorded_by_manifests(root: Path, books: str = "") -> set[str]:
    """Outputs recorded by every ``manifest*.jsonl`` in ``root``'s bookkeeping folder ``books`` (this run's and
    other shards')."""
    names: set[str] = set()
    for path in (root / books).glob("manifest*.jsonl"):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()[1:]
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            try:
                names.add(json.loads(line)["output"])
            except (ValueError, KeyError, TypeError):
                continue
    return names


def unrecorded_images(root: Path, known: Iterable[str], skip: Path | None = None) -> list[str]:
    """Image files under ``root`` (relative, posix, sorted) that are not in ``known``; ``skip`` is a folder
    not to look into (an input folder inside the output folder)."""
    if not root.is_dir():
        return []
    known = set(known)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (skip is None or here / d != skip))
        for name in filenames:
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            relative = (here / name).relative_to(root).as_posix()
            if relative not in known and not (here == root and name.startswith(_OWN)):
                found.append(relative)
    return sorted(found)


def foreign_images(config: RunConfig, sink: Sink, plan: list[Task], manifest: Manifest) -> str | None:
    """Why a local output folder cannot be written: it holds images neither planned nor recorded by any
    manifest there (another tool's, or an older version's unrecorded outputs). Planned but unrecorded
    outputs (a run killed before its checkpoint) are simply regenerated."""
    root = getattr(sink, "root", None)
    if not isinstance(root, Path) or not root.is_dir():
        return None
    known = (
        {o.name for t in plan for o in t.outputs} | set(manifest.previous) | recorded_by_manifests(root, config.books)
    )
    inside = config.in_directory.resolve() if config.in_directory is not None else None
    foreign = unrecorded_images(root.resolve(), known, inside)
    if not foreign:
        return None
    return (
        f"{root} holds {len(foreign)} image(s) that no manifest there records and this run would not write"
        f" (e.g. {printable(foreign[0])!r}); move them away or use an empty --out-directory"
    )


def suffixed(name: str, suffix: str) -> str:
    """``manifest.jsonl`` -> ``manifest.shard-0-of-4.jsonl``."""
    stem, dot, ext = name.rpartition(".")
    return f"{stem}{suffix}{dot}{ext}" if suffix else name


def write_box_labels(sink: Sink, manifest: Manifest, order: list[str], shard: Shard, books: str = "") -> None:
    """A ``bounding_boxes.labels`` in every output folder that holds images with boxes.

    Shards sharing a folder each write the union of every shard manifest present, so the last shard to
    finish leaves complete files (two shards finishing at the same instant can still race: rerun one)."""
    lines = manifest.entries(order)
    for other in range(shard.count if shard.active else 0):
        if other != shard.index:
            text = sink.read_text(books + suffixed(MANIFEST, Shard(other, shard.count).suffix())) or ""
            lines += text.splitlines()[1:]
    folders: dict[str, dict[str, list]] = {}
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # another shard's manifest, cut by a hard kill
            continue
        if "boxes" in entry:
            folder, filename = posixpath.split(entry["output"])
            folders.setdefault(folder, {})[filename] = entry["boxes"]
    for folder, boxes in folders.items():
        sink.write_text(posixpath.join(folder, BOXES_FILE), labels_file_text(boxes))
