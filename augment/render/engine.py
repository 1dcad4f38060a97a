"""Apply a recipe to one decoded sample: each output gets its own rng, its op chain and its bytes.

No I/O here: bytes in, bytes out. Each output's rng is seeded from (run seed, the sample's stable key,
the copy index), so an output does not depend on file order, worker count or which subset runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from augment.plan.samples import stable_hash
from augment.plan.tasks import PlannedOutput
from augment.render.boxes import Box, clip, hide, move
from augment.render.codec import Decoded, EncodeOptions, decode, encode
from augment.render.frame import Frame
from augment.render.ops import GeometricOp, get_op, pixels
from augment.render.ops.base import Border
from augment.render.recipe import sample_chain
from augment.render.resize import OutputSize, needed_size, resize_border, resize_matrix, shrink


@dataclass(frozen=True)
class Rendered:
    output: PlannedOutput
    data: bytes
    ops: list[dict[str, Any]]  # the applied chain, each {"op": name, **params}
    boxes: list[Box] | None = None  # where the source's boxes ended up (detection datasets)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


# Bump when any kernel, the fusion rules or the encoder settings change the bytes of an output: it is part
# of the manifest fingerprint, so a resumed or --since run never mixes outputs of two kernel versions.
KERNELS = f"5 opencv {cv2.__version__}"  # 5: OpenCV kernels on numpy frames (4: Pillow; ICC, EXIF, palette alpha)


def output_rng(seed: int, key: str, index: int) -> np.random.Generator:
    """The generator for copy ``index`` of the sample at ``key``."""
    return np.random.default_rng([seed, stable_hash(key), index])


Chain = list[tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class FusedWarp:
    """Consecutive geometric ops ``chain[start:stop]`` resampled once, through their combined matrix."""

    start: int
    stop: int
    matrix: np.ndarray  # combined forward matrix (chain_matrix)
    fill: str
    fill_value: float


def chain_matrix(chain: Chain, size: tuple[int, int]) -> np.ndarray:
    """The combined forward 3x3 matrix of geometric ops applied in order (each op's matrix on the left)."""
    combined = np.eye(3)
    for name, params in chain:
        op = get_op(name)
        if not isinstance(op, GeometricOp):
            raise ValueError(f"{name} is not a geometric op")
        combined = op.matrix(params, size) @ combined
    return combined


def steps(chain: Chain, size: tuple[int, int]) -> list[FusedWarp | tuple[str, dict[str, Any]]]:
    """How a concrete chain runs: a run of two or more consecutive geometric ops that resamples and shares
    one border fill becomes one FusedWarp (one resampling instead of several: faster, and sharper, and no
    content is lost at an intermediate border); every other op runs as itself, so a lone rotate 90 or a
    flip (a transpose) stays exact. Pixels (apply_chain) and boxes (follow_boxes) both go through this."""
    out: list[FusedWarp | tuple[str, dict[str, Any]]] = []
    i = 0
    while i < len(chain):
        j, border = i, None
        while j < len(chain):
            op = get_op(chain[j][0])
            if not isinstance(op, GeometricOp):
                break
            own = op.border(chain[j][1])  # None: a flip, which resamples nothing
            if own is not None and border is not None and own != border:
                break
            border = own or border
            j += 1
        if j - i >= 2 and border is not None:
            out.append(FusedWarp(i, j, chain_matrix(chain[i:j], size), *border))
            i = j
        else:
            out.append(chain[i])
            i += 1
    return out


@dataclass(frozen=True)
class Resize:
    """--output-size: the map from the decoded frame onto the output canvas, run with the chain's first warp."""

    matrix: np.ndarray  # forward: frame -> output canvas
    size: tuple[int, int]
    border: Border | None  # None: the resize covers the canvas, any fill will do


def _lead(plan: list[FusedWarp | tuple[str, dict[str, Any]]], resize: Resize) -> tuple[np.ndarray, Border, int]:
    """(matrix, border, steps used): the resize joined with the plan's first step when that is a warp with a
    compatible fill (one resample), else the resize alone."""
    alone = resize.matrix, resize.border or ("edge", 0.0), 0
    if not plan:
        return alone
    first = plan[0]
    if isinstance(first, FusedWarp):
        matrix, border = first.matrix, (first.fill, first.fill_value)
    else:
        op = get_op(first[0])
        if not isinstance(op, GeometricOp):
            return alone
        matrix, border = op.matrix(first[1], resize.size), op.border(first[1])
    if border is None:
        border = resize.border or ("edge", 0.0)
    elif resize.border is not None and resize.border != border:
        return alone
    return matrix @ resize.matrix, border, 1


def apply_chain(frame: Frame, chain: Chain, resize: Resize | None = None) -> Frame:
    """Run concrete (already sampled) ops over a frame; replaying a manifest's ops gives the same frame.
    With ``resize``, the chain runs on the output canvas and the resize joins its first warp."""
    plan = steps(chain, resize.size if resize else frame.size)
    if resize is not None:
        matrix, border, used = _lead(plan, resize)
        frame, plan = pixels.warp(frame, matrix, *border, size=resize.size), plan[used:]
    for step in plan:
        if isinstance(step, FusedWarp):
            frame = pixels.warp(frame, step.matrix, step.fill, step.fill_value)
        else:
            frame = get_op(step[0]).apply(frame, step[1])
    return frame


def follow_boxes(
    boxes: list[Box], chain: list[tuple[str, dict[str, Any]]], size: tuple[int, int], resize: Resize | None = None
) -> list[Box]:
    """Boxes through a concrete chain, with the same parameters as the pixels: geometric ops move them
    (clipped, visibility tracked), occluding ops (cutout) hide parts, the rest leave them alone.
    A fused run of geometric ops (see ``steps``) moves them once, through its combined matrix, as the pixels;
    so does the resize with the warp it joins."""
    plan = steps(chain, resize.size if resize else size)
    if resize is not None:
        matrix, _, used = _lead(plan, resize)
        size, plan = resize.size, plan[used:]
        boxes = move(boxes, matrix, size)
    for step in plan:
        if isinstance(step, FusedWarp):
            boxes = move(boxes, step.matrix, size)
            continue
        name, params = step
        op = get_op(name)
        if isinstance(op, GeometricOp):
            boxes = move(boxes, op.matrix(params, size), size)
        elif rects := op.occlusions(params):
            boxes = hide(boxes, rects)
    return boxes


def render(*args: Any, **kwargs: Any) -> list[Rendered]:
    """Every requested output of one sample, at once (``iter_render``'s arguments; it gives them one at a time)."""
    return list(iter_render(*args, **kwargs))


def iter_render(
    key: str,
    data: bytes,
    outputs: tuple[PlannedOutput, ...],
    seed: int,
    options: EncodeOptions,
    boxes: tuple[Box, ...] | None = None,
    min_visibility: float | None = None,
    notes: list[str] | None = None,
) -> Iterator[Rendered]:
    """Decode ``data`` once and yield each requested output as it is encoded (raises codec.DecodeError), so
    only one output is held at a time.

    With ``boxes`` (and ``min_visibility``, then required), each output carries the boxes still at least
    ``min_visibility`` visible; boxes reaching outside the image are clipped to it first (or dropped), with a
    line in ``notes``."""
    if boxes is not None and min_visibility is None:
        raise TypeError("iter_render: boxes need min_visibility (--min-box-visibility)")
    target = None
    if options.output_size is not None:
        target = OutputSize(*options.output_size, options.resize_mode)
        # The recipe's zoom (options), not these outputs': a resumed run decodes as the first one did.
        decoded = decode(data, lambda size: needed_size(size, target, options.zoom))
        decoded = replace(decoded, frame=shrink(decoded.frame, needed_size(decoded.source_size, target, options.zoom)))
    else:
        decoded = decode(data)
    resize = None
    if target is not None:
        resize = Resize(resize_matrix(decoded.frame.size, target), target.size, resize_border(target))
    size = decoded.frame.size
    inside: list[Box] | None = None
    if boxes is not None:
        inside, clipped = clip(boxes, decoded.source_size)
        if notes is not None:
            notes.extend(clipped)
        if size != decoded.source_size:  # decoded smaller (--output-size): boxes follow
            scale = np.diag([size[0] / decoded.source_size[0], size[1] / decoded.source_size[1], 1.0])
            inside = move(inside, scale, size)
    for output in outputs:
        r = render_one(key, data, decoded, output, seed, options, resize)
        if inside is not None:
            moved = follow_boxes(list(inside), [(op["op"], op) for op in r.ops], size, resize)
            r = replace(r, boxes=[b for b in moved if b.visible >= min_visibility])
        yield r


def render_one(
    key: str,
    data: bytes,
    decoded: Decoded,
    output: PlannedOutput,
    seed: int,
    options: EncodeOptions,
    resize: Resize | None = None,
) -> Rendered:
    if output.pipeline is None:
        if resize is not None:
            return Rendered(
                output, encode(apply_chain(decoded.frame, [], resize), decoded.mode, output.image_format, options), []
            )
        if output.image_format == decoded.format and not decoded.oriented:
            return Rendered(output, data, [])  # the original, byte for byte
        return Rendered(output, encode(decoded.frame, decoded.mode, output.image_format, options), [])
    size = resize.size if resize is not None else decoded.frame.size
    chain = sample_chain(output.pipeline, output_rng(seed, key, output.index), size)
    frame = apply_chain(decoded.frame, chain, resize)
    data_out = encode(frame, decoded.mode, output.image_format, options)
    return Rendered(output, data_out, [{"op": name, **params} for name, params in chain])
