"""The latency proxy of the S3 fixtures (``slow_s3``): its delay is real, it keeps bytes and order, and the
block run through it writes the same bytes as a local run."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from tests.support.latency_proxy import LatencyProxy, measure_delay
from tests.support.s3server import SLOW_DELAY, SlowS3
from tests.test_s3 import MIXED, block, bucket_bytes, digests, put_all, tree_bytes

pytestmark = pytest.mark.xdist_group("s3")


def test_the_proxy_adds_its_delay_to_every_round_trip(slow_s3: SlowS3):
    """A request through the proxy takes at least 2 x 25 ms more than the same request sent directly."""
    direct = measure_delay(slow_s3.direct.ports["s3.port"])
    proxied = measure_delay(slow_s3.proxy.port)
    assert proxied >= 2 * SLOW_DELAY  # each way is held back SLOW_DELAY after it arrived: a hard lower bound
    assert proxied - direct >= 2 * SLOW_DELAY - 0.002, (direct, proxied)  # 2 ms for the server's own jitter


def _echo_server() -> tuple[socket.socket, threading.Thread]:
    """A loopback server that echoes each connection until the client half-closes, then closes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_the_proxy_keeps_bytes_order_and_end_of_stream():
    listener, thread = _echo_server()
    sent = b"".join(i.to_bytes(4, "big") * (1 + i % 7) for i in range(20000))  # ~350 KB in many writes
    with listener, LatencyProxy(listener.getsockname()[1], delay=0.01) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as conn:
            for i in range(0, len(sent), 1000):
                conn.sendall(sent[i : i + 1000])
            conn.shutdown(socket.SHUT_WR)  # the end of stream must travel too: the echo server then closes
            received = bytearray()
            while data := conn.recv(65536):
                received += data
        thread.join(10)
    assert bytes(received) == sent and proxy.connections == 1


def test_a_sender_faster_than_the_receiver_loses_nothing():
    """8 MB sent at once to a server that reads slowly at first (the proxy's socket to it fills up: its flow
    control pauses and resumes reading from the client): every byte arrives, in order; the server's close
    reaches the client."""
    listener = socket.create_server(("127.0.0.1", 0))
    received = bytearray()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            while data := conn.recv(4096):
                received.extend(data)
                if len(received) < 1_000_000:
                    time.sleep(0.001)  # slow at first: the proxy's socket to it fills up

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    sent = bytes(range(256)) * (8 * 4096)
    with (
        listener,
        LatencyProxy(listener.getsockname()[1], delay=0.005) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as conn,
    ):
        conn.sendall(sent)
        conn.shutdown(socket.SHUT_WR)
        thread.join(20)
        assert conn.recv(1) == b""  # the server closed: so is the client's connection
    assert bytes(received) == sent


def test_a_block_run_through_the_proxy_matches_a_local_run(slow_s3: SlowS3, tmp_path: Path):
    """S3 -> S3 at 50 ms a round trip: the same names and bytes (manifest included) as local -> local."""
    client = slow_s3.direct.client()
    client.create_bucket(Bucket="edge-slow")
    put_all(client, "edge-slow", {"raw/" + k: v for k, v in MIXED.items()})
    local = tmp_path / "raw"  # as the prefix: the same root name (labels flat files)
    for key, data in MIXED.items():
        (local / key).parent.mkdir(parents=True, exist_ok=True)
        (local / key).write_bytes(data)

    ref = block(
        slow_s3.direct, ["--in-directory", str(local), "--out-directory", str(tmp_path / "ref")], tmp_path / "w1"
    )
    assert ref.returncode == 0, ref.output
    before = slow_s3.proxy.connections
    slow = block(slow_s3, ["--source", "s3://edge-slow/raw/", "--dest", "s3://edge-slow/out/"], tmp_path / "w2")
    assert slow.returncode == 0, slow.output
    assert slow_s3.proxy.connections > before  # the run really went through the proxy
    expected = digests(tree_bytes(tmp_path / "ref"))
    assert len([k for k in expected if k.endswith(".png")]) == 20 and "manifest.jsonl" in expected
    assert digests(bucket_bytes(client, "edge-slow", "out/")) == expected
