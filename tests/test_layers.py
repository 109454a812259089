"""Layers import downwards only: octopi_serve -> app -> worker.jobs -> octopi_core; worker -> octopi_core.

Every import of every module is read with ``ast`` (``import x``, ``from x import y``, imports inside
functions, relative imports resolved), so a lazy import that points upwards fails here too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]
_PACKAGES = ("octopi_core", "app", "worker", "octopi_serve")


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def imported_names(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Absolute dotted names that ``source`` (the text of ``module``) imports, anywhere in the file.

    ``from x import y`` yields ``x.y`` (y may be a submodule); relative imports are resolved against
    ``module`` (``is_package``: the source is the package's ``__init__``).
    """
    package = module if is_package else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def violations(module: str, imported: Iterable[str]) -> list[str]:
    """The imports of ``module`` that point to a higher layer (empty when it imports downwards only)."""
    bad = []
    for name in sorted(imported):
        if _within(module, "octopi_core"):
            wrong = any(_within(name, p) for p in ("app", "worker", "octopi_serve"))
        elif _within(module, "worker.jobs"):
            wrong = any(_within(name, p) for p in ("app", "octopi_serve")) or (
                _within(name, "worker") and not _within(name, "worker.jobs")
            )
        elif _within(module, "worker"):
            wrong = any(_within(name, p) for p in ("app", "octopi_serve"))
        elif _within(module, "app"):
            wrong = _within(name, "octopi_serve") or (
                _within(name, "worker") and not _within(name, "worker.jobs")
            )
        else:
            wrong = False
        if wrong:
            bad.append(f"{module} imports {name}")
    return bad


def _modules() -> list[tuple[str, Path]]:
    found = []
    for package in _PACKAGES:
        for path in sorted((_ROOT / package).rglob("*.py")):
            parts = path.relative_to(_ROOT).with_suffix("").parts
            found.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return found


def test_every_package_has_modules():
    names = {module for module, _ in _modules()}
    assert {"octopi_core.cli", "app.main", "worker.jobs.state", "worker.tasks", "octopi_serve.cli"} <= names


@pytest.mark.parametrize("module, path", _modules(), ids=[module for module, _ in _modules()])
def test_layers_import_downwards_only(module, path):
    imported = imported_names(path.read_text(), module, is_package=path.name == "__init__.py")
    assert violations(module, imported) == []


# -- the checker itself --------------------------------------------------------------------------------------


def test_imports_inside_functions_and_relative_imports_are_seen():
    source = (
        "import os.path\n"
        "from . import keys\n"
        "from ..tasks import pick_particles\n"
        "def lazy():\n"
        "    from app.client import Client\n"
    )
    assert imported_names(source, "worker.jobs.fake") == {
        "os.path",
        "worker.jobs.keys",
        "worker.tasks.pick_particles",
        "app.client.Client",
    }
    assert imported_names("from .state import JobRecord", "worker.jobs", is_package=True) == {
        "worker.jobs.state.JobRecord"
    }


@pytest.mark.parametrize(
    "module, source",
    [
        ("octopi_core.fake", "def f():\n    from worker.main import run_worker\n"),
        ("octopi_core.fake", "import octopi_serve.stack\n"),
        ("worker.fake", "from app.schemas import JobPublic\n"),
        ("worker.jobs.fake", "from ..model_cache import ModelCache\n"),
        ("worker.jobs.fake", "from worker import tasks\n"),
        ("app.fake", "from worker.heartbeat import Heartbeat\n"),
        ("app.fake", "from octopi_serve.client import OctopiClient\n"),
    ],
)
def test_an_upward_import_is_a_violation(module, source):
    assert violations(module, imported_names(source, module)) != []


@pytest.mark.parametrize(
    "module, source",
    [
        ("app.fake", "from worker.jobs import stats\nfrom worker.jobs.state import JobStatus\n"),
        ("app.fake", "from worker import jobs\n"),
        ("worker.fake", "from .jobs.keys import job_key\nfrom octopi_core.registry import Registry\n"),
        ("octopi_serve.fake", "from app.server import run_gateway\nfrom worker.main import run_worker\n"),
    ],
)
def test_a_downward_import_is_allowed(module, source):
    assert violations(module, imported_names(source, module)) == []
