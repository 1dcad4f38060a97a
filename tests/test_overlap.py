"""Output and input folders that overlap, in either direction and however reached (symlinks, a folder that
is both): a run never writes into its input, never reads its own outputs, and reruns do not multiply files.
Also what the output folder's files look like to the rest of the system: modes from the umask, and an empty
--out-directory refused. Every case runs the block as a real process."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import gradient
from tests.support.blockrun import LINKED_MOUNTS, ROOT, ei_env, host_runner_only, run_block
from tests.support.s3server import SeaweedServer


def _pngs(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))


def _block(in_dir: Path | str, out: Path | str, workdir: Path, *extra: str):
    args = ["--in-directory", str(in_dir), "--out-directory", str(out), "--copies", "2", "--workers", "1", *extra]
    return run_block(args, workdir=workdir)


def _class_folder(folder: Path, count: int = 3) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        gradient("RGB", (16, 16), seed=i).save(folder / f"{i}.png")
    return folder


_LINKS = host_runner_only(LINKED_MOUNTS)


@pytest.mark.parametrize(
    "via", ["plain", pytest.param("symlinked-out", marks=_LINKS), pytest.param("symlinked-in", marks=_LINKS)]
)
def test_output_folder_holding_a_single_class_input_is_refused(tmp_path, via):
    """``--in-directory data/led --out-directory data``: outputs would go to data/led, the input."""
    led = _class_folder(tmp_path / "data" / "led")
    out, in_dir = tmp_path / "data", led
    if via == "symlinked-out":
        (tmp_path / "link").symlink_to(tmp_path / "data")
        out = tmp_path / "link"
    elif via == "symlinked-in":
        (tmp_path / "elsewhere").symlink_to(led)
        in_dir = tmp_path / "elsewhere"
    for _ in range(3):  # before: 3 -> 12 -> 39 files
        result = _block(in_dir, out, tmp_path)
        assert result.returncode == 2, result.output
        assert "holds the input" in result.output and "led/led.0.orig.png" in result.output
        assert "Traceback" not in result.output and len(result.output.splitlines()) <= 2
        assert _pngs(led) == ["0.png", "1.png", "2.png"]
        assert not (tmp_path / "data" / "manifest.jsonl").exists()


def test_output_folder_above_an_input_its_outputs_do_not_reach_is_fine(sample_dir, tmp_path):
    """``--in-directory data/raw --out-directory data``: outputs go to data/<label>/, beside the input."""
    raw = tmp_path / "data" / "raw"
    raw.parent.mkdir()
    sample_dir.rename(raw)
    for _ in range(2):
        result = _block(raw, tmp_path / "data", tmp_path)
        assert result.returncode == 0, result.output
        assert "24 images" in result.output
    assert len(_pngs(raw)) == 24


@pytest.mark.parametrize("target", ["out", "out/circle"])
def test_a_symlink_in_the_input_to_the_output_is_not_read(sample_dir, tmp_path, target):
    out = tmp_path / "out"
    assert _block(sample_dir, out, tmp_path).returncode == 0
    (sample_dir / "mirror").symlink_to(tmp_path / target, target_is_directory=True)
    for _ in range(2):
        result = _block(sample_dir, out, tmp_path)
        assert result.returncode == 0, result.output
        assert "24 images" in result.output  # the outputs were not read as inputs
        assert "skipped mirror: symlink into the output folder" in result.output
    assert len(_pngs(out)) == 24 * 3


def test_an_output_folder_reached_through_a_symlink_inside_the_input_is_left_out(sample_dir, tmp_path):
    (sample_dir / "out").mkdir()
    (tmp_path / "outlink").symlink_to(sample_dir / "out")
    for _ in range(2):
        result = _block(sample_dir, tmp_path / "outlink", tmp_path)
        assert result.returncode == 0, result.output
        assert "24 images" in result.output
    assert len(_pngs(sample_dir / "out")) == 24 * 3


def test_a_link_loop_through_the_output_is_neither_followed_nor_read(sample_dir, tmp_path):
    out = sample_dir / "out"
    assert _block(sample_dir, out, tmp_path).returncode == 0
    (out / "back").symlink_to(sample_dir)  # output -> input -> output ...
    (sample_dir / "circle" / "loop").symlink_to(sample_dir)
    result = _block(sample_dir, out, tmp_path)
    assert result.returncode == 0, result.output
    assert "24 images" in result.output and "symlink loop" in result.output


@pytest.mark.xdist_group("s3")
def test_s3_dest_holding_a_single_class_source_prefix_is_refused(s3server: SeaweedServer, tmp_path):
    from tests.test_s3 import png8, put_all

    client = s3server.client()
    client.create_bucket(Bucket="overlap")
    put_all(client, "overlap", {f"data/led/{i}.png": png8(i) for i in range(2)})
    argv = ["--source", "s3://overlap/data/led/", "--dest", "s3://overlap/data/", "--copies", "1"]
    result = run_block(argv, workdir=tmp_path, env=ei_env(s3server.env()))
    assert result.returncode == 2, result.output
    assert "holds the input" in result.output and "Traceback" not in result.output
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="overlap")["Contents"]]
    assert sorted(keys) == ["data/led/0.png", "data/led/1.png"]


@pytest.mark.parametrize("empty", ["--out-directory=", "--out-directory=  "])
def test_an_empty_out_directory_is_a_usage_error(sample_dir, tmp_path, empty):
    work = tmp_path / "work"
    work.mkdir()
    result = run_block(["--in-directory", str(sample_dir), empty], workdir=work)
    assert result.returncode == 2, result.output
    assert "--out-directory is empty" in result.output
    assert list(work.iterdir()) == []


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664), (0o077, 0o600)])
def test_output_modes_follow_the_umask(sample_dir, tmp_path, umask, mode):
    out = tmp_path / "out"
    argv = [sys.executable, str(ROOT / "transform.py"), "--in-directory", str(sample_dir), "--out-directory", str(out)]
    result = subprocess.run(
        [*argv, "--copies", "1"],
        cwd=tmp_path,
        env=ei_env(),
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.umask(umask),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 48 and {stat.S_IMODE(p.stat().st_mode) for p in files} == {mode}
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_dir()} == {0o777 & ~umask}


def _in_mount_namespace(binds: list[tuple[Path, Path]], argv: list[str], workdir: Path):
    """Run the block in a private mount namespace where each (source, target) folder is bind-mounted."""
    mounts = "".join(f"mount --bind '{a}' '{b}' && " for a, b in binds)
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("no private mount namespace here (unshare --mount needs privileges)")
    script = f'{mounts}exec {sys.executable} -u {ROOT / "transform.py"} "$@"'
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c", script, "sh", *argv],
        cwd=workdir,
        env=ei_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_bind_mounted_overlaps_are_seen_by_identity(sample_dir, tmp_path):
    led = _class_folder(tmp_path / "data" / "led")
    (tmp_path / "mnt").mkdir()
    refused = _in_mount_namespace(
        [(tmp_path / "data", tmp_path / "mnt")],
        ["--in-directory", str(led), "--out-directory", str(tmp_path / "mnt"), "--copies", "1"],
        tmp_path,
    )
    assert refused.returncode == 2 and "holds the input" in refused.stdout, refused.stdout + refused.stderr
    assert _pngs(led) == ["0.png", "1.png", "2.png"]
    out = tmp_path / "out"
    (sample_dir / "mirror").mkdir()  # the output folder mounted inside the input
    for _ in range(2):
        result = _in_mount_namespace(
            [(out, sample_dir / "mirror")] if out.is_dir() else [],
            ["--in-directory", str(sample_dir), "--out-directory", str(out), "--copies", "1"],
            tmp_path,
        )
        assert result.returncode == 0 and "24 images" in result.stdout, result.stdout + result.stderr
    assert len(_pngs(out)) == 48


@_LINKS
def test_hostile_output_paths_fail_with_one_line_and_touch_nothing(sample_dir, tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for args in (["--out-directory", str(tmp_path / "loop")], ["--in-directory", str(tmp_path / "loop")]):
        argv = ["--in-directory", str(sample_dir), "--out-directory", str(tmp_path / "o"), *args]
        result = run_block(argv, workdir=tmp_path)
        assert result.returncode == 2 and "cannot be resolved" in result.output, result.output
        assert "Traceback" not in result.output
    # A lock file that is a symlink to someone else's file: never opened through the link, never truncated.
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / ".edge-augment.lock").symlink_to(victim)
    result = _block(sample_dir, tmp_path / "o", tmp_path)
    assert result.returncode == 1 and "cannot create the lock file" in result.output, result.output
    assert victim.read_text() == "keep me"
    # A looping link inside the output folder where a class folder goes: the write fails, named, no traceback.
    (tmp_path / "o" / ".edge-augment.lock").unlink()
    (tmp_path / "o" / "circle").symlink_to(tmp_path / "o" / "circle")
    result = _block(sample_dir, tmp_path / "o", tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.output, result.output
    result = _block(sample_dir, tmp_path / "o2", tmp_path, "--shard-index", "0", "--shard-count", "10000000")
    assert result.returncode == 2 and "--shard-count: 10000000 must be in 1..1000000" in result.output


def test_a_full_output_disk_fails_in_one_line_and_leaves_nothing(sample_dir, tmp_path):
    """The output folder on a full file system (a 64 KiB tmpfs, filled): one ERROR line naming the file,
    exit 1, no traceback, no lock file or temp file left."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode:
        pytest.skip("no private mount namespace here (unshare --mount needs privileges)")
    script = (
        f"mount -t tmpfs -o size=64k tmpfs '{mnt}' && mkdir '{mnt}/out' &&"
        f" (dd if=/dev/zero of='{mnt}/fill' bs=4k count=100 2>/dev/null; true) &&"
        f" {sys.executable} -u {ROOT / 'transform.py'} --in-directory '{sample_dir}' --out-directory '{mnt}/out'"
        f" --copies 1; echo rc=$?; ls -A '{mnt}/out'"
    )
    result = subprocess.run(["unshare", "--mount", "sh", "-c", script], env=ei_env(), capture_output=True, text=True)
    text = result.stdout + result.stderr
    assert "rc=1" in text and "No space left on device" in text and "Traceback" not in text, text
    assert text.rstrip().endswith("rc=1"), text  # ls -A listed nothing: the folder is empty
