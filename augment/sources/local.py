"""A local (or mounted) folder, or a single file, as a source of labelled images."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from augment.boxes import BOXES_FILE, LABELS_FILES, attach
from augment.codec import IMAGE_EXTENSIONS
from augment.samples import Sample, label_for_key, label_from_name
from augment.sources import Listing, SourceError

# Folders that are never data (macOS, notebooks, version control).
_IGNORED_DIRS = {"__MACOSX", ".ipynb_checkpoints", ".git"}


@dataclass(frozen=True)
class LocalSource:
    """Images under ``root``; with ``only`` set, just that one file (EI's file mode)."""

    root: Path
    only: str | None = None
    label: str | None = None  # overrides every label (EI's --upload-label)
    exclude: Path | None = None  # an out-directory inside root (EI's runner mounts /data/out in /data)

    @classmethod
    def from_file(cls, path: Path, label: str | None = None) -> LocalSource:
        """One file. Its key is ``<name>`` when it sits in a flat folder of ``<label>.<uid>`` files (its parent
        is not its label), else ``<parent>/<name>``: the key the file has in directory mode, so both modes
        give it the same outputs."""
        path = path.absolute()
        if not path.is_file():
            raise SourceError(f"--in-file: {path} does not exist or is not a file")
        prefix = label_from_name(path.name)
        if prefix and prefix != path.parent.name:
            return cls(path.parent, path.name, label)
        return cls(path.parent.parent, f"{path.parent.name}/{path.name}", label)

    def describe(self) -> str:
        return str(self.root / self.only) if self.only else str(self.root)

    def list(self) -> Listing:
        if self.only is not None:
            key = self.only
            beside = str(PurePosixPath(key).parent / BOXES_FILE).removeprefix("./")
            labels = [beside] if (self.root / beside).is_file() else []
            return Listing(attach([self._sample(key, self.root / key)], labels, self._text, self.label))
        if not self.root.is_dir():
            raise SourceError(f"--in-directory: {self.root} does not exist or is not a folder")
        listing = Listing()
        for dirpath, dirnames, filenames in os.walk(self.root, onerror=_raise):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _IGNORED_DIRS)
            if self.exclude is not None and here == self.exclude:
                dirnames[:] = []
                continue
            found = 0
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = here / name
                key = path.relative_to(self.root).as_posix()
                if name in LABELS_FILES:
                    listing.labels_files.append(key)
                    continue
                if path.suffix.lower() not in IMAGE_EXTENSIONS:
                    listing.skipped.append((key, "not an image file (by extension)"))
                    continue
                listing.samples.append(self._sample(key, path))
                found += 1
            if not found and not dirnames and here != self.root:
                listing.empty_folders.append(here.relative_to(self.root).as_posix())
        listing.samples.sort(key=lambda s: s.key)
        listing.samples = attach(listing.samples, listing.labels_files, self._text, self.label)
        return listing

    def _text(self, key: str) -> str:
        return (self.root / key).read_text(encoding="utf-8")

    def read(self, sample: Sample) -> bytes:
        return (self.root / sample.key).read_bytes()

    def _sample(self, key: str, path: Path) -> Sample:
        stat = path.stat()
        label = self.label or label_for_key(key, self.root.name)
        return Sample(key, label, stat.st_size, stat.st_mtime)


def _raise(error: OSError) -> None:
    raise SourceError(f"cannot read {error.filename}: {error.strerror}")
