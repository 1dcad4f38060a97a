"""The manifest on S3 during a run: a header object, then part objects as results are booked (S3 objects
cannot be appended to). A SIGTERM leaves them as they are; the rerun resumes from them, writes the whole
manifest once and deletes the parts, ending with the bytes of an uninterrupted run."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.blockrun import ROOT, ei_env, terminate_when_under_way
from tests.test_s3 import ARGS, BIG, DATA, OUT, bucket_bytes, s3  # noqa: F401 - s3 is a fixture


def test_sigterm_leaves_a_journal_the_rerun_resumes_and_compacts(s3server, s3, tmp_path):  # noqa: F811
    client, _ = s3
    args = [*ARGS, "--source", f"s3://{DATA}/big/", "--include-originals", "0", "--workers", "1"]
    env = ei_env(s3server.env())
    cmd = [sys.executable, "-u", str(ROOT / "transform.py"), *args, "--dest", f"s3://{OUT}/journal/"]
    stopped = terminate_when_under_way(cmd[3:], workdir=tmp_path, env=env)
    assert stopped.returncode == 143, stopped.output
    files = bucket_bytes(client, OUT, "journal/")
    parts = sorted(k for k in files if k.startswith("manifest.jsonl.part-"))
    assert parts, sorted(files)[:5]  # the booked lines went into part objects
    header = json.loads(files["manifest.jsonl"].decode().splitlines()[0])
    assert header["type"] == "run" and len(files["manifest.jsonl"].decode().splitlines()) == 1
    recorded = [json.loads(x)["output"] for p in parts for x in files[p].decode().splitlines()]
    images = sorted(k for k in files if k.endswith(".png"))
    assert sorted(recorded) == images and 0 < len(images) < BIG

    resumed = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout
    clean = subprocess.run(
        [*cmd[:-1], f"s3://{OUT}/journal-clean/"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert clean.returncode == 0, clean.stdout
    after, reference = bucket_bytes(client, OUT, "journal/"), bucket_bytes(client, OUT, "journal-clean/")
    assert not [k for k in after if ".part-" in k]  # compacted: the parts are gone
    assert after["manifest.jsonl"] == reference["manifest.jsonl"]
    assert {k: v for k, v in after.items() if k.endswith(".png")} == {
        k: v for k, v in reference.items() if k.endswith(".png")
    }
    totals = json.loads(after["report.json"])["totals"]
    assert totals["existing"] == len(images) and totals["written"] == BIG - len(images)
