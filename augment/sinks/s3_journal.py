"""The manifest on S3, where objects cannot be appended to: a journal of numbered part objects.

``<name>`` holds the header (and, after a finished run, every line); a run appends by uploading the lines
booked since the last part as ``<name>.part-000001``, ``-000002``, ... (at each checkpoint, or every
``_PART_BYTES``). Reading gives the object's lines, then every part's in order. The final manifest is
streamed to a temp file and uploaded with boto3's transfer manager (multipart when large), then the parts
are deleted.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from augment.sinks import Journal, SinkError
from augment.sources.s3 import S3Client, S3Url, botocore_errors, error_message

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
    prefix = url.key(name + _PART)
    found = []
    try:
        pages = client.get().get_paginator("list_objects_v2").paginate(Bucket=url.bucket, Prefix=prefix)
        for page in pages:
            found += [obj["Key"][len(url.prefix) :] for obj in page.get("Contents", ())]
    except botocore_errors() as e:
        raise SinkError(error_message(e, "list", f"s3://{url.bucket}/{prefix}", client)) from None
    return sorted(found)


def read_lines(client: S3Client, url: S3Url, name: str) -> Iterator[str] | None:
    """The object's lines then its parts', or None when there is no object."""
    first = _body(client, url, name)
    if first is None:
        return None
    return _stream(client, url, name, first)


def _stream(client: S3Client, url: S3Url, name: str, first: Any) -> Iterator[str]:
    yield from _lines(client, url, name, first)
    for part in parts(client, url, name):  # each fetched once the one before is read
        body = _body(client, url, part)
        if body is not None:
            yield from _lines(client, url, part, body)


def _lines(client: S3Client, url: S3Url, name: str, body: Any) -> Iterator[str]:
    try:
        for line in body.iter_lines():
            yield line.decode("utf-8")
    except botocore_errors() as e:  # the connection broke while reading
        raise SinkError(error_message(e, "read", f"s3://{url.bucket}/{url.key(name)}", client)) from None


def _body(client: S3Client, url: S3Url, name: str) -> Any:
    key = url.key(name)
    try:
        return client.get().get_object(Bucket=url.bucket, Key=key)["Body"]
    except botocore_errors() as e:
        if getattr(e, "response", {}).get("Error", {}).get("Code") == "NoSuchKey":
            return None
        raise SinkError(error_message(e, "read", f"s3://{url.bucket}/{key}", client)) from None


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
    """Replace ``name`` with ``lines`` (spooled to a temp file, uploaded whole), then drop its parts."""
    key = url.key(name)
    with tempfile.TemporaryFile() as spool:
        for line in lines:
            spool.write((line + "\n").encode("utf-8"))
        spool.seek(0)
        from boto3.exceptions import S3UploadFailedError  # the transfer manager's wrapper of client errors

        try:
            client.get().upload_fileobj(spool, url.bucket, key, ExtraArgs={"ContentType": content_type})
        except (*botocore_errors(), S3UploadFailedError) as e:
            raise SinkError(error_message(e, "write", f"s3://{url.bucket}/{key}", client)) from None
    delete(client, url, parts(client, url, name))


def put(client: S3Client, url: S3Url, name: str, body: bytes) -> None:
    key = url.key(name)
    try:
        client.get().put_object(Bucket=url.bucket, Key=key, Body=body, ContentType="application/x-ndjson")
    except botocore_errors() as e:
        raise SinkError(error_message(e, "write", f"s3://{url.bucket}/{key}", client)) from None


def delete(client: S3Client, url: S3Url, names: list[str]) -> None:
    for start in range(0, len(names), 1000):  # DeleteObjects takes up to 1,000 keys
        batch = [{"Key": url.key(n)} for n in names[start : start + 1000]]
        try:
            answer = client.get().delete_objects(Bucket=url.bucket, Delete={"Objects": batch, "Quiet": True})
        except botocore_errors() as e:
            raise SinkError(error_message(e, "delete", f"s3://{url.bucket}/{url.prefix}", client)) from None
        if errors := answer.get("Errors"):  # per-key refusals come back in a 200 answer
            first = errors[0]
            raise SinkError(
                f"cannot delete s3://{url.bucket}/{first.get('Key')} (manifest journal part): "
                f"{first.get('Code')}: {first.get('Message')} ({len(errors)} refused; the run needs s3:DeleteObject)"
            )
