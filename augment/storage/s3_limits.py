"""Hard limits for S3 requests: a total time per request, and none left running once the run must stop.

botocore's ``read_timeout`` restarts with every byte (a bucket that trickles holds a read for ever) and its
retries sleep up to 20 s between tries. Here a watchdog thread shuts the socket of any S3 request older
than ``EDGE_AUGMENT_S3_TIMEOUT`` seconds (default 300: a 512 MiB object at about 2 MB/s), and of every
request still under way ``STOP_GRACE`` seconds after a SIGTERM/SIGINT (``augment.signals.stopping``), which
botocore then does not retry (a write that finishes in time is recorded). Requests started after the
signal (the manifest and report of an interrupted run) go ahead.
obstore's object reads, which no socket can be found for, run as cancellable coroutines (``until_stopped``).
Requests are found through the client's connection pools (the connection a request takes from the pool is
the one it uses), installed on the client's urllib3 pool manager: botocore exposes no public hook for it,
so if its internals change the client keeps only its socket timeouts (a test checks).
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import suppress
from typing import Any

from augment.signals import stopping

DEFAULT_TIMEOUT = 300.0  # EDGE_AUGMENT_S3_TIMEOUT (augment.config.env)
_TICK = 0.1
STOP_GRACE = 2.0  # seconds the requests under way at a signal get to finish
_deadlines: dict[Any, tuple[float, float, int]] = {}  # connection in use -> (started, must end by, thread)
_no_retry: set[int] = set()  # threads whose request was cut by a stop
_lock = threading.Lock()
_watchdog: threading.Thread | None = None


def install(client: Any, seconds: float = DEFAULT_TIMEOUT) -> bool:
    """Put ``client``'s requests under the limits (``seconds`` a request); False when this botocore offers no
    way to."""
    http = getattr(getattr(client, "_endpoint", None), "http_session", None)
    manager = getattr(http, "_manager", None)
    if manager is None or not hasattr(http, "_pool_classes_by_scheme"):
        return False
    classes = _tracked_classes(seconds)
    manager.pool_classes_by_scheme = http._pool_classes_by_scheme = classes  # proxies use the latter
    client.meta.events.register_first("needs-retry.s3", _no_retry_when_stopping)
    _start()
    return True


def install_pools(manager: Any, seconds: float) -> None:
    """Put the requests of a urllib3 ``PoolManager`` under the limits (the listings of ``augment.storage.s3_bucket``;
    its ``Retry`` asks ``cut_by_stop`` before retrying)."""
    from urllib3 import HTTPConnectionPool, HTTPSConnectionPool

    manager.pool_classes_by_scheme = _tracked_classes(seconds, HTTPConnectionPool, HTTPSConnectionPool)
    _start()


def cut_by_stop() -> bool:
    """Whether this thread's request was just cut by a stop (then it must not be retried); asks once."""
    with _lock:
        if threading.get_ident() not in _no_retry:
            return False
        _no_retry.discard(threading.get_ident())
    return True


def _no_retry_when_stopping(**kwargs: Any) -> bool | None:
    """False (no retry) for a request the stop cut; None lets botocore's retry rules decide."""
    return False if cut_by_stop() else None


def _tracked_classes(seconds: float, http_base: type | None = None, https_base: type | None = None) -> dict[str, type]:
    from botocore.awsrequest import AWSHTTPConnectionPool, AWSHTTPSConnectionPool

    http_base, https_base = http_base or AWSHTTPConnectionPool, https_base or AWSHTTPSConnectionPool

    class Tracked:
        def _get_conn(self, timeout: float | None = None) -> Any:
            conn = super()._get_conn(timeout)  # type: ignore[misc]
            now = time.monotonic()
            with _lock:
                _deadlines[conn] = (now, now + seconds, threading.get_ident())
            return conn

        def _put_conn(self, conn: Any) -> None:
            with _lock:
                _deadlines.pop(conn, None)
            super()._put_conn(conn)  # type: ignore[misc]

    class HTTPPool(Tracked, http_base):  # type: ignore[misc,valid-type]
        pass

    class HTTPSPool(Tracked, https_base):  # type: ignore[misc,valid-type]
        pass

    return {"http": HTTPPool, "https": HTTPSPool}


def _start() -> None:
    global _watchdog
    with _lock:
        if _watchdog is None:
            _watchdog = threading.Thread(target=_watch, name="s3-deadlines", daemon=True)
            _watchdog.start()


def _watch() -> None:
    stopped_at = None
    while True:
        time.sleep(_TICK)
        now = time.monotonic()
        if stopped_at is None and stopping.is_set():
            stopped_at = now
        cut_before = stopped_at if stopped_at is not None and now >= stopped_at + STOP_GRACE else -1.0
        with _lock:
            due = [
                (conn, entry, entry[0] < cut_before)
                for conn, entry in _deadlines.items()
                if now >= entry[1] or entry[0] < cut_before
            ]
        for conn, entry, by_stop in due:
            sock = getattr(conn, "sock", None)
            with _lock:
                if (sock is None or by_stop) and _deadlines.get(conn) == entry:  # closed, or cut for good
                    del _deadlines[conn]
                if by_stop and sock is not None:
                    _no_retry.add(entry[2])
            if sock is not None:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # the blocked read or send returns at once


class Stopped(RuntimeError):
    """An obstore request dropped because the run must stop."""


_LOOP: list[Any] = []  # the event loop for cancellable obstore requests, in a daemon thread


def until_stopped(coroutine: Any) -> Any:
    """Run ``coroutine`` (an obstore request, whose blocking form cannot be cut) to its end, unless the run
    must stop: then it gets ``STOP_GRACE`` seconds before it is cancelled and ``Stopped`` is raised."""
    import asyncio
    import concurrent.futures

    with _lock:
        if not _LOOP:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="s3-requests", daemon=True).start()
            _LOOP.append(loop)
    future = asyncio.run_coroutine_threadsafe(coroutine, _LOOP[0])
    cut_at = None
    while True:
        try:
            return future.result(timeout=_TICK)
        except concurrent.futures.TimeoutError:
            if stopping.is_set():
                cut_at = cut_at or time.monotonic() + STOP_GRACE
                if time.monotonic() > cut_at:
                    future.cancel()
                    raise Stopped from None
