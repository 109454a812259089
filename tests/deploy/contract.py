"""What the code offers to the deployment files: env names, CLI commands, routes, metrics, version.

Every manifest, Dockerfile and docker-compose.yml check compares against these, so a renamed setting,
subcommand, route or metric breaks a test here instead of a pod on a cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import os
import re
import tomllib
from pathlib import Path
from unittest import mock

from pydantic import AliasChoices

from octopi_core.settings import Settings
from octopi_serve.cli import build_parser

__all__ = [
    "ROOT",
    "AWS_ENV_NAMES",
    "project_version",
    "settings_env_names",
    "settings_from_env",
    "parse_cli",
    "cli_commands",
    "route_status",
    "exported_metric_names",
]

ROOT = Path(__file__).resolve().parents[2]

# Read by botocore/s3fs (credentials, region, endpoint), not by Settings; the endpoint names are also
# Settings aliases.
AWS_ENV_NAMES = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    }
)


def project_version() -> str:
    """``[project].version`` of pyproject.toml: the tag of every image built here."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def settings_env_names() -> frozenset[str]:
    """Environment variables :class:`Settings` reads: ``OCTOPI_<FIELD>`` or the field's upper-case aliases."""
    prefix = Settings.model_config.get("env_prefix", "")
    names = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str) and choice.isupper())
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{field_name}".upper())
    return frozenset(names)


def settings_from_env(env: dict[str, str]) -> Settings:
    """Settings as a process with exactly ``env`` would read them (no ``.env`` file, nothing inherited).

    Raises:
        pydantic.ValidationError: a value the service would refuse at start-up.
    """
    with mock.patch.dict(os.environ, env, clear=True):
        return Settings(_env_file=None)


def cli_commands() -> frozenset[str]:
    """Subcommands of ``octopi-serve``."""
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return frozenset(action.choices)
    return frozenset()


def parse_cli(argv: list[str]) -> argparse.Namespace:
    """Parse ``octopi-serve <argv>`` as the console script would.

    Raises:
        AssertionError: argparse refused the arguments; its message is included.
    """
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return build_parser().parse_args(argv)
    except SystemExit:
        command = " ".join(argv)
        raise AssertionError(f"`octopi-serve {command}` is refused: {stderr.getvalue().strip()}") from None


@functools.lru_cache(maxsize=1)
def _gateway_client():
    from fastapi.testclient import TestClient

    from app.main import create_app

    # Nothing listens on port 9 of the loopback: routes that need Redis fail fast (503), none hang.
    return TestClient(create_app(settings_from_env({"REDIS_URL": "redis://127.0.0.1:9/0"})))


def route_status(path: str) -> int:
    """Status of ``GET path`` on the gateway built by ``app.main.create_app``, with Redis unreachable.

    404 or 405 means the gateway has no such GET route; anything else (200, or 503 for a route that needs
    Redis) means it has.
    """
    return _gateway_client().get(path).status_code


def exported_metric_names() -> frozenset[str]:
    """Names of the gauges, counters and histograms on the gateway's /metrics (from app/core/metrics.py)."""
    source = (ROOT / "app" / "core" / "metrics.py").read_text()
    return frozenset(re.findall(r'"(octopi_[a-z0-9_]+)"', source))


def deployment_docs() -> str:
    """The README's "## Deployment" section, up to the next second-level heading."""
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Deployment\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]
