"""Op kernels against hand-computed pixels, sampler ranges, purity, and every op on every mode."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from augment.render.frame import Frame, from_frame, from_image, to_frame
from augment.render.ops import REGISTRY, GeometricOp, Op, get_op
from augment.render.ops.base import RecipeError, check_op
from augment.render.ops.pixels import FILL_MODES
from tests.conftest import gradient


def L(rows: list[list[int]]) -> Frame:
    return Frame(np.array(rows, dtype=np.uint8))


def px(frame: Frame) -> list[list[int]]:
    return np.asarray(frame.color).tolist()


def apply(name: str, frame: Frame, **params) -> Frame:
    return get_op(name).apply(frame, params)


GEO = {"fill": "edge", "fill_value": 0.0}


def test_flips_move_pixels_exactly():
    f = L([[1, 2, 3], [4, 5, 6]])
    assert px(apply("hflip", f)) == [[3, 2, 1], [6, 5, 4]]
    assert px(apply("vflip", f)) == [[4, 5, 6], [1, 2, 3]]


def test_rotate_90_is_exact_and_counter_clockwise():
    f = L([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    assert px(apply("rotate", f, degrees=90.0, **GEO)) == [[3, 6, 9], [2, 5, 8], [1, 4, 7]]
    assert px(apply("rotate", f, degrees=0.0, **GEO)) == px(f)


@pytest.mark.parametrize(
    ("fill", "expected"),
    [("edge", [[10, 10, 20, 30]]), ("reflect", [[20, 10, 20, 30]]), ("constant", [[0, 10, 20, 30]])],
)
def test_translate_fills_uncovered_pixels(fill, expected):
    f = L([[10, 20, 30, 40]])
    assert px(apply("translate", f, dx=1, dy=0, fill=fill, fill_value=0.0)) == expected


def test_translate_constant_fill_value_is_a_fraction_of_full_scale():
    f = L([[10, 20, 30, 40]])
    assert px(apply("translate", f, dx=-2, dy=0, fill="constant", fill_value=1.0)) == [[30, 40, 255, 255]]


def test_brightness_gamma_contrast_by_hand():
    f = L([[10, 100, 200, 128]])
    assert px(apply("brightness", f, factor=2.0)) == [[20, 200, 255, 255]]
    assert px(apply("gamma", f, gamma=2.0))[0][3] == round((128 / 255) ** 2 * 255)  # 64
    flat = apply("contrast", f, factor=0.0)
    mean = round(np.mean([10, 100, 200, 128]))
    assert px(flat) == [[mean] * 4]
    assert px(apply("contrast", f, factor=1.0)) == px(f)


def _srgb_exposure_f(x: float, ev: float) -> float:
    """An sRGB value in [0, 1] after ``ev`` stops in linear light, by the IEC 61966-2-1 formulas written out."""
    linear = x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4
    linear = min(linear * 2**ev, 1.0)
    return linear * 12.92 if linear <= 0.0031308 else 1.055 * linear ** (1 / 2.4) - 0.055


def _srgb_exposure(value: int, ev: float) -> int:
    return round(_srgb_exposure_f(value / 255, ev) * 255)


@pytest.mark.parametrize("ev", [-2.0, -1.0, 0.5, 1.0, 1.5])
def test_exposure_is_a_change_of_stops_in_linear_light(ev):
    values = [0, 3, 10, 50, 100, 128, 200, 254, 255]
    out = px(apply("exposure", L([values]), ev=ev))[0]
    assert out == [_srgb_exposure(v, ev) for v in values]
    assert out[0] == 0  # black stays black, unlike a contrast or gamma change
    if ev >= 1:
        assert out[-1] == 255 and out[-3] == 255  # highlights clip, as a sensor's do


def test_exposure_zero_is_identity_and_one_stop_is_not_a_doubling_of_srgb():
    f = L([list(range(0, 256, 5))])
    assert px(apply("exposure", f, ev=0.0)) == px(f)
    assert px(apply("exposure", L([[50]]), ev=1.0)) == [[71]]  # 2x linear light is ~1.4x in sRGB here, not 2x
    assert px(apply("exposure", L([[50]]), ev=-1.0)) == [[34]]


def test_exposure_on_16_bit_and_rgb_keeps_channels_apart():
    deep = Frame(np.array([[0, 1000, 20000, 65535]], dtype=np.uint16))
    out = apply("exposure", deep, ev=-1.0).color
    assert out.dtype == np.uint16  # 16-bit stays 16-bit, not squeezed through an 8-bit table
    expected = [_srgb_exposure_f(v / 65535, -1.0) * 65535 for v in (0, 1000, 20000, 65535)]
    assert np.abs(out[0].astype(float) - expected).max() <= 1  # float32 kernel, float64 reference
    rgb = Frame(np.array([[[10, 100, 200]]], dtype=np.uint8))
    assert apply("exposure", rgb, ev=1.0).color.tolist() == [[[_srgb_exposure(v, 1.0) for v in (10, 100, 200)]]]


def test_cutout_blanks_exactly_its_rectangles():
    f = L([[5, 5, 5], [5, 5, 5]])
    out = apply("cutout", f, rects=[[1, 0, 2, 1]], fill="constant", fill_value=0.0, seed=1)
    assert px(out) == [[5, 0, 0], [5, 5, 5]]
    mean = apply("cutout", L([[0, 10], [20, 30]]), rects=[[0, 0, 1, 1]], fill="mean", fill_value=0.0, seed=1)
    assert px(mean) == [[15, 10], [20, 30]]


def test_salt_pepper_extremes():
    f = L([[100] * 50] * 50)
    assert np.all(np.asarray(apply("salt_pepper", f, amount=1.0, salt_ratio=1.0, seed=3).color) == 255)
    assert np.all(np.asarray(apply("salt_pepper", f, amount=1.0, salt_ratio=0.0, seed=3).color) == 0)
    assert px(apply("salt_pepper", f, amount=0.0, salt_ratio=0.5, seed=3)) == px(f)
    some = np.asarray(apply("salt_pepper", f, amount=0.1, salt_ratio=0.5, seed=3).color)
    assert 0.05 < np.mean(some != 100) < 0.15


def test_gaussian_noise_statistics_match_sigma():
    f = L([[128] * 200] * 200)
    out = np.asarray(apply("gaussian_noise", f, sigma=0.1, seed=5).color).astype(float)
    assert abs(out.std() - 25.5) < 1.0
    assert abs(out.mean() - 128) < 0.5  # rounded, not floored (the notebook's -0.5 bias)
    assert px(apply("gaussian_noise", f, sigma=0.0, seed=5)) == px(f)


def test_poisson_noise_scales_with_peak():
    f = L([[128] * 100] * 100)
    strong = np.asarray(apply("poisson_noise", f, peak=16.0, seed=1).color).astype(float)
    weak = np.asarray(apply("poisson_noise", f, peak=1e5, seed=1).color).astype(float)
    assert strong.std() > 20 > 1 > weak.std()
    auto = np.asarray(apply("poisson_noise", f, peak=0.0, seed=1).color)
    assert auto.std() > 0  # one distinct value -> peak 2: very noisy, as skimage


def test_noise_never_touches_alpha_but_geometry_moves_it():
    frame, _ = to_frame(gradient("RGBA"))
    for name, params in [
        ("gaussian_noise", {"sigma": 0.3, "seed": 1}),
        ("salt_pepper", {"amount": 0.5, "salt_ratio": 0.5, "seed": 1}),
        ("brightness", {"factor": 2.0}),
        ("exposure", {"ev": -1.5}),
        ("cutout", {"rects": [[0, 0, 10, 10]], "fill": "noise", "fill_value": 0.0, "seed": 1}),
    ]:
        out = apply(name, frame, **params)
        assert out.alpha.tobytes() == frame.alpha.tobytes(), name
    flipped = apply("hflip", frame)
    assert flipped.alpha.tobytes() == frame.alpha[:, ::-1].tobytes()
    turned = apply("rotate", frame, degrees=180.0, **GEO)
    assert np.array_equal(np.asarray(turned.alpha), np.asarray(frame.alpha)[::-1, ::-1])


def test_zoom_scale_one_is_identity_and_zoom_crops_a_corner():
    f = L([[0] * 4 + [100] * 4] * 4 + [[200] * 4 + [50] * 4] * 4)
    assert px(apply("zoom", f, scale=1.0, x=0.5, y=0.5)) == px(f)
    # The top-left quarter blown up 2x; the last row/column blends with the neighbour quarter (bilinear).
    top_left = np.asarray(apply("zoom", f, scale=2.0, x=0.0, y=0.0).color)
    assert np.all(top_left[:7, :7] == 0) and top_left[0, 7] == 25
    bottom_right = np.asarray(apply("zoom", f, scale=2.0, x=1.0, y=1.0).color)
    assert np.all(bottom_right[1:, 1:] == 50)


def test_hue_saturation_only_changes_rgb():
    grey = L([[1, 2, 3]])
    assert px(apply("hue_saturation", grey, hue=0.3, saturation=0.0)) == px(grey)
    rgb = from_image(Image.new("RGB", (4, 4), (200, 30, 30)))
    desaturated = np.asarray(apply("hue_saturation", rgb, hue=0.0, saturation=0.0).color)
    assert np.all(desaturated[..., 0] == desaturated[..., 1])
    shifted = np.asarray(apply("hue_saturation", rgb, hue=1 / 3, saturation=1.0).color)[0, 0]
    assert shifted[1] > shifted[0] and shifted[1] > shifted[2]  # red turned green


def test_blur_and_sharpen_keep_flat_images_and_work_on_16_bit():
    for mode in ("L", "RGB", "I;16"):
        flat = from_image(Image.new(mode, (16, 16), 1000 if mode == "I;16" else (90 if mode == "L" else (90, 90, 90))))
        for name, params in [("blur", {"sigma": 1.5}), ("sharpen", {"amount": 2.0})]:
            assert apply(name, flat, **params).color.tobytes() == flat.color.tobytes(), (mode, name)
    edge = Frame(np.tile(np.repeat(np.array([0, 60000], np.uint16), 8), (16, 1)))
    blurred = np.asarray(apply("blur", edge, sigma=2.0).color)
    assert blurred.dtype == np.uint16 and 0 < blurred[0, 7] < 60000


ALL_MODES = ["L", "LA", "RGB", "RGBA", "P", "I;16", "1", "CMYK"]


@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_op_on_every_mode_keeps_mode_and_size(name, mode):
    image = gradient(mode)
    frame, info = to_frame(image)
    op = get_op(name)
    params = op.sample(op.validate("t", {}), np.random.default_rng(0), frame.size)
    out = from_frame(op.apply(frame, params), info)
    assert out.mode == image.mode and out.size == image.size
    again = from_frame(op.apply(frame, params), info)
    assert again.tobytes() == out.tobytes(), "kernel must be pure"


@pytest.mark.parametrize("mode", ALL_MODES)
def test_mode_round_trip_without_ops_is_lossless(mode):
    image = gradient(mode)
    frame, info = to_frame(image)
    assert from_frame(frame, info).tobytes() == image.tobytes()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), w=st.integers(1, 300), h=st.integers(1, 300))
def test_samplers_stay_in_range(seed, w, h):
    rng = np.random.default_rng(seed)
    rot = get_op("rotate").sample(get_op("rotate").validate("t", {"degrees": [-20, 30]}), rng, (w, h))
    assert -20 <= rot["degrees"] <= 30
    assert get_op("rotate").sample(get_op("rotate").validate("t", {"angles": [45, 90]}), rng, (w, h))["degrees"] in (
        45,
        90,
    )
    zoom = get_op("zoom").sample(get_op("zoom").validate("t", {"scale": [1.1, 1.5]}), rng, (w, h))
    assert 1.1 <= zoom["scale"] <= 1.5 and 0 <= zoom["x"] <= 1 and 0 <= zoom["y"] <= 1
    shift = get_op("translate").sample(get_op("translate").validate("t", {"x": 0.25, "y": [-0.25, 0.25]}), rng, (w, h))
    assert shift["dx"] == round(0.25 * w) and abs(shift["dy"]) <= round(0.25 * h)
    cut = get_op("cutout").sample(get_op("cutout").validate("t", {"count": [1, 3], "size": [0.1, 0.9]}), rng, (w, h))
    assert 1 <= len(cut["rects"]) <= 3
    for x, y, rw, rh in cut["rects"]:
        assert x >= 0 and x + rw <= w and y >= 0 and y + rh <= h and rw >= 1 and rh >= 1
    bright = get_op("brightness").sample(get_op("brightness").validate("t", {"factor": [0.5, 0.6]}), rng, (w, h))
    assert 0.5 <= bright["factor"] <= 0.6
    stops = get_op("exposure").sample(get_op("exposure").validate("t", {"ev": [-2.3, -0.5]}), rng, (w, h))
    assert -2.3 <= stops["ev"] <= -0.5


@pytest.mark.parametrize(
    ("op", "settings_", "message"),
    [
        ("rotate", {"degrees": [10, -10]}, "low 10 is above high -10"),
        ("zoom", {"scale": 0.5}, "outside the allowed"),
        ("rotate", {"angle": 5}, "unknown setting"),
        ("rotate", {"fill": "wrap"}, "is not one of"),
        ("gaussian_noise", {"sigma": "big"}, "expected a number or [low, high]"),
        ("cutout", {"count": [1.5, 2]}, "whole numbers"),
        ("exposure", {"ev": [-9, 0]}, "outside the allowed"),
        ("exposure", {"stops": 1}, "unknown setting"),
    ],
)
def test_invalid_settings_are_named(op, settings_, message):
    with pytest.raises(RecipeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        get_op(op).validate("recipe.pipeline[0]", settings_)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16", "P"])
@pytest.mark.parametrize(
    "chain",
    [
        [("rotate", {"degrees": 7.0, "fill": "edge", "fill_value": 0.0})],
        [("zoom", {"scale": 1.15, "x": 0.3, "y": 0.7})],
        [("shear", {"x": 6.0, "y": 0.0, "fill": "reflect", "fill_value": 0.0})],
        [("translate", {"dx": 3, "dy": -2, "fill": "edge", "fill_value": 0.0})],
        [("hflip", {}), ("translate", {"dx": 2, "dy": 1, "fill": "edge", "fill_value": 0.0})],
    ],
)
def test_geometric_ops_keep_a_flat_image_flat_in_every_mode(mode, chain):
    """Resampling must interpolate real values: a flat image stays flat (catches garbled 16-bit warps)."""
    from augment.render.engine import apply_chain

    value = {"I;16": 40000, "L": 90, "LA": (90, 200), "RGB": (90, 30, 200), "RGBA": (90, 30, 200, 180)}
    flat = Image.new(mode if mode != "P" else "RGB", (33, 21), value.get(mode, (90, 30, 200)))
    if mode == "P":
        flat = flat.quantize(4)
    frame, info = to_frame(flat)
    out = from_frame(apply_chain(frame, chain), info)
    assert out.tobytes() == flat.tobytes(), (mode, chain)


class _Turn(GeometricOp):
    name = "turn"
    summary = "test op"

    def sample(self, settings: dict, rng: np.random.Generator, size: tuple[int, int]) -> dict:
        return {}

    def apply(self, frame: Frame, params: dict) -> Frame:
        return frame

    def matrix(self, params: dict, size: tuple[int, int]) -> np.ndarray:
        return np.eye(3)

    def border(self, params: dict) -> tuple[str, float] | None:
        return None


def test_a_geometric_op_must_say_where_pixels_and_boxes_go():
    class NoMatrix(GeometricOp):  # boxes would stay where they were: refused before it can be registered
        name = "no_matrix"

    with pytest.raises(TypeError, match="abstract"):
        NoMatrix()

    class FlatMatrix(_Turn):
        def matrix(self, params: dict, size: tuple[int, int]) -> np.ndarray:
            return np.eye(2)

    class LooseMatrix(Op):  # a matrix outside GeometricOp: the engine would neither fuse it nor move boxes
        name = "loose"
        sample, apply, matrix = _Turn.sample, _Turn.apply, _Turn.matrix

    check_op(_Turn(), FILL_MODES)
    for bad, message in ((FlatMatrix(), "3x3 affine"), (LooseMatrix(), "not a GeometricOp")):
        with pytest.raises(TypeError, match=message):
            check_op(bad, FILL_MODES)
    assert {name for name, op in REGISTRY.items() if isinstance(op, GeometricOp)} >= {"hflip", "rotate", "scale"}


@pytest.mark.parametrize("fill", FILL_MODES)
@pytest.mark.parametrize("turns", [0, 1, 2, 3])
@pytest.mark.parametrize("mirror", [False, True])
def test_exact_copies_match_the_warp_they_replace(fill, turns, mirror):
    """Flips, quarter turns and whole-pixel shifts are copies (never a resample): the same pixels as OpenCV's
    bilinear warp, which samples exactly at pixel centres for these maps, on a non-square image, near and far
    shifts, for every fill."""
    import cv2

    from augment.render.ops import pixels

    values = np.random.default_rng(turns).integers(0, 256, (7, 11, 3), dtype=np.uint8)
    size = (11, 7)
    linear = np.linalg.matrix_power(np.array([[0.0, 1.0], [-1.0, 0.0]]), turns) @ np.diag(
        [-1.0 if mirror else 1.0, 1.0]
    )
    for dx, dy in [(0, 0), (2, -1), (-3, 4), (-12, 2), (5, 9)]:
        centre = np.array([5.5, 3.5])  # the turn about the centre, then the shift
        forward = np.eye(3)
        forward[:2, :2], forward[:2, 2] = linear, centre - linear @ centre + (dx, dy)
        inverse = pixels._cv_inverse(forward)
        exact = pixels._exact_copy(values, inverse, size, fill, 77.0)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        warped = cv2.warpAffine(
            values, inverse[:2], size, flags=flags, borderMode=pixels._BORDERS[fill], borderValue=(77,) * 4
        )
        if exact is None:  # shifted off the canvas, or a far reflection: the warp does it (exactly too)
            assert (dx, dy) in ((-12, 2), (5, 9)) or fill == "reflect", (fill, turns, mirror, dx, dy)
            continue
        assert np.array_equal(exact, warped), (fill, turns, mirror, dx, dy)


PADDED_CASES = [
    ("hflip", {}),
    ("vflip", {}),
    ("rotate", {"degrees": 90.0, **GEO}),
    ("rotate", {"degrees": 17.0, **GEO}),
    ("rotate", {"degrees": -23.0, "fill": "reflect", "fill_value": 0.0}),
    ("rotate", {"degrees": 31.0, "fill": "constant", "fill_value": 0.4}),
    ("zoom", {"scale": 1.23, "x": 0.3, "y": 0.7}),
    ("translate", {"dx": 5, "dy": -3, **GEO}),
    ("translate", {"dx": -4, "dy": 6, "fill": "constant", "fill_value": 0.2}),
    ("translate", {"dx": 2.5, "dy": 1, **GEO}),
    ("brightness", {"factor": 1.3}),
    ("contrast", {"factor": 0.7}),
    ("gamma", {"gamma": 1.4}),
    ("exposure", {"ev": -1.5}),
    ("gaussian_noise", {"sigma": 0.05, "seed": 7}),
    ("blur", {"sigma": 1.5}),
]


@pytest.mark.parametrize(("name", "params"), PADDED_CASES, ids=lambda v: str(v))
def test_a_padded_frame_gives_the_same_pixels(name, params):
    """8-bit RGB held in Pillow's layout (4 bytes a pixel, as decoded) goes through the same kernels with the
    same result as 3-byte RGB, whatever is in the unused 4th byte; the result reaches the encoder unconverted
    where the kernel treats channels alike."""
    rgb = np.asarray(gradient("RGB", (23, 17)))
    padded = np.dstack([rgb, np.arange(23 * 17, dtype=np.uint8).reshape(17, 23)])  # junk in the 4th byte
    alpha = np.full((17, 23), 200, np.uint8)
    for a in (None, alpha):
        plain, via = apply(name, Frame(rgb, a), **params), apply(name, Frame(None, a, padded=padded), **params)
        assert via.mode == plain.mode == "RGB" and via.size == plain.size
        np.testing.assert_array_equal(via.color, plain.color)
        np.testing.assert_array_equal(via.alpha, plain.alpha)
    if name in ("hflip", "vflip", "rotate", "zoom", "translate", "brightness", "gamma", "exposure"):
        assert via.is_padded and via.padded.flags.c_contiguous
        geometric = name not in ("brightness", "gamma", "exposure")  # a table runs on either layout at the same cost
        assert apply(name, Frame(rgb), **params).is_padded == geometric  # the encoder takes that layout
        assert not apply(name, Frame(rgb, alpha), **params).is_padded  # encoded from colour and alpha


def test_a_frame_holds_one_colour_form():
    rgb = np.zeros((2, 3, 3), np.uint8)
    with pytest.raises(TypeError):
        Frame()
    with pytest.raises(TypeError):
        Frame(rgb, padded=np.zeros((2, 3, 4), np.uint8))
    assert Frame(np.zeros((2, 3), np.uint16)).padded is None
    assert Frame(rgb).padded.shape == (2, 3, 4)
