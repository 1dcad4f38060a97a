"""Would Pillow's private ``_new``/``.im`` be worth it in pixels.point? Times the LUT step both ways (the
private C call vs the public ``Image.point``, which rounds every table entry in Python again), per call and
over whole outputs (the default preset rendered through the engine), after checking the bytes are the same.
Run: .venv/bin/python bench/pixels_private.py [image folder] (default: the built-in demo set)."""

from __future__ import annotations

import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from augment import engine
from augment.codec import EncodeOptions
from augment.demo import write_sample_set
from augment.ops import pixels
from augment.plan import PlanSettings, make_plan
from augment.presets import DEFAULT_PRESET, get_preset
from augment.samples import Sample

PUBLIC = pixels.point  # what the block uses


def private_point(color: Image.Image, fn: Callable[[np.ndarray], np.ndarray]) -> Image.Image:
    """pixels.point through Pillow's private C call (the table is already whole numbers)."""
    if color.mode == "I;16":
        return PUBLIC(color, fn)  # the 16-bit path is numpy either way
    lut = np.clip(np.rint(fn(np.arange(256, dtype=np.float64) / 255.0) * 255.0), 0, 255).astype(np.uint8)
    return color._new(color.im.point(lut.tolist() * len(color.getbands()), None))


def per_call() -> None:
    rng = np.random.default_rng(0)
    curve = lambda x: x**1.2  # noqa: E731  (a gamma curve, as the gamma op)
    print(f"{'one point() call':>18} {'private us':>11} {'public us':>10}")
    for mode, size in (("L", (96, 96)), ("RGB", (96, 96)), ("RGB", (640, 480))):
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        color = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
        assert private_point(color, curve).tobytes() == PUBLIC(color, curve).tobytes()
        times = [_best(lambda f=f, c=color: f(c, curve)) for f in (private_point, PUBLIC)]
        print(f"{mode + ' ' + 'x'.join(map(str, size)):>18} {times[0]:11.1f} {times[1]:10.1f}")


def _best(call: Callable[[], object], number: int = 200) -> float:
    """Microseconds per call, the best of 5 rounds."""
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


def whole_outputs(folder: Path) -> None:
    files = sorted(p for p in folder.rglob("*.png"))
    samples = [Sample(p.relative_to(folder).as_posix(), p.parent.name) for p in files]
    settings = PlanSettings(get_preset(DEFAULT_PRESET), None, False, "folders", EncodeOptions())
    tasks = [(t, (folder / t.sample.key).read_bytes()) for t in make_plan(samples, settings)]

    def render_all() -> list[bytes]:
        return [r.data for t, data in tasks for r in engine.render(t.sample.key, data, t.outputs, 42, EncodeOptions())]

    calls = []
    pixels.point = lambda color, fn: calls.append(color) or PUBLIC(color, fn)
    start = time.perf_counter()
    public = render_all()
    per_output = (time.perf_counter() - start) / len(public) * 1e6
    pixels.point = private_point
    private = render_all()
    pixels.point = PUBLIC
    assert private == public, "the two paths give different bytes"
    # The saving per output is (calls per output) x (saving per call): both measured without noise from other
    # load, unlike two whole-run timings, whose difference is smaller than their spread on a busy machine.
    color, curve = calls[0], lambda x: x**1.2
    saved_per_call = _best(lambda: PUBLIC(color, curve)) - _best(lambda: private_point(color, curve))
    saved = saved_per_call * len(calls) / len(public)
    print(f"{len(public)} outputs of {len(tasks)} {color.mode} {color.size[0]}x{color.size[1]} images "
          f"({DEFAULT_PRESET} preset): {len(calls) / len(public):.2f} point() calls per output, "
          f"{saved_per_call:.0f} us saved per call = {saved:.0f} us of {per_output:.0f} us per output "
          f"({saved / per_output:.1%})")  # fmt: skip


def main() -> None:
    per_call()
    if len(sys.argv) > 1:
        whole_outputs(Path(sys.argv[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        write_sample_set(Path(tmp))
        whole_outputs(Path(tmp))


if __name__ == "__main__":
    main()
