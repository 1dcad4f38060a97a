"""A manifest line is a complete record of its output: replaying its recorded ops through the engine gives
the recorded sha256, for every line of a real block run (every op, mode and format in the input set)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from augment.cli import parse
from augment.config import build_config
from augment.plan.samples import ORIGINAL
from augment.render.codec import decode, encode, output_format
from augment.render.engine import apply_chain
from augment.render.ops import REGISTRY
from augment.render.presets import PRESETS
from tests.conftest import gradient
from tests.support.blockrun import run_block

EVERY_OP = {
    "name": "every-op",
    "copies": 3,
    "pipeline": [{"op": name, "p": 0.7} for name in sorted(REGISTRY)],
}


def mixed_folder(sample_dir: Path) -> Path:
    """The demo set plus images in every colour mode the kernels treat differently, and a JPEG."""
    extra = sample_dir / "mixed"
    extra.mkdir()
    for i, mode in enumerate(("L", "LA", "RGBA", "P", "I;16", "1")):
        gradient(mode, (40, 30), seed=i).save(extra / f"m{i}.png")
    gradient("RGB", (48, 36)).save(extra / "photo.jpg", quality=85)
    return sample_dir


def replay(line: dict, source: bytes, args: list[str]) -> bytes:
    """An output's bytes rebuilt from its manifest line: the source decoded, the recorded ops applied."""
    options = build_config(parse(args)[0], {}).render.encode
    decoded = decode(source)
    fmt, _ = output_format(options, Path(line["source"]).suffix)
    if line["variant"] == ORIGINAL and fmt == decoded.format and not decoded.oriented:
        return source
    chain = [(op["op"], {k: v for k, v in op.items() if k != "op"}) for op in line["ops"]]
    return encode(apply_chain(decoded.frame, chain), decoded.mode, fmt, options)


def test_every_manifest_line_replays_to_its_sha256(sample_dir, tmp_path):
    src = mixed_folder(sample_dir)
    for i, recipe in enumerate((["--preset", "heavy"], ["--recipe", json.dumps(EVERY_OP)])):
        out = tmp_path / f"out{i}"
        args = ["--in-directory", str(src), "--out-directory", str(out), "--seed", "5", *recipe]
        result = run_block([*args, "--workers", "2"], workdir=tmp_path)
        assert result.returncode == 0, result.output
        lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()[1:]]
        sources = sum(1 for p in src.rglob("*") if p.is_file())
        assert len(lines) == sources * (1 + (PRESETS["heavy"]["copies"] if i == 0 else EVERY_OP["copies"]))
        if recipe[0] == "--recipe":
            assert {op["op"] for line in lines for op in line["ops"]} == set(REGISTRY)
        for line in lines:
            data = replay(line, (src / line["source"]).read_bytes(), args)
            assert hashlib.sha256(data).hexdigest() == line["sha256"], line
            assert (out / line["output"]).read_bytes() == data, line["output"]
