"""List the model versions the service can run."""

from __future__ import annotations

from fastapi import APIRouter

from ... import service
from ...core.problem import problem_responses
from ...schemas import ModelsPublic
from ..deps import ClientDep, RegistryDep

__all__ = ["router"]

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", response_model=ModelsPublic, responses=problem_responses(401, 413, 429, 500, 503))
def list_models(registry: RegistryDep, client: ClientDep) -> ModelsPublic:
    """Available model versions with their validation scores; ``champion`` is served by default."""
    return service.list_models(registry=registry)
