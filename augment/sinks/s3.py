"""An S3 prefix (AWS or any S3-compatible store) as the output destination.

Outputs are named exactly as the local sink names them, below the prefix. Each output is one PutObject,
which S3 makes visible whole or not at all, so a failed upload never leaves a partial object.

Which outputs already exist comes from one listing of the destination prefix per process (made on first
use, then kept up to date with this process's own writes), not a HeadObject per output: resuming a run of
N outputs costs N/1000 requests instead of N. The same listing makes uploads idempotent: an object that
is already there with the same size and MD5 ETag is not uploaded again, so a run resumed without its
manifest (say the store went down before it could be saved) re-renders but never rewrites an output.

The listing lives in a ``DiskMap`` (a temporary SQLite file), so memory stays flat whatever the number of
objects. Every method may be called from many threads of one process at once: the first caller that needs
the listing makes it, under a lock, while the others wait for it; it is made once per process, never once
per thread. The temp file is deleted by ``release()``, or when the sink is collected or the process exits.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import threading
import weakref
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath

from augment.sinks import Journal, Sink, SinkError, s3_journal
from augment.storage.diskmap import DiskMap
from augment.storage.s3_client import S3Client, S3Error
from augment.storage.s3_url import S3Url, iter_objects, unsafe_key_reason

CONTENT_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".gif": "image/gif",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
}
_LISTING_LOCK = threading.Lock()  # held while a sink lists its destination; a fresh one in a forked child
os.register_at_fork(after_in_child=lambda: globals().update(_LISTING_LOCK=threading.Lock()))


def content_type(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


class S3Sink(Sink):
    def __init__(self, url: S3Url, endpoint: str | None = None) -> None:
        self.url = url
        self.client = S3Client(endpoint)
        self._reset()

    def _reset(self) -> None:
        self._present: DiskMap | None = None  # name -> "size etag", listed in this process
        self._pid = 0
        self._drop: weakref.finalize | None = None

    def __getstate__(self) -> dict[str, object]:
        return {"url": self.url, "client": self.client}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._reset()

    def describe(self) -> str:
        return str(self.url)

    def exists(self, name: str) -> bool:
        return self.size(name) is not None  # a deleted object is listed as ""

    def size(self, name: str) -> int | None:
        """Bytes of the object ``name`` (from the listing), or None."""
        found = self._listing().get(name) if self._key(name) is not None else None
        return int(found.partition(" ")[0]) if found else None

    def read(self, name: str) -> bytes | None:
        key = self._key(name)
        try:
            return self.client.get(self.url.bucket, key)
        except S3Error as e:
            raise SinkError(str(e)) from None

    def write(self, name: str, data: bytes) -> None:
        """Upload ``data`` as one object, unless the identical object is already there."""
        self._key(name)
        entry = _entry(len(data), hashlib.md5(data, usedforsecurity=False).hexdigest())
        listing = self._listing()
        if listing.get(name) == entry:
            return  # already there, byte for byte
        self._put(name, data)
        listing.set(name, entry)

    def delete(self, name: str) -> None:
        key = self._key(name)
        try:
            refused = self.client.delete(self.url.bucket, [key])
        except S3Error as e:
            raise SinkError(str(e)) from None
        if refused:
            first = refused[0]
            raise SinkError(f"cannot remove s3://{self.url.bucket}/{key}: {first.get('Code')}: {first.get('Message')}")
        self._listing().set(name, "")  # gone

    def _put(self, name: str, data: bytes) -> None:
        key = self._key(name)
        try:
            self.client.put(self.url.bucket, key, data, content_type(name))
        except S3Error as e:
            raise SinkError(str(e)) from None

    def read_text(self, name: str) -> str | None:
        data = self.read(name)
        return None if data is None else data.decode("utf-8")

    def write_text(self, name: str, text: str) -> None:
        """The manifest and report: always uploaded (needs no listing; updates it if there is one)."""
        data = text.encode("utf-8")
        self._put(name, data)
        with _LISTING_LOCK:  # after a listing in progress, so the entry it records is not the old object's
            if self._present is not None and self._pid == os.getpid():
                self._present.set(name, _entry(len(data), hashlib.md5(data, usedforsecurity=False).hexdigest()))

    def release(self) -> None:
        """Delete the listing's temp file now (a later call lists the destination again)."""
        with _LISTING_LOCK:
            if self._drop is not None:
                self._drop()
            self._present, self._pid, self._drop = None, 0, None

    def read_lines(self, name: str) -> Iterator[str] | None:
        self._key(name)
        return s3_journal.read_lines(self.client, self.url, name)

    def write_lines(self, name: str, lines: Iterable[str]) -> None:
        self._key(name)
        s3_journal.write_lines(self.client, self.url, name, lines, content_type(name))

    def open_journal(self, name: str, header: str | None) -> Journal:
        self._key(name)
        return s3_journal.open_journal(self.client, self.url, name, header)

    def manifests(self, books: str) -> list[str]:
        """Every ``manifest*.jsonl`` object in the ``books`` folder (one small listing; part objects left out)."""
        url = S3Url(self.url.bucket, self.url.key(books + "manifest"))
        try:
            names = [obj["Key"][len(self.url.prefix) :] for obj in iter_objects(self.client, url)]
        except S3Error as e:
            raise SinkError(str(e)) from None
        return sorted(n for n in names if n.endswith(".jsonl") and "/" not in n[len(books) :])

    def _key(self, name: str) -> str:
        reason = unsafe_key_reason(name)
        if reason:
            raise SinkError(f"refusing to write {name!r}: {reason}; it would land outside {self.url}")
        return self.url.key(name)

    def _listing(self) -> DiskMap:
        """The destination's objects (relative name -> "size etag"), listed once per process."""
        pid = os.getpid()
        if self._pid == pid:  # _pid is set after _present: read it first
            present = self._present
            if present is not None:
                return present
        with _LISTING_LOCK:
            if self._present is None or self._pid != pid:
                present = DiskMap()
                try:
                    for page in self._pages():
                        present.update(page)
                except BaseException:
                    present.close()
                    raise
                self._drop = weakref.finalize(self, _close_in, present, pid)
                self._present = present
                self._pid = pid  # last: a reader that sees this pid sees the finished listing
            return self._present

    def _pages(self) -> Iterator[list[tuple[str, str]]]:
        """The listing, a page (up to 1,000 objects) at a time."""
        page: list[tuple[str, str]] = []
        try:
            for obj in iter_objects(self.client, self.url):
                name = obj["Key"][len(self.url.prefix) :]
                page.append((name, _entry(int(obj.get("Size", 0)), str(obj.get("ETag", "")).strip('"'))))
                if len(page) >= 1000:
                    yield page
                    page = []
        except S3Error as e:
            raise SinkError(str(e)) from None
        yield page


def _entry(size: int, etag: str) -> str:
    return f"{size} {etag}"


def _close_in(present: DiskMap, pid: int) -> None:
    """Close (and delete) a listing, but only in the process that made it (a forked child has a copy)."""
    if os.getpid() == pid:
        present.close()
