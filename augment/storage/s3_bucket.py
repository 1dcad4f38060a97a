"""Bucket-level S3 requests the object client cannot make as the block needs them: ListObjectsV2, DeleteObjects.

obstore (``augment.storage.s3_client``) lists through ``object_store``, which refuses a whole listing over one key
it cannot represent (``a/../b``, ``a//b``, control characters) and drops the ``/`` of folder markers, where
the source must skip and report such keys and see empty folders. A boto3 client would do, but making one
costs about 0.2 s of CPU a run (the S3 model, its rules); these two requests are a page of 1,000 keys each,
signed with botocore's SigV4 signer (botocore already resolves the credentials) and sent with urllib3, whose
``Retry`` backs off on 5xx, 429 and dropped connections like the object client.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote_plus

Signer = Callable[[Any], None]  # adds SigV4 headers to a botocore AWSRequest


def http_client(attempts: int, seconds: float) -> Any:
    """A urllib3 pool manager retrying ``attempts - 1`` times with backoff (5xx, 429, dropped connections),
    its requests under ``augment.storage.s3_limits`` (``seconds`` in all each; cut, and not retried, on a stop)."""
    import urllib3

    from augment.storage import s3_limits

    class Retry(urllib3.Retry):
        def increment(self, *args: Any, **kwargs: Any) -> urllib3.Retry:
            if s3_limits.cut_by_stop():
                raise urllib3.exceptions.MaxRetryError(kwargs.get("_pool"), kwargs.get("url") or "", "stopped")
            return super().increment(*args, **kwargs)

    retry = Retry(
        total=attempts - 1,
        allowed_methods=None,  # every method: ListObjectsV2 and DeleteObjects are idempotent
        status_forcelist=(429, 500, 502, 503, 504),
        backoff_factor=0.5,
        backoff_max=20,
        backoff_jitter=0.5,
        raise_on_status=False,  # the last answer's S3 error is the message
    )
    manager = urllib3.PoolManager(maxsize=4, retries=retry, timeout=urllib3.Timeout(connect=10, read=60))
    s3_limits.install_pools(manager, seconds)
    return manager


@dataclass(frozen=True)
class Page:
    """One page of a listing: its objects, and the token of the next page (None: the last page)."""

    objects: list[dict[str, Any]]
    next_token: str | None


class BucketError(RuntimeError):
    """A failed request: ``status code: NNN: <body>`` (the S3 error XML), or the transport's error."""


class Bucket:
    """ListObjectsV2 and DeleteObjects on ``url`` (``https://host/bucket`` or ``https://bucket.host``)."""

    def __init__(self, url: str, sign: Signer, http: Any) -> None:
        self.url, self._sign, self._http = url.rstrip("/"), sign, http

    def pages(self, prefix: str, page_size: int = 1000, first: Page | None = None) -> Iterator[list[dict[str, Any]]]:
        """Objects under ``prefix`` a page at a time, as boto3 gives them: Key, Size, ETag, LastModified;
        ``first``: the first page, already listed (``page``), else it is asked for too."""
        page, seen = first or self.page(prefix, page_size), set()
        while True:
            yield page.objects
            token = page.next_token
            if not token:
                return
            if token in seen:  # a store that would page forever
                raise BucketError(f"the listing of {prefix!r} came back to a page it had already given")
            seen.add(token)
            page = self.page(prefix, page_size, token)

    def page(self, prefix: str, page_size: int = 1000, token: str | None = None) -> Page:
        """One ListObjectsV2 request: the page after ``token`` (the first without)."""
        query = {"list-type": "2", "prefix": prefix, "max-keys": str(page_size), "encoding-type": "url"}
        if token:
            query["continuation-token"] = token
        root = self._request("GET", query)
        more = _text(root, "IsTruncated") == "true"
        return Page(
            [_object(node) for node in _children(root, "Contents")],
            _text(root, "NextContinuationToken") if more else None,
        )

    def delete(self, keys: list[str]) -> list[dict[str, Any]]:
        """Delete up to 1,000 ``keys`` in one request; the refused ones (Key, Code, Message)."""
        from xml.sax.saxutils import escape  # here, not at the top: it imports urllib.request (~17 ms a run)

        objects = "".join(f"<Object><Key>{escape(key)}</Key></Object>" for key in keys)
        body = f"<Delete><Quiet>true</Quiet>{objects}</Delete>".encode()
        md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
        root = self._request("POST", {"delete": ""}, body, {"Content-MD5": md5, "Content-Type": "application/xml"})
        return [{k: _text(node, k) for k in ("Key", "Code", "Message")} for node in _children(root, "Error")]

    def _request(self, method: str, query: dict[str, str], body: bytes = b"", headers: dict | None = None) -> Any:
        from xml.etree import ElementTree

        from botocore.awsrequest import AWSRequest

        params = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" if v else k for k, v in sorted(query.items()))
        request = AWSRequest(method=method, url=f"{self.url}/?{params}", data=body, headers=headers or {})
        self._sign(request)
        try:
            response = self._http.request(method, request.url, body=body or None, headers=dict(request.headers))
        except Exception as e:  # noqa: BLE001  (urllib3's MaxRetryError and the like: the retries ran out)
            raise BucketError(f"error sending request: {type(e).__name__}: {e}") from None
        if response.status >= 300:
            raise BucketError(f"status code: {response.status}: {response.data.decode('utf-8', 'replace')[:2000]}")
        try:
            return ElementTree.fromstring(response.data)
        except ElementTree.ParseError as e:
            raise BucketError(f"not an S3 answer ({response.status}, {len(response.data)} bytes): {e}") from None


def _children(root: Any, name: str) -> list[Any]:
    return [node for node in root if node.tag.rpartition("}")[2] == name]


def _text(node: Any, name: str) -> str | None:
    found = _children(node, name)
    return found[0].text if found else None


def _object(node: Any) -> dict[str, Any]:
    modified = _text(node, "LastModified")
    return {
        "Key": unquote_plus(_text(node, "Key") or ""),  # encoding-type=url: any key survives the XML
        "Size": int(_text(node, "Size") or 0),
        "ETag": _text(node, "ETag") or "",
        "LastModified": datetime.fromisoformat(modified.replace("Z", "+00:00")) if modified else None,
    }
