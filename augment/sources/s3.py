"""An S3 prefix (AWS or any S3-compatible store) as a source of labelled images.

The layout and label rules are the local folder's: ``s3://bucket/prefix/<class>/<image>`` or flat
``<label>.<uid>.<ext>`` keys; a sample's key is the object key relative to the prefix, so an S3 run and a
local run of the same images give the same output names and bytes.

The client (``augment.storage.s3_client``: obstore for objects, botocore for credentials) is imported only when S3 is
first used, so local runs never load it. URL and key checks shared with the sink are ``augment.storage.s3_url``'s.

Thread safety: ``S3Source.read`` may be called from many threads of one process at once (the run's I/O
threads, ``EDGE_AUGMENT_IO_THREADS`` of them). The client is made once, under a lock; obstore
releases the GIL while a request is under way and opens as many connections as there are requests.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import PurePosixPath
from typing import Any

from augment.plan.labels import LABELS_FILES
from augment.plan.samples import Sample, label_for_key
from augment.render.codec import IMAGE_EXTENSIONS
from augment.sources import IGNORED_DIRS, Listing, Source, SourceError
from augment.storage import s3_limits
from augment.storage.background import in_background
from augment.storage.s3_client import DEFAULT_MAX_ATTEMPTS, S3Client, S3Error
from augment.storage.s3_url import S3Url, iter_objects, unsafe_key_reason


class S3Source(Source):
    """Images under ``s3://bucket/prefix/``: listed with the ListObjectsV2 paginator, read with GetObject."""

    def __init__(
        self,
        url: S3Url,
        label: str | None = None,
        exclude: S3Url | None = None,
        endpoint: str | None = None,
        timeout: float = s3_limits.DEFAULT_TIMEOUT,
        attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.url = url
        self.label = label  # overrides every label (EI's --upload-label)
        self.exclude = exclude  # an S3 destination inside the source prefix: never read back as input
        self.client = S3Client(endpoint, timeout, attempts)
        self._ahead: dict[str, Future[bytes]] = {}  # sample key -> its read started by ``prefetch``

    def describe(self) -> str:
        return str(self.url)

    def scan(self, listing: Listing) -> Iterator[Sample]:
        markers: set[str] = set()
        folders: set[str] = set()  # one entry per folder holding images, not per image
        try:
            for obj in iter_objects(self.client, self.url):
                sample = self._add(obj, listing, markers, folders)
                if sample is not None:
                    yield sample
        except S3Error as e:
            raise SourceError(str(e)) from None
        listing.empty_folders = sorted(m for m in markers if not any(f.startswith(m + "/") for f in folders))

    def _add(self, obj: dict[str, Any], listing: Listing, markers: set[str], folders: set[str]) -> Sample | None:
        full = obj["Key"]
        if self.exclude is not None and self.exclude.contains(S3Url(self.url.bucket, full)):
            return None
        key = full[len(self.url.prefix) :]
        if not key:
            return None  # the prefix's own folder marker
        if key.endswith("/") and obj.get("Size", 0) == 0:
            if unsafe_key_reason(key.rstrip("/")) is None:
                markers.add(key.rstrip("/"))
            return None  # a folder marker object (consoles create them), not a file
        reason = unsafe_key_reason(key)
        if reason:
            listing.skip(key, f"unsafe key, not read: {reason}")
            return None
        parts = key.split("/")
        if any(p.startswith(".") or p in IGNORED_DIRS for p in parts):
            return None  # hidden files and folders, as in a local folder
        if parts[-1] in LABELS_FILES:
            listing.labels_files.append(key)
            return None
        if PurePosixPath(key).suffix.lower() not in IMAGE_EXTENSIONS:
            listing.skip(key, "not an image file (by extension)")
            return None
        folders.add("/".join(parts[:-1]))
        label = self.label or label_for_key(key, self.url.root_name)
        modified = obj.get("LastModified")
        return Sample(key, label, int(obj.get("Size", 0)), modified.timestamp() if modified else None)

    def read_text(self, key: str) -> str:
        where = f"s3://{self.url.bucket}/{self.url.key(key)}"
        try:
            body = self.client.get(self.url.bucket, self.url.key(key))
        except S3Error as e:
            raise SourceError(str(e)) from None
        if body is None:
            raise SourceError(f"cannot read {where}: NoSuchKey: it no longer exists")
        return body.decode("utf-8")

    def prefetch(self, samples: list[Sample]) -> None:
        """Start reading ``samples`` now, each in a thread (a run's first sources, while it checks its
        destination and puts up its manifest header: round trips it would otherwise wait for before the
        first read); ``read`` takes each one's bytes, or its error, once."""
        for sample in samples:
            if sample.key not in self._ahead:
                self._ahead[sample.key] = in_background(functools.partial(self._get, sample), "s3-read-ahead")

    def read(self, sample: Sample) -> bytes:
        """The object's bytes. A key gone since listing is an OSError (that sample fails); anything else
        (endpoint unreachable after retries, access denied) is a SourceError that stops the run."""
        ahead = self._ahead.pop(sample.key, None)
        return ahead.result() if ahead is not None else self._get(sample)

    def _get(self, sample: Sample) -> bytes:
        key = self.url.key(sample.key)
        try:
            data = self.client.get(self.url.bucket, key)
        except S3Error as e:
            raise SourceError(str(e)) from None
        if data is None:
            raise FileNotFoundError(2, f"s3://{self.url.bucket}/{key} no longer exists")
        return data
