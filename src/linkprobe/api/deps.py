"""The routes' dependencies: what create_app puts on `app.state`, each as an `Annotated` type.

A route names what it needs in its signature (`store: StoreDep`, `task: FoundTask`), so routes
live at module level and the app is the one place that decides which store, settings and
quotas they use (and tests may swap one with `app.dependency_overrides`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from linkprobe.api.quotas import Quotas
from linkprobe.api.security import Authenticator, Principal
from linkprobe.metrics import Metrics
from linkprobe.settings import Settings
from linkprobe.store import Store, TaskRecord


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_quotas(request: Request) -> Quotas:
    quotas: Quotas = request.app.state.quotas
    return quotas


def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def caller(request: Request) -> Principal:
    """The caller (api.security.Authenticator): 401 without a valid key when keys are required."""
    auth: Authenticator = request.app.state.auth
    return await auth(request)


async def admin(request: Request) -> Principal:
    """The caller of an operator-only route (/metrics): the admin key, or no auth on loopback."""
    auth: Authenticator = request.app.state.auth
    return await auth.admin(request)


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
QuotasDep = Annotated[Quotas, Depends(get_quotas)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
Caller = Annotated[Principal, Depends(caller)]


async def found_task(task_id: str, store: StoreDep, who: Caller) -> TaskRecord:
    """The task of the path if the caller may see it: another owner's task is as unknown as a
    missing one (404)."""
    record = await store.get_task(task_id)
    if record is None or not who.sees(record):
        raise HTTPException(404, f"task {task_id} not found")
    return record


FoundTask = Annotated[TaskRecord, Depends(found_task)]
