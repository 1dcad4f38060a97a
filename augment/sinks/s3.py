"""An S3 prefix (AWS or any S3-compatible store) as the output destination.

Outputs are named exactly as the local sink names them, below the prefix. Each output is one PutObject,
which S3 makes visible whole or not at all, so a failed upload never leaves a partial object.

Which outputs already exist comes from one listing of the destination prefix (made on first use, then kept
up to date with the run's own writes), not a HeadObject per output: resuming a run of
N outputs costs N/1000 requests instead of N. The same listing makes uploads idempotent: an object that
is already there with the same size and MD5 ETag is not uploaded again, so a run resumed without its
manifest (say the store went down before it could be saved) re-renders but never rewrites an output.

A run starts that listing in the background (``prefetch``) while it lists its source, and then answers from
it which manifests the destination holds, whether this run's exists and which journal parts it has (every
object the sink writes or deletes is noted in it): a request saved each, and at 50 ms a round trip each is
50 ms the run waits for (``tests/test_s3_round_trips.py``).

The listing lives in a ``DiskMap`` (a temporary SQLite file), so memory stays flat whatever the number of
objects. Every method may be called from many threads at once (the run's I/O threads): the first caller that
needs the listing makes it, under a lock, while the others wait for it; it is made once, never once per
thread. The temp file is deleted by ``release()``, or when the sink is collected or the process exits.
"""

from __future__ import annotations

import mimetypes
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from pathlib import PurePosixPath
from typing import IO

from augment.sinks import Journal, Sink, SinkError, s3_journal
from augment.storage import s3_limits
from augment.storage.background import in_background
from augment.storage.diskmap import DiskMap
from augment.storage.s3_client import DEFAULT_MAX_ATTEMPTS, S3Client, S3Error
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
_LISTING_LOCK = threading.Lock()  # held while a sink lists its destination


def content_type(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


class S3Sink(Sink):
    def __init__(
        self,
        url: S3Url,
        endpoint: str | None = None,
        timeout: float = s3_limits.DEFAULT_TIMEOUT,
        attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.url = url
        self.client = S3Client(endpoint, timeout, attempts)
        self._present: DiskMap | None = None  # name -> "size etag", once listed
        self._drop: weakref.finalize | None = None
        self._listed: Future[DiskMap] | None = None  # the listing started by ``prefetch``
        self._background: list[Future[None]] = []  # ``later``'s work
        self._header: Future[None] | None = None  # the manifest's header going up (``put_header``)

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
        entry = s3_journal.entry(data)
        if self._listing().get(name) == entry:
            return  # already there, byte for byte
        self.put_object(name, data, content_type(name), entry)

    def delete(self, name: str) -> None:
        for refused in self.delete_objects([name]):
            raise SinkError(f"cannot remove {refused['Key']}: {refused.get('Code')}: {refused.get('Message')}")

    def read_text(self, name: str) -> str | None:
        data = self.read(name)
        return None if data is None else data.decode("utf-8")

    def write_text(self, name: str, text: str) -> None:
        """The manifest and report: always uploaded (needs no listing; updates it if there is one)."""
        data = text.encode("utf-8")
        self.put_object(name, data, content_type(name), s3_journal.entry(data))

    def release(self) -> None:
        """Delete the listing's temp file now (a later call lists the destination again)."""
        with _LISTING_LOCK:
            if self._drop is not None:
                self._drop()
            self._present, self._drop, self._listed = None, None, None

    def prefetch(self) -> None:
        """Start listing the destination in a background thread (the run lists its source meanwhile)."""
        if self._present is not None or self._listed is not None:
            return
        self._listed = in_background(self._list, "s3-dest-listing")  # its error: raised by whoever needs it

    def refresh(self, prefix: str) -> None:
        """List ``prefix`` again (one small listing) into the listing, when this process has one."""
        if not self._known():
            return  # no snapshot: every answer is asked of the store
        listing = self._listing()
        url = S3Url(self.url.bucket, self.url.key(prefix))
        try:
            found = [self._row(obj) for obj in iter_objects(self.client, url)]
        except S3Error as e:
            raise SinkError(str(e)) from None
        with _LISTING_LOCK:
            listing.update([(name, "") for name, _ in listing.items(prefix=prefix)] + found)

    def settle(self) -> None:
        """Wait for the work ``later`` started (deleting the manifest's journal parts); raise its error."""
        self._header_stored()
        background, self._background = self._background, []
        for work in background:
            work.result()

    def version(self, name: str) -> str | None:
        """``name``'s listing entry and its journal parts' (size and ETag each), when this process lists."""
        if not self._known():
            return None
        return "\n".join(f"{n} {entry}" for n, entry in self._listing().items(prefix=name) if entry)

    def read_lines(self, name: str) -> Iterator[str] | None:
        self._key(name)
        if self._known() and self.size(name) is None:
            return None  # not in the listing: no request
        return s3_journal.read_lines(self, name)

    def write_lines(self, name: str, lines: Iterable[str], journal: Journal | None = None) -> None:
        self._key(name)
        s3_journal.write_lines(self, name, lines, content_type(name), journal)

    def open_journal(self, name: str, header: str | None) -> Journal:
        self._key(name)
        return s3_journal.open_journal(self, name, header)

    def names(self, skip: str | None = None) -> Iterator[str]:
        """From the destination's listing (made once per process; the run needs it anyway)."""
        below = None if skip is None else skip.rstrip("/") + "/"
        for name, entry in self._listing().items():
            hidden = any(part.startswith(".") for part in name.split("/")[:-1])
            if entry and not hidden and (below is None or not name.startswith(below)):
                yield name

    def manifests(self, books: str) -> list[str]:
        """Every ``manifest*.jsonl`` object in the ``books`` folder (from the listing, else one small
        listing of its own; part objects left out)."""
        names = self.names_under(books + "manifest")
        return sorted(n for n in names if n.endswith(".jsonl") and "/" not in n[len(books) :])

    # -- objects of the manifest (augment.sinks.s3_journal), noted in the listing --

    def put_object(self, name: str, data: bytes | IO[bytes], content_type: str, entry: str) -> None:
        """Upload ``data`` as ``name`` and note it (``entry``: "size etag") in the listing, if there is one;
        after the manifest's header (``put_header``) is stored."""
        self._header_stored()
        self._put_now(name, data, content_type, entry)

    def put_header(self, name: str, data: bytes, content_type: str, entry: str) -> None:
        """Upload the manifest's header in the background (the run reads its first sources meanwhile); every
        later write or delete waits until it is stored, and fails with its error if it could not be."""
        self._header_stored()
        self._header = in_background(lambda: self._put_now(name, data, content_type, entry), "s3-manifest-header")

    def _header_stored(self) -> None:
        header = self._header
        if header is not None:
            header.result()

    def _put_now(self, name: str, data: bytes | IO[bytes], content_type: str, entry: str) -> None:
        key = self._key(name)
        try:
            self.client.put(self.url.bucket, key, data, content_type)
        except S3Error as e:
            raise SinkError(str(e)) from None
        self._note([name], entry)

    def delete_objects(self, names: list[str]) -> list[dict[str, str | None]]:
        """DeleteObjects (1,000 keys a request); the refused ones (``Key``: the s3:// URL, ``Code``,
        ``Message``). The others are noted as gone in the listing."""
        self._header_stored()
        try:
            refused = self.client.delete(self.url.bucket, [self._key(n) for n in names])
        except S3Error as e:
            raise SinkError(str(e)) from None
        kept = {r.get("Key") for r in refused}
        self._note([n for n in names if self.url.key(n) not in kept], "")
        return [{**r, "Key": f"s3://{self.url.bucket}/{r.get('Key')}"} for r in refused]

    def names_under(self, prefix: str) -> list[str]:
        """Objects whose names start with ``prefix``: from the listing when this process makes one, else
        listed now."""
        if self._known():
            return [name for name, found in self._listing().items(prefix=prefix) if found]
        url = S3Url(self.url.bucket, self.url.key(prefix))
        try:
            return [obj["Key"][len(self.url.prefix) :] for obj in iter_objects(self.client, url)]
        except S3Error as e:
            raise SinkError(str(e)) from None

    def chunks(self, name: str) -> Iterator[bytes] | None:
        """The object's bytes a chunk at a time (a broken stream is a SinkError), or None if it is not there."""
        try:
            chunks = self.client.chunks(self.url.bucket, self._key(name))
        except S3Error as e:
            raise SinkError(str(e)) from None
        return None if chunks is None else _sink_errors(chunks)

    def later(self, work: Callable[[], None]) -> None:
        """Run ``work`` in a thread; ``settle`` waits for it and raises its error."""
        self._background.append(in_background(work, "s3-later"))

    def _note(self, names: list[str], entry: str) -> None:
        """Record what the run just wrote or deleted in the listing (after a listing in progress, so the entry
        it records is not the old object's)."""
        with _LISTING_LOCK:
            if self._present is not None:
                self._present.update((name, entry) for name in names)

    def _known(self) -> bool:
        """Whether the destination is listed, or being listed."""
        return self._present is not None or self._listed is not None

    def _key(self, name: str) -> str:
        reason = unsafe_key_reason(name)
        if reason:
            raise SinkError(f"refusing to write {name!r}: {reason}; it would land outside {self.url}")
        return self.url.key(name)

    def _listing(self) -> DiskMap:
        """The destination's objects (relative name -> "size etag"), listed once."""
        present = self._present
        if present is not None:
            return present
        listed = self._listed
        if listed is not None:
            listed.result()  # the prefetch's error, if it failed (not listed twice, retries and all)
        return self._list()

    def _list(self) -> DiskMap:
        with _LISTING_LOCK:
            if self._present is None:
                present = DiskMap()
                try:
                    for page in self._pages():
                        present.update(page)
                except BaseException:
                    present.close()
                    raise
                self._drop = weakref.finalize(self, present.close)
                self._present = present  # last: a reader that sees it sees the finished listing
            return self._present

    def _row(self, obj: dict) -> tuple[str, str]:
        """A listed object's name (relative) and its listing entry."""
        return obj["Key"][len(self.url.prefix) :], _entry(int(obj.get("Size", 0)), str(obj.get("ETag", "")).strip('"'))

    def _pages(self) -> Iterator[list[tuple[str, str]]]:
        """The listing, a page (up to 1,000 objects) at a time."""
        page: list[tuple[str, str]] = []
        try:
            for obj in iter_objects(self.client, self.url):
                page.append(self._row(obj))
                if len(page) >= 1000:
                    yield page
                    page = []
        except S3Error as e:
            raise SinkError(str(e)) from None
        yield page


def _entry(size: int, etag: str) -> str:
    return f"{size} {etag}"


def _sink_errors(chunks: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from chunks
    except S3Error as e:
        raise SinkError(str(e)) from None
