"""Samples (one labelled source image each), label rules, stable keys and output names."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from augment.render.boxes import Box

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


def has_control_characters(text: str) -> bool:
    """C0 controls or DEL: what breaks a log line, a header or a file name."""
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def label_problem(label: str) -> str | None:
    """Why ``label`` cannot be a class label (given by --upload-label or in a labels file), or None: the
    block's one rule; a label must also survive EI's upload header (control characters refused there)."""
    if not label.strip():
        return "is empty"
    if has_control_characters(label):
        return "has control characters"
    if "/" in label or "\\" in label:
        return "has a slash"
    if label.strip() in (".", ".."):
        return "is not a label"
    return None


def ei_label_issue(label: str) -> str | None:
    """Why EI would misread ``label`` from a file name (it keeps ``^[a-zA-Z0-9\\s_-]+``), or None."""
    match = _EI_LABEL.match(label)
    read = match.group(0) if match else ""
    return None if read == label else f"EI reads it from file names as {read!r}" if read else "EI reads no label"


def folded(name: str) -> str:
    """``name`` as a case-insensitive, normalisation-insensitive file system sees it (Unicode's canonical
    caseless match): ``É.png``, ``é.png`` and ``e\u0301.png`` are one file on macOS and in Edge Impulse."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


def printable(text: str) -> str:
    """``text`` with control characters escaped, so a file name never breaks a log line; the bytes of a
    name that is not valid UTF-8 (surrogate-escaped by Python) show as ``\\xe9``."""
    return "".join(c if c.isprintable() else f"\\x{_byte(c):02x}" for c in text)


def _byte(c: str) -> int:
    return ord(c) - 0xDC00 if 0xDC80 <= ord(c) <= 0xDCFF else ord(c)


MAX_NAME_BYTES = 255  # longest file name (one path segment) on Linux file systems


def fs_bytes(text: str) -> bytes:
    """``text`` as the file system stores it (UTF-8; undecodable bytes of a name kept as they were)."""
    return text.encode("utf-8", "surrogateescape")


def _cut(text: str, limit: int) -> str:
    """The longest start of ``text`` that is at most ``limit`` bytes on disk (whole characters)."""
    total = 0
    for i, c in enumerate(text):
        total += len(fs_bytes(c))
        if total > limit:
            return text[:i]
    return text


def fit_name(head: str, tail: str, key: str) -> str:
    """``head + tail`` if it fits in a file name, else ``head`` cut short plus ``~<hash of key>`` before
    ``tail``: unique per source (the key) and the same in every run."""
    if len(fs_bytes(head + tail)) <= MAX_NAME_BYTES:
        return head + tail
    mark = f"~{stable_hash(key):016x}"
    return _cut(head, MAX_NAME_BYTES - len(fs_bytes(mark + tail))) + mark + tail


def _clean(text: str) -> str:
    return "".join("_" if ord(c) < 32 or ord(c) == 127 else c for c in text)


def stable_hash(text: str) -> int:
    """A 64-bit hash of ``text`` that is the same on every machine and Python run (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(fs_bytes(text)).digest()[:8], "big")  # = UTF-8 for valid text


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
    return output_names(sample, [variant], extension, layout)[0]


def output_names(sample: Sample, variants: list[str], extension: str, layout: str) -> list[str]:
    """``output_name`` for each of ``variants`` (the key is parsed once)."""
    path = PurePosixPath(_clean(sample.key))
    stem = path.stem
    if stem.startswith(sample.label + ".") and len(stem) > len(sample.label) + 1:
        stem = stem[len(sample.label) + 1 :]
    parents = list(path.parts[:-1])
    label = _clean(sample.label)
    if layout == "folders":
        folder = "/".join(parents) if parents else label
        return [f"{folder}/{fit_name(f'{label}.{stem}', f'.{v}{extension}', sample.key)}" for v in variants]
    if parents and parents[-1] == sample.label:
        parents = parents[:-1]
    head = f"{label}.{'_'.join([*parents, stem])}"
    return [fit_name(head, f".{v}{extension}", sample.key) for v in variants]
