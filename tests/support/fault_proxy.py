"""A loopback TCP proxy in front of a real server that fails the first connections on purpose, then forwards.

    with FaultProxy(target_port, ["503", "reset", "429"]) as proxy:   # then every connection is forwarded
        url = proxy.url

Each planned fault takes one new connection: it reads the request head, then answers ``503 Slow Down`` or
``429 Too Many Requests`` (S3's XML error body, ``Connection: close``) or resets the connection (RST, no
answer: a dropped connection); ``"pass"`` in the plan lets that connection through. Connections after the
plan are piped to ``127.0.0.1:target_port`` untouched, as they come. ``sent`` holds every
byte the client sent (faulted connections' request heads included), for assertions on headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

from tests.support.latency_proxy import LOOPBACK, LatencyProxy

_ANSWERS = {"503": "503 Slow Down", "429": "429 Too Many Requests"}


class FaultProxy(LatencyProxy):
    def __init__(self, target_port: int, plan: list[str]) -> None:
        super().__init__(target_port, 0.0)
        self.plan = list(plan)
        self.faults: list[str] = []  # the faults served so far
        self.sent = bytearray()  # everything the client sent

    async def _listen(self) -> asyncio.base_events.Server:
        return await asyncio.start_server(self._serve, LOOPBACK, 0)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            head = await client_r.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            client_w.close()
            return
        self.sent += head
        planned = self.plan.pop(0) if self.plan else "pass"
        if planned != "pass":
            self.faults.append(planned)
            await _fail(planned, client_w)
            return
        try:
            target_r, target_w = await asyncio.open_connection(LOOPBACK, self.target_port)
        except OSError:
            client_w.close()
            return
        target_w.write(head)
        try:
            await asyncio.gather(_copy(_Recorded(client_r, self.sent), target_w), _copy(target_r, client_w))
        except asyncio.CancelledError:
            pass
        finally:
            for writer in (client_w, target_w):
                writer.close()


class _Recorded:
    """A stream reader that also appends what it reads to ``record``."""

    def __init__(self, reader: asyncio.StreamReader, record: bytearray) -> None:
        self._reader, self._record = reader, record

    async def read(self, n: int) -> bytes:
        chunk = await self._reader.read(n)
        self._record += chunk
        return chunk


async def _copy(reader: asyncio.StreamReader | _Recorded, writer: asyncio.StreamWriter) -> None:
    """Pass one direction on as it comes, its end of stream too."""
    try:
        while chunk := await reader.read(256 * 1024):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError, RuntimeError):
        writer.close()


async def _fail(fault: str, writer: asyncio.StreamWriter) -> None:
    if fault == "reset":
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        writer.transport.abort()
        return
    code = _ANSWERS[fault].partition(" ")[2].replace(" ", "")
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{fault}</Message></Error>'
    writer.write(
        f"HTTP/1.1 {_ANSWERS[fault]}\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n{body}".encode()
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()
