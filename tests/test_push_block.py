"""scripts/push-block.sh pushes either variant from scratch, with a stand-in for `edge-impulse-blocks` (EI's
service is not reachable here) that does what edgeimpulse/edge-impulse-cli does: `push` refuses to run
without .ei-block-config (cli/blocks.ts: "Run edge-impulse-blocks init to create a new block"); `init` writes
it and saves parameters.json with info.transformMountpoints, asking for buckets only when parameters.json
has none (cli/blocks/init-cli-block.ts); `push` creates the block's mounts from info.transformMountpoints
(cli/blocks.ts: additionalMountPoints)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.blockrun import ROOT

SCRIPT = ROOT / "scripts" / "push-block.sh"
STUB = """#!{python}
import json, os, sys
from pathlib import Path

log = Path(os.environ["STUB_LOG"])
params = json.loads(Path("parameters.json").read_text())
entry = {{"command": sys.argv[1], "cwd": os.getcwd()}}
if sys.argv[1] == "init":
    info = params["info"]
    entry["asked_for_buckets"] = "transformMountpoints" not in info
    info.setdefault("transformMountpoints", [])
    Path("parameters.json").write_text(json.dumps(params))
    config = {{"edgeimpulse.com": {{"organizationId": 1, "id": 42}}}}
    Path(".ei-block-config").write_text(json.dumps({{"version": 2, "config": config}}))
elif sys.argv[1] == "push":
    if not Path(".ei-block-config").exists():
        print("A configuration cannot be found for this host (edgeimpulse.com). "
              'Run "edge-impulse-blocks init" to create a new block.')
        sys.exit(1)
    entry["operatesOn"] = params["info"]["operatesOn"]
    entry["mounts"] = params["info"].get("transformMountpoints", [])
    entry["files"] = sorted(str(p) for p in Path(".").rglob("*") if p.is_file())
with log.open("a") as f:
    f.write(json.dumps(entry) + "\\n")
"""


def stub_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "edge-impulse-blocks"
    stub.write_text(STUB.format(python=sys.executable))
    stub.chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    env = {"PATH": path, "HOME": str(tmp_path), "STUB_LOG": str(tmp_path / "calls.jsonl")}
    return {**env, "EDGE_AUGMENT_BLOCK_CONFIG_DIR": str(tmp_path / "kept"), **extra}


def calls(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]


def test_the_stand_in_refuses_a_push_without_init_as_eis_cli_does(tmp_path: Path):
    (tmp_path / "parameters.json").write_text((ROOT / "parameters.json").read_text())
    env = stub_env(tmp_path)
    result = subprocess.run(["edge-impulse-blocks", "push"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "edge-impulse-blocks init" in result.stdout


def test_first_push_of_the_standalone_variant_inits_with_the_bucket_mount_then_later_pushes_reuse_it(tmp_path: Path):
    env = stub_env(tmp_path, EI_BUCKET_ID="7", EI_BUCKET_NAME="raw-images")
    first = subprocess.run([str(SCRIPT), "standalone"], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout + first.stderr
    init, push = calls(tmp_path)
    assert (init["command"], push["command"]) == ("init", "push") and init["cwd"] == push["cwd"]
    assert init["asked_for_buckets"] is False  # the mount was declared, not asked for
    assert push["operatesOn"] == "standalone"
    assert push["mounts"] == [{"bucketId": 7, "mountPoint": "/mnt/s3fs/raw-images"}]
    assert {"Dockerfile", "parameters.json", "transform.py", "augment/run/runner.py"} <= set(push["files"])
    assert (tmp_path / "kept" / ".ei-block-config").is_file()

    again = subprocess.run([str(SCRIPT), "standalone"], env=stub_env(tmp_path), capture_output=True, text=True)
    assert again.returncode == 0, again.stdout + again.stderr
    assert [c["command"] for c in calls(tmp_path)] == ["init", "push", "push"]


def test_first_push_of_the_directory_variant_leaves_the_repo_untouched(tmp_path: Path):
    before = (ROOT / "parameters.json").read_bytes()
    result = subprocess.run([str(SCRIPT), "directory"], env=stub_env(tmp_path), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    init, push = calls(tmp_path)
    assert init["asked_for_buckets"] is True and push["operatesOn"] == "directory" and push["mounts"] == []
    assert (ROOT / "parameters.json").read_bytes() == before and not Path(push["cwd"]).exists()
    assert (tmp_path / "kept" / ".ei-block-config").is_file()


def test_a_half_given_bucket_is_refused(tmp_path: Path):
    env = stub_env(tmp_path, EI_BUCKET_ID="x7", EI_BUCKET_NAME="raw")
    result = subprocess.run([str(SCRIPT), "standalone"], env=env, capture_output=True, text=True)
    assert result.returncode == 2 and "EI_BUCKET_ID" in result.stderr
    assert not (tmp_path / "calls.jsonl").exists()
