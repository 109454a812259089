import subprocess
import sys

import pytest

from octopi_core import cli as core_cli
from octopi_serve import cli

_DOMAIN = [
    "predict",
    "evaluate",
    "generate",
    "demo",
    "train",
    "tune",
    "promote",
    "retrain",
    "models",
    "rollback",
]
_SERVICE = ["serve", "gateway", "worker", "submit"]


def test_help_lists_the_domain_and_the_service_commands():
    result = subprocess.run(
        [sys.executable, "-m", "octopi_serve.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for command in _DOMAIN + _SERVICE:
        assert f"    {command} " in result.stdout, command


def test_the_domain_library_parses_only_its_own_commands(capsys):
    assert core_cli.build_parser().parse_args(["models", "--registry", "r"]).command == "models"
    with pytest.raises(SystemExit):
        core_cli.build_parser().parse_args(["serve"])
    assert "invalid choice: 'serve'" in capsys.readouterr().err


def test_domain_commands_run_in_octopi_core_with_its_error_handling(capsys, tmp_path):
    code = cli.main(["evaluate", str(tmp_path / "missing.json"), str(tmp_path / "truth.json")])
    assert code == 2 and "octopi-serve evaluate: error:" in capsys.readouterr().err


def test_submit_without_a_service_is_a_one_line_error(capsys):
    code = cli.main(["submit", "/data/t.mrc", "--server", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach the service" in err and "Traceback" not in err


def test_the_console_script_is_octopi_serve_cli():
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["octopi-serve"] == "octopi_serve.cli:main"
