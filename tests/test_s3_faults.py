"""Retries with backoff against the real SeaweedFS behind a proxy that answers 503 and 429 and resets
connections first: within AWS_MAX_ATTEMPTS the call succeeds, past it the error is one line naming the key.
Also the final manifest's multipart upload, and hostile answers to a listing (not XML, pages without end)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from augment.storage.s3_client import S3Client, S3Error
from tests.support.fault_proxy import FaultProxy
from tests.support.s3server import SeaweedServer

pytestmark = pytest.mark.xdist_group("s3")

BUCKET = "edge-retries"
PLAN = ["503", "reset", "429", "503"]  # four failed attempts, the fifth goes through


@pytest.fixture
def client_env(s3server: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> SeaweedServer:
    for name, value in s3server.env(AWS_MAX_ATTEMPTS="5").items():
        monkeypatch.setenv(name, value)
    client = s3server.client()
    if BUCKET not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key="seed/a.png", Body=b"seeded")
    return s3server


@pytest.mark.parametrize("call", ["put", "get", "list"])
def test_503_429_and_resets_are_retried(client_env: SeaweedServer, call: str):
    with FaultProxy(client_env.ports["s3.port"], PLAN) as proxy:
        client = S3Client(proxy.url)
        if call == "put":
            client.put(BUCKET, "retried/put.png", b"put through faults", "image/png")
            assert client_env.client().get_object(Bucket=BUCKET, Key="retried/put.png")["Body"].read() == (
                b"put through faults"
            )
        elif call == "get":
            assert client.get(BUCKET, "seed/a.png") == b"seeded"
        else:
            assert [o["Key"] for page in client.pages(BUCKET, "seed/") for o in page] == ["seed/a.png"]
        assert proxy.faults == PLAN


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        (["503"] * 3, "cannot write s3://edge-retries/retried/no.png: SlowDown: 503"),
        (["reset"] * 3, "cannot write s3://edge-retries/retried/no.png: cannot reach the S3 endpoint"),
    ],
)
def test_retries_run_out_in_one_line(client_env: SeaweedServer, plan: list[str], expected: str):
    with FaultProxy(client_env.ports["s3.port"], plan) as proxy, pytest.raises(S3Error) as error:
        S3Client(proxy.url, attempts=2).put(BUCKET, "retried/no.png", b"x", "image/png")
    assert proxy.faults == plan[:2]  # two attempts, then the error
    text = str(error.value)
    assert text.startswith(expected) and "\n" not in text, text


def test_a_large_manifest_goes_up_in_parts_and_reads_back_line_by_line(client_env: SeaweedServer):
    """The final manifest is spooled and uploaded multipart past 8 MB; reading it streams its lines."""
    from augment.sinks.s3 import S3Sink
    from augment.sinks.s3_journal import read_lines, write_lines
    from augment.storage.s3_url import parse_s3_url

    sink = S3Sink(parse_s3_url(f"s3://{BUCKET}/big-manifest/"))
    lines = [json.dumps({"output": f"c/{i:07}.png", "pad": "x" * 90}) for i in range(110_000)]  # ~13 MB
    write_lines(sink, "manifest.jsonl", iter(lines), "application/x-ndjson")
    sink.settle()
    head = client_env.client().head_object(Bucket=BUCKET, Key="big-manifest/manifest.jsonl", PartNumber=1)
    assert head["PartsCount"] >= 2 and head["ContentType"] == "application/x-ndjson"
    assert list(read_lines(sink, "manifest.jsonl") or []) == lines
    assert not client_env.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads")


class _Hostile(BaseHTTPRequestHandler):
    """A store that answers listings with ``server.answer`` (status, body): not XML, or a page that never ends."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        status, body = self.server.answer  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ENDLESS = (
    b'<?xml version="1.0"?><ListBucketResult><IsTruncated>true</IsTruncated>'
    b"<NextContinuationToken>again</NextContinuationToken>"
    b"<Contents><Key>a.png</Key><Size>3</Size><ETag>&quot;x&quot;</ETag></Contents></ListBucketResult>"
)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((200, b"<html>a captive portal</html"), "not an S3 answer (200, 28 bytes)"),
        ((200, ENDLESS), "came back to a page it had already given"),
        ((502, b"<html>bad gateway</html>"), ": 502: no message"),
    ],
)
def test_hostile_listing_answers_are_one_line(client_env, answer, expected):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    server.answer = answer  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(S3Error) as error:
            list(S3Client(f"http://127.0.0.1:{server.server_address[1]}", attempts=1).pages(BUCKET, "p/"))
    finally:
        server.shutdown()
        server.server_close()
    text = str(error.value)
    assert text.startswith(f"cannot list s3://{BUCKET}/p/: ") and expected in text and "\n" not in text, text
