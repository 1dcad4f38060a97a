"""A local (or mounted) folder, or a single file, as a source of labelled images."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from augment.plan.labels import BOXES_FILE, LABELS_FILES
from augment.plan.samples import Sample, label_for_key, label_from_name
from augment.render.codec import IMAGE_EXTENSIONS
from augment.sources import IGNORED_DIRS, Listing, Source, SourceError
from augment.storage.files import MAX_FILE_BYTES, read_regular, refusal
from augment.storage.overlap import below, identity


@dataclass(frozen=True)
class LocalSource(Source):
    """Images under ``root``; with ``only`` set, just that one file (EI's file mode)."""

    root: Path
    only: str | None = None
    label: str | None = None  # overrides every label (EI's --upload-label)
    exclude: Path | None = None  # the out-directory: never read, however it is reached (EI's runner mounts
    # /data/out in /data; a symlink in the input may point at it)

    @classmethod
    def from_file(cls, path: Path, label: str | None = None) -> LocalSource:
        """One file. Its key is ``<name>`` when it sits in a flat folder of ``<label>.<uid>`` files (its parent
        is not its label), else ``<parent>/<name>``: the key the file has in directory mode, so both modes
        give it the same outputs."""
        path = path.absolute()
        if not path.is_file():
            raise SourceError(f"--in-file: {path} does not exist or is not a file")
        if reason := refusal(path.stat()):
            raise SourceError(f"--in-file: {path}: {reason}")
        prefix = label_from_name(path.name)
        if prefix and prefix != path.parent.name:
            return cls(path.parent, path.name, label)
        return cls(path.parent.parent, f"{path.parent.name}/{path.name}", label)

    def describe(self) -> str:
        return str(self.root / self.only) if self.only else str(self.root)

    def scan(self, listing: Listing) -> Iterator[Sample]:
        if self.only is not None:
            key = self.only
            beside = str(PurePosixPath(key).parent / BOXES_FILE).removeprefix("./")
            listing.labels_files += [beside] if (self.root / beside).is_file() else []
            yield self._sample(key, (self.root / key).stat())
            return
        if not self.root.is_dir():
            raise SourceError(f"--in-directory: {self.root} does not exist or is not a folder")
        # Links to folders and files are followed; a link back to a folder being walked (a loop) is not, nor
        # the output folder (by identity: a symlink or bind mount to it, or to a folder inside it).
        ancestors: dict[str, frozenset[tuple[int, int]]] = {str(self.root): frozenset({_identity(self.root)})}
        out = (self.exclude, identity(self.exclude)) if self.exclude is not None else None
        for dirpath, dirnames, filenames in os.walk(self.root, onerror=_raise, followlinks=True):
            here = Path(dirpath)
            kept = []
            for d in sorted(d for d in dirnames if not d.startswith(".") and d not in IGNORED_DIRS):
                reason, identity_ = _folder_link(here / d, ancestors[dirpath])
                linked = (here / d).is_symlink()
                if not reason and out is not None and identity_ == out[1] and not linked:
                    continue  # the output folder itself inside the input (as EI mounts it): left out quietly
                if not reason and out is not None and linked and below(out[0], here / d) is not None:
                    reason = f"symlink into the output folder {out[0]}; outputs are never read as inputs"
                if reason:
                    listing.skip((here / d).relative_to(self.root).as_posix(), reason)
                    continue
                ancestors[os.path.join(dirpath, d)] = ancestors[dirpath] | {identity_}
                kept.append(d)
            dirnames[:] = kept
            found = 0
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = here / name
                key = path.relative_to(self.root).as_posix()
                try:
                    stat = path.stat()  # follows a link; a broken or looping one raises
                except OSError as e:
                    listing.skip(key, _link_problem(path, e))
                    continue
                if out is not None and path.is_symlink() and below(out[0], path) is not None:
                    listing.skip(key, f"symlink into the output folder {out[0]}; outputs are never read as inputs")
                    continue
                if name in LABELS_FILES:
                    listing.labels_files.append(key)
                    continue
                if path.suffix.lower() not in IMAGE_EXTENSIONS:
                    listing.skip(key, "not an image file (by extension)")
                    continue
                if reason := refusal(stat):
                    listing.skip(key, reason)
                    continue
                yield self._sample(key, stat)
                found += 1
            if not found and not dirnames and here != self.root:
                listing.empty_folders.append(here.relative_to(self.root).as_posix())

    def read_text(self, key: str) -> str:
        return read_regular(self.root / key, MAX_FILE_BYTES).decode("utf-8")

    def read(self, sample: Sample) -> bytes:
        return read_regular(self.root / sample.key)

    def _sample(self, key: str, stat: os.stat_result) -> Sample:
        label = self.label or label_for_key(key, self.root.name)
        # --since: the later of mtime and ctime. Tools keep an old mtime (cp -p, rsync -a, tar, unzip); the
        # kernel sets ctime whenever the file is created, renamed or written, and nothing sets it back.
        return Sample(key, label, stat.st_size, max(stat.st_mtime, stat.st_ctime))


def _raise(error: OSError) -> None:
    raise SourceError(f"cannot read {error.filename}: {error.strerror}")


def _identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


def _folder_link(path: Path, ancestors: frozenset[tuple[int, int]]) -> tuple[str | None, tuple[int, int]]:
    """(why a sub-folder is not walked, or None; its identity). A link to one of its own ancestors loops."""
    try:
        identity = _identity(path)
    except OSError as e:
        return _link_problem(path, e), (0, 0)
    if identity in ancestors:
        return f"symlink loop (it points back to {os.path.realpath(path)!s}); not followed", identity
    return None, identity


def _link_problem(path: Path, error: OSError) -> str:
    """A skip reason for a path that cannot be stat'ed through its links."""
    if path.is_symlink():
        target = os.readlink(path)
        if error.errno == errno.ELOOP:
            return f"symlink loop ({target!r})"
        return f"broken symlink (to {target!r}: {error.strerror})"
    return f"cannot read: {error.strerror}"
