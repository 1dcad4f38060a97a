"""A local (or mounted) output folder. Every write is a temp file renamed into place."""

from __future__ import annotations

import ctypes
import itertools
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from augment.libc import libc
from augment.plan.selection import Shard
from augment.sinks import Journal, Sink, SinkError
from augment.sinks.lock import FolderLock, remove_stale_temps
from augment.storage.files import read_regular


def _libc() -> ctypes.CDLL | None:
    """The C library when it has ``syncfs`` (Linux), else None (then ``os.sync``)."""
    c = libc()
    return c if c is not None and hasattr(c, "syncfs") else None


_LIBC = _libc()


@dataclass(frozen=True)
class LocalSink(Sink):
    root: Path
    tag: str = "u"  # in temp file names: which run's place wrote them (``lock.temp_tag``)

    def describe(self) -> str:
        return str(self.root)

    @property
    def local_root(self) -> Path:
        return self.root

    @cached_property
    def _resolved_root(self) -> Path:
        return _real(self.root)

    @cached_property
    def _made(self) -> set[Path]:
        return set()  # folders this sink has made

    @cached_property
    def _folders(self) -> dict[str, Path]:
        return {}  # relative folder -> resolved and checked (one realpath per folder, not per output)

    def path(self, name: str) -> Path:
        """Where ``name`` lands; a name that would land outside the folder (``..``, links) is refused."""
        parent, _, leaf = name.rpartition("/")
        if leaf in ("", ".", ".."):
            folder, leaf = self._checked(_real(self.root / name), name), ""
        elif (folder := self._folders.get(parent)) is None:
            folder = self._checked(_real(self.root / parent), name)
            self._folders[parent] = folder
        return folder / leaf if leaf else folder

    def _checked(self, path: Path, name: str) -> Path:
        if not path.is_relative_to(self._resolved_root):
            raise SinkError(f"refusing to write {name!r}: it would land outside {self.root}")
        return path

    def lock(self, shard: Shard, wait: float) -> FolderLock:
        """This run's place in the folder (not yet taken): keeps out runs that must not write beside it."""
        return FolderLock(self.root, shard, wait)

    def names(self, skip: str | None = None) -> Iterator[str]:
        root = self.root.resolve()
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            folder = here.relative_to(root).as_posix()
            dirnames[:] = sorted(
                d for d in dirnames if not d.startswith(".") and (skip is None or _joined(folder, d) != skip)
            )
            for name in sorted(filenames):
                yield _joined(folder, name)

    def remove_stale_temps(self, lock: FolderLock | None) -> int:
        """Remove temp files left by killed runs (see ``lock.remove_stale_temps``); how many."""
        return remove_stale_temps(self.root, lock) if self.root.is_dir() else 0

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def write(self, name: str, data: bytes) -> None:
        """Write ``data`` to ``name`` atomically: readers see the old file or the whole new one."""
        _atomic_write(self.path(name), [data], self.tag, self._made)

    def delete(self, name: str) -> None:
        try:
            self.path(name).unlink(missing_ok=True)
        except OSError as e:
            raise SinkError(f"cannot remove {self.path(name)}: {e.strerror or e}") from None

    def read_text(self, name: str) -> str | None:
        path = self.path(name)
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def write_text(self, name: str, text: str) -> None:
        self.write(name, text.encode("utf-8"))

    def write_lines(self, name: str, lines: Iterable[str], journal: Journal | None = None) -> None:
        """Each line plus a newline, written atomically and durably (fsync of the file and its folder),
        streamed (the manifest of a large run is many MB); ``journal`` closed first."""
        if journal is not None:
            journal.close()
        lines_ = ((line + "\n").encode("utf-8", "surrogateescape") for line in lines)
        _atomic_write(self.path(name), lines_, self.tag, self._made, durable=True)

    def read_lines(self, name: str) -> Iterator[str] | None:
        path = self.path(name)
        if not path.is_file():
            return None
        return _lines(path)

    def open_journal(self, name: str, header: str | None) -> LocalJournal:
        path = self.path(name)
        if header is not None:
            _atomic_write(path, [(header + "\n").encode("utf-8")], self.tag, self._made, durable=True)
        return LocalJournal(path)

    def size(self, name: str) -> int | None:
        """Bytes of the output ``name`` (a regular file), or None if it is not there."""
        try:
            st = self.path(name).stat()
        except OSError:
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def read(self, name: str) -> bytes | None:
        try:
            return read_regular(self.path(name))
        except OSError:
            return None

    def sync(self) -> None:
        """Flush every output written so far to disk: one ``syncfs`` of the output file system (an fsync per
        output costs ~3.5 ms each on ext4 here, more than encoding a small image), before the manifest that
        records them is saved; a crash then never leaves a recorded output empty."""
        if self.root.is_dir():
            _syncfs(self.root)


_TEMP_IDS = itertools.count()


def _syncfs(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        if _LIBC is None or _LIBC.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(target: Path, chunks: Iterable[bytes], tag: str, made: set[Path], durable: bool = False) -> None:
    """Write ``chunks`` to a temp file beside ``target``, then rename it into place (never a partial file);
    ``made``: the folders the sink has made (one mkdir per folder, not per file); ``durable``: fsync the file
    before, and its folder after, the rename."""
    try:
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        try:
            fd, tmp = _temp_file(target.parent, target.suffix, tag)
        except FileNotFoundError:  # the folder went away since this process made it
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = _temp_file(target.parent, target.suffix, tag)
    except OSError as e:
        raise SinkError(f"cannot write {target}: {e.strerror}") from None
    try:
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        if durable:
            _fsync_folder(target.parent)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise SinkError(f"cannot write {target}: {e.strerror}") from None
        raise


def _temp_file(folder: Path, suffix: str, tag: str) -> tuple[int, str]:
    """A new ``.tmp-<tag>-<pid>-<n><suffix>`` in ``folder``, open for writing; mode 0666 less the umask, as any
    tool creates files (0644 under the usual 022).

    Named from the process id and a counter instead of ``tempfile.mkstemp``'s random names (cheaper per
    file); O_EXCL still guarantees the file is new and ours. A folder removed since it was made is remade.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = os.path.join(folder, f".tmp-{tag}-{os.getpid()}-{next(_TEMP_IDS)}{suffix}")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        except FileNotFoundError:
            folder.mkdir(parents=True, exist_ok=True)
            continue
        return fd, tmp


def _joined(folder: str, name: str) -> str:
    return name if folder == "." else f"{folder}/{name}"


def _real(path: Path) -> Path:
    """``path`` with every link resolved (a looping link is left as it is: writing through it then fails)."""
    return Path(os.path.realpath(path))


def _lines(path: Path) -> Iterator[str]:
    with path.open("r", encoding="utf-8", errors="surrogateescape", newline="\n") as f:
        for line in f:
            yield line.rstrip("\n")


class LocalJournal(Journal):
    """Lines appended to a file (flushed to the OS at each append, so a killed process loses none; fsync'ed
    at ``sync``). A file a hard kill cut mid-line is first ended with a newline."""

    def __init__(self, path: Path) -> None:
        try:
            self._file = path.open("ab")
            if self._file.tell() and not _ends_with_newline(path):
                self._file.write(b"\n")
        except OSError as e:
            raise SinkError(f"cannot write {path}: {e.strerror}") from None
        self._path = path

    def append(self, lines: list[str]) -> None:
        try:
            self._file.write("".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape"))
            self._file.flush()
        except OSError as e:
            raise SinkError(f"cannot write {self._path}: {e.strerror}") from None

    def sync(self) -> None:
        if self._file.closed:
            return
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as e:
            raise SinkError(f"cannot write {self._path}: {e.strerror}") from None

    def close(self) -> None:
        if not self._file.closed:
            self.sync()
            self._file.close()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
