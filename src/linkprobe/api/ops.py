"""The operator's routes: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from multiprocessing.process import BaseProcess
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from linkprobe.api.deps import MetricsDep, StoreDep, admin
from linkprobe.worker import Worker, process_problems

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Store not ready, and why"}})
async def readyz(request: Request, store: StoreDep) -> JSONResponse:
    problem = await store.problem()  # e.g. "disk full: ...", "database file ... is missing"
    workers: list[Worker] = request.app.state.workers
    processes: list[tuple[list[BaseProcess], Path]] = request.app.state.processes
    problem = problem or next((p for p in worker_problems(workers, processes) if p is not None), None)
    if problem is None:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not ready", "detail": problem}, status_code=503)


@router.get(
    "/metrics", response_class=Response, dependencies=[Depends(admin)],
    responses={401: {"description": "API key missing"}, 403: {"description": "Not the admin key"}},
)  # fmt: skip
async def prometheus(store: StoreDep, metrics: MetricsDep) -> Response:
    """Prometheus metrics: the admin key only (or no key when authentication is off)."""
    return Response(metrics.render(await store.stats()), media_type="text/plain; version=0.0.4")


def worker_problems(
    workers: list[Worker], processes: list[tuple[list[BaseProcess], Path]]
) -> list[str | None]:
    """What is wrong with the workers of this service: the embedded one, or serve's processes."""
    return [w.problem() for w in workers] + [p for c, d in processes for p in process_problems(c, d)]
