"""Affine fusion: consecutive geometric ops with one border fill are resampled once, through their combined
matrix; lone ops and flip-only runs run as themselves (exact)."""

from __future__ import annotations

import numpy as np

from augment.render.engine import FusedWarp, apply_chain, chain_matrix, steps
from augment.render.frame import Frame, to_frame
from augment.render.ops import get_op, pixels
from tests.conftest import gradient

SIZE = (32, 24)
ROT = ("rotate", {"degrees": 10.0, "fill": "reflect", "fill_value": 0.0})
SHEAR = ("shear", {"x": 5.0, "y": 0.0, "fill": "reflect", "fill_value": 0.0})
ZOOM = ("zoom", {"scale": 1.2, "x": 0.3, "y": 0.6})
HFLIP, VFLIP = ("hflip", {}), ("vflip", {})
BRIGHT = ("brightness", {"factor": 1.1})


def kinds(chain):
    return [(s.start, s.stop) if isinstance(s, FusedWarp) else s[0] for s in steps(chain, SIZE)]


def test_runs_that_share_a_fill_fuse_others_run_alone():
    assert kinds([HFLIP, ROT, SHEAR, BRIGHT, ZOOM]) == [(0, 3), "brightness", "zoom"]
    assert kinds([ROT, ZOOM]) == ["rotate", "zoom"]  # reflect vs edge: not one warp
    assert kinds([ZOOM, HFLIP, ROT]) == [(0, 2), "rotate"]
    assert kinds([HFLIP, VFLIP]) == ["hflip", "vflip"]  # no resampling op: exact transposes
    assert kinds([ROT]) == ["rotate"] and kinds([]) == []


def test_chain_matrix_composes_first_op_first():
    m = chain_matrix([HFLIP, ROT], SIZE)
    expected = get_op("rotate").matrix(ROT[1], SIZE) @ get_op("hflip").matrix({}, SIZE)
    assert np.allclose(m, expected)


def test_fused_chain_is_one_warp_and_close_to_the_sequential_one():
    frame, _ = to_frame(gradient("RGBA", SIZE))
    chain = [HFLIP, ROT, SHEAR]
    fused = apply_chain(frame, chain)
    once = pixels.warp(frame, chain_matrix(chain, SIZE), "reflect", 0.0)
    assert fused.color.tobytes() == once.color.tobytes() and fused.alpha.tobytes() == once.alpha.tobytes()
    sequential = frame
    for name, params in chain:
        sequential = get_op(name).apply(sequential, params)
    inner = (slice(6, -6), slice(6, -6))  # borders differ by design (one fill instead of two)
    diff = np.abs(np.asarray(fused.color, float)[inner] - np.asarray(sequential.color, float)[inner])
    assert diff.mean() < 12


def test_flip_then_rotate_90_stays_exact_when_fused():
    values = np.arange(12 * 12, dtype=np.uint8).reshape(12, 12)
    frame = Frame(values)
    out = apply_chain(frame, [HFLIP, ("rotate", {"degrees": 90.0, "fill": "edge", "fill_value": 0.0})])
    assert np.array_equal(np.asarray(out.color), np.rot90(values[:, ::-1]))
