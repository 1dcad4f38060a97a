"""HTTP to one endpoint with hard time limits: urllib3 ``Retry`` on a requests ``Session``, no redirects.

Socket timeouts alone bound nothing: a read timeout restarts with every byte, so a server that trickles a
byte every 10 s holds a request forever. Here each ``call()`` (a request and its retries) has two limits:
``attempt`` seconds for one request in all, and ``budget`` seconds for the call, backoff and Retry-After
waits included (no retry starts, and no wait is begun, that would end past it). A watchdog thread shuts the
socket of a request that outlives its limit, or of every request ``STOP_GRACE`` seconds after ``stop`` is
set (a SIGTERM), so a blocked send or read returns at once. Sockets are found through the connection pool:
the connection a thread takes from it is the one its call is using.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

_local = threading.local()
_TICK = 0.1  # seconds between the watchdog's looks
MAX_ANSWER = 1 << 20  # bytes of an answer read at most: a longer one is not an answer to rely on
STOP_GRACE = 2.0  # seconds a request under way gets to finish once stop is set (its answer is worth having)


@dataclass(frozen=True)
class Limits:
    connect: float = 5.0  # seconds to connect (a socket cannot be cut before it exists)
    idle: float = 60.0  # seconds without a byte
    attempt: float = 120.0  # seconds for one request, sending and answer, however slow the bytes
    budget: float = 300.0  # seconds for a call: its retries and the waits between them
    retries: int = 8
    backoff: float = 0.5  # urllib3 backoff_factor: 0.5, 1, 2, 4 ... s (capped at 30 s), with jitter
    max_retry_after: float = 120.0  # a longer Retry-After is cut to this


class OutOfTime(Exception):
    """A call gave up: its time budget would be exceeded by waiting for the next retry."""


class Stopped(Exception):
    """The session was stopped (a signal) while a call waited to retry."""


class _Call:
    """One call's clock and the connection its current attempt uses."""

    def __init__(self, limits: Limits, stop: threading.Event) -> None:
        self.limits, self.stop = limits, stop
        self.start = time.monotonic()
        self.end = self.start + limits.budget
        self.attempt_end = self.end
        self.conn: Any = None
        self.attempts = 0  # requests sent (retries included)
        self.cut: str | None = None  # why the watchdog shut a socket: "time" | "stop"
        self.lock = threading.Lock()

    def begin(self, conn: Any) -> None:
        with self.lock:
            self.conn = conn
            self.attempts += 1
            self.attempt_end = min(time.monotonic() + self.limits.attempt, self.end)

    def detach(self, conn: Any) -> None:
        with self.lock:
            if self.conn is conn:
                self.conn = None

    def over(self) -> bool:
        return self.stop.is_set() or time.monotonic() >= self.end

    def wait(self, seconds: float, why: str) -> None:
        """Sleep ``seconds`` before a retry; raise OutOfTime if that would end past the budget, Stopped if
        ``stop`` is set meanwhile."""
        if time.monotonic() + seconds >= self.end:
            raise OutOfTime(f"{why}; the next try would start after {self.limits.budget:g} s")
        if self.stop.wait(seconds):
            raise Stopped()

    def watch(self, now: float, stopped: bool) -> None:
        with self.lock:
            why = "stop" if stopped else "time" if now >= self.attempt_end else None
            sock = getattr(self.conn, "sock", None)
            if why is None or sock is None:
                return
            self.cut = why
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # the blocked send/recv returns (EPIPE or end of stream)


def _current() -> _Call | None:
    return getattr(_local, "call", None)


class Session:
    """A requests Session for one endpoint with ``Limits``; ``stop`` cuts every request under way."""

    def __init__(self, limits: Limits, pool_size: int, stop: threading.Event) -> None:
        self.limits, self.stop = limits, stop
        self.calls: set[_Call] = set()
        self.lock = threading.Lock()
        self.requests = _requests_session(limits, pool_size)
        self.watchdog = threading.Thread(target=self._watch, name="http-deadlines", daemon=True)
        self.closed = threading.Event()
        self.watchdog.start()

    @contextmanager
    def call(self) -> Iterator[_Call]:
        """One logical request in this thread (retries included) under the time limits."""
        call = _Call(self.limits, self.stop)
        with self.lock:
            self.calls.add(call)
        _local.call = call
        try:
            yield call
        finally:
            _local.call = None
            with self.lock:
                self.calls.discard(call)

    def post(self, url: str, **kwargs: Any) -> Any:
        """POST without following any redirect (a 3xx is returned as it is); the body is read by ``text``."""
        timeout = (self.limits.connect, self.limits.idle)
        return self.requests.post(url, timeout=timeout, allow_redirects=False, stream=True, **kwargs)

    @staticmethod
    def text(response: Any) -> str | None:
        """The answer's body (its charset, else UTF-8), or None when it was cut short or is over MAX_ANSWER."""
        try:
            data = response.raw.read(MAX_ANSWER + 1, decode_content=True)
        except Exception:  # noqa: BLE001 - urllib3's IncompleteRead, ProtocolError, a cut socket: all "cut short"
            return None
        finally:
            response.close()
        if len(data) > MAX_ANSWER:
            return None
        charset = re.search(r"charset=\"?([\w.:-]+)", response.headers.get("Content-Type", ""))
        try:
            return data.decode(charset.group(1) if charset else "utf-8", errors="replace")
        except LookupError:
            return data.decode("utf-8", errors="replace")

    def close(self) -> None:
        self.closed.set()
        self.requests.close()

    def _watch(self) -> None:
        stopped_at = None
        while not self.closed.wait(_TICK):
            now = time.monotonic()
            if stopped_at is None and self.stop.is_set():
                stopped_at = now
            with self.lock:
                calls = list(self.calls)
            for call in calls:
                call.watch(now, stopped_at is not None and now >= stopped_at + STOP_GRACE)


def _requests_session(limits: Limits, pool_size: int) -> Any:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
    from urllib3.exceptions import InvalidHeader
    from urllib3.util.retry import Retry

    class TimedRetry(Retry):
        """Retries end with the call's budget; their waits stop early on ``stop``."""

        def get_retry_after(self, response: Any) -> float | None:
            try:
                seconds = super().get_retry_after(response)
            except (InvalidHeader, ValueError, OverflowError):  # "soon", "-5", 5000 digits, year 99999: backoff
                return None
            return None if seconds is None else min(seconds, limits.max_retry_after)

        def is_exhausted(self) -> bool:
            call = _current()
            return super().is_exhausted() or (call is not None and call.over())

        def sleep(self, response: Any = None) -> None:
            seconds = self.get_retry_after(response) if response is not None else None
            why = f"HTTP {response.status}" if response is not None else "no answer"
            seconds = self.get_backoff_time() if seconds is None else seconds
            call = _current()
            if call is None:
                time.sleep(seconds)
            else:
                call.wait(seconds, why)

    class Tracked:
        """A pool whose checked-out connection is the current call's (for the watchdog)."""

        def _get_conn(self, timeout: float | None = None) -> Any:
            conn = super()._get_conn(timeout)  # type: ignore[misc]
            if (call := _current()) is not None:
                call.begin(conn)
            return conn

        def _put_conn(self, conn: Any) -> None:
            if (call := _current()) is not None:
                call.detach(conn)
            super()._put_conn(conn)  # type: ignore[misc]

    class HTTPPool(Tracked, HTTPConnectionPool):
        pass

    class HTTPSPool(Tracked, HTTPSConnectionPool):
        pass

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": HTTPPool, "https": HTTPSPool}

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:  # HTTPS_PROXY and co.: watched too
            manager = super().proxy_manager_for(proxy, **kwargs)
            manager.pool_classes_by_scheme = {"http": HTTPPool, "https": HTTPSPool}
            return manager

    retry = TimedRetry(
        total=limits.retries,
        connect=limits.retries,
        read=limits.retries,
        status=limits.retries,
        other=2,
        redirect=0,
        allowed_methods=frozenset({"POST"}),  # the uploader's only method: x-disallow-duplicates makes a resend
        # of a stored file come back as a duplicate, so a POST whose answer was lost is safe to repeat
        status_forcelist=(429, 500, 502, 503, 504),
        backoff_factor=limits.backoff,
        backoff_max=30,
        backoff_jitter=limits.backoff / 2,
        respect_retry_after_header=True,
        raise_on_status=False,  # the last answer is looked at (and named) instead of a bare MaxRetryError
        raise_on_redirect=False,
    )
    session = requests.Session()
    adapter = Adapter(max_retries=retry, pool_connections=1, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
