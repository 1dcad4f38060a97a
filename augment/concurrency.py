"""How much a run does at once, apart from rendering (``--workers``): requests in flight per process."""

from __future__ import annotations

import os

DEFAULT_IO_THREADS = 32  # enough to hide a 50 ms round trip at a few hundred outputs/s (README: Performance)


def io_threads() -> int:
    """Source reads and output writes in flight in the main process (``EDGE_AUGMENT_IO_THREADS``, 1-256).

    It does not follow the CPU count: it bounds requests to a store, not computation. botocore's connection
    pool is sized to match."""
    raw = os.environ.get("EDGE_AUGMENT_IO_THREADS", "").strip()
    try:
        value = int(raw) if raw else DEFAULT_IO_THREADS
    except ValueError:
        value = DEFAULT_IO_THREADS
    return max(1, min(256, value))
