"""Reading local files safely: regular files only (never a FIFO or device, which could hang or never end),
opened without blocking, and never more than a size cap."""

from __future__ import annotations

import errno
import os
import stat

MAX_FILE_BYTES = 512 * 1024 * 1024  # an image (or labels file) larger than this is refused, not read


class FileRefused(OSError):
    """The path is not a regular file, or is over the size cap; ``strerror`` says which."""


def kind(mode: int) -> str:
    """A short name for what a non-regular file is (for skip messages)."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def refusal(st: os.stat_result, limit: int = MAX_FILE_BYTES) -> str | None:
    """Why a file with this stat is not read (not regular, too large), or None."""
    if not stat.S_ISREG(st.st_mode):
        return f"not a regular file ({kind(st.st_mode)})"
    if st.st_size > limit:
        return f"file too large ({st.st_size} bytes; the limit is {limit})"
    return None


def read_regular(path: str | os.PathLike[str], limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; raise FileRefused (an OSError) otherwise.

    Opened with O_NONBLOCK so a FIFO put in place since listing cannot block the open."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        reason = refusal(os.fstat(fd), limit)
        if reason:
            raise FileRefused(errno.EINVAL, reason)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # grew since fstat
        raise FileRefused(errno.EFBIG, f"file too large (over {limit} bytes)")
    return data
