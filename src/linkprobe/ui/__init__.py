"""The web UI and the Swagger UI, served from the built assets this package ships (no CDN, no node).

The sources live in `ui/` at the repository root; `make ui` rebuilds `static/` from them.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def mount_ui(app: FastAPI) -> None:
    """`/` is the web UI, `/docs` the self-hosted Swagger UI, `/ui/*` their assets."""

    @app.get("/", include_in_schema=False)
    async def home() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(STATIC / "docs.html")

    app.mount("/ui", StaticFiles(directory=STATIC), name="ui")
