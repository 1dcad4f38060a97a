"""A local end-to-end as Edge Impulse runs the block (`make ei-local`): the built image with its default user,
the mounts, env vars and arguments EI uses, and a host folder that belongs to a non-root host user and is
not opened up for other users (0755), as the `ei-block-data` folder of `edge-impulse-blocks runner` is.

- directory and file mode: exactly `edge-impulse-blocks runner`'s command (edgeimpulse/edge-impulse-cli
  cli/block-runner.ts getDockerRunCommand): `docker run -e EI_ORGANIZATION_ID=<org> -e <EI_* of the shell>
  --rm -v <dir>:/data <image> --in-directory /data --out-directory /data/out` (file mode: `-v <fileDir>:/data
  ... --in-file /data/<name>`), then `--metadata <json>` when the data item has metadata;
- standalone: a data-source job of the standalone variant: the bucket mounted at /mnt/s3fs/<bucket>
  (info.transformMountpoints), EI_PROJECT_API_KEY and EI_PROJECT_ID set, the optional secrets (PROJECT_API_KEY,
  AWS_*) empty, the variant's cliArguments plus every parameter at its default as EI passes it, uploading to the
  loopback ingestion service.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from augment.demo import write_sample_set
from tests.support.blockrun import EI_FIRST_RUN, ROOT, Completed, ei_env
from tests.support.ingestion_server import IngestionServer
from tests.support.podman import podman_run, require_image
from tests.test_parameters_json import ei_arguments

pytestmark = pytest.mark.container

HOST_USER = 1000  # the non-root host user who owns the runner's data folder
KEY = "ei-local-project-key-not-real"


@pytest.fixture(scope="module")
def image() -> str:
    return require_image()


def owned_by_host_user(folder: Path) -> Path:
    """The folder as `edge-impulse-blocks runner` leaves it: the host user's, 0755 folders, 0644 files."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
        if os.geteuid() == 0:  # tests run as root here: hand it to a non-root user, as on a workstation
            os.chown(path, HOST_USER, HOST_USER)
    return folder


def host_owner() -> int:
    return HOST_USER if os.geteuid() == 0 else os.geteuid()


def runner_env(**extra: str) -> list[str]:
    """The EI_* variables EI passes, EI_LAST_SUCCESSFUL_RUN included (a --since run, as on EI)."""
    env = {k: v for k, v in ei_env(extra, last_run=EI_FIRST_RUN).items() if k.startswith("EI_")}
    return [f"--env={k}={v}" for k, v in {"EI_ORGANIZATION_ID": "4242", **env}.items()]


def ok(result: Completed) -> Completed:
    assert result.returncode == 0, result.output
    assert "Traceback" not in result.output
    return result


def test_directory_mode_as_the_runner_runs_it(image: str, tmp_path: Path):
    data = tmp_path / "ei-block-data" / "shapes"
    write_sample_set(data, per_class=3)
    owned_by_host_user(data)
    meta = json.dumps({"subject": "AAA001", "dataItemInfo": {"id": 101, "dataset": "shapes"}})
    args = ["--in-directory", "/data", "--out-directory", "/data/out", "--metadata", meta, "--copies", "2"]
    ok(podman_run([f"--volume={data}:/data", *runner_env()], args, image=image))
    out = data / "out"
    images = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert {i.split("/")[0] for i in images} == {"circle", "square", "triangle"} and len(images) == 9 * 3
    report = json.loads((out / "report.json").read_text())
    assert report["metadata"]["subject"] == "AAA001" and report["totals"]["written"] == len(images)
    assert json.loads((out / "ei-metadata.json").read_text())["metadata"]["augment_outputs"] == str(len(images))
    assert (data.stat().st_uid, data.stat().st_mode & 0o777) == (host_owner(), 0o755)  # not opened up


def test_file_mode_as_the_runner_runs_it(image: str, tmp_path: Path):
    source = tmp_path / "src"
    write_sample_set(source, per_class=1)
    file_dir = tmp_path / "ei-block-data" / "file"
    file_dir.mkdir(parents=True)
    (source / "square" / "00.png").rename(file_dir / "square.00.png")
    owned_by_host_user(file_dir)
    args = ["--in-file", "/data/square.00.png", "--out-directory", "/data/out", "--copies", "2"]
    ok(podman_run([f"--volume={file_dir}:/data", *runner_env()], args, image=image))
    assert sorted(p.name for p in (file_dir / "out").rglob("*.png")) == [
        "square.00.aug00.png",
        "square.00.aug01.png",
        "square.00.orig.png",
    ]


def test_standalone_data_source_job(image: str, tmp_path: Path):
    params = json.loads((ROOT / "blocks" / "standalone" / "parameters.json").read_text())
    bucket = tmp_path / "bucket"
    write_sample_set(bucket / "images", per_class=3)
    owned_by_host_user(bucket)
    args = [*params["info"]["cliArguments"].split(), *ei_arguments(params)]
    args += ["--bucket", "raw-images", "--bucket-prefix", "images", "--copies", "1"]
    with IngestionServer(KEY) as server:
        unset = [f"--env={name}=" for name in ("PROJECT_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]
        env = [*runner_env(EI_PROJECT_API_KEY=KEY, EI_PROJECT_ID="77"), *unset]  # the optional secrets, empty
        mount = f"--volume={bucket}:/mnt/s3fs/raw-images"
        result = ok(podman_run([mount, *env], [*args, "--ingestion-url", server.url], image=image))
        assert "ignoring arguments" not in result.stdout and KEY not in result.output
        stored = {(s.category, s.name) for s in server.stored}
    assert len(stored) == 9 * 2 - sum(1 for c, _ in stored if c == "testing")  # held-out originals get no copy
    assert {c for c, _ in stored} == {"training", "testing"} and server.keys_seen == {KEY}
    assert all(s.metadata["source"] for s in server.stored)  # one file a request: each names its source
