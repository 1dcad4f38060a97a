"""What an output folder holds beyond the manifest: images no manifest records.

The manifest header is written before the first output, so every file a run of these settings wrote is
either recorded or was cut off by a hard kill; a rerun regenerates planned outputs that are not recorded
(the same bytes, so it adopts them verified). Images that are neither planned nor recorded by any manifest
in the folder belong to someone or something else: the run refuses to write beside them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from augment.codec import IMAGE_EXTENSIONS

_OWN = ("preview.png", "preview-")  # contact sheets the block writes at the top level


def recorded_by_manifests(root: Path) -> set[str]:
    """Outputs recorded by every ``manifest*.jsonl`` at ``root`` (this run's and other shards')."""
    names: set[str] = set()
    for path in root.glob("manifest*.jsonl"):
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
