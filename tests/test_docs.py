"""The README and the docs/ site: links that resolve, a parameter reference that matches the code, charts that
show the tables' numbers. (`make docs` builds the site in strict mode, which checks the links between pages.)"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import docs_reference  # noqa: E402

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """The anchor MkDocs gives a heading (Python-Markdown's toc slugify, on the heading's text)."""
    text = re.sub(r"[`*]", "", heading)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {slug(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def test_slug_is_mkdocs_own() -> None:
    assert slug("Incremental refresh: `--since`") == "incremental-refresh-since"
    assert slug("When EI imports the output (file/directory mode)") == "when-ei-imports-the-output-filedirectory-mode"


def test_every_readme_link_into_the_repo_resolves() -> None:
    targets = [t for t in LINK.findall((ROOT / "README.md").read_text()) if not re.match(r"[a-z]+://", t)]
    assert len(targets) >= 15
    for target in targets:
        path, _, anchor = target.partition("#")
        page = ROOT / path
        assert page.is_file(), f"README links to {path}, which does not exist"
        if anchor:
            assert anchor in anchors(page), f"README links to {target}: no heading there makes #{anchor}"


def test_readme_stays_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) < 12_000
    assert readme.index("make demo") < 200 and readme.index("make test") < 300  # the two commands come first


def test_parameter_reference_is_what_the_code_says() -> None:
    assert docs_reference.main(["--check"]) == 0, "docs/parameters.md is stale: run `make docs`"
    page = (ROOT / "docs/parameters.md").read_text()
    for flag in ("--preset", "--orientation", "--copies", "--dest", "--since", "--shard-count", "--upload-label"):
        assert f"| `{flag}` |" in page
    preview = next(line for line in page.splitlines() if line.startswith("| `--preview` |"))
    assert "| `0` |" in preview and "default `1` in Studio" in preview  # EI's default differs from the CLI's
    bucket = next(line for line in page.splitlines() if line.startswith("| `--bucket` |"))
    assert "standalone block only: **Source bucket**" in bucket


def test_parameter_reference_refuses_a_parameter_the_code_does_not_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = json.loads((ROOT / "parameters.json").read_text())
    spec["parameters"].append({"name": "Ghost", "type": "string", "value": "", "param": "ghost", "help": "?"})
    (tmp_path / "parameters.json").write_text(json.dumps(spec))
    monkeypatch.setitem(docs_reference.BLOCKS, "directory block", tmp_path / "parameters.json")
    with pytest.raises(SystemExit, match="ghost"):
        docs_reference.render()


def test_images_the_docs_show_are_committed() -> None:
    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    shown = {
        (p.parent / t).resolve()
        for p in pages
        for t in LINK.findall(p.read_text())
        if t.startswith(("docs/", "images/"))
    }
    images = {p for p in shown if p.suffix in (".png", ".jpg")}
    assert len(images) >= 8
    assert all(p.is_file() for p in images), sorted(str(p) for p in images if not p.is_file())
