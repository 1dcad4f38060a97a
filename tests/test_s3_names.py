"""A local name that is not UTF-8 cannot become an S3 key: one line and exit 1, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import gradient
from tests.support.blockrun import ei_env, run_block

pytestmark = pytest.mark.xdist_group("s3")


def test_a_name_that_is_not_utf8_is_refused_as_an_s3_key(s3server, tmp_path: Path):
    s3server.client().create_bucket(Bucket="edge-names")
    root = os.fsencode(tmp_path / "in")
    os.makedirs(root + b"/x")
    gradient("RGB", (8, 8)).save(root + b"/x/caf\xe9.png")
    args = ["--in-directory", str(tmp_path / "in"), "--dest", "s3://edge-names/out/", "--copies", "1"]
    result = run_block(args, workdir=tmp_path, env=ei_env(s3server.env()), timeout=120)
    assert result.returncode == 1, result.output
    assert "Traceback" not in result.output
    assert "not valid UTF-8 (S3 keys must be)" in result.stdout
