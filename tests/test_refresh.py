"""Incremental refresh (--since) decides "new" by the manifest, not by time alone: a source no manifest records
is augmented whatever its mtime (cp -p, rsync -a, tar, a rename) or LastModified. Real processes, real tools."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.blockrun import ei_env, run_block
from tests.support.s3server import SeaweedServer
from tests.test_determinism import images

OLD = 1_700_000_000  # 2023-11-14T22:13:20Z: every input's mtime, long before --since


def _age(folder: Path) -> None:
    for path in folder.rglob("*.png"):
        os.utime(path, (OLD, OLD))


def _run(in_dir: Path, out: Path, *args: str, env: dict[str, str] | None = None):
    argv = ["--in-directory", str(in_dir), "--out-directory", str(out), "--copies", "1", "--workers", "1", *args]
    result = run_block(argv, workdir=out.parent, env=env)
    assert result.returncode == 0, result.output
    return result


def _since(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())["since"]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def test_sources_added_with_old_times_or_renamed_are_augmented(sample_dir, tmp_path):
    _age(sample_dir)
    out = tmp_path / "out"
    _run(sample_dir, out, "--since", "off")
    before = images(out)
    since = _now()  # EI's last successful run: after every input's mtime and ctime
    time.sleep(0.05)
    # Files that arrive keeping an old mtime: cp -p, tar (as unzip and rsync -a do), a rename, and cp -p of
    # other bytes over a recorded name (only ctime, which no tool sets back, tells that one).
    elsewhere = tmp_path / "camera"
    elsewhere.mkdir()
    shutil.copyfile(sample_dir / "square" / "05.png", elsewhere / "cp.png")
    os.utime(elsewhere / "cp.png", (OLD, OLD))
    subprocess.run(["cp", "-p", str(elsewhere / "cp.png"), str(sample_dir / "circle" / "copied.png")], check=True)
    subprocess.run(["cp", "-p", str(elsewhere / "cp.png"), str(sample_dir / "circle" / "03.png")], check=True)
    with tarfile.open(tmp_path / "t.tar", "w") as tar:
        tar.add(sample_dir / "square" / "01.png", arcname="square/untarred.png")
    subprocess.run(["tar", "-xf", str(tmp_path / "t.tar"), "-C", str(sample_dir)], check=True)
    os.rename(sample_dir / "triangle" / "02.png", sample_dir / "triangle" / "renamed.png")
    assert all(p.stat().st_mtime == OLD for p in sample_dir.rglob("*.png"))
    result = _run(sample_dir, out, env=ei_env({"EI_LAST_SUCCESSFUL_RUN": since}))
    assert _since(out) == {"time": since, "new": 4, "unchanged": 22, "done": 4}
    assert "4 new or modified (4 done), 22 unchanged (skipped)" in result.stdout
    after = images(out)
    for name in (
        "circle/circle.copied.aug00.png",
        "square/square.untarred.orig.png",
        "triangle/triangle.renamed.aug00.png",
    ):
        assert name in after
    redone = {k for k in before if after[k] != before[k]}
    assert redone == {"circle/circle.03.orig.png", "circle/circle.03.aug00.png"}  # its bytes changed
    fresh = tmp_path / "fresh"
    _run(sample_dir, fresh, "--since", "off")
    assert images(fresh).items() <= after.items()  # the same bytes as a full run of today's inputs


def test_an_empty_output_folder_gets_everything_whatever_since_says(sample_dir, tmp_path):
    _age(sample_dir)
    since = _now()  # after every input's mtime and ctime
    out = tmp_path / "out"
    _run(sample_dir, out, "--since", since)
    assert _since(out)["new"] == 24 and len(images(out)) == 48
    _run(sample_dir, out, "--since", since)  # now every source is recorded and old: nothing to do
    assert _since(out) == {"time": since, "new": 0, "unchanged": 24, "done": 0}


@pytest.mark.xdist_group("s3")
def test_s3_sources_older_than_since_but_never_recorded_are_augmented(s3server: SeaweedServer, tmp_path):
    from tests.test_s3 import png8, put_all

    client = s3server.client()
    for bucket in ("refresh-in", "refresh-out"):
        client.create_bucket(Bucket=bucket)
    put_all(client, "refresh-in", {f"a/{i}.png": png8(i) for i in range(3)})
    future = "2099-01-01T00:00:00Z"  # after every LastModified the store can give: all sources are "old"
    argv = ["--source", "s3://refresh-in/", "--dest", "s3://refresh-out/v1/", "--copies", "1", "--since", future]
    first = run_block(argv, workdir=tmp_path, env=ei_env(s3server.env()))
    assert first.returncode == 0, first.output
    assert "3 new or modified (3 done), 0 unchanged" in first.stdout
    put_all(client, "refresh-in", {"a/late.png": png8(9)})  # added later, still before --since
    second = run_block(argv, workdir=tmp_path, env=ei_env(s3server.env()))
    assert second.returncode == 0, second.output
    assert "1 new or modified (1 done), 3 unchanged" in second.stdout
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="refresh-out", Prefix="v1/")["Contents"]}
    assert {"v1/a/a.late.orig.png", "v1/a/a.late.aug00.png"} <= keys
