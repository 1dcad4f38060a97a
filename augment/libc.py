"""The C library, for the few process-level calls Python does not wrap (prctl, mallopt, malloc_trim, syncfs)."""

from __future__ import annotations

import ctypes
import functools
import sys


@functools.cache
def libc() -> ctypes.CDLL | None:
    """The process's C library on Linux, else None. Opened as the process's own global symbols: no
    ``ldconfig`` child process, which ``ctypes.util.find_library`` forks on every call."""
    return ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
