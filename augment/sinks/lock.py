"""Who may write an output folder: one lock file, ``.edge-augment.lock``, for every run whatever its shard.

Runs hold open-file-description locks (Linux ``F_OFD_SETLK``) on single bytes of that file. The kernel drops
them when the last descriptor closes, however the process dies (SIGKILL, OOM, a container stopped), so
"the lock is held" is the only liveness test needed: no pid is trusted (in a container every run is pid 1,
and a zombie keeps its pid but no locks). The bytes:

* ``_CHECK``: held exclusively for a moment while a run takes its place, then again while it checks every
  manifest in the folder and writes its own header, so runs starting together check one after the other;
* ``_RUN``: an unsharded run holds it exclusively, shards share it: an unsharded run and shards never write
  at once;
* ``_COUNT + N``: the shards of an N-shard job share it; a shard refuses to start beside shards of another
  count (it probes the other bytes while it holds ``_CHECK``, when no run can take one);
* ``_INDEX + I``: shard I's own, exclusively: the same shard cannot run twice at once.

Temp files are named ``.tmp-<tag>-<pid>-<n>`` after the run's place (``u``, or ``s<I>of<N>``), so a run
knows whether a temp file's writer can still be alive: only a running shard of its own job, whose byte is
then locked. Everything else is a killed run's and is removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

from augment.plan.selection import Shard
from augment.sinks import SinkError

LOCK_FILE = ".edge-augment.lock"
_CHECK, _RUN, _COUNT, _INDEX = 0, 1, 2, 1 << 40
_FLOCK = "hhqqi4x"  # struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks)
_TEMP = re.compile(r"^\.tmp-(?:u|s(\d+)of(\d+))-\d+-\d+")
_LEGACY_TEMP = re.compile(r"^\.tmp-\d+-\d+")  # an earlier version's temp file: its pid proves nothing
_SHARED_TEMP_AGE = 600.0  # seconds: beside live shards, an earlier version's temp files this old are leftovers


class FolderBusyError(SinkError):
    """Another live run holds the output folder."""


def temp_tag(shard: Shard) -> str:
    """The part of a temp file's name that says which run's place wrote it."""
    return f"s{shard.index}of{shard.count}" if shard.active else "u"


class FolderLock:
    """This run's place in ``folder`` (``acquire``/``release``, or ``with``); ``checking()`` while it reads
    the folder's manifests and writes its own header."""

    def __init__(self, folder: Path, shard: Shard, wait: float) -> None:
        self.folder = folder
        self.shard = shard
        self.wait = wait  # seconds to wait for another run's check (EDGE_AUGMENT_LOCK_WAIT)
        self.path = folder / LOCK_FILE
        self.fd: int | None = None
        self.made_folder = False

    def acquire(self) -> None:
        if not self.folder.is_dir():
            try:
                self.folder.mkdir(parents=True)
                self.made_folder = True
            except FileExistsError:
                pass
            except OSError as e:
                raise SinkError(f"cannot create {self.folder}: {e.strerror}") from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o666)
            except OSError as e:
                raise SinkError(f"cannot create the lock file {self.path}: {e.strerror}") from None
            try:
                self._hold_check(fd)
            except BaseException:
                os.close(fd)
                raise
            if _same_file(fd, self.path):  # not unlinked by a run that released it meanwhile
                break
            os.close(fd)
        try:
            self._take_place(fd)
        except BaseException:
            with contextlib.suppress(OSError, SinkError):  # refused with _CHECK held: the run in the way may be gone
                _remove_if_unused(fd, self.path)
            os.close(fd)
            raise
        self.fd = fd

    def _take_place(self, fd: int) -> None:
        """With ``_CHECK`` held: this run's bytes, or FolderBusyError naming who is in the way."""
        shard = self.shard
        if shard.active:
            count = _COUNT + shard.count  # below _INDEX: the count is at most selection.MAX_SHARDS
            taken = (
                _lock(fd, fcntl.F_RDLCK, _RUN)
                and not _held(fd, _COUNT, count - _COUNT)
                and not _held(fd, count + 1, _INDEX - count - 1)
                and _lock(fd, fcntl.F_RDLCK, count)
                and _lock(fd, fcntl.F_WRLCK, _INDEX + shard.index)
            )
        else:
            taken = _lock(fd, fcntl.F_WRLCK, _RUN)
        if not taken:
            raise FolderBusyError(
                f"{self.folder} is in use by another run ({_read_owner(fd)}; lock file {self.path.name}); "
                "wait for it to finish or use another --out-directory"
            )
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
        if shard.active:
            owner["shard"] = f"{shard.index} of {shard.count}"
        with contextlib.suppress(OSError):  # who holds it is only for messages (a full disk must not stop here)
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)
        _lock(fd, fcntl.F_UNLCK, _CHECK)

    def _hold_check(self, fd: int) -> None:
        """Take ``_CHECK``, waiting while another run holds it (a moment), but not for ever: a run stopped
        (SIGSTOP, a frozen container) while it checks would hold every other run."""
        wait = self.wait
        deadline = time.monotonic() + wait
        while not _lock(fd, fcntl.F_WRLCK, _CHECK):
            if time.monotonic() > deadline:
                raise FolderBusyError(
                    f"{self.folder}: another run has been checking it for over {wait:g} s ({_read_owner(fd)};"
                    f" lock file {self.path.name}); is it stopped? wait for it or use another --out-directory"
                )
            time.sleep(0.05)

    @contextlib.contextmanager
    def checking(self) -> Iterator[None]:
        """Hold ``_CHECK`` (waiting for a run that holds it): no other run takes a place or writes its
        manifest header meanwhile."""
        if self.fd is None:
            yield
            return
        self._hold_check(self.fd)
        try:
            yield
        finally:
            _lock(self.fd, fcntl.F_UNLCK, _CHECK)

    def alive(self, index: int, count: int) -> bool:
        """Whether shard ``index`` of ``count`` may be writing now: only a sibling of this shard can be live
        beside it, and then its byte is locked."""
        if self.fd is None or not self.shard.active or count != self.shard.count or index == self.shard.index:
            return False
        return _held(self.fd, _INDEX + index, 1)

    def release(self) -> None:
        """Drop the lock; the lock file goes when no other run holds it (an empty folder we made goes too)."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError, SinkError):
            # This run's place goes first, so that a run checking meanwhile never sees it and is never refused
            # by a run already leaving (it would then leave the file behind). _CHECK taken by another run means
            # it is taking its place in this file: keep the file (that run removes it), never wait.
            _lock(self.fd, fcntl.F_UNLCK, _RUN, 0)
            if _lock(self.fd, fcntl.F_WRLCK, _CHECK):
                _remove_if_unused(self.fd, self.path)
        os.close(self.fd)
        self.fd = None
        if self.made_folder:
            with contextlib.suppress(OSError):
                self.folder.rmdir()  # only when the run wrote nothing

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def remove_stale_temps(folder: Path, lock: FolderLock | None) -> int:
    """Delete temp files whose writer is gone (see the module docstring); how many. Without this run's
    ``lock`` held, none are touched."""
    if lock is None or lock.fd is None:
        return 0
    removed = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            path = Path(dirpath) / name
            try:
                if name.startswith(".tmp-") and _stale(name, path, lock):
                    path.unlink()
                    removed += 1
            except OSError:
                continue
    return removed


def _stale(name: str, path: Path, lock: FolderLock) -> bool:
    """Whether the temp file ``name`` was left by a run that is gone."""
    match = _TEMP.match(name)
    if match is not None:
        return match.group(1) is None or not lock.alive(int(match.group(1)), int(match.group(2)))
    if not _LEGACY_TEMP.match(name):
        return False
    return not lock.shard.active or time.time() - path.stat().st_mtime >= _SHARED_TEMP_AGE


def _lock(fd: int, kind: int, start: int, length: int = 1) -> bool:
    """Set (or clear, F_UNLCK) an OFD lock on ``length`` bytes from ``start``; False if another holds one."""
    packed = struct.pack(_FLOCK, kind, os.SEEK_SET, start, length, 0)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, packed)
    except (BlockingIOError, PermissionError):
        return False
    except OSError as e:
        raise SinkError(f"cannot lock the output folder's lock file: {e.strerror}") from None
    return True


def _remove_if_unused(fd: int, path: Path) -> None:
    """With ``_CHECK`` held on ``fd``: unlink the lock file if no other run has a place in it (and it is still
    this file, not one a later run made after it was unlinked)."""
    if not _held(fd, _RUN, 0) and _same_file(fd, path):
        path.unlink(missing_ok=True)


def _held(fd: int, start: int, length: int) -> bool:
    """Whether another open file holds any lock on those bytes (``length`` 0: to the end of all bytes)."""
    packed = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, start, length, 0)
    try:
        kind = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_OFD_GETLK, packed))[0]
    except OSError as e:
        raise SinkError(f"cannot lock the output folder's lock file: {e.strerror}") from None
    return kind != fcntl.F_UNLCK


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _read_owner(fd: int) -> str:
    try:
        owner = json.loads(os.pread(fd, 4096, 0).splitlines()[0] or b"{}")
        shard = f" (shard {owner['shard']})" if "shard" in owner else ""
        return f"pid {owner['pid']} on {owner['host']}, started {owner['started']}{shard}"
    except (ValueError, KeyError, TypeError, OSError, IndexError):
        return "owner unknown"
