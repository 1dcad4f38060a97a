"""The manifest on S3, where objects cannot be appended to: a journal of numbered part objects.

``<name>`` holds the header (and, after a finished run, every line); a run appends by uploading the lines
booked since the last part as ``<name>.part-000001``, ``-000002``, ... (at each checkpoint, or every
``_PART_BYTES``). The header goes up while the run reads its first sources; the sink holds every other
write back until it is stored. Reading gives the object's lines, then every part's in order. The final manifest is
streamed to a temp file and uploaded by obstore (multipart when over 8 MB). A journal that has parts stores
its last one beside it (either holds those lines: a crash in between loses none), and once both are stored
the parts are deleted, in the background (``S3Sink.settle`` waits for it). A journal without parts (a run
shorter than a checkpoint) stores none: the final manifest, stored whole or not at all, is the only write and
nothing is left to delete (a request fewer, and the deletes' round trip the report waited for). A crash during
that write leaves the header alone, as a crash just before it would: the rerun makes the unrecorded outputs
again and finds each already stored (same size and MD5), uploading nothing.

The objects are reached through the sink (``Objects``), which keeps its listing of the destination up to date
with them: which parts exist is read from that listing, not asked of the store again.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Protocol

from augment.sinks import Journal, SinkError

_PART_BYTES = 4 * 1024 * 1024  # a part is uploaded when this many bytes are waiting, or at a checkpoint
_PART = ".part-"
NDJSON = "application/x-ndjson"


class Objects(Protocol):
    """What the journal needs of the S3 sink (``augment.sinks.s3.S3Sink``)."""

    def put_object(self, name: str, data: bytes | IO[bytes], content_type: str, entry: str) -> None: ...

    def put_header(self, name: str, data: bytes, content_type: str, entry: str) -> None: ...

    def delete_objects(self, names: list[str]) -> list[dict[str, str | None]]: ...

    def names_under(self, prefix: str) -> list[str]: ...

    def chunks(self, name: str) -> Iterator[bytes] | None: ...

    def later(self, work: Callable[[], None]) -> None: ...


class S3Journal(Journal):
    in_place = False  # parts beside the object: the finished run writes the whole manifest

    def __init__(self, store: Objects, name: str, next_part: int) -> None:
        self._store, self._name = store, name
        self._next = next_part
        self._waiting: list[str] = []
        self._bytes = 0

    @property
    def has_parts(self) -> bool:
        """Whether a part was stored (this run's, or an earlier one's that it continues)."""
        return self._next > 1

    def append(self, lines: list[str]) -> None:
        self._waiting.extend(lines)
        self._bytes += sum(len(line) + 1 for line in lines)
        if self._bytes >= _PART_BYTES:
            self.sync()

    def sync(self) -> None:
        if not self._waiting:
            return
        body = "".join(line + "\n" for line in self._waiting).encode("utf-8")
        self._store.put_object(part_name(self._name, self._next), body, NDJSON, entry(body))
        self._next += 1
        self._waiting, self._bytes = [], 0


def part_name(name: str, number: int) -> str:
    return f"{name}{_PART}{number:06d}"


def entry(data: bytes) -> str:
    """An object's listing entry: its size and MD5 (its ETag when uploaded in one request)."""
    return f"{len(data)} {hashlib.md5(data, usedforsecurity=False).hexdigest()}"


def parts(store: Objects, name: str) -> list[str]:
    """The names of ``name``'s part objects, in order."""
    return sorted(store.names_under(name + _PART))


def read_lines(store: Objects, name: str) -> Iterator[str] | None:
    """The object's lines then its parts', or None when there is no object."""
    first = store.chunks(name)
    if first is None:
        return None
    return _stream(store, name, first)


def _stream(store: Objects, name: str, first: Iterator[bytes]) -> Iterator[str]:
    yield from _lines(first)
    for part in parts(store, name):  # each fetched once the one before is read
        chunks = store.chunks(part)
        if chunks is not None:
            yield from _lines(chunks)


def _lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """The lines of a stream of chunks (without their ends)."""
    rest = b""
    for chunk in chunks:
        *lines, rest = (rest + chunk).split(b"\n")
        yield from (line.rstrip(b"\r").decode("utf-8") for line in lines)
    if rest:
        yield rest.rstrip(b"\r").decode("utf-8")


def open_journal(store: Objects, name: str, header: str | None) -> S3Journal:
    """A new journal (old parts deleted first, then the header replaces the object) or the existing one
    continued. Deleting first: a crash in between leaves the old header alone, which the next run refuses
    or continues as it should; never a new header over old parts."""
    existing = parts(store, name)
    if header is None:
        last = int(existing[-1].rpartition(_PART)[2]) if existing else 0
        return S3Journal(store, name, last + 1)
    delete(store, existing)
    body = (header + "\n").encode("utf-8")
    store.put_header(name, body, NDJSON, entry(body))  # stored before any other write
    return S3Journal(store, name, 1)


def write_lines(
    store: Objects, name: str, lines: Iterable[str], content_type: str, journal: Journal | None = None
) -> None:
    """Replace ``name`` with ``lines`` (spooled to a temp file, uploaded whole: multipart when large) while
    ``journal``'s last lines go up as its last part, if it has parts; then drop the parts (in the background)."""
    if isinstance(journal, S3Journal) and not journal.has_parts:
        journal = None  # the whole manifest alone holds its lines: no part to store, none to delete
    with tempfile.TemporaryFile() as spool:
        digest, size = hashlib.md5(usedforsecurity=False), 0
        for line in lines:
            data = (line + "\n").encode("utf-8")
            spool.write(data)
            digest.update(data)
            size += len(data)
        spool.seek(0)
        closing = threading.Thread(target=_close, args=(journal,), name="s3-journal-close", daemon=True)
        closing.start()
        try:
            multipart = size > 8 * 1024 * 1024  # (its ETag is not an MD5: the entry says so)
            store.put_object(name, spool, content_type, f"{size} {'' if multipart else digest.hexdigest()}")
        finally:
            closing.join()
    # The whole manifest is stored: the journal's last part (stored or not) is no longer needed.
    done = parts(store, name)
    store.later(lambda: delete(store, done))


def _close(journal: Journal | None) -> None:
    """Store the journal's last part; a failure does not matter: the whole manifest holds those lines."""
    with contextlib.suppress(SinkError):
        if journal is not None:
            journal.close()


def delete(store: Objects, names: list[str]) -> None:
    if not names:
        return
    errors = store.delete_objects(names)
    if errors:  # per-key refusals come back in a 200 answer
        first = errors[0]
        raise SinkError(
            f"cannot delete {first.get('Key')} (manifest journal part): "
            f"{first.get('Code')}: {first.get('Message')} ({len(errors)} refused; the run needs s3:DeleteObject)"
        )
