"""SIGTERM mid-run: finished outputs are kept and recorded, nothing partial, a rerun completes the job
with the same bytes as an uninterrupted run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from augment.demo import write_sample_set
from tests.blockrun import ROOT, ei_env, terminate_when_under_way


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
