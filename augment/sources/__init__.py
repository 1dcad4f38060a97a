"""Where samples come from. Each source lists samples and reads their bytes; it knows nothing of sinks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from augment.samples import Sample


class SourceError(RuntimeError):
    """The source as a whole cannot be read (missing folder, no access); the run cannot start."""


@dataclass
class Listing:
    """What a source holds: samples in a stable order, plus what it skipped and why."""

    samples: list[Sample] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)
    empty_folders: list[str] = field(default_factory=list)
    labels_files: list[str] = field(default_factory=list)  # bounding_boxes.labels / info.labels keys
    warnings: list[str] = field(default_factory=list)  # e.g. duplicated labels-file entries


class Source(Protocol):
    def describe(self) -> str: ...

    def list(self) -> Listing: ...

    def read(self, sample: Sample) -> bytes: ...
