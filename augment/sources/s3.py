"""An S3 prefix (AWS or any S3-compatible store) as a source of labelled images.

The layout and label rules are the local folder's: ``s3://bucket/prefix/<class>/<image>`` or flat
``<label>.<uid>.<ext>`` keys; a sample's key is the object key relative to the prefix, so an S3 run and a
local run of the same images give the same output names and bytes.

This module and ``augment.sinks.s3`` are the only ones that know boto3. The helpers shared by both (URL
parsing, the lazily created per-process client, one-line error messages) live here. boto3 is imported
only when a client is first needed, so local runs never load it.

Thread safety: ``S3Source.read`` may be called from many threads of one process at once (the run's I/O
threads, ``augment.concurrency.io_threads``). The client is made once per process under a lock, and its
connection pool holds as many connections as there are I/O threads, so no thread waits for (or reopens)
a connection.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from augment import s3_limits
from augment.boxes import LABELS_FILES
from augment.codec import IMAGE_EXTENSIONS
from augment.concurrency import io_threads
from augment.samples import Sample, label_for_key
from augment.sources import IGNORED_DIRS, Listing, Source, SourceError

DEFAULT_MAX_ATTEMPTS = 5  # botocore "standard" retry mode; AWS_MAX_ATTEMPTS / AWS_RETRY_MODE override
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CLIENT_LOCK = threading.Lock()  # guards lazy client creation; a fresh one in a forked child
os.register_at_fork(after_in_child=lambda: globals().update(_CLIENT_LOCK=threading.Lock()))


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
    if any(0xDC80 <= ord(c) <= 0xDCFF for c in key):  # a local name that is not UTF-8
        return "not valid UTF-8 (S3 keys must be)"
    parts = key.split("/")
    if any(p == "" for p in parts):
        return "empty path segment ('//')"
    if any(p in (".", "..") for p in parts):
        return "'.' or '..' path segment (would escape the folder)"
    return None


def retry_config() -> dict[str, Any]:
    """botocore retry settings: standard mode, DEFAULT_MAX_ATTEMPTS, unless the AWS_* env vars say otherwise."""
    mode = os.environ.get("AWS_RETRY_MODE", "standard")
    try:
        attempts = int(os.environ.get("AWS_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS))
    except ValueError:
        attempts = DEFAULT_MAX_ATTEMPTS
    return {"mode": mode if mode in ("standard", "adaptive", "legacy") else "standard", "max_attempts": attempts}


class S3Client:
    """A boto3 S3 client made lazily, once per process, shared by that process's threads.

    Sources and sinks are pickled to (or forked into) worker processes; boto3 clients must not cross a
    process boundary, so the client is dropped on pickling and re-made when the process id changes.
    Credentials, region and endpoint come from the standard AWS chain unless ``endpoint`` is given.
    """

    def __init__(self, endpoint: str | None = None) -> None:
        self.endpoint = endpoint or None
        self._client: Any = None
        self._pid = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["endpoint"])

    def get(self) -> Any:
        """The client of this process (made by the first caller; the others wait for it)."""
        pid = os.getpid()
        if self._pid == pid and self._client is not None:  # _pid is set after _client: read it first
            return self._client
        with _CLIENT_LOCK:
            if self._pid != pid or self._client is None:
                self._client = _make_client(self.endpoint)
                self._pid = pid
            return self._client

    def describe_endpoint(self) -> str:
        if self.endpoint:
            return self.endpoint
        return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"


def _make_client(endpoint: str | None) -> Any:
    import boto3
    from botocore.config import Config

    custom = endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(
        retries=retry_config(),
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=pool_size(),
        # S3-compatible stores are reached by path (no wildcard DNS needed); AWS itself by virtual host.
        s3={"addressing_style": "path"} if custom else None,
    )
    try:
        client = boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)
    except Exception as e:  # noqa: BLE001  (ProfileNotFound, bad endpoint URL, ...: all one-line config errors)
        raise S3Error(f"cannot set up the S3 client: {type(e).__name__}: {scrub(str(e))}") from None
    s3_limits.install(client)  # a total time per request; none left running after a SIGTERM
    return client


def pool_size() -> int:
    """Connections a client keeps open: one per I/O thread (botocore's default of 10 would make the other
    threads open and drop a connection per request), never fewer than botocore's default."""
    return max(10, io_threads())


class S3Error(RuntimeError):
    """A failed S3 call, already phrased for the log (one line, naming bucket and key, no secrets)."""


def describe_error(error: Exception, action: str, where: str, client: S3Client) -> str:
    """A one-line message for a botocore exception raised while doing ``action`` on ``where`` (s3://...)."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    attempts = retry_config()["max_attempts"]
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        code = str(info.get("Code") or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "?")
        hints = {
            "NoSuchBucket": "the bucket does not exist (check the bucket name and the endpoint/region)",
            "AccessDenied": "access denied: the credentials lack permission for it",
            "403": "access denied (403): wrong credentials, or no permission for it",
            "InvalidAccessKeyId": "the access key id is not known to this endpoint: check AWS_ACCESS_KEY_ID",
            "SignatureDoesNotMatch": "the secret key does not match the access key: check AWS_SECRET_ACCESS_KEY",
            "ExpiredToken": "the session token has expired: refresh the credentials",
            "InvalidToken": "the session token is not valid: check AWS_SESSION_TOKEN",
            "PermanentRedirect": "the bucket is in another region: set AWS_DEFAULT_REGION",
            "AuthorizationHeaderMalformed": "the region does not match the bucket's: set AWS_DEFAULT_REGION",
        }
        detail = hints.get(code) or scrub(str(info.get("Message") or "no message"))
        return f"cannot {action} {where}: {code}: {detail}"
    if isinstance(error, NoCredentialsError):
        return (
            f"cannot {action} {where}: no AWS credentials found "
            "(set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or use an instance role)"
        )
    if isinstance(error, EndpointConnectionError):
        return (
            f"cannot {action} {where}: cannot reach the S3 endpoint {client.describe_endpoint()} "
            f"after {attempts} attempts"
        )
    return f"cannot {action} {where}: {type(error).__name__}: {scrub(str(error))} (after {attempts} attempts)"


def scrub(text: str) -> str:
    """``text`` with any secret from the environment blanked out (defence in depth: messages get logged)."""
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        secret = os.environ.get(name)
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return " ".join(text.split())[:500]


def botocore_errors() -> tuple[type[Exception], ...]:
    """The exceptions a boto3 call raises for a failed request (after its retries)."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError, S3Error)


def iter_objects(client: S3Client, url: S3Url) -> Iterator[dict[str, Any]]:
    """Every object under ``url``'s prefix, a page (1,000 keys) at a time, via boto3's paginator."""
    pages = (
        client.get()
        .get_paginator("list_objects_v2")
        .paginate(Bucket=url.bucket, Prefix=url.prefix, PaginationConfig={"PageSize": 1000})
    )
    for page in pages:
        yield from page.get("Contents", ())


class S3Source(Source):
    """Images under ``s3://bucket/prefix/``: listed with the ListObjectsV2 paginator, read with GetObject."""

    def __init__(
        self,
        url: S3Url,
        label: str | None = None,
        exclude: S3Url | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.url = url
        self.label = label  # overrides every label (EI's --upload-label)
        self.exclude = exclude  # an S3 destination inside the source prefix: never read back as input
        self.client = S3Client(endpoint)

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
        except botocore_errors() as e:
            raise SourceError(error_message(e, "list", str(self.url), self.client)) from None
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
        try:
            body = self.client.get().get_object(Bucket=self.url.bucket, Key=self.url.key(key))["Body"].read()
        except botocore_errors() as e:
            where = f"s3://{self.url.bucket}/{self.url.key(key)}"
            raise SourceError(error_message(e, "read", where, self.client)) from None
        return body.decode("utf-8")

    def read(self, sample: Sample) -> bytes:
        """The object's bytes. A key gone since listing is an OSError (that sample fails); anything else
        (endpoint unreachable after retries, access denied) is a SourceError that stops the run."""
        key = self.url.key(sample.key)
        try:
            response = self.client.get().get_object(Bucket=self.url.bucket, Key=key)
            return response["Body"].read()
        except botocore_errors() as e:
            code = (getattr(e, "response", None) or {}).get("Error", {}).get("Code")  # None: no answer
            if code == "NoSuchKey":
                raise FileNotFoundError(2, f"s3://{self.url.bucket}/{key} no longer exists") from None
            raise SourceError(error_message(e, "read", f"s3://{self.url.bucket}/{key}", self.client)) from None


def error_message(error: Exception, action: str, where: str, client: S3Client) -> str:
    if isinstance(error, S3Error):
        return str(error)
    return describe_error(error, action, where, client)
