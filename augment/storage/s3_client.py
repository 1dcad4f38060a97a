"""The S3 client shared by the S3 source and sink: obstore for objects, ``augment.storage.s3_bucket`` for listings.

Every object read and written (GetObject, PutObject, the final manifest's multipart upload) goes through
obstore (Rust ``object_store``): about 0.2 ms of CPU a request against boto3's 1.2-1.5
(``bench/s3_clients.py``), and it releases the GIL while it waits. Listings and bulk deletes (a request per
1,000 keys) are ``augment.storage.s3_bucket``'s: object_store cannot list every key the source must see.

Credentials, region and endpoint come from botocore's resolver, so the standard AWS chain works as it always
has (environment keys and session token, ``AWS_PROFILE`` and the shared files, web identity, ECS task role,
EC2 instance metadata, SSO, ``credential_process``); obstore takes them from a callback that refreshes them
(``_Credentials``). One botocore session per endpoint; nothing is imported until S3 is used.

Only the run's main process makes S3 requests (its I/O threads read and write; the render workers do no I/O).
Tokio's runtime does not survive a fork: a library caller that forks after S3 requests and uses S3 in the
child gets an error instead of a hang.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import datetime, timedelta, timezone
from typing import IO, Any

from augment.signals import stopping
from augment.storage import s3_limits
from augment.storage.background import in_background
from augment.storage.s3_bucket import Bucket, BucketError, Page, http_client
from augment.storage.s3_errors import HINTS, NO_CREDENTIALS, error_code, s3_message, unreachable

DEFAULT_MAX_ATTEMPTS = 5  # AWS_MAX_ATTEMPTS (augment.config.env)
_LOCK = threading.Lock()  # guards lazy creation
_OBSTORE_PID = [0]  # the process whose tokio runtime obstore started (0: none yet)
_REFRESH = timedelta(minutes=5)  # botocore refreshes expiring credentials 15 min ahead: 5-min-old ones stay valid
_PART_SIZE = 8 * 1024 * 1024  # multipart chunk of the final manifest
_CUT = 1.0  # seconds past its time limit a request may take to be cut (s3_limits' watchdog ticks)


class S3Error(RuntimeError):
    """A failed S3 call, already phrased for the log (one line, naming bucket and key, no secrets)."""


def configured_endpoint(endpoint: str | None, session: Any = None) -> str | None:
    """``--s3-endpoint``, else AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else (given the botocore session)
    the profile's ``endpoint_url`` (its ``services`` section's for s3 first); None for AWS itself."""
    found = endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if found or session is None or session.get_config_variable("ignore_configured_endpoint_urls"):
        return found or None
    from botocore.configprovider import ConfiguredEndpointProvider

    return ConfiguredEndpointProvider(session.full_config, session.get_scoped_config(), "s3").provide() or None


def endpoint_problem(url: str) -> str | None:
    """Why ``url`` cannot be an S3 endpoint (said without echoing a secret it may hold), or None."""
    if "@" in url.partition("?")[0]:  # http://user:secret@host: keys go in AWS_* variables, never in a URL
        return (
            f"credentials inside the URL ({redact(url)}) are not accepted: use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )
    if not url.startswith(("http://", "https://")):
        return f"expected http(s)://host[:port], got {url!r}"
    return None


def _check_endpoint(url: str | None) -> str | None:
    if url and (problem := endpoint_problem(url)):
        raise S3Error(f"cannot use the S3 endpoint: {problem}")
    return url


def redact(url: str) -> str:
    """``url`` with anything before an ``@`` (user, password) blanked out."""
    scheme, sep, rest = url.rpartition("://")
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}" if "@" in rest else url


class S3Client:
    """S3 for a source or sink: the clients are made lazily, once per endpoint, and shared by every S3Client
    (a source and a sink on one store resolve credentials once) and their threads."""

    def __init__(
        self,
        endpoint: str | None = None,
        timeout: float = s3_limits.DEFAULT_TIMEOUT,
        attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.endpoint, self.timeout, self.attempts = endpoint or None, timeout, attempts  # a request's time, tries
        self._mine: _Clients | None = None  # the clients this S3Client uses

    def describe_endpoint(self) -> str:
        mine = self._mine
        return redact((mine.endpoint if mine else configured_endpoint(self.endpoint)) or "AWS S3")

    # -- objects (obstore) --

    def get(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such key (a missing bucket is an S3Error). Once the run
        must stop, none is started, and one under way gets ``STOP_GRACE`` s (then it is dropped, not retried)."""
        import obstore

        if stopping.is_set():
            raise S3Error(f"not reading s3://{bucket}/{key}: the run is stopping")
        try:
            store = self._store(bucket)

            async def read() -> bytes:
                return bytes(await (await obstore.get_async(store, key)).bytes_async())

            return s3_limits.until_stopped(read())
        except s3_limits.Stopped:
            raise S3Error(f"cannot read s3://{bucket}/{key}: cut by the stop") from None
        except S3Error:
            raise
        except Exception as e:  # noqa: BLE001  (obstore raises OSError, ValueError and its own errors)
            return self._missing_or_raise(e, "read", bucket, key)

    def chunks(self, bucket: str, key: str) -> Iterator[bytes] | None:
        """The object's bytes a chunk at a time, or None when there is no such key."""
        import obstore

        try:
            stream = obstore.get(self._store(bucket), key).stream(min_chunk_size=1024 * 1024)
        except Exception as e:  # noqa: BLE001
            return self._missing_or_raise(e, "read", bucket, key)
        return self._read_stream(stream, bucket, key)

    def _read_stream(self, stream: Any, bucket: str, key: str) -> Iterator[bytes]:
        try:
            for chunk in stream:
                yield bytes(chunk)
        except Exception as e:  # noqa: BLE001  (the connection broke while reading)
            raise S3Error(self.message(e, "read", f"s3://{bucket}/{key}")) from None

    def put(self, bucket: str, key: str, data: bytes | IO[bytes], content_type: str) -> None:
        """One PutObject (bytes), or a multipart upload when a file is larger than a part."""
        import obstore

        try:
            obstore.put(
                self._store(bucket),
                key,
                data,
                attributes={"Content-Type": content_type},
                chunk_size=_PART_SIZE,
                max_concurrency=4,
            )
        except Exception as e:  # noqa: BLE001
            raise S3Error(self.message(e, "write", f"s3://{bucket}/{key}")) from None

    def _missing_or_raise(self, error: Exception, action: str, bucket: str, key: str) -> None:
        if isinstance(error, FileNotFoundError) and error_code(error) in ("NoSuchKey", "404"):
            return None
        raise S3Error(self.message(error, action, f"s3://{bucket}/{key}")) from None

    # -- listings and bulk deletes (augment.storage.s3_bucket) --

    def pages(self, bucket: str, prefix: str, page_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """The objects under ``prefix`` (dicts as boto3's ListObjectsV2 gives them: Key, Size, ETag,
        LastModified), a page at a time; the first from ``list_ahead`` when it listed this very prefix."""
        try:
            first = self._first_page(bucket, prefix, page_size)
            yield from self._bucket(bucket).pages(prefix, page_size, first)
        except BucketError as e:
            raise S3Error(self.message(e, "list", f"s3://{bucket}/{prefix}")) from None

    def _first_page(self, bucket: str, prefix: str, page_size: int) -> Page | None:
        """The page listed ahead of ``prefix``, or None (``pages`` asks for it). A request that failed there
        was this listing's first try: the page is asked for with the tries left, the error raised when none
        is (the same wait and message as without ``list_ahead``)."""
        try:
            return self._ahead((bucket, prefix, page_size))
        except BucketError:
            if self.attempts == 1 or stopping.is_set():  # a request cut by a stop is not tried again
                raise
        return S3Client(self.endpoint, self.timeout, self.attempts - 1)._bucket(bucket).page(prefix, page_size)

    def list_ahead(self, bucket: str, prefix: str, page_size: int = 1000) -> None:
        """Start listing the first page of ``prefix`` in a background thread (credentials resolved there
        too): the first ``pages`` of the same prefix, store and AWS settings takes it instead of asking
        again. One try, with this client's time limit: a failed one is the first of ``pages``' tries."""
        key = (_client_key(self.endpoint), bucket, prefix, page_size)
        once = S3Client(self.endpoint, self.timeout, 1)
        with _LOCK:
            _AHEAD[key] = in_background(lambda: once._bucket(bucket).page(prefix, page_size), "s3-list-ahead")

    def _ahead(self, key: tuple[str, str, int]) -> Page | None:
        """The page ``list_ahead`` listed for ``key`` (once), waiting for it up to this client's time limit
        of a request (it started earlier, with that limit); None when there is none, or it could not try (no
        credentials, a refused endpoint: the run says why) or did not end in time; its BucketError when its
        request failed."""
        with _LOCK:
            listing = _AHEAD.pop((_client_key(self.endpoint), *key), None)
        try:
            return listing.result(timeout=self.timeout + _CUT) if listing is not None else None
        except BucketError:
            raise
        except Exception:  # noqa: BLE001  (listed again, with this client's tries)
            return None

    def delete(self, bucket: str, keys: list[str]) -> list[dict[str, Any]]:
        """DeleteObjects, 1,000 keys a request; the per-key refusals (``Key``, ``Code``, ``Message``)."""
        refused: list[dict[str, Any]] = []
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            try:
                refused += self._bucket(bucket).delete(batch)
            except BucketError as e:
                raise S3Error(self.message(e, "delete", f"s3://{bucket}/{batch[0]}")) from None
        return refused

    # -- making the clients --

    def _clients(self) -> _Clients:
        """The clients for this endpoint and AWS_* settings (made by the first caller, the others wait for it)."""
        mine = self._mine
        if mine is not None:
            return mine
        key = _client_key(self.endpoint)
        _check_endpoint(configured_endpoint(self.endpoint))  # before credentials: the URL may hold some
        with _LOCK:
            clients = _SHARED.get(key)
            if clients is None:
                session = _session()
                custom = _check_endpoint(configured_endpoint(self.endpoint, session))
                clients = _SHARED[key] = _Clients(session, custom)
            self._mine = clients
        return clients

    def _store(self, bucket: str) -> Any:
        if _OBSTORE_PID[0] not in (0, os.getpid()):
            raise S3Error("S3 used in a process forked after S3 requests were made (not supported by obstore)")
        return self._for(bucket, "stores", self._make_store)

    def _bucket(self, bucket: str) -> Bucket:
        return self._for(bucket, "buckets", self._make_bucket)

    def _for(self, bucket: str, kind: str, make: Any) -> Any:
        """The obstore store or the ``Bucket`` (``kind``) of ``bucket`` with this client's time limit and
        tries, made by the first caller."""
        clients = self._clients()
        made, key = getattr(clients, kind), (bucket, self.timeout, self.attempts)
        found = made.get(key)
        if found is None:
            with _LOCK:
                found = made.get(key) or make(clients, bucket)
                made[key] = found
        return found

    def _make_bucket(self, clients: _Clients, bucket: str) -> Bucket:
        from botocore.auth import S3SigV4Auth

        region = _region(clients.session) or "us-east-1"
        custom = clients.endpoint
        if custom:  # S3-compatible stores are reached by path (no wildcard DNS needed)
            url = f"{custom.rstrip('/')}/{bucket}"
        else:  # AWS by virtual host, as boto3; by path for dotted names (no wildcard certificate)
            url = (
                f"https://s3.{region}.amazonaws.com/{bucket}"
                if "." in bucket
                else f"https://{bucket}.s3.{region}.amazonaws.com"
            )
        http = http_client(self.attempts, self.timeout)

        def sign(request: Any) -> None:
            S3SigV4Auth(clients.credentials.frozen(), "s3", region).add_auth(request)

        return Bucket(url, sign, http)

    def _make_store(self, clients: _Clients, bucket: str) -> Any:
        from obstore.store import S3Store

        custom = clients.endpoint
        config: dict[str, Any] = {"region": _region(clients.session) or "us-east-1"}
        if custom:
            config |= {"endpoint": custom, "virtual_hosted_style_request": False}
        else:  # AWS: virtual-host addressing, as boto3; path style for dotted names (no wildcard certificate)
            config["virtual_hosted_style_request"] = "." not in bucket
        backoff = {"init_backoff": timedelta(milliseconds=500), "max_backoff": timedelta(seconds=20), "base": 2}
        try:
            store = S3Store(
                bucket,
                config=config,
                client_options={
                    "allow_http": bool(custom and custom.startswith("http://")),
                    "connect_timeout": timedelta(seconds=10),
                    "timeout": timedelta(seconds=self.timeout),  # a try's total time
                },
                retry_config={"max_retries": self.attempts - 1, "backoff": backoff},
                credential_provider=clients.credentials,
            )
        except Exception as e:  # noqa: BLE001
            raise S3Error(f"cannot set up the S3 client: {type(e).__name__}: {self.scrub(str(e))}") from None
        _OBSTORE_PID[0] = os.getpid()
        return store

    # -- messages --

    def scrub(self, text: str) -> str:
        """``text`` with any secret blanked out (defence in depth: messages get logged), on one line."""
        secrets = {os.environ.get(n) for n in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")}
        mine = self._mine
        for secret in secrets | set(mine.credentials.secrets() if mine else ()):
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return " ".join(text.split())[:500]

    def message(self, error: Exception, action: str, where: str) -> str:
        """One line for ``error`` (obstore's or a ``BucketError``) raised while doing ``action`` on ``where``."""
        if isinstance(error, S3Error):
            return str(error)
        code = error_code(error)
        if code in HINTS:
            return f"cannot {action} {where}: {code}: {HINTS[code]}"
        name = type(error).__name__
        attempts = self.attempts
        if unreachable(error):
            endpoint = self.describe_endpoint()
            return f"cannot {action} {where}: cannot reach the S3 endpoint {endpoint} after {attempts} attempts"
        if code:
            return f"cannot {action} {where}: {code}: {self.scrub(s3_message(error))}"
        first = str(error).split("\n\nDebug source:")[0]  # obstore appends a multi-line debug dump
        return f"cannot {action} {where}: {name}: {self.scrub(first)} (after {attempts} attempts)"


def _session() -> Any:
    """A botocore session with its credentials resolved (the standard chain); S3Error when there are none."""
    import botocore.session

    try:
        session = botocore.session.Session()
        if session.get_credentials() is None:
            raise S3Error(f"cannot use S3: {NO_CREDENTIALS}")
    except S3Error:
        raise
    except Exception as e:  # noqa: BLE001  (ProfileNotFound, a bad config file, an unreachable role endpoint)
        raise S3Error(f"cannot set up the S3 client: {type(e).__name__}: {' '.join(str(e).split())[:300]}") from None
    return session


def _region(session: Any) -> str | None:
    return session.get_config_variable("region") or os.environ.get("AWS_REGION") or None


class _Clients:
    """The clients for one endpoint: the botocore session, per bucket an obstore store and a
    ``Bucket`` for listings, all fed by one credential provider."""

    def __init__(self, session: Any, endpoint: str | None) -> None:
        self.session = session
        self.endpoint = endpoint  # None: AWS itself
        self.credentials = _Credentials(session)
        self.buckets: dict[tuple[str, float, int], Bucket] = {}  # (bucket, time limit, tries) -> listings, deletes
        self.stores: dict[tuple[str, float, int], Any] = {}  # (bucket, time limit, tries) -> obstore S3Store


_SHARED: dict[tuple, _Clients] = {}  # ``_client_key`` -> its clients
_AHEAD: dict[tuple, Future[Page]] = {}  # (``_client_key``, bucket, prefix, page size) -> a first page listed ahead


def _client_key(endpoint: str | None) -> tuple:
    """What the clients depend on: the endpoint given, and the AWS_* variables (credentials, region, ...)."""
    return (endpoint, *sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))


def forget_ahead() -> None:
    """Drop the pages listed ahead that no listing took (a later listing asks the store, as it must)."""
    with _LOCK:
        _AHEAD.clear()


class _Credentials:
    """obstore's credential provider: botocore's credentials, frozen; refreshable ones are asked again every
    ``_REFRESH`` (botocore renews them itself when they near expiry), static ones never."""

    def __init__(self, session: Any) -> None:
        self._credentials = session.get_credentials()
        self._refreshable = hasattr(self._credentials, "refresh_needed")

    def secrets(self) -> tuple[str, ...]:
        frozen = self._credentials.get_frozen_credentials()
        return tuple(s for s in (frozen.secret_key, frozen.token) if s)

    def frozen(self) -> Any:
        return self._credentials.get_frozen_credentials()

    def __call__(self) -> dict[str, Any]:
        frozen = self.frozen()
        expires = datetime.now(timezone.utc) + _REFRESH if self._refreshable else None  # noqa: UP017
        return {
            "access_key_id": frozen.access_key,
            "secret_access_key": frozen.secret_key,
            "token": frozen.token,
            "expires_at": expires,
        }
