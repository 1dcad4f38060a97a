"""Recipes as data: presets, validation errors, JSON round trips, compound chains."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from augment.render.ops import REGISTRY
from augment.render.ops.base import RecipeError
from augment.render.presets import DEFAULT_PRESET, PRESETS, get_preset
from augment.render.recipe import load_recipe, parse_recipe, sample_chain


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(name):
    recipe = get_preset(name)
    assert parse_recipe(json.loads(recipe.to_json())) == recipe
    assert load_recipe(recipe.to_json()) == recipe


def test_workshop_preset_is_the_notebook_without_duplicate_flips():
    recipe = get_preset("workshop")
    outputs = recipe.outputs(copies=99)  # --copies does not apply to a fixed list
    assert len(outputs) == 14
    ops = [[step.op for step in pipeline] for _, _, pipeline in outputs]
    assert ops.count(["hflip"]) == 1 and ops.count(["vflip"]) == 1 and ops.count(["hflip", "vflip"]) == 1
    angles = [p[0].settings["angles"] for _, _, p in outputs if p[0].op == "rotate"]
    assert angles == [[45.0], [90.0], [135.0]]
    assert all(p[0].settings["fill"] == "edge" for _, _, p in outputs if p[0].op in ("rotate", "translate"))
    zooms = [p[0].settings["scale"] for _, _, p in outputs if p[0].op == "zoom"]
    assert zooms == [[1.3, 1.3], [1.3, 1.3]]
    shifts = [p[0].settings for _, _, p in outputs if p[0].op == "translate"]
    assert len(shifts) == 3 and all(s["x"] == [-0.25, 0.25] and s["y"] == [-0.25, 0.25] for s in shifts)
    noises = [p[0].op for _, _, p in outputs if p[0].op.endswith(("noise", "pepper"))]
    assert noises == ["gaussian_noise", "poisson_noise", "salt_pepper"]


def test_random_preset_names_its_copies_and_honours_copies():
    recipe = get_preset("medium")
    assert [name for _, name, _ in recipe.outputs()] == [f"aug{i:02d}" for i in range(8)]
    assert len(recipe.outputs(copies=12)) == 12


@pytest.mark.parametrize("name", sorted({DEFAULT_PRESET, "medium"}))
def test_default_preset_covers_capture_conditions(name):
    used = {step["op"] for step in _steps(get_preset(name).to_dict()["pipeline"])}
    assert {"rotate", "zoom", "translate", "brightness", "contrast", "gamma", "blur", "gaussian_noise"} <= used


def _steps(nodes):
    for node in nodes:
        if "op" in node:
            yield node
        else:
            yield from _steps(node["some_of"])


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ({"pipeline": [{"op": "spin"}]}, "unknown op 'spin'"),
        ({"pipeline": [{"op": "rotate", "degrees": [5, 1]}]}, r"recipe.pipeline\[0\].rotate.degrees: low 5"),
        ({"pipeline": [{"op": "rotate", "p": 1.5}]}, "probability between 0 and 1"),
        ({"pipeline": [{"some_of": [{"op": "hflip"}], "k": 2}]}, "k_min <= k_max <= 1"),
        ({"pipeline": [], "variants": []}, "exactly one of"),
        ({"variants": [{"name": "a b", "pipeline": []}]}, "letters, digits"),
        ({"variants": [{"name": "x", "pipeline": []}, {"name": "x", "pipeline": []}]}, "used twice"),
        ({"pipeline": [], "copies": -1}, "whole number"),
        ({"pipeline": [], "colour": 1}, "unknown key"),
        ({"pipeline": [{"noop": 1}]}, "expected an 'op'"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_invalid_recipes_fail_with_a_located_message(recipe, message):
    with pytest.raises(RecipeError, match=message):
        parse_recipe(recipe)


def test_recipe_from_text_file_and_bad_json(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"name": "mine", "pipeline": [{"op": "hflip"}], "copies": 2}))
    assert load_recipe(str(path)).name == "mine"
    with pytest.raises(RecipeError, match="invalid JSON at line 1"):
        load_recipe('{"pipeline": [}')
    with pytest.raises(RecipeError, match="neither JSON text nor an existing file"):
        load_recipe(str(tmp_path / "missing.json"))


def test_some_of_picks_k_in_listed_order():
    recipe = parse_recipe(
        {"pipeline": [{"some_of": [{"op": "hflip"}, {"op": "vflip"}, {"op": "blur", "sigma": 1}], "k": [2, 2]}]}
    )
    order = {"hflip": 0, "vflip": 1, "blur": 2}
    for seed in range(30):
        chain = sample_chain(recipe.variants[0].pipeline, np.random.default_rng(seed), (10, 10))
        names = [name for name, _ in chain]
        assert len(names) == 2 and names == sorted(names, key=order.get)


def test_probability_zero_never_applies_and_one_always_does():
    recipe = parse_recipe({"pipeline": [{"op": "hflip", "p": 0}, {"op": "vflip", "p": 1}]})
    for seed in range(20):
        chain = sample_chain(recipe.variants[0].pipeline, np.random.default_rng(seed), (10, 10))
        assert [name for name, _ in chain] == ["vflip"]


def test_with_fill_overrides_every_geometric_op():
    recipe = get_preset("medium").with_fill("constant")
    fills = {s.get("fill") for s in _steps(recipe.to_dict()["pipeline"]) if s["op"] in ("rotate", "shear", "translate")}
    assert fills == {"constant"}


_ranged_ops = sorted(name for name, op in REGISTRY.items() if any(hasattr(p, "bounds") for p in op.schema.values()))


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(_ranged_ops),
    lo=st.floats(-5, 5, allow_nan=False),
    width=st.floats(0, 5, allow_nan=False),
    p=st.floats(0, 1),
)
def test_any_valid_recipe_round_trips_and_any_invalid_one_raises_recipe_error(name, lo, width, p):
    op = REGISTRY[name]
    key, param = next((k, v) for k, v in op.schema.items() if hasattr(v, "bounds") and hasattr(v, "json_default"))
    value = [lo, lo + width] if isinstance(param.json_default(), list) else lo
    raw = {"name": "h", "copies": 2, "pipeline": [{"op": name, "p": p, key: value}]}
    try:
        recipe = parse_recipe(raw)
    except RecipeError as e:
        assert name in str(e) or key in str(e)
        return
    assert parse_recipe(json.loads(recipe.to_json())) == recipe
