"""The house has floors: a lower app never imports a higher one, and every late import says why.

The floors are the import-linter contract in pyproject.toml (drawn in the README, "The house").
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = [
    "accounts",
    "registry",
    "protocols",
    "review",
    "audit",
    "analytics",
    "casebook",
    "api",
    "exchange",
    "demo",
]


def test_no_app_imports_a_floor_above_it():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def _late_imports(path: Path) -> list[tuple[int, str]]:
    """Imports inside functions with no comment on their line or above their group of imports."""
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.Import | ast.ImportFrom):
                here, above = lines[inner.lineno - 1], inner.lineno - 2
                while lines[above].strip().startswith(("from ", "import ")) or not lines[above].strip():
                    above -= 1
                if "#" not in here and not lines[above].strip().startswith("#"):
                    found.append((inner.lineno, here.strip()))
    return found


@pytest.mark.parametrize("app", APPS)
def test_every_import_inside_a_function_says_why(app):
    unexplained = {
        f"{path.relative_to(ROOT)}:{line}": text
        for path in sorted((ROOT / app).rglob("*.py"))
        if "migrations" not in path.parts
        for line, text in _late_imports(path)
    }
    assert not unexplained, unexplained


def test_the_readme_draws_the_floors_of_the_contract():
    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    drawing = readme.split("## The house: apps in floors", 1)[1].split("```")[1].strip().splitlines()
    assert [line.split("   ")[0].strip() for line in drawing] == contract["layers"]
