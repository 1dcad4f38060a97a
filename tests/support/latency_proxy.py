"""A loopback TCP proxy that delays traffic: a store or service "in another region" for tests and benchmarks.

    with LatencyProxy(target_port, delay=0.025) as proxy:   # 25 ms each way = 50 ms a round trip
        url = proxy.url                                      # http://127.0.0.1:<port>, forwards to the target

``exchanges`` records every HTTP request that went through (its request line, when it arrived, when the
last byte of its answer was sent on): ``serial_round_trips`` counts the ones sent while nothing else was in
flight, the round trips a run waits for one after another.

Both ends are 127.0.0.1 only. Each chunk read from one side is written to the other ``delay`` seconds after
it arrived, in order, per connection and direction; chunks in flight overlap (like a long link, the delay is
added once per trip, not once per chunk), and an end-of-stream is passed on after the same delay. Standard
library only (asyncio, one event-loop thread), so the block's subprocess and a benchmark can use it alike.
It shares the benchmark's cores with the block and the store, so it is kept cheap: asyncio protocols and one
timer per direction, no task or queue per connection (0.25-0.33 CPU-s for a bench run of 2,508 requests,
most of it the kernel's loopback sends; 0.36-0.54 with the stream-and-task version before).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Any

LOOPBACK = "127.0.0.1"
_REQUEST_LINE = re.compile(rb"^[A-Z]{3,7} \S+ HTTP/1\.[01]\r\n")


@dataclass
class Exchange:
    """One HTTP request through the proxy: its request line, when it reached the proxy and when the last byte
    of its answer left it (the proxy's clock, seconds)."""

    connection: int
    line: str
    start: float
    end: float = 0.0

    @property
    def method(self) -> str:
        return self.line.partition(" ")[0]


class _Exchanges:
    """The requests of one connection: a chunk from the client that starts with a request line, after an
    answer (or first), starts the next one; each chunk of the answer moves its end."""

    def __init__(self, record: list[Exchange], connection: int) -> None:
        self.record, self.connection = record, connection
        self.current: Exchange | None = None
        self.answered = True

    def sent(self, chunk: bytes, at: float) -> None:
        if self.answered and _REQUEST_LINE.match(chunk):
            line = chunk.partition(b"\r\n")[0].decode("latin-1")
            self.current = Exchange(self.connection, line, at, at)
            self.record.append(self.current)
            self.answered = False

    def answer(self, at: float) -> None:
        if self.current is not None:
            self.current.end = at
            self.answered = True


class LatencyProxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:target_port``, ``delay`` seconds each way."""

    def __init__(self, target_port: int, delay: float = 0.025) -> None:
        self.target_port = target_port
        self.delay = delay
        self.port = 0
        self.connections = 0  # accepted so far
        self.exchanges: list[Exchange] = []  # every HTTP request so far, in the order they arrived
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="latency-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._links: set[_Link] = set()  # the connections open now

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> LatencyProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    async def _listen(self) -> asyncio.base_events.Server:
        return await self._loop.create_server(self._accept, LOOPBACK, 0)

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for link in list(self._links):
            link.close()
        # Until none is left: a connection accepted or a reader started while others were being cancelled
        # would otherwise be destroyed pending when the loop closes ("coroutine ignored GeneratorExit").
        while tasks := [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _accept(self) -> _Side:
        """A client connected: its side of a new link, which connects to the target."""
        self.connections += 1
        link = _Link(self, _Exchanges(self.exchanges, self.connections))
        self._links.add(link)
        return link.client


class _Side(asyncio.Protocol):
    """One socket of a link: what it receives is written to the other socket ``delay`` seconds later, in
    order (one timer per direction, for the oldest chunk still held), and so is its end of stream."""

    def __init__(self, link: _Link, arrived: Any = None, seen: Any = None) -> None:
        self.link, self.arrived, self.seen = link, arrived, seen
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.held: deque[tuple[float, bytes | None]] = deque()  # (when it goes out, chunk; None: end of stream)
        self.timer: asyncio.TimerHandle | None = None
        self.ended = False  # its end of stream was passed on

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.link.connected(self)

    def data_received(self, data: bytes) -> None:
        now = self.link.loop.time()
        if self.arrived is not None:
            self.arrived(data, now)
        self._hold(now, data)

    def eof_received(self) -> bool:
        self._hold(self.link.loop.time(), None)
        return True  # keep the other direction open (a half-close travels on)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended and not (self.held and self.held[-1][1] is None):
            self._hold(self.link.loop.time(), None)

    def pause_writing(self) -> None:  # the socket we write to is full: stop reading from the other one
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None and not self.peer.transport.is_closing():
            self.peer.transport.resume_reading()

    def _hold(self, now: float, chunk: bytes | None) -> None:
        self.held.append((now + self.link.proxy.delay, chunk))
        if self.timer is None and self.peer is not None:
            self.timer = self.link.loop.call_at(self.held[0][0], self._send)

    def _send(self) -> None:
        """Pass on every chunk whose time has come (to the peer), then wait for the next one's."""
        self.timer = None
        loop, peer = self.link.loop, self.peer
        assert peer is not None and peer.transport is not None
        now = loop.time()
        while self.held and self.held[0][0] <= now:
            _, chunk = self.held.popleft()
            if chunk is None:
                self.ended = True
                with contextlib.suppress(OSError, RuntimeError):
                    if peer.transport.can_write_eof() and not peer.transport.is_closing():
                        peer.transport.write_eof()
                self.held.clear()
                self.link.ended()
                return
            if peer.transport.is_closing():
                self.held.clear()
                return
            peer.transport.write(chunk)
            if self.seen is not None:
                self.seen(now)
        if self.held:
            self.timer = loop.call_at(self.held[0][0], self._send)

    def start(self) -> None:
        """Both ends are connected: pass on what arrived meanwhile."""
        if self.held and self.timer is None:
            self.timer = self.link.loop.call_at(self.held[0][0], self._send)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class _Link:
    """A client connection and its connection to the target; closed once both ends of stream went through
    (or either socket failed)."""

    def __init__(self, proxy: LatencyProxy, exchanges: _Exchanges) -> None:
        self.proxy, self.loop = proxy, proxy._loop
        self.client = _Side(self, arrived=exchanges.sent)
        self.target = _Side(self, seen=exchanges.answer)
        self.client.peer, self.target.peer = self.target, self.client

    def connected(self, side: _Side) -> None:
        if side is self.client:
            assert side.transport is not None
            side.transport.pause_reading()  # until the target answers the connection
            self.loop.create_task(self._connect())
            return
        assert self.client.transport is not None
        if not self.client.transport.is_closing():
            self.client.transport.resume_reading()
        self.client.start()

    async def _connect(self) -> None:
        try:
            await self.loop.create_connection(lambda: self.target, LOOPBACK, self.proxy.target_port)
        except OSError:
            self.close()

    def ended(self) -> None:
        if self.client.ended and self.target.ended:
            self.close()

    def close(self) -> None:
        for side in (self.client, self.target):
            side.cancel()
            if side.transport is not None:
                side.transport.close()
        self.proxy._links.discard(self)


def measure_delay(port: int, requests: int = 5) -> float:
    """Fastest of ``requests`` HTTP round trips to ``127.0.0.1:port`` on one keep-alive connection (s)."""
    import http.client

    best = float("inf")
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        for _ in range(requests):
            start = time.perf_counter()
            conn.request("GET", "/")
            conn.getresponse().read()
            best = min(best, time.perf_counter() - start)
    finally:
        conn.close()
    return best


def in_flight(exchanges: list[Exchange], at: float) -> int:
    """How many of ``exchanges`` were under way at ``at``."""
    return sum(1 for e in exchanges if e.start <= at < e.end)


def serial_round_trips(exchanges: list[Exchange]) -> list[Exchange]:
    """The requests sent while no other was in flight: each is a round trip the run waited for alone."""
    alone, busy_until = [], float("-inf")
    for exchange in sorted(exchanges, key=lambda e: e.start):
        if exchange.start >= busy_until:
            alone.append(exchange)
        busy_until = max(busy_until, exchange.end)
    return alone
