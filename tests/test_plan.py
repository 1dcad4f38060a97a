"""Labels, keys and output names (what EI infers labels from), and the plan's collision check."""

from __future__ import annotations

import pytest

from augment.plan.samples import Sample, label_for_key, label_from_name, output_name, stable_hash
from augment.plan.tasks import PlanError, PlanSettings, make_plan
from augment.render.codec import EncodeOptions
from augment.render.presets import get_preset


def test_labels_from_folders_prefixes_and_root():
    assert label_for_key("capacitor/0.png", "data") == "capacitor"
    assert label_for_key("train/led/x.png", "data") == "led"
    assert label_for_key("capacitor.00bff939.png", "data") == "capacitor"
    assert label_for_key("0.png", "resistor") == "resistor"  # EI handed one class folder to the run
    assert label_from_name("img.png") is None and label_from_name(".png") is None


def test_names_keep_the_label_prefix_and_relative_folders():
    s = Sample("capacitor/0.png", "capacitor")
    assert output_name(s, "aug03", ".png", "folders") == "capacitor/capacitor.0.aug03.png"
    assert output_name(s, "aug03", ".png", "flat") == "capacitor.0.aug03.png"
    flat = Sample("capacitor.00bff939.png", "capacitor")
    assert output_name(flat, "rot45", ".png", "folders") == "capacitor/capacitor.00bff939.rot45.png"
    assert output_name(flat, "rot45", ".png", "flat") == "capacitor.00bff939.rot45.png"
    nested = Sample("train/led/a.jpg", "led")
    assert output_name(nested, "orig", ".jpg", "folders") == "train/led/led.a.orig.jpg"
    assert output_name(nested, "orig", ".jpg", "flat") == "led.train_a.orig.jpg"


def test_stable_hash_is_fixed_across_runs():
    assert stable_hash("capacitor/0.png") == stable_hash("capacitor/0.png")
    assert stable_hash("a") == 0xCA978112CA1BBDCA  # first 8 bytes of sha256("a"), big-endian


def _settings(layout="folders", include=True):
    return PlanSettings(get_preset("light"), 2, include, layout, EncodeOptions())


def test_plan_counts_and_order():
    samples = [Sample("a/1.png", "a"), Sample("b/1.jpg", "b")]
    tasks = make_plan(samples, _settings())
    assert [t.sample.key for t in tasks] == ["a/1.png", "b/1.jpg"]
    assert [o.name for o in tasks[1].outputs] == ["b/b.1.orig.jpg", "b/b.1.aug00.jpg", "b/b.1.aug01.jpg"]
    assert [o.index for o in tasks[0].outputs] == [-1, 0, 1]
    assert len(make_plan(samples, _settings(include=False))[0].outputs) == 2


def test_plan_rejects_two_sources_writing_one_name():
    clash = [Sample("led/a.png", "led"), Sample("led.a.png", "led")]
    with pytest.raises(PlanError, match="would both write"):
        make_plan(clash, _settings("folders"))


def test_collision_messages_name_what_really_collides():
    with pytest.raises(PlanError, match=r"'Cat/cat.x.orig.png' and 'cat/cat.x.orig.png', which differ only in case"):
        make_plan([Sample("Cat/x.png", "cat"), Sample("cat/x.png", "cat")], _settings("folders"))
    with pytest.raises(
        PlanError, match=r"would both write 'b.a_x.orig.png'; rename one or use --output-layout folders"
    ):
        make_plan([Sample("a/b/x.png", "b"), Sample("b/a_x.png", "b")], _settings("flat"))
    with pytest.raises(PlanError, match=r"would both write 'a/a.x.orig.png'; rename one \(same name, other extension"):
        make_plan(
            [Sample("a/x.png", "a"), Sample("a/x.jpg", "a")],
            PlanSettings(get_preset("light"), 2, True, "folders", EncodeOptions(image_format="png")),
        )
    with pytest.raises(PlanError) as flat_only:
        make_plan([Sample("led/a.png", "led"), Sample("led.a.png", "led")], _settings("flat"))
    assert "--output-layout folders" not in str(flat_only.value)  # folders would collide just the same
