"""A string-to-string map in a temporary SQLite file: what a run must look up per output (names, manifest
lines, object sizes) without holding one entry per output in memory.

SQLite keeps a small page cache (``_CACHE_KIB``) and the rest on disk, so memory stays flat whatever the
number of keys. Keys and values are stored as UTF-8 bytes with undecodable file-name bytes kept
(``surrogateescape``), so any name a file system can hold round-trips. One connection, guarded by a lock:
safe to share between the threads of one process (not between processes).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Iterator
from types import TracebackType

_CACHE_KIB = 4096  # SQLite page cache per database


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


MIN_SQLITE = (3, 33, 0)  # UPDATE ... FROM (the run index's hold-out and balancing)


def open_temp_db(prefix: str = "edge-augment-") -> sqlite3.Connection:
    """A new SQLite database in a temporary file (``TMPDIR``), tuned for a throwaway index: no journal, no
    fsync. The file is unlinked as soon as it is open, so nothing is left behind however the process ends;
    it lives until the connection closes."""
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise RuntimeError(f"SQLite {sqlite3.sqlite_version} is too old; edge-augment needs 3.33 or newer")
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=".sqlite")
    os.close(fd)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=OFF")  # no side files: the one file is all there is
    db.execute("CREATE TABLE IF NOT EXISTS _opened (x)")  # SQLite now holds the file open
    os.unlink(path)
    db.execute("PRAGMA synchronous=OFF")
    db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
    db.execute("PRAGMA temp_store=FILE")
    return db


class DiskMap:
    """``name -> value`` on disk; ``len``, ``in``, ``get``, ``set``, ``update`` and sorted iteration."""

    def __init__(self) -> None:
        self._db = open_temp_db("edge-augment-map-")
        self._db.execute("CREATE TABLE map (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM map WHERE key = ?", (encode(key),)).fetchone()
        return None if row is None else decode(row[0])

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def set(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO map VALUES (?, ?)", (encode(key), encode(value)))

    def update(self, items: Iterable[tuple[str, str]]) -> None:
        """Add or replace many entries in one transaction (much faster than ``set`` in a loop)."""
        rows = ((encode(k), encode(v)) for k, v in items)
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO map VALUES (?, ?)", rows)
            self._db.execute("COMMIT")

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM map").fetchone()[0])

    def items(self, batch: int = 1000, prefix: str = "") -> Iterator[tuple[str, str]]:
        """Entries (whose keys start with ``prefix``) in key order, fetched ``batch`` at a time (never all at
        once)."""
        start = encode(prefix)
        after, compare = start, ">="  # the prefix itself may be a key
        while True:
            with self._lock:
                rows = self._db.execute(
                    f"SELECT key, value FROM map WHERE key {compare} ? ORDER BY key LIMIT ?", (after, batch)
                ).fetchall()
            for key, value in rows:
                if not key.startswith(start):
                    return
                yield decode(key), decode(value)
            if len(rows) < batch:
                return
            after, compare = rows[-1][0], ">"

    def close(self) -> None:
        """Drop the database (its space on disk is freed)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> DiskMap:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
