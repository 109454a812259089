"""Collects the routers."""

from fastapi import APIRouter

from .routes import health, jobs, models

__all__ = ["api_router"]

api_router = APIRouter()
api_router.include_router(jobs.router)
api_router.include_router(models.router)
api_router.include_router(health.router)
