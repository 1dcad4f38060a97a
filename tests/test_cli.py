"""The block as EI runs it: a subprocess from an empty working dir, EI's env and argument shapes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from augment.render.presets import DEFAULT_PRESET, PRESETS
from tests.conftest import gradient
from tests.support.blockrun import ei_env, run_block

PER_ORIGINAL = 1 + PRESETS[DEFAULT_PRESET]["copies"]  # outputs per image with the defaults (+ the original)


def outputs(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_directory_mode_with_everything_ei_passes(sample_dir, tmp_path):
    out = tmp_path / "out"
    args = [
        "--in-directory", str(sample_dir), "--out-directory", str(out),
        "--hmac-key", "0", "--metadata", '{"site": "lab 3"}',
        "--upload-category", "training", "--some-future-flag", "7",
        "--preset", "medium", "--copies", "2", "--seed", "42", "--include-originals", "1",
        "--fill", "recipe", "--output-layout", "folders", "--image-format", "same",
        "--jpeg-quality", "90", "--png-compression", "6", "--workers", "0", "--max-failures", "0.01",
        "--overwrite", "0",
    ]  # fmt: skip
    result = run_block(args, workdir=tmp_path)
    assert result.returncode == 0, result.output
    assert "--some-future-flag" in result.stdout  # named as ignored
    files = outputs(out)
    assert len([f for f in files if f.endswith(".png")]) == 24 * 3
    # EI imports the folder (--upload-category): the bookkeeping is in a hidden folder its uploader skips
    assert {f.split("/")[0] for f in files if "/" in f} == {"circle", "square", "triangle", ".edge-augment"}
    assert all(Path(f).name.startswith(f.split("/")[0] + ".") for f in files if "/" in f and f[0] != ".")
    report_text = (out / ".edge-augment" / "report.json").read_text()
    report = json.loads(report_text)
    assert report["metadata"] == {"site": "lab 3"} and report["totals"]["written"] == 72
    assert "total" in result.stdout and "images/s" in result.stdout
    assert "ei_test_org_key_not_real" not in result.output + report_text


def test_file_mode_one_container_per_file(sample_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "led.abc123.png").write_bytes((sample_dir / "circle" / "00.png").read_bytes())
    result = run_block(
        ["--in-file", str(data / "led.abc123.png"), "--out-directory", str(data / "out"), "--hmac-key", "0"],
        workdir=tmp_path,
    )
    assert result.returncode == 0, result.output
    assert outputs(data / "out")[:2] == ["led/led.abc123.aug00.png", "led/led.abc123.aug01.png"]


def test_out_directory_inside_in_directory_like_eis_runner(sample_dir, tmp_path):
    result = run_block(
        ["--in-directory", str(sample_dir), "--out-directory", str(sample_dir / "out")], workdir=tmp_path
    )
    assert result.returncode == 0, result.output
    result = run_block(
        ["--in-directory", str(sample_dir), "--out-directory", str(sample_dir / "out")], workdir=tmp_path
    )
    assert result.returncode == 0 and "24 images" in result.stdout  # the outputs were not read as inputs


def test_flat_workshop_layout_and_label_override(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for label in ("capacitor", "diode"):
        for uid in ("00bff939", "1a2b3c4d"):
            gradient("L", (24, 24)).save(flat / f"{label}.{uid}.png")
    out = tmp_path / "out"
    result = run_block(
        ["--in-directory", str(flat), "--out-directory", str(out), "--output-layout", "flat", "--preset", "workshop"],
        workdir=tmp_path,
    )
    assert result.returncode == 0, result.output
    names = [f for f in outputs(out) if f.endswith(".png")]
    assert len(names) == 4 * 15 and "capacitor.00bff939.rot45.png" in names
    relabelled = run_block(
        ["--in-directory", str(flat), "--out-directory", str(tmp_path / "o2"), "--upload-label", "part"],
        workdir=tmp_path,
    )
    assert relabelled.returncode == 0
    assert {f.split("/")[0] for f in outputs(tmp_path / "o2") if "/" in f} == {"part"}


def test_every_input_format_and_mode(tmp_path):
    src = tmp_path / "in" / "thing"
    src.mkdir(parents=True)
    cases = {
        "l.png": ("L", "PNG"), "la.png": ("LA", "PNG"), "rgba.png": ("RGBA", "PNG"), "p.png": ("P", "PNG"),
        "i16.png": ("I;16", "PNG"), "jpg.jpg": ("RGB", "JPEG"), "bmp.bmp": ("RGB", "BMP"),
        "webp.webp": ("RGBA", "WEBP"), "tiff.tiff": ("RGB", "TIFF"), "gif.gif": ("P", "GIF"),
    }  # fmt: skip
    for name, (mode, fmt) in cases.items():
        gradient(mode, (40, 30)).save(src / name, fmt)
    out = tmp_path / "out"
    result = run_block(["--in-directory", str(tmp_path / "in"), "--out-directory", str(out)], workdir=tmp_path)
    assert result.returncode == 0, result.output
    for name, (_, fmt) in cases.items():
        stem, ext = name.rsplit(".", 1)
        produced = Image.open(out / "thing" / f"thing.{stem}.aug02.{ext}")
        assert produced.size == (40, 30) and produced.format == fmt, name
        if fmt != "GIF":  # GIF stores every mode as a palette; Pillow may read a grey one back as L
            assert produced.mode == Image.open(src / name).mode, name
    jpeg = run_block(
        ["--in-directory", str(tmp_path / "in"), "--out-directory", str(tmp_path / "j"), "--image-format", "jpeg"],
        workdir=tmp_path,
    )
    assert jpeg.returncode == 0 and len(list((tmp_path / "j" / "thing").glob("*.jpg"))) == len(cases) * PER_ORIGINAL


def test_bad_inputs_are_named_skipped_and_counted(sample_dir, tmp_path):
    bad = sample_dir / "circle"
    (bad / "zero.png").write_bytes(b"")
    (bad / "text.png").write_text("not really a png")
    png = io.BytesIO()
    gradient("RGB").save(png, "PNG")
    (bad / "truncated.png").write_bytes(png.getvalue()[:150])
    (bad / "notes.txt").write_text("hello")
    (sample_dir / "empty_class").mkdir()
    out = tmp_path / "out"
    strict = run_block(["--in-directory", str(sample_dir), "--out-directory", str(out)], workdir=tmp_path)
    assert strict.returncode == 1, strict.output
    for line in ("circle/zero.png: empty file", "circle/text.png: not an image", "circle/truncated.png: truncated PNG"):
        assert f"ERROR {line}" in strict.stdout
    assert "skipped circle/notes.txt: not an image file" in strict.stdout
    assert "folder 'empty_class' has no images" in strict.stdout
    assert "FAILED: 3 of 27 images" in strict.stdout
    files = outputs(out)
    assert not any(("zero" in f or "text" in f or "truncated" in f) for f in files)
    assert not any(Path(f).name.startswith(".tmp") for f in files)
    assert len([f for f in files if f.endswith(".png")]) == 24 * PER_ORIGINAL  # the good ones all landed
    lenient = run_block(
        ["--in-directory", str(sample_dir), "--out-directory", str(out), "--max-failures", "3"], workdir=tmp_path
    )
    assert lenient.returncode == 0, lenient.output
    assert "3 bad input(s) skipped" in lenient.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "no input: pass --in-directory"),
        (["--in-directory", "/nonexistent/x"], 1, "/nonexistent/x does not exist"),
        (["--in-directory", "IN", "--recipe", "{bad json"], 2, "--recipe: invalid JSON"),
        (["--in-directory", "IN", "--recipe", '{"pipeline": [{"op": "twirl"}]}'], 2, "unknown op 'twirl'"),
        (["--in-directory", "IN", "--preset", "custom"], 2, "--preset custom needs --recipe"),
        (["--in-directory", "IN", "--preset", "wild"], 2, "--preset: 'wild' is not one of"),
        (["--in-directory", "IN", "--out-directory", "IN"], 2, "is the input folder"),
        (["--in-directory", "IN", "--copies", "many"], 2, "--copies: expected a whole number"),
        (["--in-directory", "IN", "--include-originals", "maybe"], 2, "--include-originals: expected 1/0"),
        (["--in-directory", "IN", "--jpeg-quality", "0"], 2, "--jpeg-quality: 0 is outside 1..100"),
        (["--in-directory", "EMPTY"], 1, "no images found"),
    ],
)
def test_invalid_parameters_exit_with_one_clear_line(sample_dir, tmp_path, args, code, message):
    (tmp_path / "empty").mkdir()
    swap = {"IN": str(sample_dir), "EMPTY": str(tmp_path / "empty")}
    args = [swap.get(a, a) for a in args]
    if "--out-directory" not in args:
        args += ["--out-directory", str(tmp_path / "out")]
    result = run_block(args, workdir=tmp_path)
    assert result.returncode == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_help_explains_every_flag(tmp_path):
    result = run_block(["--help"], workdir=tmp_path)
    assert result.returncode == 0
    for flag in ("--preset", "--recipe", "--copies", "--seed", "--workers", "--include-originals", "--max-failures"):
        assert flag in result.stdout


def test_secrets_in_env_never_reach_logs_or_files(sample_dir, tmp_path):
    env = ei_env({"EI_API_KEY": "ei_SENTINEL_ORG", "EI_PROJECT_API_KEY": "ei_SENTINEL_PROJECT"})
    out = tmp_path / "out"
    result = run_block(["--in-directory", str(sample_dir), "--out-directory", str(out)], workdir=tmp_path, env=env)
    assert result.returncode == 0
    text = result.output + (out / "manifest.jsonl").read_text() + (out / "report.json").read_text()
    assert "SENTINEL" not in text


def test_bucket_parameter_reads_through_eis_mount(sample_dir, tmp_path):
    mount_root = tmp_path / "mnt" / "s3fs"
    target = mount_root / "raw-data" / "components" / "v1"
    target.parent.mkdir(parents=True)
    sample_dir.rename(target)
    via_mount = run_block(
        ["--bucket", "raw-data", "--bucket-prefix", "components/v1/", "--bucket-mount-root", str(mount_root),
         "--out-directory", str(tmp_path / "a")],
        workdir=tmp_path,
    )  # fmt: skip
    assert via_mount.returncode == 0, via_mount.output
    assert "through its mount" in via_mount.stdout
    direct = run_block(["--in-directory", str(target), "--out-directory", str(tmp_path / "b")], workdir=tmp_path)
    assert direct.returncode == 0
    a = {p.relative_to(tmp_path / "a"): p.read_bytes() for p in (tmp_path / "a").rglob("*.png")}
    b = {p.relative_to(tmp_path / "b"): p.read_bytes() for p in (tmp_path / "b").rglob("*.png")}
    assert a == b and len(a) == 24 * PER_ORIGINAL


def test_bucket_parameter_without_mount_reads_from_s3_and_rejects_escapes(tmp_path):
    from augment.cli import parse
    from augment.config import ConfigError, build_config

    args, _ = parse(["--bucket", "raw", "--bucket-prefix", "a/b", "--bucket-mount-root", str(tmp_path), "--dest", "ei"])
    given = dict(vars(args))
    assert build_config(args, {"EI_PROJECT_API_KEY": "ei_x"}).source.url == "s3://raw/a/b/"
    assert vars(args) == given  # build_config reads its arguments, never rewrites them
    args, _ = parse(["--bucket", "raw", "--bucket-prefix", "../etc", "--bucket-mount-root", str(tmp_path)])
    with pytest.raises(ConfigError, match="not a bucket name and prefix"):
        build_config(args, {})


def test_one_label_rule_for_upload_label_and_labels_files(tmp_path):
    from augment.cli import parse
    from augment.config import ConfigError, build_config
    from augment.plan.labels import LabelsError, parse_boxes_file

    for label, problem in (("a/b", "has a slash"), ("..", "is not a label"), ("x\x7f", "has control characters")):
        args, _ = parse(["--in-directory", str(tmp_path), "--upload-label", label])
        with pytest.raises(ConfigError, match=problem):
            build_config(args, {})
        boxes = {"version": 1, "type": "bounding-box-labels", "boundingBoxes": {"i.png": [{"label": label, "x": 0,
                 "y": 0, "width": 1, "height": 1}]}}  # fmt: skip
        with pytest.raises(LabelsError, match=problem):
            parse_boxes_file(json.dumps(boxes), "bounding_boxes.labels")


def test_workers_zero_respects_a_cgroup_cpu_quota(tmp_path, monkeypatch):
    import os

    from augment.config import available_cpus

    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(64)))
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # a 1.5-CPU limit, cgroup v2
    assert available_cpus(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(tmp_path) == 64
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")  # cgroup v1, 3 CPUs
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert available_cpus(tmp_path) == 3
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert available_cpus(tmp_path) == 64


def test_unknown_flags_are_named_and_their_values_never_echoed():
    """A value that starts with '-' reaches argparse's unknowns as a token of its own; it must not be echoed
    (it may be a secret), nor may one that looks like a flag right after an unknown flag."""
    from augment.cli import parse, unknown_note

    secrets = ["-s3cr3t-Value", "--looks-like-a-flag", "-5", "plain-value", "-x", "--very" + "-long" * 20]
    argv = ["--in-directory", "IN", "--token", secrets[0], "--opt", secrets[1], "--n", secrets[2]]
    argv += ["--name", secrets[3], secrets[4], "--key=" + secrets[0], "--flag-a", "--flag-b", secrets[5]]
    _, unknown = parse(argv)
    note = unknown_note(unknown)
    assert all(s not in note for s in secrets), note
    assert note.startswith("note: ignoring arguments this block does not use: --token --opt --n --name --key")
    assert "--flag-a" in note and "not shown" in note
    assert unknown_note(["--future", "7", "--other=x"]) == (
        "note: ignoring arguments this block does not use: --future --other (and 1 value not shown)"
    )


def test_an_unknown_flags_dash_value_is_not_in_the_log(sample_dir, tmp_path):
    secret = "-Zq9-not-for-logs"
    args = ["--in-directory", str(sample_dir), "--out-directory", str(tmp_path / "o"), "--copies", "0"]
    result = run_block([*args, "--api-token", secret, "--other", "--also" + secret], workdir=tmp_path)
    assert result.returncode == 0, result.output
    assert "--api-token" in result.stdout and secret not in result.output
