"""parameters.json against EI's schema (ei-contract.md section 1), and 1:1 with the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from augment.cli import build_parser
from augment.config.options import BY_DEST
from tests.support.blockrun import ROOT, ei_env, run_block
from tests.support.ingestion_server import IngestionServer

EI_TYPES = {"string", "int", "float", "select", "boolean", "bucket", "dataset", "flag", "secret"}
INFO_KEYS = {
    "name", "description", "operatesOn", "transformMountpoints", "indMetadata", "cliArguments",
    "allowExtraCliArguments", "showInDataSources", "showInCreateTransformationJob", "requiredEnvVariables",
}  # fmt: skip
ITEM_KEYS = {
    "name", "value", "type", "param", "help", "valid", "optional", "readonly", "showIf", "multiline", "hint",
    "placeholder", "allowEmpty", "section",
}  # fmt: skip
PARAMS = json.loads((ROOT / "parameters.json").read_text())
# The directory block (pushed from the repo root) and the standalone one (scripts/push-block.sh standalone).
VARIANTS = {"directory": ROOT / "parameters.json", "standalone": ROOT / "blocks" / "standalone" / "parameters.json"}


@pytest.fixture(params=sorted(VARIANTS))
def params(request: pytest.FixtureRequest) -> dict:
    return json.loads(VARIANTS[request.param].read_text())


def test_top_level_and_info_follow_eis_schema(params: dict):
    assert params["version"] == 1 and params["type"] == "transform"
    info = params["info"]
    assert set(info) <= INFO_KEYS
    assert info["name"] and info["description"]
    assert info["operatesOn"] in ("file", "directory", "standalone")
    assert isinstance(info["indMetadata"], bool)


def test_every_parameter_item_is_valid(params: dict):
    names = [p["param"] for p in params["parameters"]]
    assert len(names) == len(set(names))
    for item in params["parameters"]:
        where = item["param"]
        assert set(item) <= ITEM_KEYS, where
        assert item["name"] and item["type"] in EI_TYPES, where
        assert " " not in item["param"], where
        assert "value" in item, where
        if item["type"] == "select":
            values = [v["value"] if isinstance(v, dict) else v for v in item["valid"]]
            assert item["value"] in values, where
        if item["type"] == "boolean":
            assert isinstance(item["value"], bool), where
        if item["type"] in ("int", "float"):
            assert isinstance(item["value"], int | float) and not isinstance(item["value"], bool), where
        if "multiline" in item or "allowEmpty" in item:
            assert item["type"] == "string", where
        if "showIf" in item:
            cond = item["showIf"]
            assert cond["parameter"] in names and cond["operator"] in ("eq", "neq"), where
            assert isinstance(cond["value"], str), where
        if "section" in item:
            assert item["section"] in ("advanced", "modelProfiling"), where


def test_every_parameter_is_a_cli_flag_with_the_same_spelling(params: dict):
    flags = {opt for action in build_parser()._actions for opt in action.option_strings}
    for item in params["parameters"]:
        if item["type"] == "secret":  # secrets arrive as environment variables, not flags
            assert item["param"].isidentifier() and item["param"].isupper(), item["param"]
            continue
        assert f"--{item['param']}" in flags, item["param"]
        option = BY_DEST[item["param"].replace("-", "_")]
        if item["type"] == "select" and option.choices:  # (upload-category's choices depend on --dest)
            values = {v["value"] if isinstance(v, dict) else v for v in item["valid"]}
            assert values <= set(option.choices), item["param"]


def ei_arguments(params: dict = PARAMS) -> list[str]:
    """Every parameter at its default, passed the way EI passes it (booleans as 1/0, flags bare)."""
    args: list[str] = []
    for item in params["parameters"]:
        value = item["value"]
        if item["type"] == "secret":
            continue
        if item["type"] == "flag":
            args += [f"--{item['param']}"] if value else []
        elif item["type"] == "boolean":
            args += [f"--{item['param']}", "1" if value else "0"]
        else:
            args += [f"--{item['param']}", str(value)]
    return args


def test_block_accepts_every_default_as_ei_passes_it(sample_dir, tmp_path: Path):
    args = ["--in-directory", str(sample_dir), "--out-directory", str(tmp_path / "out"), *ei_arguments()]
    result = run_block([*args, "--hmac-key", "0"], workdir=tmp_path)
    assert result.returncode == 0, result.output
    assert "ignoring arguments" not in result.stdout


def test_standalone_variant_accepts_every_category_with_its_defaults(sample_dir, tmp_path: Path):
    """EI passes hidden (showIf) parameters with their defaults too: no category may make that an error."""
    standalone = json.loads((ROOT / "blocks" / "standalone" / "parameters.json").read_text())
    category = next(p for p in standalone["parameters"] if p["param"] == "upload-category")
    values = [v["value"] if isinstance(v, dict) else v for v in category["valid"]]
    with IngestionServer("k-123") as server:
        for value in values:
            args = []
            for item in standalone["parameters"]:
                if item["type"] in ("secret", "bucket", "dataset") or item["param"] in ("bucket", "bucket-prefix"):
                    continue
                v = value if item["param"] == "upload-category" else item["value"]
                if item["type"] == "boolean":
                    v = "1" if v else "0"
                args += [f"--{item['param']}", str(v)]
            out = tmp_path / value
            args += ["--in-directory", str(sample_dir), "--out-directory", str(out), "--ingestion-url", server.url]
            args += ["--dest", "ei", "--copies", "1"]
            env = {"EI_PROJECT_API_KEY": "k-123", "EDGE_AUGMENT_RETRY_BACKOFF": "0.005"}
            result = run_block(args, workdir=tmp_path, env=ei_env(env))
            assert result.returncode == 0, (value, result.output)
