"""SIGTERM mid-run: finished outputs are kept and recorded, nothing partial, a rerun completes the job
with the same bytes as an uninterrupted run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from augment.demo import write_sample_set
from tests.support.blockrun import ROOT, ei_env, terminate_when_under_way


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.png")}


def test_sigterm_then_rerun_equals_an_uninterrupted_run(tmp_path):
    images = write_sample_set(tmp_path / "in", per_class=100)  # far more than the pool keeps in flight
    args = ["--in-directory", str(tmp_path / "in"), "--copies", "8", "--workers", "2"]
    out = tmp_path / "out"
    cmd = [sys.executable, "-u", str(ROOT / "transform.py"), *args, "--out-directory", str(out)]
    stopped = terminate_when_under_way([*args, "--out-directory", str(out)], workdir=tmp_path, env=ei_env())
    assert stopped.returncode == 143, stopped.output
    assert "interrupted (SIGTERM)" in stopped.stdout
    assert not list(out.rglob(".tmp*"))
    recorded = [json.loads(x)["output"] for x in (out / "manifest.jsonl").read_text().splitlines()[1:]]
    on_disk = files(out)
    assert sorted(recorded) == sorted(on_disk) and 0 < len(on_disk) < images * 9

    resumed = subprocess.run([*cmd], cwd=tmp_path, env=ei_env(), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stdout
    totals = json.loads((out / "report.json").read_text())["totals"]
    assert totals["existing"] == len(on_disk) and totals["existing"] + totals["written"] == images * 9

    clean = tmp_path / "clean"
    subprocess.run([*cmd[:-1], str(clean)], cwd=tmp_path, env=ei_env(), check=True, capture_output=True)
    assert files(out) == files(clean)
    assert (out / "manifest.jsonl").read_bytes() == (clean / "manifest.jsonl").read_bytes()


def test_sigterm_to_the_whole_process_group_is_a_stop_not_failed_images(tmp_path):
    """``kill -TERM -<pgid>`` (a shell's Ctrl-C-like group signal, a container runtime) kills the workers
    too: the images they held are not failures, nothing unrecorded is left, and a rerun completes."""
    import os
    import signal

    images = write_sample_set(tmp_path / "in", per_class=60)
    out = tmp_path / "out"
    cmd = [sys.executable, "-u", str(ROOT / "transform.py"), "--in-directory", str(tmp_path / "in"), "--copies", "8",
           "--workers", "2", "--preset", "heavy", "--out-directory", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ei_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("["):
            os.killpg(proc.pid, signal.SIGTERM)
            break
    output = proc.stdout.read()
    assert proc.wait(timeout=120) == 143, output
    assert "ERROR" not in output and "Traceback" not in output, output
    recorded = [json.loads(x)["output"] for x in (out / "manifest.jsonl").read_text().splitlines()[1:]]
    assert sorted(recorded) == sorted(files(out)) and not list(out.rglob(".tmp*"))
    resumed = subprocess.run(cmd, cwd=tmp_path, env=ei_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout
    assert len(files(out)) == images * 9
