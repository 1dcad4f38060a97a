"""How the block fits Edge Impulse as EI's own sources show it (issue 16): optional secrets and which project
key wins, what an EI import of --out-directory picks up, and the image formats EI ingests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.blockrun import ROOT, ei_env, run_block
from tests.ingestion_server import IngestionServer
from tests.test_ingestion import ARGS, FAST, KEY, upload

VARIANTS = (ROOT / "parameters.json", ROOT / "blocks" / "standalone" / "parameters.json")


@pytest.mark.parametrize("path", VARIANTS, ids=["directory", "standalone"])
def test_secret_parameters_are_optional(path: Path):
    """A user who does not use S3 (or runs as a data source) must not have to fill in a secret."""
    secrets = [p for p in json.loads(path.read_text())["parameters"] if p["type"] == "secret"]
    assert secrets and all(p.get("optional") is True and p["value"] == "" for p in secrets)


def test_eis_project_key_wins_and_an_empty_secret_never_overrides_it(sample_dir: Path, tmp_path: Path):
    """The server takes only KEY. EI's EI_PROJECT_API_KEY (data source) beats a dummy or empty secret; the
    secret is used when EI passes no key; a blank secret alone is no key (exit 2)."""
    dummy = "dummy-secret-0000"
    src = sample_dir / "circle"
    with IngestionServer(KEY) as server:
        runs = {
            "dummy secret": {"PROJECT_API_KEY": dummy},
            "empty secret": {"PROJECT_API_KEY": ""},
            "blank secret": {"PROJECT_API_KEY": "  "},
        }
        for name, env in runs.items():
            result = upload(server, src, ["--copies", "0"], tmp_path / name, tmp_path / f"o-{name}", **env)
            assert result.returncode == 0, (name, result.output)
            assert dummy not in result.output and KEY not in result.output
        assert server.keys_seen == {KEY}

        noted = upload(server, src, ["--copies", "0"], tmp_path / "n", tmp_path / "o-n", PROJECT_API_KEY=dummy)
        assert "PROJECT_API_KEY ignored: EI passed EI_PROJECT_API_KEY" in noted.stdout

        only_secret = ei_env({"PROJECT_API_KEY": KEY, **FAST})
        args = [*ARGS, "--in-directory", str(src), "--out-directory", str(tmp_path / "o-s"), "--dest", "ei"]
        result = run_block([*args, "--ingestion-url", server.url], workdir=tmp_path, env=only_secret)
        assert result.returncode == 0, result.output

        blank = ei_env({"PROJECT_API_KEY": " ", "EI_PROJECT_API_KEY": ""})
        args[args.index(str(tmp_path / "o-s"))] = str(tmp_path / "o-b")
        result = run_block([*args, "--ingestion-url", server.url], workdir=tmp_path, env=blank)
        assert result.returncode == 2 and "needs a project API key" in result.stdout, result.output
