"""A recipe is data: which ops to apply, with what ranges and probabilities, to make each output.

Two shapes, both plain JSON::

    {"name": "medium", "copies": 4, "pipeline": [node, ...]}          # N random copies per original
    {"name": "workshop", "variants": [{"name": "rot45", "pipeline": [node, ...]}, ...]}   # fixed list

    node = {"op": "rotate", "p": 0.5, "degrees": [-15, 15], ...}      # one op, applied with probability p
         | {"some_of": [node, ...], "k": [1, 2], "p": 1}             # k of these, in listed order
         | {"one_of": [node, ...], "p": 1}                           # shorthand for k = 1

``parse_recipe`` validates everything (unknown ops or settings, out-of-range values) before any work, and
``Recipe.to_dict`` gives the complete normalised form, which parses back to an equal Recipe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from augment.plan.samples import ORIGINAL
from augment.render.ops import GeometricOp, get_op
from augment.render.ops.base import RecipeError, integer
from augment.storage import jsontext
from augment.storage.files import read_regular

MAX_COPIES = 1000


@dataclass(frozen=True)
class Step:
    op: str
    settings: dict[str, Any]
    p: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "p": self.p, **self.settings}


@dataclass(frozen=True)
class SomeOf:
    nodes: tuple[Node, ...]
    k: tuple[int, int]
    p: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "some_of": [n.to_dict() for n in self.nodes],
            "k": list(self.k),
            "p": self.p,
        }


Node = Step | SomeOf


@dataclass(frozen=True)
class Variant:
    name: str
    pipeline: tuple[Node, ...]


@dataclass(frozen=True)
class Recipe:
    """A validated recipe. ``variants`` holds either the fixed list, or one pipeline used for every copy."""

    name: str
    variants: tuple[Variant, ...]
    copies: int | None  # None for a fixed variant list

    @property
    def is_fixed(self) -> bool:
        return self.copies is None

    def outputs(self, copies: int | None = None) -> list[tuple[int, str, tuple[Node, ...]]]:
        """(copy index, variant name, pipeline) for every output one original gets."""
        if self.is_fixed:
            return [(i, v.name, v.pipeline) for i, v in enumerate(self.variants)]
        n = self.copies if copies is None else copies
        return [(i, f"aug{i:02d}", self.variants[0].pipeline) for i in range(n)]

    def to_dict(self) -> dict[str, Any]:
        if self.is_fixed:
            variants = [{"name": v.name, "pipeline": [n.to_dict() for n in v.pipeline]} for v in self.variants]
            return {"name": self.name, "variants": variants}
        return {
            "name": self.name,
            "copies": self.copies,
            "pipeline": [n.to_dict() for n in self.variants[0].pipeline],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def with_fill(self, fill: str) -> Recipe:
        """A copy in which every geometric op that has a border ``fill`` setting uses ``fill``."""
        data = self.to_dict()
        _set_fill(data, fill)
        return parse_recipe(data)


def parse_recipe(data: Any) -> Recipe:
    """Validate a recipe given as a dict (already-parsed JSON)."""
    if not isinstance(data, dict):
        raise RecipeError(f"recipe: expected a JSON object, got {type(data).__name__}")
    _only(data, {"name", "copies", "pipeline", "variants", "description"}, "recipe")
    name = data.get("name", "custom")
    if not isinstance(name, str) or not name:
        raise RecipeError("recipe.name: expected a non-empty string")
    if ("pipeline" in data) == ("variants" in data):
        raise RecipeError("recipe: give exactly one of 'pipeline' (random copies) or 'variants' (a fixed list)")
    if "pipeline" in data:
        copies = data.get("copies", 4)
        if not isinstance(copies, int) or isinstance(copies, bool) or not 0 <= copies <= MAX_COPIES:
            raise RecipeError(f"recipe.copies: expected a whole number 0..{MAX_COPIES}, got {copies!r}")
        return Recipe(name, (Variant("", _pipeline(data["pipeline"], "recipe.pipeline")),), copies)
    if "copies" in data:
        raise RecipeError("recipe.copies: only for 'pipeline' recipes; a 'variants' recipe makes one output each")
    raw = data["variants"]
    if not isinstance(raw, list) or not raw:
        raise RecipeError("recipe.variants: expected a non-empty list")
    variants, seen = [], set()
    for i, v in enumerate(raw):
        where = f"recipe.variants[{i}]"
        if not isinstance(v, dict):
            raise RecipeError(f"{where}: expected an object with 'name' and 'pipeline'")
        _only(v, {"name", "pipeline"}, where)
        vname = v.get("name")
        if not isinstance(vname, str) or not vname or not _is_name_safe(vname):
            raise RecipeError(f"{where}.name: expected letters, digits, '_' or '-', got {vname!r}")
        if vname in seen or vname == ORIGINAL:
            raise RecipeError(f"{where}.name: {vname!r} is used twice or reserved")
        seen.add(vname)
        variants.append(Variant(vname, _pipeline(v.get("pipeline"), f"{where}.pipeline")))
    return Recipe(name, tuple(variants), None)


MAX_RECIPE_BYTES = 1024 * 1024  # a recipe is a few KB; anything this large is a mistake
MAX_RECIPE_DEPTH = 32  # nesting of JSON arrays/objects (recipes use about 6)


def load_recipe(text_or_path: str) -> Recipe:
    """Parse ``--recipe``: JSON text, or the path of a JSON file. Anything else (binary or non-UTF-8 files,
    special files, absurd sizes, deep nesting) is a RecipeError with one line, never a traceback."""
    text = text_or_path.strip()
    if not text.startswith("{"):
        text = _recipe_file(text)
    if len(text) > MAX_RECIPE_BYTES:
        raise RecipeError(f"--recipe: {len(text)} characters; a recipe is at most {MAX_RECIPE_BYTES} bytes")
    _check_depth(text)
    try:
        data = jsontext.loads(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as e:
        raise RecipeError(f"--recipe: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except jsontext.NumberTooLong as e:
        raise RecipeError(f"--recipe: {e}") from None
    return parse_recipe(data)


def _recipe_file(name: str) -> str:
    shown = repr(name) if len(name) <= 80 else f"{name[:60]!r}… ({len(name)} characters)"
    if len(name) > 4096 or "\0" in name:
        raise RecipeError(f"--recipe: {shown} is neither JSON text (starting with '{{') nor a file path")
    path = Path(name)
    try:
        data = read_regular(path, MAX_RECIPE_BYTES)
    except FileNotFoundError:
        raise RecipeError(f"--recipe: {shown} is neither JSON text nor an existing file") from None
    except OSError as e:
        raise RecipeError(f"--recipe: cannot read {shown}: {e.strerror or e}") from None
    if b"\0" in data:
        raise RecipeError(f"--recipe: {shown} is a binary file, not JSON text")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError as e:
        raise RecipeError(f"--recipe: {shown} is not UTF-8 text (byte {e.start})") from None


def _check_depth(text: str) -> None:
    """Refuse JSON nested deeper than MAX_RECIPE_DEPTH before parsing it (the parser would recurse)."""
    depth, in_string, escaped = 0, False, False
    for c in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (c == "\\", c != '"')
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            if depth > MAX_RECIPE_DEPTH:
                raise RecipeError(f"--recipe: nested more than {MAX_RECIPE_DEPTH} levels deep")
        elif c in "]}":
            depth -= 1


def sample_chain(
    nodes: tuple[Node, ...], rng: np.random.Generator, size: tuple[int, int]
) -> list[tuple[str, dict[str, Any]]]:
    """Walk a pipeline with ``rng``: decide which ops apply and draw their concrete parameters."""
    chain: list[tuple[str, dict[str, Any]]] = []
    for node in nodes:
        if node.p < 1.0 and rng.random() >= node.p:
            continue
        if isinstance(node, Step):
            chain.append((node.op, get_op(node.op).sample(node.settings, rng, size)))
        else:
            k = integer(rng, list(node.k))
            picked = sorted(rng.choice(len(node.nodes), size=k, replace=False).tolist())
            chain.extend(sample_chain(tuple(node.nodes[i] for i in picked), rng, size))
    return chain


def _pipeline(raw: Any, where: str) -> tuple[Node, ...]:
    if not isinstance(raw, list):
        raise RecipeError(f"{where}: expected a list of ops")
    return tuple(_node(item, f"{where}[{i}]") for i, item in enumerate(raw))


def _node(raw: Any, where: str) -> Node:
    if not isinstance(raw, dict):
        raise RecipeError(f"{where}: expected an object like {{'op': 'rotate', ...}}")
    p = _probability(raw.get("p", 1.0), f"{where}.p")
    if "some_of" in raw or "one_of" in raw:
        key = "some_of" if "some_of" in raw else "one_of"
        _only(raw, {key, "p"} | ({"k"} if key == "some_of" else set()), where)
        nodes = _pipeline(raw[key], f"{where}.{key}")
        if not nodes:
            raise RecipeError(f"{where}.{key}: expected at least one op")
        k = _k(raw.get("k", 1), len(nodes), f"{where}.k") if key == "some_of" else (1, 1)
        return SomeOf(nodes, k, p)
    if "op" not in raw:
        raise RecipeError(f"{where}: expected an 'op', 'some_of' or 'one_of' key")
    name = raw["op"]
    op = get_op(name, where) if isinstance(name, str) else get_op(repr(name), where)
    settings = {key: value for key, value in raw.items() if key not in ("op", "p")}
    return Step(name, op.validate(f"{where}.{name}", settings), p)


def _k(raw: Any, n: int, where: str) -> tuple[int, int]:
    values = [raw, raw] if isinstance(raw, int) and not isinstance(raw, bool) else raw
    ok = (
        isinstance(values, list)
        and len(values) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    )
    if not ok or not 0 <= values[0] <= values[1] <= n:
        raise RecipeError(f"{where}: expected k or [k_min, k_max] with 0 <= k_min <= k_max <= {n}, got {raw!r}")
    return (values[0], values[1])


def _probability(raw: Any, where: str) -> float:
    if not isinstance(raw, int | float) or isinstance(raw, bool) or not 0.0 <= raw <= 1.0:
        raise RecipeError(f"{where}: expected a probability between 0 and 1, got {raw!r}")
    return float(raw)


def _only(data: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _is_name_safe(name: str) -> bool:
    return len(name) <= 64 and all(c.isascii() and (c.isalnum() or c in "_-") for c in name)


def _set_fill(data: Any, fill: str) -> None:
    if isinstance(data, dict):
        if "op" in data and "fill" in data and isinstance(get_op(data["op"]), GeometricOp):  # not cutout's paint
            data["fill"] = fill
        for value in data.values():
            _set_fill(value, fill)
    elif isinstance(data, list):
        for value in data:
            _set_fill(value, fill)
