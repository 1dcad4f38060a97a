"""CPU per request of S3 client libraries: PutObject and GetObject of small objects against SeaweedFS on loopback.

    python bench/s3_clients.py [--count 600] [--size 11000] [--threads 16] [--rounds 2]

Each client puts ``--count`` objects of ``--size`` random bytes from ``--threads`` threads of this process, then
gets them back; CPU ms per request is this process's CPU time (every thread, the clients' own included) over
the requests made, so it is what the block's main process pays per request. The S3 server's CPU is not
counted. Clients missing from the venv are skipped (boto3 is a runtime dependency, obstore is what the block
uses since issue #23, minio is tried when installed). The last row is the block's own S3 path: the sink and
source on top of obstore (name checks, MD5, the destination listing's lookups).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.s3server import ACCESS_KEY, SECRET_KEY, SeaweedServer, running_server  # noqa: E402

BUCKET = "bench-clients"
Ops = tuple[Callable[[str, bytes], None], Callable[[str], bytes]]


def boto3_ops(server: SeaweedServer, threads: int) -> Ops:
    from botocore.config import Config

    client = server.client(Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=threads))

    def put(key: str, data: bytes) -> None:
        client.put_object(Bucket=BUCKET, Key=key, Body=data, ContentType="image/png")

    return put, lambda key: client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def obstore_ops(server: SeaweedServer, threads: int, **config: object) -> Ops:
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        BUCKET,
        endpoint=server.endpoint,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        region="us-east-1",
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
        **config,
    )

    def put(key: str, data: bytes) -> None:
        obstore.put(store, key, data, attributes={"Content-Type": "image/png"})

    return put, lambda key: bytes(obstore.get(store, key).bytes())


def minio_ops(server: SeaweedServer, threads: int) -> Ops:
    import io

    import urllib3
    from minio import Minio

    pool = urllib3.PoolManager(maxsize=threads, retries=urllib3.Retry(total=5, backoff_factor=0.2))
    client = Minio(
        server.endpoint.removeprefix("http://"),
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        secure=False,
        region="us-east-1",
        http_client=pool,
    )

    def put(key: str, data: bytes) -> None:
        client.put_object(BUCKET, key, io.BytesIO(data), len(data), content_type="image/png")

    def get(key: str) -> bytes:
        response = client.get_object(BUCKET, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    return put, get


def block_ops(server: SeaweedServer, threads: int) -> Ops:
    """The block's own S3 path: ``S3Sink.write`` (name check, MD5, listing lookup, PutObject) and
    ``S3Source.read`` (GetObject), with the AWS_* variables a run gets."""
    os.environ.update(server.env())
    from augment.plan.samples import Sample
    from augment.sinks.s3 import S3Sink
    from augment.sources.s3 import S3Source
    from augment.storage.s3_url import parse_s3_url

    sink = S3Sink(parse_s3_url(f"s3://{BUCKET}/"))
    source = S3Source(parse_s3_url(f"s3://{BUCKET}/"))
    return sink.write, lambda key: source.read(Sample(key, "x"))


CLIENTS = {
    "boto3": boto3_ops,
    "obstore": obstore_ops,
    "obstore, unsigned payload": lambda server, threads: obstore_ops(server, threads, unsigned_payload=True),
    "minio": minio_ops,
    "edge-augment S3Sink/S3Source": block_ops,
}


def timed(pool: ThreadPoolExecutor, fn: Callable, items: list) -> tuple[float, float]:
    """CPU ms per item and items per wall second of ``fn`` over ``items`` on ``pool``."""
    cpu, wall = time.process_time(), time.perf_counter()
    list(pool.map(fn, items))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return 1000 * cpu / len(items), len(items) / wall


def measure(name: str, put: Callable[[str, bytes], None], get: Callable[[str], bytes], data: bytes, opts) -> None:
    folder = "".join(c if c.isalnum() else "-" for c in name)
    with ThreadPoolExecutor(opts.threads) as pool:
        list(pool.map(lambda k: put(f"{folder}/warm/{k:03}.png", data), range(32)))  # connections, credentials
        for n in range(opts.rounds):
            keys = [f"{folder}/{n}/{i:05}.png" for i in range(opts.count)]  # new names: nothing to skip
            put_cpu, put_rate = timed(pool, lambda k: put(k, data), keys)
            get_cpu, get_rate = timed(pool, get, keys)
            print(f"{name:<28} {n + 1:>5} {put_cpu:10.3f} {get_cpu:10.3f} {put_rate:7.0f} {get_rate:7.0f}")
        assert get(keys[-1]) == data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--size", type=int, default=11_000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    opts = parser.parse_args()
    data = os.urandom(opts.size)
    work = Path(tempfile.mkdtemp(prefix="bench-s3-clients-"))
    try:
        with running_server(work / "weed") as server:
            server.client().create_bucket(Bucket=BUCKET)
            print(f"{opts.count} objects of {opts.size} B from {opts.threads} threads; SeaweedFS on loopback")
            print(f"{'client':<28} {'round':>5} {'CPU ms/PUT':>10} {'CPU ms/GET':>10} {'PUT/s':>7} {'GET/s':>7}")
            for name, make in CLIENTS.items():
                try:
                    put, get = make(server, opts.threads)
                except ImportError:
                    print(f"{name:<28} not installed, skipped")
                    continue
                measure(name, put, get, data, opts)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
