"""One run at a time per output folder: an exclusive lock on a lock file that names its owner.

The lock is ``flock`` on ``.edge-augment.lock`` (a shard locks its own file, so shards of one run share a
folder). The kernel drops it when its process dies, however it dies, so a lock left by a killed run is
stale by construction and the next run takes it over. The file holds the owner's pid, host and start time,
so a refused run can say who holds the folder. Temp files (``.tmp-<pid>-<n>.*``) left by killed runs are
removed once the lock is held.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import time
from pathlib import Path

from augment.sinks import SinkError

LOCK_FILE = ".edge-augment{suffix}.lock"
_TEMP = re.compile(r"^\.tmp-(\d+)-\d+")
_SHARED_TEMP_AGE = 600.0  # seconds: with shards in one folder, only temp files this old are another's leftovers


class FolderBusyError(SinkError):
    """Another live run holds the output folder."""


class FolderLock:
    """An exclusive lock on ``folder`` for this process (``acquire``/``release``, or ``with``)."""

    def __init__(self, folder: Path, suffix: str = "") -> None:
        self.folder = folder
        self.path = folder / LOCK_FILE.format(suffix=suffix)
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
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError as e:
                raise SinkError(f"cannot create the lock file {self.path}: {e.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd)
                os.close(fd)
                raise FolderBusyError(
                    f"{self.folder} is in use by another run ({owner}; lock file {self.path.name}); "
                    "wait for it to finish or use another --out-directory"
                ) from None
            if _same_file(fd, self.path):  # not unlinked by a run that released it meanwhile
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
        os.write(fd, (json.dumps(owner) + "\n").encode())
        self.fd = fd

    def release(self) -> None:
        """Remove the lock file (while still holding it) and drop the lock; an empty folder we made goes too."""
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)
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


def remove_stale_temps(folder: Path, shared: bool) -> int:
    """Delete ``.tmp-<pid>-<n>.*`` files whose writer is no longer alive on this host; how many.

    ``shared`` (shards share the folder, maybe from other hosts): only those older than 10 minutes."""
    removed = 0
    now = time.time()
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            match = _TEMP.match(name)
            if not match or _alive(int(match.group(1))):
                continue
            path = Path(dirpath) / name
            try:
                if shared and now - path.stat().st_mtime < _SHARED_TEMP_AGE:
                    continue
                path.unlink()
                removed += 1
            except OSError:
                continue
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _read_owner(fd: int) -> str:
    try:
        owner = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {owner['pid']} on {owner['host']}, started {owner['started']}"
    except (ValueError, KeyError, TypeError, OSError):
        return "owner unknown"
