"""How the block fits Edge Impulse as EI's own sources show it (issue 16): optional secrets and which project
key wins, what an EI import of --out-directory picks up, and the image formats EI ingests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.blockrun import ROOT, ei_env, run_block
from tests.support.ingestion_server import IngestionServer
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


# What EI's uploader picks up from a folder (edge-impulse-cli): cli-common/fs-helpers.ts readAllFiles skips every
# file and folder whose name starts with "." or contains "readme"; cli-common/make-image.ts uploads these
# extensions (.json among them: a report.json would become a sample); cli/uploader.ts reads bounding_boxes.labels
# for the boxes instead of uploading it.
EI_EXTENSIONS = {".wav", ".cbor", ".json", ".jpg", ".jpeg", ".png", ".csv", ".txt", ".mp4", ".avi", ".parquet"}


def picked_up_by_eis_uploader(folder: Path) -> set[str]:
    found = set()
    for path in folder.rglob("*"):
        parts = path.relative_to(folder).parts
        if any(p.startswith(".") or "readme" in p.lower() for p in parts) or not path.is_file():
            continue
        if path.suffix.lower() in EI_EXTENSIONS and path.name != "bounding_boxes.labels":
            found.add("/".join(parts))
    return found


def test_an_ei_import_picks_up_only_the_images_and_a_rerun_still_resumes(tmp_path: Path):
    from tests.support.boxes_data import detection_folder

    src = detection_folder(tmp_path / "in", 3)
    out = tmp_path / "out"
    meta = json.dumps({"subject": "AAA001", "dataItemInfo": {"id": 101, "dataset": "raw"}})  # a clinical item
    args = [*ARGS, "--in-directory", str(src), "--out-directory", str(out), "--preview", "1", "--metadata", meta]
    args += ["--upload-category", "training"]
    result = run_block(args, workdir=tmp_path)
    assert result.returncode == 0, result.output
    books = out / ".edge-augment"
    lines = [json.loads(line) for line in (books / "manifest.jsonl").read_text().splitlines()[1:]]
    assert picked_up_by_eis_uploader(out) == {line["output"] for line in lines}
    assert (books / "report.json").is_file() and (books / "preview.png").is_file()
    assert not (out / "report.json").exists() and not (out / "manifest.jsonl").exists()
    assert all((out / line["output"]).parent.joinpath("bounding_boxes.labels").is_file() for line in lines)

    before = {p: p.read_bytes() for p in out.rglob("*.png") if books not in p.parents}
    again = run_block(args, workdir=tmp_path)
    assert again.returncode == 0, again.output
    totals = json.loads((books / "report.json").read_text())["totals"]
    assert totals["written"] == 0 and totals["existing"] == len(lines) == len(before)
    assert {p: p.read_bytes() for p in out.rglob("*.png") if books not in p.parents} == before


def test_without_an_ei_import_the_bookkeeping_stays_beside_the_outputs(sample_dir: Path, tmp_path: Path):
    out = tmp_path / "out"
    args = [*ARGS, "--in-directory", str(sample_dir / "circle"), "--out-directory", str(out), "--preview", "1"]
    assert run_block(args, workdir=tmp_path).returncode == 0
    assert {p.name for p in out.iterdir() if p.is_file()} == {"manifest.jsonl", "report.json", "preview.png"}
    assert not (out / ".edge-augment").exists()


def mixed_formats(folder: Path) -> Path:
    """One class folder with an image in every input format the block reads."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(3)
    (folder / "part").mkdir(parents=True)
    for i, ext in enumerate(("png", "jpg", "jpeg", "webp", "bmp", "tif", "gif")):
        pixels = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "part" / f"p{i}.{ext}")
    return folder


EXPECTED = {"p0": ".png", "p1": ".jpg", "p2": ".jpeg", "p3": ".png", "p4": ".png", "p5": ".png", "p6": ".png"}


def suffixes(names) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name in names:
        found.setdefault(Path(name).name.split(".")[1], set()).add(Path(name).suffix)
    return found


def test_outputs_into_a_project_are_in_formats_ei_ingests(tmp_path: Path):
    src = mixed_formats(tmp_path / "in")
    base = [*ARGS, "--in-directory", str(src), "--test-fraction", "0"]
    plain = run_block([*base, "--out-directory", str(tmp_path / "plain")], workdir=tmp_path)
    assert plain.returncode == 0, plain.output
    assert suffixes(p.name for p in (tmp_path / "plain").rglob("p*.*"))["p3"] == {".webp"}  # unchanged locally

    imported = run_block(
        [*base, "--out-directory", str(tmp_path / "imp"), "--upload-category", "training"], workdir=tmp_path
    )
    assert imported.returncode == 0, imported.output
    assert suffixes(picked_up_by_eis_uploader(tmp_path / "imp")) == {k: {v} for k, v in EXPECTED.items()}

    with IngestionServer(KEY) as server:
        result = upload(server, src, ["--test-fraction", "0"], tmp_path / "w", tmp_path / "stage")
        assert result.returncode == 0, result.output
        assert suffixes(s.name for s in server.stored) == {k: {v} for k, v in EXPECTED.items()}
        asked = upload(server, src, ["--image-format", "jpeg"], tmp_path / "w2", tmp_path / "stage2")
        assert asked.returncode == 0, asked.output
        assert {Path(s.name).suffix for s in server.stored[len(EXPECTED) * 3 :]} == {".jpg"}

    # PNG and JPEG inputs give the same bytes as before, whether or not the outputs go into a project.
    for name in ("p0", "p1", "p2"):
        for path in (tmp_path / "plain").rglob(f"part.{name}.*"):
            assert (tmp_path / "imp" / path.relative_to(tmp_path / "plain")).read_bytes() == path.read_bytes()
