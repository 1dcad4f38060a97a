"""Sharding (the union of N shard runs is the single run, byte for byte), --since, class balancing."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from augment.cli import parse
from augment.config import ConfigError, build_config
from augment.plan.samples import Sample
from augment.plan.selection import Shard, changed_since, parse_since, resolve_shard, shard_of
from augment.render.presets import DEFAULT_PRESET, PRESETS
from augment.run.runner import run
from tests.support import oracles, plans
from tests.test_determinism import images, run_dir

OLD = 1_700_000_000  # 2023-11-14T22:13:20Z: the mtime every input gets before a --since test


def config(in_dir: Path, out_dir: Path, *extra: str, env: dict[str, str] | None = None):
    args, _ = parse(["--in-directory", str(in_dir), "--out-directory", str(out_dir), *extra])
    return build_config(args, env or {})


def manifest_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_union_of_shards_is_the_single_run_byte_for_byte(sample_dir, tmp_path):
    rc, _ = run_dir(sample_dir, tmp_path / "single", "--workers", "2", "--preset", "heavy")
    assert rc == 0
    shared = tmp_path / "shards"  # all shards write into one folder, as on a shared volume or S3 prefix
    apart = []
    for i in range(3):
        assert run_dir(sample_dir, shared, "--shard-index", str(i), "--shard-count", "3", "--preset", "heavy")[0] == 0
        own = tmp_path / f"shard{i}"  # and each into its own folder, as separate jobs' outputs
        assert run_dir(sample_dir, own, "--shard-index", str(i), "--shard-count", "3", "--preset", "heavy")[0] == 0
        apart.append(images(own))
    single = images(tmp_path / "single")
    assert images(shared) == single
    union: dict[str, bytes] = {}
    for part in apart:
        assert part and not set(part) & set(union)  # every shard has work, no output is made twice
        union.update(part)
    assert union == single
    # Each shard keeps its own manifest and report; their output lines together are the single run's.
    names = sorted(p.name for p in shared.iterdir() if p.is_file())
    assert names == [f"manifest.shard-{i}-of-3.jsonl" for i in range(3)] + [
        f"report.shard-{i}-of-3.json" for i in range(3)
    ]
    single_lines = manifest_lines(tmp_path / "single" / "manifest.jsonl")
    shard_lines = [line for i in range(3) for line in manifest_lines(shared / f"manifest.shard-{i}-of-3.jsonl")[1:]]
    assert sorted(shard_lines) == sorted(single_lines[1:])
    header = json.loads(single_lines[0])
    assert all(json.loads(manifest_lines(shared / f"manifest.shard-{i}-of-3.jsonl")[0]) == header for i in range(3))
    totals = [json.loads((shared / f"report.shard-{i}-of-3.json").read_text())["totals"]["originals"] for i in range(3)]
    assert sum(totals) == 24
    # A rerun of one shard skips everything it already made.
    assert run_dir(sample_dir, shared, "--shard-index", "1", "--shard-count", "3", "--preset", "heavy")[0] == 0
    report = json.loads((shared / "report.shard-1-of-3.json").read_text())
    assert report["totals"]["written"] == 0 and report["shard"] == {"index": 1, "count": 3}


def test_shard_assignment_is_a_stable_hash_of_the_key():
    keys = [f"class{i % 7}/{i:05d}.png" for i in range(3000)]
    counts = Counter(shard_of(k, 4) for k in keys)
    assert set(counts) == {0, 1, 2, 3} and min(counts.values()) > 600  # about even
    assert [shard_of(k, 4) for k in reversed(keys)] == [shard_of(k, 4) for k in keys][::-1]
    assert shard_of("circle/00.png", 4) == shard_of("circle/00.png", 4) == 0  # the same on every machine


def test_shard_from_array_job_environment():
    aws = {"AWS_BATCH_JOB_ARRAY_INDEX": "2", "AWS_BATCH_JOB_ARRAY_SIZE": "5"}
    assert resolve_shard(None, None, aws)[0] == Shard(2, 5)
    assert resolve_shard("1", "3", aws)[0] == Shard(1, 3)  # explicit flags win
    assert resolve_shard(None, "4", {"JOB_COMPLETION_INDEX": "3"})[0] == Shard(3, 4)
    assert resolve_shard(None, None, {})[0] == Shard(0, 1)
    with pytest.raises(ValueError, match="JOB_COMPLETION_INDEX"):
        resolve_shard(None, None, {"JOB_COMPLETION_INDEX": "3"})  # Indexed Jobs need --shard-count
    for index, count in (("3", "3"), ("-1", "2"), ("x", "2"), ("0", "0")):
        with pytest.raises(ValueError, match="--shard"):
            resolve_shard(index, count, {})


def test_shard_env_reaches_the_run_and_bad_values_exit_2(sample_dir, tmp_path):
    cfg = config(sample_dir, tmp_path / "o", env={"AWS_BATCH_JOB_ARRAY_INDEX": "1", "AWS_BATCH_JOB_ARRAY_SIZE": "2"})
    assert cfg.plan.shard == Shard(1, 2)
    assert any("AWS_BATCH_JOB_ARRAY_INDEX" in n for n in cfg.run.notes)
    with pytest.raises(ConfigError, match="--shard-index"):
        config(sample_dir, tmp_path / "o", "--shard-index", "2", "--shard-count", "2")


def _age(folder: Path, when: float = OLD) -> None:
    for path in folder.rglob("*.png"):
        os.utime(path, (when, when))


def test_since_processes_only_new_or_modified_sources(sample_dir, tmp_path):
    _age(sample_dir)
    out = tmp_path / "out"
    assert run_dir(sample_dir, out)[0] == 0
    first = images(out)
    first_manifest = manifest_lines(out / "manifest.jsonl")
    since = datetime.now(UTC)  # the last successful run: every input's mtime and ctime is before it
    time.sleep(0.05)
    # Two sources change after the last run; one of them gets new content, the other is only touched.
    changed = sample_dir / "circle" / "01.png"
    shutil.copyfile(sample_dir / "circle" / "02.png", changed)
    os.utime(sample_dir / "square" / "04.png", (OLD, OLD))  # its mtime stays old; ctime tells
    lines: list[str] = []
    rc = run(config(sample_dir, out, "--since", since.isoformat()), lines.append)
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["since"] == {"time": since.isoformat(), "new": 2, "unchanged": 22, "done": 2}
    # circle/01 has new bytes: redone; square/04 was only touched: its outputs are kept.
    per_original = 1 + PRESETS[DEFAULT_PRESET]["copies"]
    assert report["totals"]["written"] == per_original and report["totals"]["existing"] == per_original
    assert any(
        line.startswith(f"since {since.isoformat()}: 2 new or modified (2 done), 22 unchanged") for line in lines
    )
    after = images(out)
    assert after.keys() == first.keys()
    regenerated = {k for k in after if after[k] != first[k]}
    assert regenerated and all(k.startswith("circle/circle.01.") for k in regenerated)  # modified source redone
    assert after == images(_fresh_run(sample_dir, tmp_path / "fresh"))  # same as a full run of today's inputs
    # A rerun with the same --since (e.g. after an interruption: EI's last successful run is unchanged) redoes nothing.
    assert run(config(sample_dir, out, "--since", since.isoformat()), lines.append) == 0
    assert json.loads((out / "report.json").read_text())["totals"]["written"] == 0
    # The manifest still lists every output, in plan order.
    manifest = manifest_lines(out / "manifest.jsonl")
    assert [json.loads(x)["output"] for x in manifest[1:]] == [json.loads(x)["output"] for x in first_manifest[1:]]


def _fresh_run(in_dir: Path, out: Path) -> Path:
    assert run_dir(in_dir, out)[0] == 0
    return out


def test_since_defaults_to_ei_last_successful_run_and_can_be_turned_off(sample_dir, tmp_path):
    env = {"EI_LAST_SUCCESSFUL_RUN": "2024-01-01T00:00:00.000Z"}
    cfg = config(sample_dir, tmp_path / "o", env=env)
    assert cfg.plan.since == parse_since("2024-01-01T00:00:00Z")
    assert any("EI_LAST_SUCCESSFUL_RUN" in n for n in cfg.run.notes)
    assert config(sample_dir, tmp_path / "o", "--since", "off", env=env).plan.since is None
    assert config(sample_dir, tmp_path / "o").plan.since is None
    assert parse_since("2026-11-25") == parse_since("2026-11-25T00:00:00+00:00")
    with pytest.raises(ConfigError, match="--since"):
        config(sample_dir, tmp_path / "o", "--since", "yesterday")
    with pytest.raises(ConfigError, match="EI_LAST_SUCCESSFUL_RUN"):
        config(sample_dir, tmp_path / "o", env={"EI_LAST_SUCCESSFUL_RUN": "garbage"})
    _age(sample_dir)
    env = {"EI_LAST_SUCCESSFUL_RUN": datetime.now(UTC).isoformat()}  # after every input's mtime and ctime
    lines: list[str] = []
    assert run(config(sample_dir, tmp_path / "o", env=env), lines.append) == 0  # nothing recorded yet: all new
    assert json.loads((tmp_path / "o" / "report.json").read_text())["since"]["new"] == 24
    assert run(config(sample_dir, tmp_path / "o", env=env), lines.append) == 0  # nothing new: a no-op, exit 0
    assert json.loads((tmp_path / "o" / "report.json").read_text())["since"]["new"] == 0


def test_since_uses_unknown_mtime_as_new():
    samples = [Sample("a/1.png", "a", 1, OLD), Sample("a/2.png", "a", 1, None), Sample("a/3.png", "a", 1, OLD + 10)]
    since = parse_since("2023-11-14T22:13:25Z")
    assert [changed_since(s, since) for s in samples] == [False, True, True]
    assert all(changed_since(s, None) for s in samples)  # without --since every source counts as changed


def _samples(counts: dict[str, int]) -> list[Sample]:
    return [Sample(f"{label}/{i:03d}.png", label) for label, n in counts.items() for i in range(n)]


def test_balance_copies_reach_the_target_per_class():
    samples = _samples({"big": 40, "mid": 10, "tiny": 3})
    per, table = plans.balance(samples, 4, True, None, 1000)  # match the largest: 40 x 5 = 200
    assert {k: (v.originals, v.before, v.after) for k, v in table.items()} == {
        "big": (40, 200, 200),
        "mid": (10, 50, 200),
        "tiny": (3, 15, 200),
    }
    tiny = sorted(per[f"tiny/{i:03d}.png"] for i in range(3))
    assert tiny == [65, 66, 66]  # 197 copies over 3 originals, one extra for two of them
    per, table = plans.balance(samples, 4, True, 30, 1000)
    assert {k: v.after for k, v in table.items()} == {"big": 40, "mid": 30, "tiny": 30}  # big: originals only
    assert all(per[f"big/{i:03d}.png"] == 0 for i in range(40))
    per, table = plans.balance(samples, 4, False, 30, 1000)  # without originals: exactly the target
    assert {k: v.after for k, v in table.items()} == {"big": 30, "mid": 30, "tiny": 30}
    assert sum(per[f"big/{i:03d}.png"] for i in range(40)) == 30
    # Deterministic and independent of listing order.
    assert plans.balance(list(reversed(samples)), 4, False, 30, 1000)[0] == per
    # A tiny class never gets more than the copy limit.
    assert plans.balance(_samples({"a": 1, "b": 50}), 4, True, 5000, 100)[1]["a"].after == 101


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(1, 30), min_size=1),
    st.integers(0, 6),
    st.booleans(),
    st.one_of(st.none(), st.integers(1, 200)),
)
def test_the_run_index_balances_as_the_plain_rule_does(sizes, copies, include, target):
    samples = _samples(sizes)
    assert plans.balance(samples, copies, include, target, 50) == oracles.balance_copies(
        samples, copies, include, target, 50
    )


def test_balance_end_to_end(sample_dir, tmp_path):
    for path in sorted((sample_dir / "circle").glob("*.png"))[:6]:
        path.unlink()  # circle: 2 originals, square and triangle: 8
    lines: list[str] = []
    assert run(config(sample_dir, tmp_path / "o", "--balance", "--copies", "2"), lines.append) == 0
    per_class = Counter(name.split("/")[0] for name in images(tmp_path / "o"))
    assert per_class == {"circle": 24, "square": 24, "triangle": 24}
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["balance"]["circle"] == {"originals": 2, "before": 6, "after": 24}
    assert any(line.startswith("balance: match the largest class") for line in lines)
    assert run(config(sample_dir, tmp_path / "t", "--balance", "1", "--target-per-class", "6"), lines.append) == 0
    per_class = Counter(name.split("/")[0] for name in images(tmp_path / "t"))
    assert per_class == {"circle": 6, "square": 8, "triangle": 8}  # majority classes: originals only
    with pytest.raises(ConfigError, match="--balance needs a random"):
        config(sample_dir, tmp_path / "w", "--balance", "1", "--preset", "workshop")


def test_shards_sharing_a_folder_leave_complete_box_labels(tmp_path):
    from tests.support.boxes_data import detection_folder

    src = detection_folder(tmp_path / "in", 8)
    assert run_dir(src, tmp_path / "single", "--copies", "1")[0] == 0
    for i in range(2):
        assert run_dir(src, tmp_path / "shared", "--copies", "1", "--shard-index", str(i), "--shard-count", "2")[0] == 0
    single = json.loads((tmp_path / "single" / "blue" / "bounding_boxes.labels").read_text())
    shared = json.loads((tmp_path / "shared" / "blue" / "bounding_boxes.labels").read_text())
    assert shared == single and len(single["boundingBoxes"]) == 16


def test_since_still_adds_copies_to_a_partly_done_source(sample_dir, tmp_path):
    for path in sample_dir.rglob("*.png"):
        os.utime(path, (OLD, OLD))
    out = tmp_path / "out"
    assert run_dir(sample_dir, out, "--copies", "2", "--since", "off")[0] == 0
    rc, _ = run_dir(sample_dir, out, "--copies", "3", "--since", "2024-01-01T00:00:00Z")  # nothing modified since
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["totals"]["written"] == 24 and len(images(out)) == 24 * 4


def test_balance_counts_only_the_training_side_with_a_hold_out(tmp_path):
    from PIL import Image

    for label, n in (("a", 60), ("b", 10)):
        (tmp_path / "in" / label).mkdir(parents=True)
        for i in range(n):
            Image.new("L", (8, 8), i).save(tmp_path / "in" / label / f"{i}.png")
    out = tmp_path / "out"
    rc, _ = run_dir(tmp_path / "in", out, "--balance", "1", "--copies", "2", "--test-fraction", "0.2", "--since", "off")
    assert rc == 0
    training = Counter(p.parent.name for p in (out / "training").rglob("*.png"))
    report = json.loads((out / "report.json").read_text())
    assert training == {label: row["after"] for label, row in report["balance"].items()}
    assert abs(training["a"] - training["b"]) <= 2


def test_kubernetes_index_needs_a_count():
    with pytest.raises(ValueError, match="--shard-count is required with JOB_COMPLETION_INDEX"):
        resolve_shard(None, None, {"JOB_COMPLETION_INDEX": "0"})
    assert resolve_shard(None, "4", {"JOB_COMPLETION_INDEX": "3"})[0] == Shard(3, 4)
