"""--orientation upright|any: what each does to the random presets, and the block end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augment.render.presets import PRESETS, get_preset
from augment.render.recipe import parse_recipe, sample_chain
from tests.support.blockrun import run_block

RANDOM = [name for name, preset in PRESETS.items() if "pipeline" in preset]


def _pose(chain: list[tuple[str, dict]]) -> tuple[bool, bool, float]:
    flips = {op for op, _ in chain if op in ("hflip", "vflip")}
    turns = [p["degrees"] for op, p in chain if op == "rotate" and float(p["degrees"]).is_integer()]
    return "hflip" in flips, "vflip" in flips, turns[0] if turns else 0.0


@pytest.mark.parametrize("name", RANDOM)
def test_upright_is_the_preset_as_written(name: str) -> None:
    preset = {k: v for k, v in PRESETS[name].items() if k != "description"}
    assert get_preset(name, "upright") == parse_recipe(preset)
    assert get_preset(name) == get_preset(name, "upright")


@pytest.mark.parametrize("name", RANDOM)
def test_any_covers_every_dihedral_pose_and_the_full_circle(name: str) -> None:
    recipe = get_preset(name, "any")
    (_, _, nodes) = recipe.outputs(1)[0]
    poses, free_angles = set(), []
    for i in range(800):
        chain = sample_chain(nodes, np.random.default_rng(i), (96, 96))
        poses.add(_pose(chain))
        rotations = [p["degrees"] for op, p in chain if op == "rotate"]
        assert len(rotations) in (1, 2)  # the quarter turn always, a free rotation sometimes
        assert rotations[0] in (0, 90, 180, 270)
        free_angles += rotations[1:]
    assert poses == {(h, v, t) for h in (False, True) for v in (False, True) for t in (0, 90, 180, 270)}
    assert min(free_angles) < -40 and max(free_angles) > 40  # with the quarter turns: any angle


@pytest.mark.parametrize("name", RANDOM)
def test_upright_never_turns_far(name: str) -> None:
    (_, _, nodes) = get_preset(name, "upright").outputs(1)[0]
    for i in range(300):
        chain = sample_chain(nodes, np.random.default_rng(i), (96, 96))
        assert all(abs(p["degrees"]) <= 30 for op, p in chain if op == "rotate")


def test_any_round_trips_through_json() -> None:
    recipe = get_preset("medium", "any")
    assert parse_recipe(json.loads(recipe.to_json())) == recipe


def _arrow(path: Path) -> None:
    """An image whose every dihedral pose differs: a bright bar along the top, a dot near the left end."""
    a = np.full((32, 32, 3), 40, np.uint8)
    a[2:6, 4:28] = 220
    a[12:16, 4:8] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


def test_block_with_orientation_any_turns_copies(tmp_path: Path) -> None:
    _arrow(tmp_path / "in" / "arrow" / "a.png")
    out = tmp_path / "out"
    args = ["--in-directory", str(tmp_path / "in"), "--out-directory", str(out), "--since", "off", "--copies", "40"]
    done = run_block([*args, "--orientation", "any", "--recipe", "", "--preset", "light"], workdir=tmp_path)
    assert done.returncode == 0, done.output
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()[1:]]
    turns = {step["degrees"] for line in lines for step in line.get("ops", []) if step["op"] == "rotate"}
    assert {90, 180, 270} <= turns
    # The bar ends up on every side of the image across the copies (pixels, not just parameters).
    sides = set()
    for image in (out / "arrow").glob("*.png"):
        a = np.asarray(Image.open(image).convert("L"), np.float64)
        edges = {"top": a[:8].mean(), "bottom": a[-8:].mean(), "left": a[:, :8].mean(), "right": a[:, -8:].mean()}
        sides.add(max(edges, key=edges.get))
    assert sides == {"top", "bottom", "left", "right"}


@pytest.mark.parametrize(
    ("extra", "note"),
    [
        (["--preset", "workshop"], "--orientation any ignored: preset 'workshop'"),
        (["--recipe", '{"pipeline": [{"op": "hflip"}]}'], "--orientation any ignored: a --recipe"),
    ],
)
def test_orientation_ignored_where_the_recipe_is_fixed(tmp_path: Path, extra: list[str], note: str) -> None:
    _arrow(tmp_path / "in" / "arrow" / "a.png")
    args = ["--in-directory", str(tmp_path / "in"), "--out-directory", str(tmp_path / "out"), "--since", "off"]
    done = run_block([*args, "--orientation", "any", *extra], workdir=tmp_path)
    assert done.returncode == 0, done.output
    assert note in done.output


def test_unknown_orientation_is_a_usage_error(tmp_path: Path) -> None:
    _arrow(tmp_path / "in" / "arrow" / "a.png")
    args = ["--in-directory", str(tmp_path / "in"), "--out-directory", str(tmp_path / "out")]
    done = run_block([*args, "--orientation", "sideways"], workdir=tmp_path)
    assert done.returncode == 2
    assert "--orientation: 'sideways' is not one of upright, any" in done.output
    assert "Traceback" not in done.output
