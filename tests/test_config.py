"""The configuration: one table of flags and one of environment knobs, one rule for choices, one error base
class caught once; parameters.json's defaults are the CLI's except where said below."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from augment.cli import parse
from augment.config import ConfigError, build_config
from augment.config.env import KNOBS
from augment.config.options import OPTIONS
from augment.errors import EXIT_FAILED, EXIT_USAGE, BlockError
from tests.support.blockrun import ROOT, ei_env, run_block

# parameters.json items whose Studio default is not the CLI's, and why (docs/parameters.md shows both).
DOCUMENTED_EXCEPTIONS = {
    "preview": "Studio runs write preview.png by default: it is how a user there sees what the recipe does",
    "shard-index": "Studio shows the single-machine value; the CLI's default reads the array-job variables",
    "shard-count": "as shard-index",
    "upload-category": "EI passes it (the standalone block asks for holdout); absent, nothing is uploaded",
    "test-fraction": "the CLI's depends on --dest and --upload-category (0.2 with a hold-out, else 0)",
}


def _studio_default(item: dict) -> str | None:
    value = item["value"]
    if isinstance(value, bool):
        return "1" if value else "0"
    return None if value == "" else str(value)


@pytest.mark.parametrize("path", [ROOT / "parameters.json", ROOT / "blocks" / "standalone" / "parameters.json"])
def test_parameters_json_defaults_are_the_clis_except_where_documented(path: Path):
    defaults = {option.flag[2:]: option.default for option in OPTIONS}
    differ = {}
    for item in json.loads(path.read_text())["parameters"]:
        if item["type"] == "secret" or item["param"] not in defaults:
            continue
        cli = defaults[item["param"]]
        if _studio_default(item) != (None if cli == "" else cli):
            differ[item["param"]] = (_studio_default(item), cli)
    assert set(differ) <= set(DOCUMENTED_EXCEPTIONS), differ


def _config(*argv: str, env: dict[str, str] | None = None):
    return build_config(parse(["--in-directory", str(ROOT / "docs"), "--out-directory", "/tmp/x", *argv])[0], env or {})


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.choices], ids=lambda o: o.flag)
def test_every_choice_follows_one_case_rule(option):
    """Trimmed and lower-cased, whatever the flag (once --output-layout Flat was refused, --png-strategy RLE
    taken); empty is the default; anything else is a one-line ConfigError naming the flag."""
    extra = ["--recipe", '{"pipeline": []}'] if option.flag == "--preset" else []
    for value in option.choices:
        _config(option.flag, f" {value.upper()} ", *(extra if value == "custom" else []))
    _config(option.flag, "")
    with pytest.raises(ConfigError, match=f"^{option.flag}: 'nope' is not one of"):
        _config(option.flag, "nope")


def test_choices_are_read_as_written_in_lower_case():
    config = _config("--output-layout", "Flat", "--png-strategy", "RLE", "--image-format", "PNG")
    assert (config.plan.layout, config.render.encode.png_strategy, config.render.encode.image_format) == (
        "flat",
        "rle",
        "png",
    )


@pytest.mark.parametrize("knob", KNOBS, ids=lambda k: k.name)
@pytest.mark.parametrize("raw", ["abc", "-5", "1e400", "nan"])
def test_every_env_knob_typo_is_one_line_naming_the_variable(knob, raw):
    with pytest.raises(ConfigError, match=f"^{knob.name}: ") as error:
        _config(env={knob.name: raw})
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"])
def test_an_s3_endpoint_variable_is_checked_with_the_flags(variable):
    """Checked before any work, as --s3-endpoint is (it was an exit-1 error from the S3 client, mid-run)."""
    argv = ["--source", "s3://bucket/p/", "--out-directory", "/tmp/x"]
    with pytest.raises(ConfigError, match=f"^{variable}: expected http"):
        build_config(parse(argv)[0], {variable: "notaurl"})
    with pytest.raises(ConfigError, match=f"^{variable}: credentials inside the URL") as error:
        build_config(parse(argv)[0], {variable: "http://user:hunter22@127.0.0.1:1"})
    assert "hunter22" not in str(error.value)
    assert build_config(parse([*argv, "--s3-endpoint", "http://127.0.0.1:1"])[0], {variable: "notaurl"})


def test_a_misspelt_knob_name_is_named_in_a_note():
    notes = _config(env={"EDGE_AUGMENT_HUGE_PIXEL": "100", "EDGE_AUGMENT_IO_THREADS": "8"}).run.notes
    assert [n for n in notes if "EDGE_AUGMENT" in n] == [
        "EDGE_AUGMENT_HUGE_PIXEL is not a setting of this block: ignored (known: EDGE_AUGMENT_HUGE_PIXELS, "
        "EDGE_AUGMENT_IO_THREADS, EDGE_AUGMENT_S3_TIMEOUT, EDGE_AUGMENT_LOCK_WAIT, EDGE_AUGMENT_RETRY_BACKOFF)"
    ]


def test_env_knobs_reach_the_parts_that_use_them():
    env = {"EDGE_AUGMENT_HUGE_PIXELS": "100", "EDGE_AUGMENT_IO_THREADS": " 3 ", "EDGE_AUGMENT_S3_TIMEOUT": "",
           "AWS_MAX_ATTEMPTS": "2", "EDGE_AUGMENT_LOCK_WAIT": "0"}  # fmt: skip
    config = _config(env=env)
    assert (config.render.huge_pixels, config.run.io_threads, config.sink.lock_wait) == (100, 3, 0.0)
    assert (config.storage.s3_timeout, config.storage.s3_max_attempts) == (300.0, 2)


def test_an_env_typo_is_an_exit_2_line_not_a_traceback(sample_dir, tmp_path):
    """EDGE_AUGMENT_HUGE_PIXELS used to be read in the run's lane threads: a typo was a traceback there."""
    args = ["--in-directory", str(sample_dir), "--out-directory", str(tmp_path / "out"), "--workers", "2"]
    result = run_block(args, workdir=tmp_path, env=ei_env({"EDGE_AUGMENT_HUGE_PIXELS": "16M"}))
    assert result.returncode == EXIT_USAGE, result.output
    assert "ERROR: EDGE_AUGMENT_HUGE_PIXELS: expected a whole number, got '16M'" in result.stdout
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_every_user_facing_error_is_a_block_error_with_its_exit_code():
    from augment.books.manifest import ManifestMismatchError
    from augment.plan.index import DuplicateSample
    from augment.plan.labels import LabelsError
    from augment.plan.tasks import PlanError
    from augment.render.ops.base import RecipeError
    from augment.run.runner import Stop
    from augment.sinks import SinkError
    from augment.sinks.lock import FolderBusyError
    from augment.sources import SourceError

    usage = (ConfigError, RecipeError)
    failed = (SourceError, SinkError, FolderBusyError, PlanError, ManifestMismatchError, LabelsError, DuplicateSample)
    assert all(issubclass(e, BlockError) and e.exit_code == EXIT_USAGE for e in usage)
    assert all(issubclass(e, BlockError) and e.exit_code == EXIT_FAILED for e in failed)
    assert Stop("x", EXIT_USAGE).exit_code == EXIT_USAGE and Stop("x").exit_code == EXIT_FAILED


def test_a_sample_listed_twice_is_one_line_naming_it():
    from augment.plan.index import DuplicateSample, RunIndex
    from augment.plan.samples import Sample

    index = RunIndex()
    try:
        with pytest.raises(DuplicateSample, match=r"^the source listed 'a/1\.png' twice"):
            index.add_samples([Sample("a/0.png", "a"), Sample("a/1.png", "a"), Sample("a/1.png", "a")])
        assert index.count() == 0  # nothing half-listed
    finally:
        index.close()
