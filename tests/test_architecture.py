"""The house has floors: a lower app never imports a higher one, and every late import says why.

The floors are the import-linter contract in pyproject.toml (drawn in the README, "The house").
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = [
    "accounts",
    "registry",
    "jobs",
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


#: Names the framework calls, not our code: Django/DRF/knox/axes/simple-history hooks and overrides.
FRAMEWORK_HOOKS = [
    *("Meta", "Command", "add_arguments", "handle", "ready", "*Config", "__*__"),
    *("clean", "clean_*", "get_*", "has_*", "validate", "validate_*", "save", "delete", "lookups"),
    *("save_model", "delete_model", "delete_queryset", "save_formset", "formfield_for_*", "queryset"),
    *("changelist_view", "change_view", "add_view", "history_view", "history_form_view", "response_*"),
    *("to_representation", "to_internal_value", "create", "update", "perform_*", "run_validation"),
    *("list", "retrieve", "destroy", "partial_update", "post", "put", "patch", "dispatch", "render"),
    *("authenticate", "authenticate_credentials", "_cleanup_token", "has_module_perms", "has_perm"),
    *("process_exception", "process_view"),  # middleware hooks
    "_get_session_from_db",  # a session store's read (accounts.sessions.SessionStore)
    *("label_from_instance", "value_from_datadict", "to_python", "from_db_value", "get_prep_value"),
    *("deconstruct", "user_locked_out", "user_login_failed", "reset_attempts", "is_allowed"),
    "RegistryTokenScheme",  # drf-spectacular finds its extensions by subclassing
]
FRAMEWORK_DECORATORS = [
    *(
        "@admin.*",
        "@receiver",
        "@register.*",
        "@*.register",
        "@register",
        "@checks.register",
        "@rule",
        "@action",
    ),
    *("@api_view", "@extend_schema*", "@require_*", "@login_required", "@property", "@cached_property"),
    "@*.setter",
]


def test_no_dead_functions_classes_or_methods():
    """vulture over the apps (not the tests: code only the tests call is dead too). Names that a
    template or a string names (settings' dotted paths, getattr) count as used."""
    import vulture  # imported here: a test-only tool, not needed by the rest of this module

    sources = [path for app in [*APPS, "config"] for path in (ROOT / app).rglob("*.py")]
    sources = [path for path in sources if "migrations" not in path.parts]
    scan = vulture.Vulture(ignore_names=FRAMEWORK_HOOKS, ignore_decorators=FRAMEWORK_DECORATORS)
    scan.scavenge([str(path) for path in sources])
    named = set()
    for template in (ROOT / "templates").rglob("*.html"):
        named |= set(re.findall(r"\w+", template.read_text(encoding="utf-8")))
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                named |= set(re.findall(r"\w+", node.value))
    dead = sorted(
        f"{Path(item.filename).relative_to(ROOT)}:{item.first_lineno} {item.typ} {item.name}"
        for item in [*scan.unused_funcs, *scan.unused_classes, *scan.unused_methods, *scan.unused_props]
        if item.name not in named
    )
    assert not dead, dead


@pytest.mark.parametrize("app", APPS)
def test_every_module_imports(app):
    """A module no test happens to reach (a management command, a view of a rare page) still imports:
    removing a name must not leave an import of it behind."""
    package = importlib.import_module(app)
    for module in pkgutil.walk_packages(package.__path__, f"{app}."):
        if ".migrations" not in module.name:
            importlib.import_module(module.name)


def test_the_system_checks_find_no_issue():
    """Django's system checks and the project's own (each model declares its review section, its way to
    the site and its history: ``registry.checks``), as ``manage.py check`` runs them, warnings included.
    They run here, in a worker that has Django loaded already, instead of in a process of their own
    ahead of the suite in ``make test`` (5 s of the suite's wall time)."""
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("check", fail_level="WARNING", stdout=out)
    assert out.getvalue().strip() == "System check identified no issues (0 silenced)."
