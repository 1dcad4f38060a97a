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
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

LOOPBACK = "127.0.0.1"
_CHUNK = 256 * 1024
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
        return await asyncio.start_server(self._serve, LOOPBACK, 0)

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        # Until none is left: a connection accepted or a reader started while others were being cancelled
        # would otherwise be destroyed pending when the loop closes ("coroutine ignored GeneratorExit").
        while tasks := [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            target_r, target_w = await asyncio.open_connection(LOOPBACK, self.target_port)
        except OSError:
            client_w.close()
            return
        exchanges = _Exchanges(self.exchanges, self.connections)
        try:
            await asyncio.gather(
                self._pipe(client_r, target_w, exchanges.sent), self._pipe(target_r, client_w, seen=exchanges.answer)
            )
        except asyncio.CancelledError:
            pass  # the proxy is stopping (re-raised, asyncio 3.11 would log it as an error)
        finally:
            for writer in (client_w, target_w):
                writer.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, arrived: Any = None, seen: Any = None
    ) -> None:
        """Copy one direction: a reader task stamps chunks, this task sends each at its stamp + delay;
        ``arrived(chunk, time)`` is told of each chunk as it comes in, ``seen(time)`` as it goes out."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def receive() -> None:
            try:
                while chunk := await reader.read(_CHUNK):
                    if arrived is not None:
                        arrived(chunk, loop.time())
                    queue.put_nowait((loop.time() + self.delay, chunk))
            except (ConnectionError, OSError):
                pass
            queue.put_nowait((loop.time() + self.delay, b""))  # end of stream, delayed like the data

        receiver = asyncio.create_task(receive())
        try:
            while True:
                due, chunk = await queue.get()
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                if not chunk:
                    with contextlib.suppress(OSError, RuntimeError):
                        if writer.can_write_eof():
                            writer.write_eof()
                    return
                writer.write(chunk)
                if seen is not None:
                    seen(loop.time())
                await writer.drain()
        except (ConnectionError, OSError):
            writer.close()  # the other side is gone: drop this connection
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver


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
