"""The C library, for the few process-level calls Python does not wrap (prctl, mallopt, malloc_trim, syncfs)."""

from __future__ import annotations

import ctypes
import functools
import sys


@functools.cache
def libc() -> ctypes.CDLL | None:
    """The process's C library on Linux, else None (also where the interpreter cannot dlopen: a static build).
    Opened as the process's own global symbols: no ``ldconfig`` child process, which
    ``ctypes.util.find_library`` forks on every call. A caller looks each function up with ``getattr``: a C
    library may lack one."""
    if sys.platform != "linux":
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
