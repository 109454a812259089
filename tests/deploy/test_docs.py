"""The README's deployment section names only commands, files and objects that exist."""

from __future__ import annotations

import re

from .contract import ROOT, cli_commands, deployment_docs


def test_octopi_serve_commands_in_the_docs_exist():
    used = set(re.findall(r"\boctopi-serve ([a-z][a-z-]*)", deployment_docs()))
    assert used, "the docs should show the commands to run"
    assert used <= cli_commands(), f"not octopi-serve subcommands: {sorted(used - cli_commands())}"


def test_repository_paths_in_the_docs_exist():
    text = deployment_docs()
    paths = set(re.findall(r"`((?:docker|k8s|tests|octopi_core)/[\w./-]+)`", text))
    paths |= set(re.findall(r"\b(k8s/overlays/[\w-]+)", text))
    assert paths, "the docs should point at the files they describe"
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"README.md (Deployment) names missing paths: {missing}"
