"""The manifest on S3, where objects cannot be appended to: a journal of numbered part objects.

``<name>`` holds the header (and, after a finished run, every line); a run appends by uploading the lines
booked since the last part as ``<name>.part-000001``, ``-000002``, ... (at each checkpoint, or every
``_PART_BYTES``). Reading gives the object's lines, then every part's in order. The final manifest is
streamed to a temp file and uploaded by obstore (multipart when over 8 MB), then the parts
are deleted.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator

from augment.sinks import Journal, SinkError
from augment.storage.s3_client import S3Client, S3Error
from augment.storage.s3_url import S3Url

_PART_BYTES = 4 * 1024 * 1024  # a part is uploaded when this many bytes are waiting, or at a checkpoint
_PART = ".part-"


class S3Journal(Journal):
    in_place = False  # parts beside the object: the finished run writes the whole manifest

    def __init__(self, client: S3Client, url: S3Url, name: str, next_part: int) -> None:
        self._client, self._url, self._name = client, url, name
        self._next = next_part
        self._waiting: list[str] = []
        self._bytes = 0

    def append(self, lines: list[str]) -> None:
        self._waiting.extend(lines)
        self._bytes += sum(len(line) + 1 for line in lines)
        if self._bytes >= _PART_BYTES:
            self.sync()

    def sync(self) -> None:
        if not self._waiting:
            return
        body = "".join(line + "\n" for line in self._waiting).encode("utf-8")
        put(self._client, self._url, part_name(self._name, self._next), body)
        self._next += 1
        self._waiting, self._bytes = [], 0


def part_name(name: str, number: int) -> str:
    return f"{name}{_PART}{number:06d}"


def parts(client: S3Client, url: S3Url, name: str) -> list[str]:
    """The names of ``name``'s part objects, in order."""
    try:
        found = [
            obj["Key"][len(url.prefix) :] for page in client.pages(url.bucket, url.key(name + _PART)) for obj in page
        ]
    except S3Error as e:
        raise SinkError(str(e)) from None
    return sorted(found)


def read_lines(client: S3Client, url: S3Url, name: str) -> Iterator[str] | None:
    """The object's lines then its parts', or None when there is no object."""
    first = _chunks(client, url, name)
    if first is None:
        return None
    return _stream(client, url, name, first)


def _stream(client: S3Client, url: S3Url, name: str, first: Iterator[bytes]) -> Iterator[str]:
    yield from _lines(first)
    for part in parts(client, url, name):  # each fetched once the one before is read
        chunks = _chunks(client, url, part)
        if chunks is not None:
            yield from _lines(chunks)


def _lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """The lines of a stream of chunks (without their ends); a break in the stream is a SinkError."""
    rest = b""
    try:
        for chunk in chunks:
            *lines, rest = (rest + chunk).split(b"\n")
            yield from (line.rstrip(b"\r").decode("utf-8") for line in lines)
    except S3Error as e:
        raise SinkError(str(e)) from None
    if rest:
        yield rest.rstrip(b"\r").decode("utf-8")


def _chunks(client: S3Client, url: S3Url, name: str) -> Iterator[bytes] | None:
    try:
        return client.chunks(url.bucket, url.key(name))
    except S3Error as e:
        raise SinkError(str(e)) from None


def open_journal(client: S3Client, url: S3Url, name: str, header: str | None) -> S3Journal:
    """A new journal (old parts deleted first, then the header replaces the object) or the existing one
    continued. Deleting first: a crash in between leaves the old header alone, which the next run refuses
    or continues as it should; never a new header over old parts."""
    existing = parts(client, url, name)
    if header is None:
        last = int(existing[-1].rpartition(_PART)[2]) if existing else 0
        return S3Journal(client, url, name, last + 1)
    delete(client, url, existing)
    put(client, url, name, (header + "\n").encode("utf-8"))
    return S3Journal(client, url, name, 1)


def write_lines(client: S3Client, url: S3Url, name: str, lines: Iterable[str], content_type: str) -> None:
    """Replace ``name`` with ``lines`` (spooled to a temp file, uploaded whole: multipart when large), then
    drop its parts."""
    with tempfile.TemporaryFile() as spool:
        for line in lines:
            spool.write((line + "\n").encode("utf-8"))
        spool.seek(0)
        try:
            client.put(url.bucket, url.key(name), spool, content_type)
        except S3Error as e:
            raise SinkError(str(e)) from None
    delete(client, url, parts(client, url, name))


def put(client: S3Client, url: S3Url, name: str, body: bytes) -> None:
    try:
        client.put(url.bucket, url.key(name), body, "application/x-ndjson")
    except S3Error as e:
        raise SinkError(str(e)) from None


def delete(client: S3Client, url: S3Url, names: list[str]) -> None:
    try:
        errors = client.delete(url.bucket, [url.key(n) for n in names])
    except S3Error as e:
        raise SinkError(str(e)) from None
    if errors:  # per-key refusals come back in a 200 answer
        first = errors[0]
        raise SinkError(
            f"cannot delete s3://{url.bucket}/{first.get('Key')} (manifest journal part): "
            f"{first.get('Code')}: {first.get('Message')} ({len(errors)} refused; the run needs s3:DeleteObject)"
        )
