"""Secrets never leak: every mode runs with sentinel EI and AWS keys in its environment (the real S3 test
server's keys, sentinel project keys), and none appears in stdout, stderr, the manifest, the report, the
labels files or any error text, on success or failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.blockrun import ei_env, run_block
from tests.support.boxes_data import detection_folder
from tests.support.ingestion_server import IngestionServer
from tests.support.s3server import ACCESS_KEY, SECRET_KEY, SeaweedServer

pytestmark = pytest.mark.xdist_group("s3")  # shares the session's SeaweedFS with test_s3.py

ORG_KEY = "SENTINEL-org-key-5f3a"
PROJECT_KEY = "SENTINEL-project-key-9c1d"
WRONG_SECRET = "SENTINEL-wrong-secret-77aa"
SECRETS = (ORG_KEY, PROJECT_KEY, WRONG_SECRET, ACCESS_KEY, SECRET_KEY)


def env_for(server: SeaweedServer, **extra: str) -> dict[str, str]:
    return ei_env({**server.env(), "EI_API_KEY": ORG_KEY, "EI_PROJECT_API_KEY": PROJECT_KEY, **extra})


def assert_nowhere(result, *folders: Path) -> None:
    text = result.stdout + result.stderr
    for folder in folders:
        for path in folder.rglob("*") if folder.exists() else []:
            if path.is_file() and path.suffix in (".json", ".jsonl", ".labels", ".txt"):
                text += path.read_text(errors="replace")
    for secret in SECRETS:
        assert secret not in text, secret


def test_no_mode_leaks_a_secret(s3server: SeaweedServer, tmp_path: Path):
    src = detection_folder(tmp_path / "in", 2)
    client = s3server.client()
    client.create_bucket(Bucket="secrets-src")
    client.create_bucket(Bucket="secrets-out")
    for path in src.iterdir():
        client.put_object(Bucket="secrets-src", Key=f"raw/{path.name}", Body=path.read_bytes())
    env = env_for(s3server)
    base = ["--copies", "1", "--preview", "1"]
    runs = {
        "local": [*base, "--in-directory", str(src), "--out-directory", str(tmp_path / "o1")],
        "s3-to-s3": [*base, "--source", "s3://secrets-src/raw/", "--dest", "s3://secrets-out/aug/"],
        "s3-to-local": [*base, "--source", "s3://secrets-src/raw/", "--out-directory", str(tmp_path / "o2")],
        "dry-run": [*base, "--in-directory", str(src), "--out-directory", str(tmp_path / "o3"), "--dry-run", "1"],
    }
    for name, args in runs.items():
        result = run_block(args, workdir=tmp_path, env=env)
        assert result.returncode == 0, (name, result.output)
        assert_nowhere(result, tmp_path)
    for key in ("aug/manifest.jsonl", "aug/report.json"):
        body = client.get_object(Bucket="secrets-out", Key=key)["Body"].read().decode()
        assert not any(secret in body for secret in SECRETS)

    with IngestionServer(PROJECT_KEY) as server:
        args = [*base, "--in-directory", str(src), "--out-directory", str(tmp_path / "o4"), "--dest", "ei"]
        uploaded = run_block([*args, "--ingestion-url", server.url], workdir=tmp_path, env=env)
        assert uploaded.returncode == 0, uploaded.output
        assert_nowhere(uploaded, tmp_path)
        wrong = env_for(s3server, EI_PROJECT_API_KEY=WRONG_SECRET)
        (tmp_path / "o5").mkdir()
        args[args.index(str(tmp_path / "o4"))] = str(tmp_path / "o5")
        refused = run_block([*args, "--ingestion-url", server.url], workdir=tmp_path, env=wrong)
        assert refused.returncode == 1 and "401" in refused.stdout
        assert_nowhere(refused, tmp_path)

    failing = env_for(s3server, AWS_SECRET_ACCESS_KEY=WRONG_SECRET, AWS_MAX_ATTEMPTS="1")
    denied = run_block(runs["s3-to-local"], workdir=tmp_path, env=failing)
    assert denied.returncode == 1 and "SignatureDoesNotMatch" in denied.stdout, denied.output
    assert "Traceback" not in denied.output
    assert_nowhere(denied, tmp_path)
