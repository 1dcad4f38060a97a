"""The code's shape: rooms named after the flow (source -> plan -> render -> sink, plus the run loop,
bookkeeping and storage plumbing), imports that point one way, no import cycle, small modules.

bench/ imports only the product, tests.support and itself (as ``bench.<name>``); tests import bench only to
test the bench. Read from the source with ``ast`` (nothing is imported), so a violation fails here by name."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROOMS = ("sources", "plan", "render", "sinks", "run", "books", "storage")
FORBIDDEN = {  # room -> rooms it must not import from
    "render": {"run", "sources", "sinks", "books"},
    "plan": {"run", "sources", "sinks", "books"},
    "sources": {"sinks"},
    "sinks": {"sources"},
    "storage": set(ROOMS) - {"storage"},
}
TOP_LEVEL = {"augment", "augment.signals", "augment.errors", "augment.libc"}  # shared by every room: the package,
# the run's stop state, the error base class every room's errors derive from, and the C library's process calls
MAX_LINES = 400
# Files over MAX_LINES that other engineers are splitting right now (#25); remove a line once its file is split.
ALLOWED_LONG = {}


def modules(root: Path, package: str = "augment") -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``package`` under ``root``."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules ``name`` imports (anywhere in the file: lazy and TYPE_CHECKING imports too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a module: the longest known prefix
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def graph(root: Path, package: str = "augment") -> dict[str, set[str]]:
    known = modules(root, package)
    return {name: imports(name, path, known) for name, path in known.items()}


def room(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ROOMS) else None


def direction_violations(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for name, targets in sorted(edges.items()):
        mine = room(name)
        for target in sorted(targets):
            theirs = room(target)
            if mine in FORBIDDEN and theirs in FORBIDDEN[mine]:
                bad.append(f"{name} imports {target} ({mine}/ must not import {theirs}/)")
            elif mine == "storage" and theirs is None and target not in TOP_LEVEL:
                bad.append(f"{name} imports {target} (storage/ imports no other room)")
    return bad


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle (strongly connected component of more than one module, or a self-import)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; the package is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def long_files(root: Path, package: str = "augment") -> list[str]:
    lengths = {p.relative_to(root).as_posix(): len(p.read_text().splitlines()) for p in modules(root, package).values()}
    return [f"{f}: {n} lines" for f, n in sorted(lengths.items()) if n > MAX_LINES and f not in ALLOWED_LONG]


def test_rooms_import_only_in_the_direction_of_the_flow():
    assert direction_violations(graph(ROOT)) == []


def test_no_import_cycle_between_modules():
    assert cycles(graph(ROOT)) == []


def test_no_module_over_400_lines_but_the_ones_being_split():
    assert long_files(ROOT) == []
    assert all((ROOT / f).is_file() for f in ALLOWED_LONG), "an allowance names a file that is gone: remove it"


def test_every_module_lives_in_a_room_or_is_a_known_top_level_one():
    top = {name for name in modules(ROOT) if room(name) is None}
    assert top == TOP_LEVEL | {"augment.cli", "augment.config", "augment.demo"}


def top_imports(path: Path) -> set[str]:
    """The absolute module names a file imports (anywhere in it)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out |= {node.module}
    return out


def test_bench_imports_the_product_the_test_support_and_itself_by_package():
    own = {p.stem for p in (ROOT / "bench").glob("*.py")}
    bad = {
        f"{path.name}: {name}"
        for path in sorted((ROOT / "bench").glob("*.py"))
        for name in top_imports(path)
        if name.split(".")[0] in own or (name.split(".")[0] == "tests" and not name.startswith("tests.support"))
    }
    assert bad == set()


def test_only_the_benchs_own_tests_import_bench():
    importers = {
        p.name for p in (ROOT / "tests").rglob("*.py") if any(n.split(".")[0] == "bench" for n in top_imports(p))
    }
    assert importers <= {"test_quality_bench.py"}


def test_the_checks_catch_a_wrong_import_a_cycle_and_a_long_file(tmp_path: Path):
    pkg = tmp_path / "augment"
    for room_name in ("render", "run", "storage", "plan"):
        (pkg / room_name).mkdir(parents=True)
        (pkg / room_name / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "config.py").write_text("")
    (pkg / "render" / "engine.py").write_text("from augment.run import pool\n")
    (pkg / "run" / "pool.py").write_text("def f():\n    from augment.render.engine import x\n")
    (pkg / "storage" / "files.py").write_text("import augment.config\n")
    (pkg / "plan" / "tasks.py").write_text("from . import index\n" + "x = 1\n" * (MAX_LINES + 1))
    (pkg / "plan" / "index.py").write_text("from .tasks import x\n")
    edges = graph(tmp_path)
    assert direction_violations(edges) == [
        "augment.render.engine imports augment.run.pool (render/ must not import run/)",
        "augment.storage.files imports augment.config (storage/ imports no other room)",
    ]
    assert cycles(edges) == [
        ["augment.plan.index", "augment.plan.tasks"],
        ["augment.render.engine", "augment.run.pool"],
    ]
    assert long_files(tmp_path) == [f"augment/plan/tasks.py: {MAX_LINES + 2} lines"]
