"""Package boundaries, read from the source (AST imports): product code never imports the demo/test support
package, and the data and model sides never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package, forbidden", [
    ("vidrd_data", ("vidrd_testing", "vidrd_model")),
    ("vidrd_model", ("vidrd_testing", "vidrd_data")),
])
def test_product_packages_do_not_import_support_or_each_other(package, forbidden):
    files = sorted((REPO / package).rglob("*.py"))
    assert files, package
    bad = [f"{f.relative_to(REPO)} imports {name}" for f in files for name in sorted(_imports(f))
           if name.split(".")[0] in forbidden]
    assert not bad, "\n".join(bad)


def test_support_package_holds_the_demo_and_test_machinery():
    names = {p.stem for p in (REPO / "vidrd_testing").glob("*.py")}
    assert {"demo_data", "demo_videos", "demo_videos_long", "tiny_models", "cluster"} <= names
    for gone in ("demo_data.py", "demo_videos.py", "demo_videos_long.py", "models/tiny.py"):
        assert not (REPO / "vidrd_data" / gone).exists(), gone
