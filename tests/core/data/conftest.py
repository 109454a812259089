"""The copick project written by copick itself (tests/fixtures/copick), copied per test with absolute roots."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "copick"
COPICK_PYTHON = Path(__file__).resolve().parents[3] / ".venv-copick" / "bin" / "python"


def write_config(path: Path, *, overlay: Path, static: Path | None = None) -> Path:
    """The fixture's config with its roots at ``overlay`` (and ``static``), written to ``path``."""
    config = json.loads((FIXTURES / "project" / "copick_config.json").read_text())
    config["overlay_root"] = f"local://{overlay}"
    if static is not None:
        config["static_root"] = f"local://{static}"
    path.write_text(json.dumps(config, indent=4))
    return path


@pytest.fixture
def copick_project(tmp_path: Path) -> Path:
    """A copy of the fixture project; returns its config (absolute ``local://`` overlay root)."""
    root = tmp_path / "project"
    shutil.copytree(FIXTURES / "project", root)
    return write_config(root / "copick_config.json", overlay=root)
