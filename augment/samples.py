"""Samples (one labelled source image each), label rules, stable keys and output names."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from augment.boxes import Box

ORIGINAL = "orig"  # variant name of an original copied through


@dataclass(frozen=True, slots=True)
class Sample:
    """A source image. ``key`` is its path relative to the input root (posix), stable across runs."""

    key: str
    label: str
    size: int = 0  # bytes, when the source knows it
    mtime: float | None = None
    boxes: tuple[Box, ...] | None = None  # None: not a detection dataset; () an image with no objects

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.key).suffix


_EI_LABEL = re.compile(r"^[a-zA-Z0-9\s_-]+")  # how EI reads a label off a file name's start


def ei_label_issue(label: str) -> str | None:
    """Why EI would misread ``label`` from a file name (it keeps ``^[a-zA-Z0-9\\s_-]+``), or None."""
    match = _EI_LABEL.match(label)
    read = match.group(0) if match else ""
    return None if read == label else f"EI reads it from file names as {read!r}" if read else "EI reads no label"


def printable(text: str) -> str:
    """``text`` with control characters escaped, so a file name never breaks a log line."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _clean(text: str) -> str:
    return "".join("_" if ord(c) < 32 or ord(c) == 127 else c for c in text)


def stable_hash(text: str) -> int:
    """A 64-bit hash of ``text`` that is the same on every machine and Python run (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def label_from_name(filename: str) -> str | None:
    """The label of a ``<label>.<uid>.<ext>`` file name (the workshop's flat layout), else None."""
    stem = PurePosixPath(filename).stem
    label, dot, rest = stem.partition(".")
    return label if dot and label and rest else None


def label_for_key(key: str, root_name: str) -> str:
    """Label of a file at ``key`` under an input folder named ``root_name``.

    In a class sub-folder: the folder's name. At the top level: the ``<label>.`` name prefix, else the
    input folder's own name (EI's directory mode can hand one class folder to a run).
    """
    path = PurePosixPath(key)
    if len(path.parts) > 1:
        return path.parts[-2]
    return label_from_name(path.name) or root_name


def output_name(sample: Sample, variant: str, extension: str, layout: str) -> str:
    """Relative output path: ``<folder>/<label>.<stem>.<variant><ext>`` (folders) or flat.

    The label prefix lets EI infer the label from the file name. Folders keep the source's relative
    folder (or ``<label>/`` for flat sources); the flat layout folds parent folders into the stem so
    names stay unique.
    """
    path = PurePosixPath(_clean(sample.key))
    stem = path.stem
    if stem.startswith(sample.label + ".") and len(stem) > len(sample.label) + 1:
        stem = stem[len(sample.label) + 1 :]
    filename = f"{_clean(sample.label)}.{{stem}}.{variant}{extension}"
    parents = list(path.parts[:-1])
    if layout == "folders":
        folder = "/".join(parents) if parents else _clean(sample.label)
        return f"{folder}/{filename.format(stem=stem)}"
    if parents and parents[-1] == sample.label:
        parents = parents[:-1]
    return filename.format(stem="_".join([*parents, stem]))
