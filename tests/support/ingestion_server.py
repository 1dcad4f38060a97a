"""A loopback stand-in for Edge Impulse's ingestion service, as documented and as EI's own clients use it
(ei-contract.md section 4): ``POST /api/{training|testing|split|anomaly}/files``, multipart parts named
``data`` (at most 1000 a request, 100 MB a file, else 400; a ``bounding_boxes.labels`` part carries boxes),
``x-api-key`` (401 when wrong or missing), ``x-label`` (URL-encoded), ``x-disallow-duplicates``,
``x-metadata`` (a JSON object of strings, else 400); a duplicate (same sha256 in the same project and
category) is refused with EI's text "An item with this hash already exists". ``split`` puts a file in
training or testing by its hash, 80/20, as EI does.

Answer shapes (``answer=``), since no EI source fixes one: ``"cli"``: what EI's CLI reads
(edge-impulse-cli cli-common/make-image.ts), ``{"success", "files": [{"success", "error"?}]}`` in the order
of the ``data`` parts, the labels part listed among them; ``"named"`` (default): the same with extra fields
(``sampleId``, ``fileName``) and the labels part left out; ``"text"``: the documented text/plain answer, 200
with the file names, or 400 with the first file's error.

Faults for the tests, consumed per request in order: ``storm(429, n, retry_after)``, ``storm(503, n)``,
``drop(n, after_store=...)`` (close the connection without answering; optionally after storing, i.e. the
answer is lost), ``slow(n, seconds)``; a broken network or a wrong host: ``bad(kind, n, after_store=...)``, a
200 that does not say the file was stored (``kind`` one of ``BAD_ANSWERS``: an HTML page, an empty body,
truncated JSON, JSON of another shape, a text that names no file), ``redirect(url, n, status)`` (3xx to
another server), ``trickle(n, seconds)`` (the status line one byte every ``seconds``, never finished),
``hang(n)`` (read the request, never answer), ``reset(n)`` (TCP RST instead of an answer). Every request
whatever its method is seen (``seen``, ``keys_seen``), so a second server can show it never got a key;
``latency`` delays every answer, ``down_after`` files makes it answer
503 for good once that many are stored (until ``heal()``), ``reject`` refuses files whose name contains it,
``rate_limit`` answers that share of requests 429 at random (seeded), ``vague`` answers a request with a
file whose name contains it by a 200 HTML page for good (never stored, never refused).
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

DUPLICATE = "An item with this hash already exists"
CATEGORIES = ("training", "testing", "split", "anomaly")
MAX_FILES, MAX_FILE_BYTES = 1000, 100 * 1024 * 1024  # EI's documented limits per request and per file
ANSWERS = ("named", "cli", "text")
BAD_ANSWERS = {  # a 200 of each kind: (content type, body)
    "html": ("text/html", b"<!doctype html><html><body><h1>Welcome</h1></body></html>"),
    "empty": ("application/json", b""),
    "truncated": ("application/json", b'{"success": true, "files": [{"success": tr'),
    "shape": ("application/json", b'{"ok": true, "status": "queued"}'),
    "list": ("application/json", b"[true]"),
    "unnamed": ("text/plain", b"OK"),
    "cut": ("application/json", b'{"success": true, "files": [{"success": true}]}'),  # the connection ends early
    "huge": ("application/json", b'{"success": true, "files": [{"success": true}], "pad": "%s"}' % (b"x" * (3 << 20))),
}


@dataclass
class Stored:
    category: str
    name: str
    label: str | None
    sha256: str
    metadata: dict[str, str]
    sample_id: int
    boxes: list[dict[str, Any]] | None = None


@dataclass
class Seen:
    """One request as received (the key itself is not kept: only whether it matched)."""

    at: float
    path: str
    status: int
    files: int
    key_ok: bool
    fault: str | None = None


@dataclass
class _Fault:
    kind: str  # storm | drop | slow | bad | redirect | trickle | hang | reset
    status: int = 0
    retry_after: str | None = None
    after_store: bool = False
    seconds: float = 0.0
    what: str = ""  # bad: the BAD_ANSWERS kind; redirect: the Location


@dataclass
class IngestionServer:
    api_key: str
    latency: float = 0.0
    reject: str | None = None  # file names containing this get a per-file error
    vague: str | None = None  # requests with a file whose name contains this get a 200 that never says stored
    down_after: int | None = None
    rate_limit: float = 0.0  # share of requests answered 429 (Retry-After: rate_limit_after), seeded
    rate_limit_after: str | None = "1"
    answer: str = "named"  # answer shape: see the module docstring
    host: str = "127.0.0.1"  # any loopback address: 127.0.0.2 is another host to a client
    stored: list[Stored] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    rejected_duplicates: int = 0
    keys_seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.faults: deque[_Fault] = deque()
        self.rng = random.Random(0)
        self.closing = threading.Event()  # ends hanging and trickling answers
        self.httpd = ThreadingHTTPServer((self.host, 0), _handler(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.httpd.server_address[1]}"

    def __enter__(self) -> IngestionServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- fault injection -----------------------------------------------------------------------------------

    def storm(self, status: int, count: int, retry_after: str | None = None) -> None:
        self.faults.extend(_Fault("storm", status, retry_after) for _ in range(count))

    def drop(self, count: int, after_store: bool = False) -> None:
        self.faults.extend(_Fault("drop", after_store=after_store) for _ in range(count))

    def slow(self, count: int, seconds: float) -> None:
        self.faults.extend(_Fault("slow", seconds=seconds) for _ in range(count))

    def bad(self, kind: str, count: int, after_store: bool = False) -> None:
        assert kind in BAD_ANSWERS, kind
        self.faults.extend(_Fault("bad", 200, after_store=after_store, what=kind) for _ in range(count))

    def redirect(self, location: str, count: int, status: int = 302) -> None:
        self.faults.extend(_Fault("redirect", status, what=location) for _ in range(count))

    def trickle(self, count: int, seconds: float) -> None:
        self.faults.extend(_Fault("trickle", seconds=seconds) for _ in range(count))

    def hang(self, count: int) -> None:
        self.faults.extend(_Fault("hang") for _ in range(count))

    def reset(self, count: int) -> None:
        self.faults.extend(_Fault("reset") for _ in range(count))

    def heal(self) -> None:
        self.down_after = None
        self.faults.clear()

    # -- views ---------------------------------------------------------------------------------------------

    def names(self, category: str | None = None) -> list[str]:
        return sorted(s.name for s in self.stored if category is None or s.category == category)

    def statuses(self) -> list[int]:
        return [s.status for s in self.seen]

    # -- the service ---------------------------------------------------------------------------------------

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        if self.latency:
            time.sleep(self.latency)
        key_ok = h.headers.get("x-api-key") == self.api_key
        with self.lock:
            self.keys_seen.add(h.headers.get("x-api-key") or "")
            fault = self.faults.popleft() if self.faults else None
            if fault is None and self.rate_limit and self.rng.random() < self.rate_limit:
                fault = _Fault("storm", 429, self.rate_limit_after)
            down = self.down_after is not None and len(self.stored) >= self.down_after
        if fault and fault.kind in ("redirect", "trickle", "hang", "reset"):
            return self._misbehave(h, fault, key_ok)
        parts = h.path.strip("/").split("/")
        if h.command != "POST":  # a web page, as a redirect target serves one
            return self._answer(h, 200, *BAD_ANSWERS["html"], 0, key_ok, h.command)
        if len(parts) != 3 or parts[0] != "api" or parts[2] != "files" or parts[1] not in CATEGORIES:
            return self._answer(h, 404, "text/plain", b"Not found", 0, key_ok)
        if fault and fault.kind == "slow":
            time.sleep(fault.seconds)
        if fault and fault.kind == "storm":
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return self._answer(h, fault.status, "text/plain", b"Too busy", 0, key_ok, f"{fault.status}", extra)
        if fault and fault.kind == "drop" and not fault.after_store:
            return self._drop(h, key_ok)
        if fault and fault.kind == "bad" and not fault.after_store:
            return self._answer(h, 200, *BAD_ANSWERS[fault.what], 0, key_ok, fault.what)
        if down:
            return self._answer(h, 503, "text/plain", b"Service unavailable", 0, key_ok, "down")
        if not key_ok:
            return self._answer(h, 401, "text/plain", b"Invalid API key", 0, key_ok)
        try:
            files, boxes = _multipart(h.headers.get("Content-Type", ""), body)
            metadata = json.loads(h.headers.get("x-metadata") or "{}")
            if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
                raise ValueError("x-metadata must be a JSON object of strings")
        except ValueError as e:
            return self._answer(h, 400, "text/plain", str(e).encode(), 0, key_ok)
        if self.vague and any(self.vague in name for name, _ in files):
            return self._answer(h, 200, *BAD_ANSWERS["html"], len(files), key_ok, "vague")
        if all(name.endswith(".labels") for name, _ in files):
            return self._answer(h, 400, "text/plain", b"No 'data' files in the request", 0, key_ok)
        if len(files) > MAX_FILES or any(len(data) > MAX_FILE_BYTES for _, data in files):
            return self._answer(h, 400, "text/plain", b"Too many files or a file over 100MB", 0, key_ok)
        label = unquote(h.headers["x-label"]) if "x-label" in h.headers else None
        disallow = (h.headers.get("x-disallow-duplicates") or "").lower() in ("1", "true")
        results = []
        with self.lock:
            for name, data in files:
                if name.endswith(".labels"):  # annotations for the other parts: listed, never stored
                    results.append({"success": True, "fileName": name})
                    continue
                sha = hashlib.sha256(data).hexdigest()
                category = parts[1]
                if category == "split":
                    category = "training" if int(sha[:2], 16) < 0.8 * 256 else "testing"
                if self.reject and self.reject in name:
                    results.append(
                        {"success": False, "error": "Failed to process file: invalid image", "fileName": name}
                    )
                    continue
                if disallow and any(s.sha256 == sha and s.category == category for s in self.stored):
                    self.rejected_duplicates += 1
                    results.append({"success": False, "error": DUPLICATE, "fileName": name})
                    continue
                sample_id = len(self.stored) + 1
                self.stored.append(Stored(category, name, label, sha, metadata, sample_id, boxes.get(name)))
                results.append({"success": True, "sampleId": sample_id, "fileName": name})
        if fault and fault.kind == "drop":  # stored, but the answer is lost
            return self._drop(h, key_ok)
        if fault and fault.kind == "bad":  # stored, but the answer does not say so
            return self._answer(h, 200, *BAD_ANSWERS[fault.what], len(files), key_ok, fault.what)
        ok = all(r["success"] for r in results)
        if self.answer == "text":  # the documented answer: text/plain, the file name in the body
            if not ok:
                error = next(r["error"] for r in results if not r["success"])
                return self._answer(h, 400, "text/plain", error.encode(), len(files), key_ok)
            names = "\n".join(r["fileName"] for r in results)
            return self._answer(h, 200, "text/plain", names.encode(), len(files), key_ok)
        if self.answer == "cli":  # what EI's CLI reads: per-file success/error in part order, labels part listed
            results = [{k: v for k, v in r.items() if k in ("success", "error")} for r in results]
        else:  # "named": extra fields, the labels part left out
            results = [r for r in results if not r["fileName"].endswith(".labels")]
        answer = {"success": ok, "files": results}
        self._answer(h, 200, "application/json", json.dumps(answer).encode(), len(files), key_ok)

    def _answer(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        ctype: str,
        body: bytes,
        files: int,
        key_ok: bool,
        fault: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        with self.lock:
            self.seen.append(Seen(time.monotonic(), h.path, status, files, key_ok, fault))
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body) + (100 if fault == "cut" else 0)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)
        if fault == "cut":  # 100 bytes short of what Content-Length promised
            h.close_connection = True

    def _misbehave(self, h: BaseHTTPRequestHandler, fault: _Fault, key_ok: bool) -> None:
        """A redirect, an answer trickled a byte at a time, none at all, or a reset connection."""
        if fault.kind == "redirect":
            headers = {"Location": fault.what + h.path}
            return self._answer(h, fault.status, "text/html", b"<a>moved</a>", 0, key_ok, "redirect", headers)
        with self.lock:
            self.seen.append(Seen(time.monotonic(), h.path, 0, 0, key_ok, fault.kind))
        h.close_connection = True
        if fault.kind == "reset":  # SO_LINGER 0: close() sends RST
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
        elif fault.kind == "hang":
            self.closing.wait()
        else:  # trickle: each byte well within any read timeout, the answer never complete
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" * 1000:
                try:
                    h.wfile.write(bytes([byte]))
                    h.wfile.flush()
                except OSError:
                    return
                if self.closing.wait(fault.seconds):
                    return

    def _drop(self, h: BaseHTTPRequestHandler, key_ok: bool) -> None:
        with self.lock:
            self.seen.append(Seen(time.monotonic(), h.path, 0, 0, key_ok, "drop"))
        h.close_connection = True
        h.connection.shutdown(2)  # no status line: the client sees the connection end


def _multipart(content_type: str, body: bytes) -> tuple[list[tuple[str, bytes]], dict[str, list]]:
    """Every ``data`` part in order as (file name, bytes), and the boxes of a ``bounding_boxes.labels`` part."""
    if not content_type.startswith("multipart/form-data"):
        raise ValueError("expected multipart/form-data")
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise ValueError("malformed multipart body")
    files, boxes = [], {}
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") != "data":
            raise ValueError("every part must be named 'data'")
        name = part.get_filename() or ""
        data = part.get_payload(decode=True) or b""
        if name.endswith(".labels"):
            boxes.update(json.loads(data).get("boundingBoxes", {}))
        files.append((name, data))
    return files, boxes


def _handler(server: IngestionServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real service

        def setup(self) -> None:
            super().setup()  # no Nagle: header and body writes must not wait for the client's delayed ACK
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            server.handle(self)

        do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_POST  # seen too (a redirected POST becomes a GET)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
