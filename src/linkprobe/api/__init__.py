"""The HTTP API: a thin FastAPI shell over the store (and, embedded, the engine and worker)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import AsyncIterator
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from linkprobe import __version__
from linkprobe.api import ops, runs, schedules, tasks
from linkprobe.api.connections import BodyDeadline, BodyTimeout
from linkprobe.api.models import Submit, TaskCreate
from linkprobe.api.quotas import Quotas
from linkprobe.api.security import Authenticator, Guard
from linkprobe.engine import Engine
from linkprobe.metrics import Metrics
from linkprobe.settings import Settings
from linkprobe.store import Store, StoreUnavailable
from linkprobe.store.accounts import KeyStore, open_keys
from linkprobe.ui import mount_ui
from linkprobe.worker import Worker, shared_settings, start_processes, stop_processes

log = logging.getLogger("linkprobe.api")


def create_app(
    settings: Settings, store: Store, embedded_worker: bool = True, keys: KeyStore | None = None
) -> FastAPI:
    """The app. With `embedded_worker` the same process also probes (linkprobe serve)."""
    metrics = Metrics()
    keys = keys or open_keys(settings)
    auth = Authenticator(settings, keys)
    workers: list[Worker] = []  # the embedded one, once started: /readyz asks it too
    processes: list[tuple[list[BaseProcess], Path]] = []  # serve's worker processes, where they report

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.open()
        await keys.open()
        if not auth.required:
            log.warning("authentication is off: anyone who reaches %s may use the API", settings.host)
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(schedules.scheduling(store, settings, app.state.quotas))
            if embedded_worker:
                log.info("egress policy: %s", settings.egress_policy())
            if embedded_worker and settings.worker_processes:
                # Off the API's event loop: the store is open (the file's lock held, start-up done)
                shared = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="linkprobe-")))
                metrics.probes.shared = shared
                shares = shared_settings(settings, settings.worker_processes)
                children = start_processes(shares, settings.worker_processes, shared)
                processes.append((children, shared))
                stack.callback(stop_processes, children)
            elif embedded_worker:
                engine = await stack.enter_async_context(Engine(settings.engine_config()))
                worker = Worker(store, engine, settings.workers, metrics, settings.reclaim_idle_s / 3)
                stack.push_async_callback(worker.shutdown, asyncio.create_task(worker.run()))
                workers.append(worker)
            yield
        await keys.close()
        await store.close()

    app = FastAPI(
        title="linkprobe",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # the self-hosted Swagger UI (linkprobe.ui) replaces FastAPI's CDN-based page
        redoc_url=None,
        description="Submit URLs as a task, follow progress, read typed per-URL results.",
    )
    app.state.store, app.state.settings, app.state.quotas = store, settings, Quotas(settings)
    app.state.auth, app.state.metrics = auth, metrics
    app.state.workers, app.state.processes = workers, processes  # filled by the lifespan
    for router in (tasks.router, ops.router, runs.router, schedules.router):
        app.include_router(router)
    app.add_middleware(BodyDeadline, seconds=settings.body_timeout_s)
    app.add_middleware(Guard, settings=settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"], expose_headers=["Location"],
        )  # fmt: skip
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    @app.exception_handler(StoreUnavailable)
    async def unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse({"detail": f"store unavailable: {exc}"}, status_code=503)

    @app.exception_handler(BodyTimeout)
    async def slow_body(request: Request, exc: BodyTimeout) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=408, headers={"Connection": "close"})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    mount_ui(app)
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema plus the request bodies that routes read by hand (several media types)."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (TaskCreate, Submit):
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(body.pop("$defs", {}))
            components[model.__name__] = body
        _declare_keys(schema)
        app.openapi_schema = schema
    return app.openapi_schema


def _declare_keys(schema: dict[str, Any]) -> None:
    """The API key (Authorization: Bearer) on the routes that take one, so that clients and the
    Swagger UI at /docs (its Authorize button) know to send it. Checked by Authenticator, not here."""
    schema["components"]["securitySchemes"] = {
        "apiKey": {"type": "http", "scheme": "bearer", "description": "A key from `linkprobe keys create`."}
    }
    for path, operations in schema["paths"].items():
        if path.startswith("/api/v1/") or path == "/metrics":
            for operation in operations.values():
                operation["security"] = [{"apiKey": []}]
