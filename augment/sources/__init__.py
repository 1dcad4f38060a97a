"""Where samples come from. Each source lists samples and reads their bytes; it knows nothing of sinks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from augment.errors import BlockError
from augment.plan.samples import Sample

IGNORED_DIRS = {"__MACOSX", ".ipynb_checkpoints", ".git"}  # folders that are never data (macOS, notebooks, git)


class SourceError(BlockError, RuntimeError):
    """The source as a whole cannot be read (missing folder, no access); the run cannot start."""


LISTED_SKIPS = 1000  # skipped files kept for the report (all are counted, and logged as they are found)


@dataclass
class Listing:
    """What a source holds: samples in a stable order, plus what it skipped and why."""

    samples: list[Sample] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (key, reason): the first LISTED_SKIPS
    skipped_count: int = 0
    empty_folders: list[str] = field(default_factory=list)
    labels_files: list[str] = field(default_factory=list)  # bounding_boxes.labels / info.labels keys
    warnings: list[str] = field(default_factory=list)  # e.g. duplicated labels-file entries
    on_skip: Callable[[str, str], None] | None = None  # told of each skipped file as it is found

    def skip(self, key: str, reason: str) -> None:
        """A file (or folder) at ``key`` is not read, for ``reason``."""
        self.skipped_count += 1
        if len(self.skipped) < LISTED_SKIPS:
            self.skipped.append((key, reason))
        if self.on_skip is not None:
            self.on_skip(key, reason)


class Source:
    """A place holding labelled images. A run streams ``scan`` into its on-disk index
    (``augment.run.prepare.list_source``, which attaches the labels files' boxes)."""

    label: str | None = None  # overrides every label (EI's --upload-label)

    def describe(self) -> str:
        raise NotImplementedError

    def scan(self, listing: Listing) -> Iterator[Sample]:
        """Every sample, in no particular order and without boxes; what is skipped, the labels files and
        any warnings go into ``listing`` (complete once the iterator is exhausted)."""
        raise NotImplementedError

    def read(self, sample: Sample) -> bytes:
        """A sample's bytes (OSError: this one is gone or unreadable; SourceError: the whole source is)."""
        raise NotImplementedError

    def read_text(self, key: str) -> str:
        """A labels file's text."""
        raise NotImplementedError

    def prefetch(self, samples: list[Sample]) -> None:
        """Start reading ``samples`` in the background, the run's first sources (``read`` then answers from
        it); a no-op where a read costs no round trip."""
