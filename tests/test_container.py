"""The built image (scripts/container.sh build), run with podman the way `docker run` and EI run it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from augment.demo import write_sample_set
from tests.blockrun import Completed, ei_env, run_block
from tests.podman import make_writable, podman_run, require_image, run_in_container

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def image() -> str:
    return require_image()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A folder like the one `edge-impulse-blocks runner` mounts at /data: class folders, writable by any uid."""
    folder = tmp_path / "data"
    write_sample_set(folder, per_class=3)
    make_writable(folder)
    return folder


def ok(result: Completed) -> Completed:
    assert result.returncode == 0, result.output
    return result


def digests(folder: Path) -> dict[str, str]:
    files = (p for p in folder.rglob("*") if p.is_file() and p.name not in {"report.json", "manifest.jsonl"})
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_runs_as_non_root_user(image: str) -> None:
    uid = ok(podman_run(["--entrypoint=id"], ["-u"], image=image)).stdout.strip()
    assert uid.isdigit() and uid != "0"


def test_entrypoint_is_the_block(image: str) -> None:
    result = ok(podman_run([], ["--help"], image=image))
    assert result.stdout.startswith("usage: transform.py")


def test_ei_directory_mode(image: str, data: Path) -> None:
    """edge-impulse-blocks runner: -v <dir>:/data ... --in-directory /data --out-directory /data/out."""
    env = [f"--env={k}={v}" for k, v in ei_env().items() if k.startswith("EI_")]
    args = ["--in-directory", "/data", "--out-directory", "/data/out", "--copies", "2"]
    ok(podman_run([f"--volume={data}:/data", *env], args, image=image))
    report = json.loads((data / "out" / "report.json").read_text())
    written = sorted(p.relative_to(data / "out").parts[0] for p in (data / "out").rglob("*.png"))
    assert set(written) == {"circle", "square", "triangle"}  # the out dir inside /data is not read back
    assert len(written) == 9 * 3, report


def test_ei_file_mode(image: str, tmp_path: Path, data: Path) -> None:
    """edge-impulse-blocks runner: -v <fileDir>:/data ... --in-file /data/<name> --out-directory /data/out."""
    file_dir = tmp_path / "file"
    file_dir.mkdir()
    (data / "square" / "00.png").rename(file_dir / "square.00.png")
    make_writable(file_dir)
    args = ["--in-file", "/data/square.00.png", "--out-directory", "/data/out", "--copies", "2"]
    ok(podman_run([f"--volume={file_dir}:/data"], args, image=image))
    assert sorted(p.name for p in (file_dir / "out").rglob("*.png")) == [
        "square.00.aug00.png",
        "square.00.aug01.png",
        "square.00.orig.png",
    ]


def test_read_only_root_with_writable_out_and_tmp(image: str, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    make_writable(out)
    opts = ["--read-only", "--tmpfs=/tmp", f"--volume={data}:/data/in:ro", f"--volume={out}:/data/out"]
    ok(podman_run(opts, ["--in-directory", "/data/in", "--out-directory", "/data/out"], image=image))
    assert (out / "report.json").is_file() and any(out.rglob("*.png"))


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--in-directory", "/data/missing", "--out-directory", "/tmp/out"], 1),
        (["--in-directory", "/data", "--out-directory", "/tmp/out", "--copies", "abc"], 2),
        (["--out-directory", "/tmp/out"], 2),
    ],
    ids=["missing-in-directory", "bad-param", "no-input"],
)
def test_exit_codes_come_through(image: str, data: Path, args: list[str], code: int) -> None:
    result = podman_run([f"--volume={data}:/data:ro"], args, image=image)
    assert result.returncode == code, result.output
    assert "ERROR:" in result.output and "Traceback" not in result.output


def test_unwritable_out_directory_fails_cleanly(image: str, tmp_path: Path, data: Path) -> None:
    """A host folder the image's user can't write (e.g. 0755, another owner) is a failed run, not a hang."""
    out = tmp_path / "locked"
    out.mkdir(mode=0o755)
    result = podman_run(
        [f"--volume={data}:/data/in:ro", f"--volume={out}:/data/out"],
        ["--in-directory", "/data/in", "--out-directory", "/data/out"],
        image=image,
    )
    assert result.returncode == 1, result.output
    assert "Permission denied" in result.output and "Traceback" not in result.output


def test_runner_passes_env_not_host_path(image: str, tmp_path: Path) -> None:
    env = ei_env({"EI_ORGANIZATION_ID": "4242"})
    code = "import os, sys; print(os.environ['EI_ORGANIZATION_ID'], sys.prefix, os.getcwd())"
    result = run_in_container(["-c", code], workdir=tmp_path, env=env, podman_args=["--entrypoint=python3"])
    assert ok(result).stdout.split() == ["4242", "/opt/venv", "/app"]


def test_same_outputs_as_the_venv(image: str, tmp_path: Path, sample_dir: Path, monkeypatch) -> None:
    """The two runners of tests.blockrun give byte-identical outputs for the same inputs and seed."""
    results = {}
    for runner in ("venv", "podman"):
        monkeypatch.setattr("tests.blockrun.RUNNER", runner)
        out = tmp_path / f"out-{runner}"
        args = ["--in-directory", str(sample_dir), "--out-directory", str(out), "--copies", "2", "--seed", "7"]
        ok(run_block(args, workdir=sample_dir.parent, timeout=120))
        results[runner] = digests(out)
    assert results["venv"] == results["podman"]
    assert len(results["venv"]) == 24 * 3
