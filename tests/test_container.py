"""The built image (scripts/container.sh build), run with podman the way `docker run` and EI run it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from augment.demo import write_sample_set
from tests.support.blockrun import Completed, ei_env, run_block
from tests.support.podman import make_writable, podman_run, require_image, run_in_container

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


def test_default_user_is_root_as_in_eis_examples(image: str) -> None:
    """EI's example blocks run as root; tests/test_ei_local.py runs the image so, like EI's runner."""
    assert ok(podman_run(["--entrypoint=id"], ["-u"], image=image)).stdout.strip() == "0"


def test_entrypoint_is_the_block(image: str) -> None:
    result = ok(podman_run([], ["--help"], image=image))
    assert result.stdout.startswith("usage: transform.py")


@pytest.mark.parametrize("user", ["10001", "augment", "4242:4242"])
def test_unprivileged_uid_with_read_only_root_and_writable_out(image: str, data: Path, tmp_path: Path, user: str):
    """Any uid (the image's `augment` user, or one it does not know), a read-only root file system and no
    writable /tmp: only the out folder is writable."""
    out = tmp_path / "out"
    out.mkdir()
    make_writable(out)
    opts = [f"--user={user}", "--read-only", f"--volume={data}:/data/in:ro", f"--volume={out}:/data/out"]
    args = ["--in-directory", "/data/in", "--out-directory", "/data/out", "--preview", "1"]
    result = ok(podman_run(opts, args, image=image))
    assert (out / "report.json").is_file() and (out / "preview.png").is_file() and any(out.rglob("*.png"))
    owners = {p.stat().st_uid for p in out.rglob("*") if p.is_file()}
    assert owners and 0 not in owners, (owners, result.output)


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
    """A host folder an unprivileged uid can't write (e.g. 0755, another owner) is a failed run, not a hang."""
    out = tmp_path / "locked"
    out.mkdir(mode=0o755)
    result = podman_run(
        ["--user=10001", f"--volume={data}:/data/in:ro", f"--volume={out}:/data/out"],
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
    """The two runners of tests.support.blockrun give byte-identical outputs for the same inputs and seed."""
    results = {}
    for runner in ("venv", "podman"):
        monkeypatch.setattr("tests.support.blockrun.RUNNER", runner)
        out = tmp_path / f"out-{runner}"
        args = ["--in-directory", str(sample_dir), "--out-directory", str(out), "--copies", "2", "--seed", "7"]
        ok(run_block(args, workdir=sample_dir.parent, timeout=120))
        results[runner] = digests(out)
    assert results["venv"] == results["podman"]
    assert len(results["venv"]) == 24 * 3
