"""Upload into an Edge Impulse project (--dest ei) against a loopback ingestion service, and the hold-out.

The block runs as a subprocess (tests.support.blockrun.run_block) with EI_PROJECT_API_KEY and --ingestion-url
http://127.0.0.1:PORT (tests/support/ingestion_server.py implements the documented contract, faults included).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from augment.config.project import resolve
from augment.plan.holdout import TESTING, TRAINING
from augment.sinks.ingestion_api import DUPLICATE, encode_label, ingestion_url
from tests.support.blockrun import ROOT, ei_env, run_block
from tests.support.ingestion_server import IngestionServer
from tests.support.latency_proxy import LatencyProxy
from tests.support.plans import holdout as split

KEY = "test-project-key-0123"  # a dummy; real keys look nothing like it
ARGS = ["--copies", "2", "--seed", "7", "--workers", "2"]
FAST = {"EDGE_AUGMENT_RETRY_BACKOFF": "0.005"}  # retries back off in milliseconds here (default 0.5 s)


def upload(server: IngestionServer, src: Path, args: list[str], workdir: Path, out: Path, key: str = KEY, **env: str):
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [*ARGS, *args, "--in-directory", str(src), "--out-directory", str(out), "--dest", "ei"]
    cmd += ["--ingestion-url", server.url]
    return run_block(cmd, workdir=workdir, env=ei_env({"EI_PROJECT_API_KEY": key, **FAST, **env}), timeout=120)


def manifest_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()[1:]]


def assert_key_nowhere(result, out: Path, key: str = KEY) -> None:
    assert key not in result.output
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl"):
            assert key not in path.read_text(), path


def test_holdout_upload_lands_every_file_once_then_reruns_send_nothing_new(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "stage"
    with IngestionServer(KEY) as server:
        first = upload(server, sample_dir, [], tmp_path / "w1", out)
        assert first.returncode == 0, first.output
        lines = manifest_lines(out)
        report = json.loads((out / "report.json").read_text())

        # Every output landed once, in its category, with its label; one file a request by default (as EI's
        # own uploader), so each sample's metadata also names its source and variant.
        assert len(server.stored) == len(lines) == report["upload"]["landed"]
        assert report["upload"] | {"seconds": 0} == report["upload"] | {
            "landed": len(lines), "duplicates": 0, "failed": 0, "previously_uploaded": 0, "not_sent": 0, "seconds": 0
        }  # fmt: skip
        assert len(server.seen) == len(lines) and all(s.files == 1 for s in server.seen)
        assert all(s.metadata["source"] and s.metadata["variant"] for s in server.stored)
        stored = {(s.category, s.name) for s in server.stored}
        assert stored == {(line["category"], Path(line["output"]).name) for line in lines}
        assert all(s.label == s.name.split(".")[0] for s in server.stored)
        assert all(s.metadata["generated_by"] == "edge-augment" and s.metadata["seed"] == "7" for s in server.stored)

        # The hold-out: testing holds originals only, and no original has outputs in both categories.
        by_source: dict[str, set[str]] = {}
        for line in lines:
            by_source.setdefault(line["source"], set()).add(line["category"])
            if line["category"] == TESTING:
                assert line["variant"] == "orig" and line["output"].startswith("testing/")
        assert all(len(c) == 1 for c in by_source.values())
        tested = {k for k, c in by_source.items() if c == {TESTING}}
        labels = {line["source"]: line["label"] for line in lines}
        expected = {k for k, c in split(labels.items(), 0.2).items() if c == TESTING}
        assert tested == expected and 0 < len(tested) < len(by_source)
        assert report["holdout"]["test_fraction"] == 0.2
        assert sum(c[TESTING] for c in report["holdout"]["originals"].values()) == len(tested)
        assert "hold-out: " in first.stdout
        assert_key_nowhere(first, out)

        # Rerun into the same folder: nothing rendered, nothing sent.
        requests = len(server.seen)
        again = upload(server, sample_dir, [], tmp_path / "w2", out)
        assert again.returncode == 0, again.output
        assert len(server.seen) == requests
        assert json.loads((out / "report.json").read_text())["upload"]["previously_uploaded"] == len(lines)

        # A fresh container (no staging folder): everything is re-sent and refused as a duplicate, not failed.
        fresh = upload(server, sample_dir, [], tmp_path / "w3", tmp_path / "fresh")
        assert fresh.returncode == 0, fresh.output
        redo = json.loads((tmp_path / "fresh" / "report.json").read_text())["upload"]
        assert (redo["landed"], redo["duplicates"], redo["failed"]) == (0, len(lines), 0)
        assert len(server.stored) == len(lines) and server.rejected_duplicates == len(lines)
        assert f"0 landed, {len(lines)} duplicates" in fresh.stdout
        assert server.keys_seen == {KEY}


def test_storms_drops_and_slow_answers_still_land_every_file_exactly_once(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "stage"
    with IngestionServer(KEY, latency=0.01) as server:
        server.storm(429, 3, retry_after="0")
        server.storm(503, 2)
        server.drop(2)  # connection closed before storing
        server.slow(2, 0.5)
        server.drop(1, after_store=True)  # stored, answer lost: the resend is refused as a duplicate
        server.storm(502, 1)
        args = ["--batch-size", "4", "--upload-concurrency", "3"]
        result = upload(server, sample_dir, args, tmp_path / "w", out)
        assert result.returncode == 0, result.output
        lines = manifest_lines(out)
        names = Counter((s.category, s.name, s.sha256) for s in server.stored)
        assert len(names) == len(lines) and set(names.values()) == {1}  # each output exactly once
        assert {n for _, n, _ in names} == {Path(line["output"]).name for line in lines}
        faults = Counter(s.fault for s in server.seen if s.fault)
        assert faults == {"429": 3, "503": 2, "drop": 3, "502": 1}
        up = json.loads((out / "report.json").read_text())["upload"]
        assert up["failed"] == 0 and up["landed"] + up["duplicates"] == len(lines)
        assert up["duplicates"] == server.rejected_duplicates > 0  # the batch whose answer was lost
        assert up["retries"] >= 9
        assert_key_nowhere(result, out)


def test_retry_after_is_honoured(sample_dir: Path, tmp_path: Path):
    with IngestionServer(KEY) as server:
        server.storm(429, 1, retry_after="1")
        result = upload(
            server,
            sample_dir,
            [
                "--upload-category",
                "training",
                "--upload-label",
                "shape",
                "--upload-concurrency",
                "1",
                "--batch-size",
                "50",
            ],
            tmp_path,
            tmp_path / "o",
        )
        assert result.returncode == 0, result.output
        assert [s.status for s in server.seen] == [429, 200, 200]  # 120 files, 50 a request, one at a time
        assert server.seen[1].at - server.seen[0].at >= 0.95


def test_wrong_key_stops_the_run_clearly_without_showing_either_key(sample_dir: Path, tmp_path: Path):
    wrong = "wrong-key-9876543210"
    with IngestionServer(KEY) as server:
        result = upload(server, sample_dir, [], tmp_path / "w", tmp_path / "o", key=wrong)
    assert result.returncode == 1, result.output
    assert "refused the project API key (HTTP 401)" in result.stdout
    assert "Traceback" not in result.output and not server.stored
    assert_key_nowhere(result, tmp_path / "o", wrong)


def test_missing_key_is_a_parameter_error(sample_dir: Path, tmp_path: Path):
    args = ["--in-directory", str(sample_dir), "--dest", "ei", "--ingestion-url", "http://127.0.0.1:9"]
    result = run_block(args, workdir=tmp_path)
    assert result.returncode == 2, result.output
    assert "EI_PROJECT_API_KEY" in result.stdout and "PROJECT_API_KEY secret" in result.stdout


def test_service_down_then_a_rerun_sends_only_what_did_not_land(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "stage"
    with IngestionServer(KEY, down_after=20) as server:
        down = upload(server, sample_dir, ["--batch-size", "5"], tmp_path / "w1", out)
        assert down.returncode == 1, down.output
        assert "answered HTTP 503 after 8 retries" in down.stdout and "Traceback" not in down.output
        landed = len(server.stored)
        assert 20 <= landed < len(manifest_lines(out))
        server.heal()
        rerun = upload(server, sample_dir, ["--batch-size", "5"], tmp_path / "w2", out)
        assert rerun.returncode == 0, rerun.output
        lines = manifest_lines(out)
        assert len(server.stored) == len(lines) and server.rejected_duplicates == 0
        up = json.loads((out / "report.json").read_text())["upload"]
        assert up["previously_uploaded"] == landed and up["landed"] == len(lines) - landed


def test_a_file_the_project_refuses_is_named_and_fails_the_run(sample_dir: Path, tmp_path: Path):
    keys = [f"circle/{p.name}" for p in sorted((sample_dir / "circle").iterdir())]
    stem = next(Path(k).stem for k, c in split(((k, "circle") for k in keys), 0.2).items() if c == TRAINING)
    name = f"training/circle/circle.{stem}.aug01.png"
    with IngestionServer(KEY, reject=f"circle.{stem}.aug01") as server:
        result = upload(server, sample_dir, [], tmp_path / "w", tmp_path / "o")
        assert result.returncode == 1, result.output
        assert f"ERROR upload {name}: Failed to process file: invalid image" in result.stdout
        up = json.loads((tmp_path / "o" / "report.json").read_text())["upload"]
        assert up["failed"] == 1 and up["landed"] == len(server.stored) > 0
        assert up["failures"] == [{"output": name, "error": "Failed to process file: invalid image"}]
        # A rerun sends just that file again (the project still refuses it).
        before = len(server.seen)
        again = upload(server, sample_dir, [], tmp_path / "w2", tmp_path / "o")
        assert again.returncode == 1 and len(server.seen) == before + 1 and server.seen[-1].files == 1
        assert json.loads((tmp_path / "o" / "report.json").read_text())["upload"]["failed"] == 1


def test_labels_are_url_encoded_and_control_characters_refused(tmp_path: Path):
    from augment.demo import write_sample_set

    src = tmp_path / "in"
    write_sample_set(src)
    (src / "circle").rename(src / "résistor 10k%")
    (src / "square").rename(src / "bell\x07")
    with IngestionServer(KEY) as server:
        result = upload(
            server, src, ["--test-fraction", "0", "--upload-category", "training"], tmp_path / "w", tmp_path / "o"
        )
    assert result.returncode == 1, result.output
    assert {s.label for s in server.stored} == {"résistor 10k%", "triangle"}
    assert "has control characters" in result.stdout
    assert all(s.category == TRAINING for s in server.stored)


def test_ei_import_mode_writes_files_and_uploads_nothing(sample_dir: Path, tmp_path: Path):
    """File/directory mode with EI's --upload-category/--upload-label: EI imports --out-directory itself."""
    meta = json.dumps({"subject": "AAA001", "dataItemInfo": {"id": 101, "dataset": "raw"}})
    args = ["--in-directory", str(sample_dir / "circle"), "--out-directory", str(tmp_path / "out"), *ARGS]
    args += ["--upload-category", "split", "--upload-label", "round thing", "--metadata", meta]
    result = run_block(args, workdir=tmp_path)
    assert result.returncode == 0, result.output
    assert "by file hash" in result.stdout and "leakage" in result.stdout
    images = sorted(p.name for p in (tmp_path / "out").rglob("*.png"))
    assert len(images) == 8 * 3 and all(n.startswith("round thing.") for n in images)
    assert not (tmp_path / "out" / "uploads.jsonl").exists()
    assert not (tmp_path / "out" / "ei-metadata.json").exists()  # a .json EI's import could take as a sample
    forced = run_block([*args, "--write-ei-metadata", "1"], workdir=tmp_path)
    assert forced.returncode == 0, forced.output
    meta_file = json.loads((tmp_path / "out" / "ei-metadata.json").read_text())
    assert meta_file["version"] == 1 and meta_file["action"] == "add"
    assert meta_file["metadata"]["augment_outputs"] == "24" and meta_file["metadata"]["augment_seed"] == "7"
    assert all(isinstance(v, str) for v in meta_file["metadata"].values())


def test_no_ei_metadata_without_a_data_item(sample_dir: Path, tmp_path: Path):
    args = ["--in-directory", str(sample_dir), "--out-directory", str(tmp_path / "out"), *ARGS, "--metadata", "{}"]
    assert run_block(args, workdir=tmp_path).returncode == 0
    assert not (tmp_path / "out" / "ei-metadata.json").exists()


def test_local_holdout_writes_training_and_testing_folders(sample_dir: Path, tmp_path: Path):
    args = [
        "--in-directory",
        str(sample_dir),
        "--out-directory",
        str(tmp_path / "out"),
        *ARGS,
        "--test-fraction",
        "0.3",
    ]
    result = run_block(args, workdir=tmp_path)
    assert result.returncode == 0, result.output
    lines = manifest_lines(tmp_path / "out")
    assert {line["output"].split("/")[0] for line in lines} == {TRAINING, TESTING}
    assert all(line["output"].startswith(line["category"] + "/") for line in lines)
    # Another fraction into the same folder would mix two splits: refused like another recipe.
    other = run_block([*args[:-1], "0.5"], workdir=tmp_path)
    assert other.returncode == 1 and "another recipe, seed or format" in other.stdout


def test_url_rules_label_encoding_and_category_resolution():
    assert ingestion_url("edgeimpulse.com") == "https://ingestion.edgeimpulse.com"
    assert ingestion_url(None) == "https://ingestion.edgeimpulse.com"
    assert ingestion_url("acme.test.edgeimpulse.com") == "http://ingestion.acme.test.edgeimpulse.com"
    assert ingestion_url("host.docker.internal") == "http://host.docker.internal:4810"
    assert ingestion_url("edgeimpulse.com", "http://127.0.0.1:4810/") == "http://127.0.0.1:4810"
    for bad in ("ftp://x", "http://", "http://u:p@host", "http://h/?q=1"):
        with pytest.raises(ValueError):
            ingestion_url(None, bad)
    assert encode_label("a b/c+ü!'()*~") == "a%20b%2Fc%2B%C3%BC!'()*~"  # as encodeURIComponent
    for bad in ("a\nb", "a\rb", "x\x00", "\x7f", ""):
        with pytest.raises(ValueError):
            encode_label(bad)
    env = {"EI_PROJECT_API_KEY": KEY}
    fraction, settings, _ = resolve(True, None, None, env)
    assert fraction == 0.2 and settings is not None and settings.category == TRAINING
    assert KEY not in repr(settings)
    assert resolve(True, "training", None, env)[0] == 0.0
    assert "leakage" in resolve(True, "split", None, env)[2][0]
    assert resolve(True, None, None, {"EI_PROJECT_API_KEY": "a", "PROJECT_API_KEY": "b"})[1].api_key == "a"
    # EI passes a hidden test-fraction too: with a fixed category it is ignored, with a note
    fraction, _, notes = resolve(True, "training", "0.3", env)
    assert fraction == 0.0 and "--test-fraction ignored" in notes[0]
    with pytest.raises(ValueError, match="outside"):
        resolve(True, None, "1", env)
    assert resolve(False, None, None, {}) == (0.0, None, [])
    assert resolve(False, "testing", "0.3", {})[0] == 0.0  # EI imports into one category itself
    assert DUPLICATE == "An item with this hash already exists"


STANDALONE = ROOT / "blocks" / "standalone" / "parameters.json"


def test_standalone_variant_runs_with_its_defaults_as_ei_passes_them(sample_dir: Path, tmp_path: Path):
    """The standalone parameters.json: EI passes every parameter (and its cliArguments) and the key as env."""
    from tests.test_parameters_json import ei_arguments

    params = json.loads(STANDALONE.read_text())
    assert params["info"]["operatesOn"] == "standalone" and params["info"]["showInDataSources"] is True
    mount = tmp_path / "mnt"
    (mount / "raw-bucket").mkdir(parents=True)
    sample_dir.rename(mount / "raw-bucket" / "images")
    args = [*ei_arguments(params), *params["info"].get("cliArguments", "").split()]
    args = [a.replace("/tmp/edge-augment", str(tmp_path / "staging")) for a in args]
    args += ["--bucket", "raw-bucket", "--bucket-prefix", "images", "--bucket-mount-root", str(mount)]
    with IngestionServer(KEY) as server:
        args += ["--ingestion-url", server.url]
        result = run_block(args, workdir=tmp_path, env=ei_env({"EI_PROJECT_API_KEY": KEY}))
        assert result.returncode == 0, result.output
        assert "ignoring arguments" not in result.stdout
        assert {s.category for s in server.stored} == {TRAINING, TESTING}


def test_standalone_variant_shares_the_directory_blocks_augmentation_parameters():
    directory = {p["param"]: p for p in json.loads((ROOT / "parameters.json").read_text())["parameters"]}
    standalone = {p["param"]: p for p in json.loads(STANDALONE.read_text())["parameters"]}
    shared = set(directory) & set(standalone) - {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "s3-endpoint"}
    assert {"preset", "recipe", "copies", "seed"} <= shared
    assert all(standalone[k] == directory[k] for k in shared), "regenerate blocks/standalone/parameters.json"


def test_sigterm_during_uploads_then_rerun_lands_the_rest_exactly_once(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "stage"
    with IngestionServer(KEY, latency=0.2) as server:
        args = [*ARGS, "--in-directory", str(sample_dir), "--out-directory", str(out), "--dest", "ei"]
        args += ["--ingestion-url", server.url, "--batch-size", "5", "--upload-concurrency", "1"]
        cmd = [sys.executable, "-u", str(ROOT / "transform.py"), *args]
        env = ei_env({"EI_PROJECT_API_KEY": KEY, **FAST})
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("[24/24]"):  # everything rendered; uploads under way
                proc.send_signal(signal.SIGTERM)
                break
        rest = proc.stdout.read()
        assert proc.wait(timeout=60) == 143, rest
        up = json.loads((out / "report.json").read_text())["upload"]
        total = len(manifest_lines(out))
        assert 0 < up["landed"] == len(server.stored) < total and up["not_sent"] == total - up["landed"]
        assert "not sent (a rerun sends them)" in rest

        rerun = upload(server, sample_dir, ["--batch-size", "5"], tmp_path / "w2", out)
        assert rerun.returncode == 0, rerun.output
        assert len(server.stored) == total and server.rejected_duplicates == 0
        assert len({(s.category, s.name) for s in server.stored}) == total


def test_push_script_builds_the_standalone_variant_in_its_own_folder():
    result = subprocess.run(
        [str(ROOT / "scripts" / "push-block.sh"), "standalone", "--dry-run"], capture_output=True, text=True, check=True
    )
    assert "edge-impulse-blocks push" in result.stdout and '"operatesOn": "standalone"' in result.stdout
    for needed in (
        "./Dockerfile",
        "./parameters.json",
        "./transform.py",
        "./augment/run/runner.py",
        "./requirements.txt",
    ):
        assert needed in result.stdout.splitlines()
    assert "__pycache__" not in result.stdout


def test_detection_outputs_land_with_their_boxes(tmp_path: Path):
    from tests.support.boxes_data import detection_folder

    src = detection_folder(tmp_path / "in", 3)
    out = tmp_path / "stage"
    with IngestionServer(KEY) as server:
        result = upload(server, src, ["--test-fraction", "0"], tmp_path / "w", out)
        assert result.returncode == 0, result.output
        stored = {s.name: s for s in server.stored}
    lines = {Path(line["output"]).name: line for line in manifest_lines(out)}
    assert set(stored) == set(lines) and len(stored) == 3 * 3  # 2 copies + the original per image
    for name, sample in stored.items():
        assert sample.boxes == lines[name]["boxes"] and sample.boxes, name


def test_sigterm_while_the_last_uploads_drain_stops_them(sample_dir: Path, tmp_path: Path):
    """Every image is rendered and booked, its uploads still queued (a batch per class, one request at a time,
    a slow service): a SIGTERM then stops within the request under way, exit 143, the rest counted not sent."""
    with IngestionServer(KEY) as server, LatencyProxy(int(server.url.rpartition(":")[2]), 0.5) as slow:
        out = tmp_path / "o"
        cmd = [sys.executable, "-u", str(ROOT / "transform.py"), *ARGS, "--in-directory", str(sample_dir)]
        cmd += ["--out-directory", str(out), "--dest", "ei", "--ingestion-url", slow.url]
        cmd += ["--upload-concurrency", "1", "--batch-size", "100"]
        env = ei_env({"EI_PROJECT_API_KEY": KEY, **FAST})
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("[") and len(set(line[1:].split("]")[0].split("/"))) == 1:  # [24/24]
                start = time.monotonic()  # the last progress line: everything is booked, uploads drain
                proc.send_signal(signal.SIGTERM)
                break
        rest = proc.stdout.read()
        assert proc.wait(timeout=60) == 143, rest
        assert time.monotonic() - start < 5, rest  # the request under way, not the queue
    assert "interrupted (SIGTERM)" in rest and "not sent (a rerun sends them)" in rest, rest
    up = json.loads((out / "report.json").read_text())["upload"]
    assert up["not_sent"] > 0 and up["landed"] + up["not_sent"] + up["duplicates"] == len(manifest_lines(out))
