"""``s3://bucket/prefix/`` URLs, the key checks shared by the S3 source and sink, and prefix listings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from augment.storage.s3_client import S3Client

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # a local name that is not UTF-8 (surrogateescape)


@dataclass(frozen=True)
class S3Url:
    """``s3://bucket/prefix/``; ``prefix`` is empty or ends with ``/``."""

    bucket: str
    prefix: str = ""

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, name: str) -> str:
        return self.prefix + name

    @property
    def root_name(self) -> str:
        """What a local folder holding this prefix would be called (labels flat files without a prefix)."""
        return self.prefix.rstrip("/").rpartition("/")[2] or self.bucket

    def contains(self, other: S3Url) -> bool:
        return other.bucket == self.bucket and other.prefix.startswith(self.prefix)


def parse_s3_url(text: str) -> S3Url:
    """Parse ``s3://bucket[/prefix[/]]``; raises ValueError with a one-line reason."""
    text = (text or "").strip()
    if not text.startswith("s3://"):
        raise ValueError(f"expected s3://bucket/prefix/, got {text!r}")
    bucket, _, prefix = text[len("s3://") :].partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ValueError(
            f"{bucket!r} is not a valid bucket name (3-63 characters: lowercase letters, digits, '.', '-')"
        )
    if prefix:
        reason = unsafe_key_reason(prefix.rstrip("/"))
        if reason:
            raise ValueError(f"prefix {prefix!r}: {reason}")
        prefix = prefix.rstrip("/") + "/"
    return S3Url(bucket, prefix)


def unsafe_key_reason(key: str) -> str | None:
    """Why a relative key cannot become a file or object name safely (it could escape its folder), or None."""
    if not key:
        return "empty key"
    if key.startswith("/"):
        return "absolute path"
    if "\\" in key:
        return "backslash in key (a Windows path?)"
    if _CONTROL.search(key):
        return "control character in key"
    if _UNDECODABLE.search(key):
        return "not valid UTF-8 (S3 keys must be)"
    parts = key.split("/")
    if any(p == "" for p in parts):
        return "empty path segment ('//')"
    if any(p in (".", "..") for p in parts):
        return "'.' or '..' path segment (would escape the folder)"
    return None


def iter_objects(client: S3Client, url: S3Url) -> Iterator[dict[str, Any]]:
    """Every object under ``url``'s prefix (listed a page of 1,000 keys at a time)."""
    for page in client.pages(url.bucket, url.prefix):
        yield from page
