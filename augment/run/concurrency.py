"""How much a run does at once, apart from rendering (``--workers``): requests in flight per process."""

from __future__ import annotations

import os

DEFAULT_IO_THREADS = 128  # hides a 50 ms round trip at ~2,400 requests/s; a waiting thread costs no CPU (docs/s3.md)


def io_threads() -> int:
    """Source reads and output writes in flight in the main process (``EDGE_AUGMENT_IO_THREADS``, 1-256).

    It does not follow the CPU count: it bounds requests to a store, not computation. The S3 client (obstore)
    keeps a connection per request in flight."""
    raw = os.environ.get("EDGE_AUGMENT_IO_THREADS", "").strip()
    try:
        value = int(raw) if raw else DEFAULT_IO_THREADS
    except ValueError:
        value = DEFAULT_IO_THREADS
    return max(1, min(256, value))
