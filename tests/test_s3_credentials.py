"""The standard AWS credential chain feeds the S3 client (botocore resolves, obstore signs), one source at a time.

Static keys (environment, a profile in the shared credentials file or in the config file) make real round
trips to the SeaweedFS test server. The sources that hand out temporary credentials with a session token (the
environment's AWS_SESSION_TOKEN, an ECS task role, EC2 instance metadata, EKS web identity via STS) come from
stand-ins on loopback; SeaweedFS knows no session tokens and refuses them, so those tests check, through a
recording proxy, that every request was signed with the stand-in's key and carried its token, and that the
refusal is one line naming the bucket and key with no secret in it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import augment.storage.s3_client as s3_client
from augment.storage.s3_client import S3Client, S3Error
from tests.support.fault_proxy import FaultProxy
from tests.support.s3server import ACCESS_KEY, SECRET_KEY, SeaweedServer

pytestmark = pytest.mark.xdist_group("s3")

BUCKET = "edge-creds"
TOKEN = "SENTINEL-session-token-4e1f"
STANDIN_SECRET = "SENTINEL-standin-secret"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, s3server: SeaweedServer) -> pytest.MonkeyPatch:
    """No AWS_* variable from the machine; no shared files, no instance metadata unless a test sets them."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    client = s3server.client()
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=BUCKET)
    return monkeypatch


def round_trip(endpoint: str, key: str) -> None:
    """PUT, GET and list one object through a fresh client (credentials resolved now)."""
    client = S3Client(endpoint, attempts=1)
    client.put(BUCKET, key, b"payload " + key.encode(), "text/plain")
    assert client.get(BUCKET, key) == b"payload " + key.encode()
    assert [obj["Key"] for page in client.pages(BUCKET, key) for obj in page] == [key]


def test_keys_from_the_environment(aws_env, s3server):
    aws_env.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    round_trip(s3server.endpoint, "env.txt")


def test_profile_in_the_shared_credentials_file(aws_env, s3server, tmp_path: Path):
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[default]\naws_access_key_id = WRONG\n[edge]\naws_access_key_id = {ACCESS_KEY}\n"
                           f"aws_secret_access_key = {SECRET_KEY}\n")  # fmt: skip
    aws_env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    aws_env.setenv("AWS_PROFILE", "edge")
    round_trip(s3server.endpoint, "profile.txt")


def test_profile_in_the_config_file_with_its_region_and_endpoint(aws_env, s3server, tmp_path: Path):
    config = tmp_path / "config"
    config.write_text(f"[profile edge]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
                      f"region = us-east-1\nservices = edge-s3\n\n[services edge-s3]\ns3 =\n"
                      f"  endpoint_url = {s3server.endpoint}\n")  # fmt: skip
    aws_env.delenv("AWS_DEFAULT_REGION")
    aws_env.setenv("AWS_CONFIG_FILE", str(config))
    aws_env.setenv("AWS_PROFILE", "edge")
    round_trip("", "config.txt")
    assert S3Client().describe_endpoint() == "AWS S3"  # nothing in the environment says otherwise...
    client = S3Client()
    client.get(BUCKET, "config.txt")
    assert client.describe_endpoint() == s3server.endpoint  # ... the profile does


def test_a_missing_profile_is_one_line(aws_env):
    aws_env.setenv("AWS_PROFILE", "nowhere")
    with pytest.raises(S3Error, match=r"^cannot set up the S3 client: ProfileNotFound: .*nowhere") as error:
        S3Client("http://127.0.0.1:9").get(BUCKET, "x")
    assert "\n" not in str(error.value)


def test_no_credentials_at_all_is_one_line(aws_env):
    with pytest.raises(S3Error, match="no AWS credentials found"):
        S3Client("http://127.0.0.1:9").put(BUCKET, "x", b"x", "text/plain")


class Standin(ThreadingHTTPServer):
    """The ECS task-role endpoint, EC2 instance metadata (IMDSv2) and STS's AssumeRoleWithWebIdentity, on
    loopback. Each credentials answer is a new key id (``ASIASTANDIN<n>``), secret and token, valid for
    ``lifetime``."""

    def __init__(self, lifetime: timedelta = timedelta(hours=1)) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lifetime = lifetime
        self.handed: list[str] = []  # key ids handed out
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def credentials(self) -> dict[str, str]:
        n = len(self.handed) + 1
        self.handed.append(f"ASIASTANDIN{n:09d}")
        expires = (datetime.now(timezone.utc) + self.lifetime).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017
        return {"AccessKeyId": self.handed[-1], "SecretAccessKey": f"{STANDIN_SECRET}-{n}",
                "Token": f"{TOKEN}-{n}", "Expiration": expires}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    server: Standin

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, body: str, content_type: str = "application/json") -> None:
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:  # IMDSv2 session token
        self.server.paths.append(f"PUT {self.path}")
        self._answer("imds-session-token", "text/plain")

    def do_GET(self) -> None:
        self.server.paths.append(f"GET {self.path}")
        if self.path == "/latest/meta-data/iam/security-credentials/":
            self._answer("edge-role", "text/plain")
        else:  # the role's credentials (IMDS), or the container credentials (ECS)
            self._answer(json.dumps({"Code": "Success", "Type": "AWS-HMAC", **self.server.credentials()}))

    def do_POST(self) -> None:  # STS AssumeRoleWithWebIdentity
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        self.server.paths.append(f"POST {body.partition('&')[0]}")
        c = self.server.credentials()
        self._answer(
            '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<AssumeRoleWithWebIdentityResult><Credentials>"
            f"<AccessKeyId>{c['AccessKeyId']}</AccessKeyId><SecretAccessKey>{c['SecretAccessKey']}</SecretAccessKey>"
            f"<SessionToken>{c['Token']}</SessionToken><Expiration>{c['Expiration']}</Expiration>"
            "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
            "text/xml",
        )


@pytest.fixture
def standin() -> Iterator[Standin]:
    server = Standin()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def signed_with(proxy: FaultProxy, key_id: str, token: str) -> None:
    """Every request through ``proxy`` was signed with ``key_id`` and carried ``token``."""
    sent = bytes(proxy.sent).decode("latin-1").lower()
    requests = sent.count(" http/1.1\r\n")
    assert requests >= 1
    assert sent.count(f"credential={key_id.lower()}/") == requests, sent[:2000]
    assert sent.count(f"x-amz-security-token: {token.lower()}\r\n") == requests, sent[:2000]


def refused_cleanly(error: S3Error, *secrets: str) -> None:
    """SeaweedFS refuses the session token: one line naming the bucket and key, no secret in it."""
    text = str(error)
    assert text.startswith(f"cannot write s3://{BUCKET}/token.txt: InvalidAccessKeyId: "), text
    assert "\n" not in text and not [s for s in secrets if s in text]


def put_through(s3server: SeaweedServer) -> tuple[FaultProxy, S3Error]:
    with FaultProxy(s3server.ports["s3.port"], []) as proxy, pytest.raises(S3Error) as error:
        S3Client(proxy.url).put(BUCKET, "token.txt", b"x", "text/plain")
    return proxy, error.value


def test_session_token_from_the_environment(aws_env, s3server):
    aws_env.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    aws_env.setenv("AWS_SESSION_TOKEN", TOKEN)
    proxy, error = put_through(s3server)
    signed_with(proxy, ACCESS_KEY, TOKEN)
    refused_cleanly(error, SECRET_KEY, TOKEN)


def test_ecs_task_role(aws_env, s3server, standin):
    aws_env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"{standin.url}/v2/credentials/edge")
    proxy, error = put_through(s3server)
    assert standin.paths == ["GET /v2/credentials/edge"]
    signed_with(proxy, standin.handed[0], f"{TOKEN}-1")
    refused_cleanly(error, f"{STANDIN_SECRET}-1", f"{TOKEN}-1")


def test_ec2_instance_metadata(aws_env, s3server, standin):
    aws_env.setenv("AWS_EC2_METADATA_DISABLED", "false")
    aws_env.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", standin.url + "/")
    proxy, error = put_through(s3server)
    assert "GET /latest/meta-data/iam/security-credentials/edge-role" in standin.paths
    signed_with(proxy, standin.handed[-1], f"{TOKEN}-{len(standin.handed)}")
    refused_cleanly(error, STANDIN_SECRET, TOKEN)


def test_eks_web_identity(aws_env, s3server, standin, tmp_path: Path):
    (tmp_path / "token").write_text("a-web-identity-token")
    aws_env.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(tmp_path / "token"))
    aws_env.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/edge")
    aws_env.setenv("AWS_ENDPOINT_URL_STS", standin.url)
    proxy, error = put_through(s3server)
    assert standin.paths == ["POST Action=AssumeRoleWithWebIdentity"]
    signed_with(proxy, standin.handed[0], f"{TOKEN}-1")
    refused_cleanly(error, f"{STANDIN_SECRET}-1", f"{TOKEN}-1", "a-web-identity-token")


def test_expiring_credentials_are_refreshed(aws_env, s3server, standin, monkeypatch):
    """Credentials 12 minutes from expiry are in botocore's refresh window: asked for again (every
    ``_REFRESH``, 1 s here), the client signs with the new ones."""
    monkeypatch.setattr(s3_client, "_REFRESH", timedelta(seconds=1))
    standin.lifetime = timedelta(minutes=12)
    aws_env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"{standin.url}/creds")
    with FaultProxy(s3server.ports["s3.port"], []) as proxy:
        client = S3Client(proxy.url)
        for _ in range(2):
            with pytest.raises(S3Error):
                client.put(BUCKET, "token.txt", b"x", "text/plain")
            threading.Event().wait(1.5)
    used = re.findall(r"Credential=(\w+)/", bytes(proxy.sent).decode("latin-1"))
    assert len(used) == 2 and used[0] != used[1] and set(used) <= set(standin.handed), (used, standin.handed)
