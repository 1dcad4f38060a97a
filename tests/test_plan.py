"""Labels, keys and output names (what EI infers labels from), and the run's planning pass: its collision
check (in the run's index, and end to end), each task planned once."""

from __future__ import annotations

import pytest
from PIL import Image

from augment.cli import parse
from augment.config import build_config
from augment.plan import planner
from augment.plan.samples import Sample, label_for_key, label_from_name, output_name, stable_hash
from augment.plan.tasks import PlanError, PlanSettings, plan_task
from augment.render.codec import EncodeOptions
from augment.render.presets import get_preset
from augment.run.runner import run
from tests.support.blockrun import run_block
from tests.support.plans import plan


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
    tasks = plan(samples, _settings())
    assert [t.sample.key for t in tasks] == ["a/1.png", "b/1.jpg"]
    assert [o.name for o in tasks[1].outputs] == ["b/b.1.orig.jpg", "b/b.1.aug00.jpg", "b/b.1.aug01.jpg"]
    assert [o.index for o in tasks[0].outputs] == [-1, 0, 1]
    assert len(plan(samples, _settings(include=False))[0].outputs) == 2


def test_plan_rejects_two_sources_writing_one_name():
    clash = [Sample("led/a.png", "led"), Sample("led.a.png", "led")]
    with pytest.raises(PlanError, match="would both write"):
        plan(clash, _settings("folders"))


def test_collision_messages_name_what_really_collides():
    with pytest.raises(PlanError, match=r"'Cat/cat.x.orig.png' and 'cat/cat.x.orig.png', which differ only in case"):
        plan([Sample("Cat/x.png", "cat"), Sample("cat/x.png", "cat")], _settings("folders"))
    with pytest.raises(
        PlanError, match=r"would both write 'b.a_x.orig.png'; rename one or use --output-layout folders"
    ):
        plan([Sample("a/b/x.png", "b"), Sample("b/a_x.png", "b")], _settings("flat"))
    with pytest.raises(PlanError, match=r"would both write 'a/a.x.orig.png'; rename one \(same name, other extension"):
        plan(
            [Sample("a/x.png", "a"), Sample("a/x.jpg", "a")],
            PlanSettings(get_preset("light"), 2, True, "folders", EncodeOptions(image_format="png")),
        )
    with pytest.raises(PlanError) as flat_only:
        plan([Sample("led/a.png", "led"), Sample("led.a.png", "led")], _settings("flat"))
    assert "--output-layout folders" not in str(flat_only.value)  # folders would collide just the same


def test_a_clash_is_found_across_the_index_s_batches():
    """The two sources far apart in key order (other planning batches): the first one's name is in the index."""
    filler = [Sample(f"led/{i:04d}.png", "led") for i in range(1200)]
    with pytest.raises(PlanError, match=r"'led.a.png' and 'led/a.png' would both write 'led/led.a.orig.png'"):
        plan([Sample("led.a.png", "led"), *filler, Sample("led/a.png", "led")], _settings("folders"))
    with pytest.raises(PlanError, match=r"'Led/Z.png' and 'led/z.png'.* differ only in case"):
        plan([Sample("Led/Z.png", "led"), *filler, Sample("led/z.png", "led")], _settings("folders"))


def test_two_sources_writing_one_name_stop_a_run_before_it_writes(tmp_path):
    """End to end (transform.py): one line naming both sources and the name, exit 1, nothing written."""
    (tmp_path / "in" / "led").mkdir(parents=True)
    for path in ("led/a.png", "led.a.png", "led/b.png"):
        Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp_path / "in" / path)
    out = tmp_path / "out"
    result = run_block(["--in-directory", str(tmp_path / "in"), "--out-directory", str(out)], workdir=tmp_path)
    assert result.returncode == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("ERROR")]
    assert errors == [
        "ERROR: 'led.a.png' and 'led/a.png' would both write 'led/led.a.orig.png'; rename one",
    ], result.output
    assert "Traceback" not in result.output
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file() and p.suffix == ".png"]


def test_each_task_is_planned_once(sample_dir, tmp_path, monkeypatch):
    """One planning pass: rendering, the final manifest, the labels files and the preview read its tasks."""
    calls: list[str] = []

    def counted(sample, *args):
        calls.append(sample.key)
        return plan_task(sample, *args)

    monkeypatch.setattr(planner, "plan_task", counted)
    args, _ = parse(["--in-directory", str(sample_dir), "--out-directory", str(tmp_path / "o"), "--preview", "1"])
    assert run(build_config(args, {}), lambda _: None) == 0
    assert sorted(calls) == sorted(str(p.relative_to(sample_dir)) for p in sample_dir.rglob("*.png"))
    assert (tmp_path / "o" / "preview.png").exists()


@pytest.mark.parametrize("preset", ["workshop", "medium"])
def test_stored_tasks_read_back_as_planned_with_the_recipe_s_own_pipelines(preset):
    """The index keeps a task's outputs with each pipeline as its number in the recipe: read back, a task
    equals the one planned, and its pipelines are the recipe's objects (not a copy per task)."""
    settings = PlanSettings(get_preset(preset), 3, True, "folders", EncodeOptions())
    samples = [Sample(f"{label}/{i}.png", label) for label in ("b", "a") for i in range(3)]
    tasks = plan(samples, settings)
    assert tasks == [plan_task(s, settings, None) for s in sorted(samples, key=lambda s: s.key)]
    pipelines = {id(v.pipeline) for v in settings.recipe.variants}
    assert all(id(o.pipeline) in pipelines for t in tasks for o in t.outputs if o.pipeline is not None)
