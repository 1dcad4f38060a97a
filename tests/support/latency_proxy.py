"""A loopback TCP proxy that delays traffic: a store or service "in another region" for tests and benchmarks.

    with LatencyProxy(target_port, delay=0.025) as proxy:   # 25 ms each way = 50 ms a round trip
        url = proxy.url                                      # http://127.0.0.1:<port>, forwards to the target

Both ends are 127.0.0.1 only. Each chunk read from one side is written to the other ``delay`` seconds after
it arrived, in order, per connection and direction; chunks in flight overlap (like a long link, the delay is
added once per trip, not once per chunk), and an end-of-stream is passed on after the same delay. Standard
library only (asyncio, one event-loop thread), so the block's subprocess and a benchmark can use it alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from types import TracebackType

LOOPBACK = "127.0.0.1"
_CHUNK = 256 * 1024


class LatencyProxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:target_port``, ``delay`` seconds each way."""

    def __init__(self, target_port: int, delay: float = 0.025) -> None:
        self.target_port = target_port
        self.delay = delay
        self.port = 0
        self.connections = 0  # accepted so far
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
        try:
            await asyncio.gather(self._pipe(client_r, target_w), self._pipe(target_r, client_w))
        except asyncio.CancelledError:
            pass  # the proxy is stopping (re-raised, asyncio 3.11 would log it as an error)
        finally:
            for writer in (client_w, target_w):
                writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction: a reader task stamps chunks, this task sends each at its stamp + delay."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def receive() -> None:
            try:
                while chunk := await reader.read(_CHUNK):
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
