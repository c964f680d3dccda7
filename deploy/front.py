"""The front for the local topology (nginx's role in compose): the built web UI and a reverse proxy.

`python deploy/front.py PORT UPSTREAM_PORT... [--static DIR]` listens on 127.0.0.1:PORT, serves the
UI (`/` and `/ui/*`, from the assets the linkprobe package ships, with the same security headers as
deploy/front/nginx.conf) and hands every other path (`/api`, `/docs`, `/openapi.json`, health,
metrics) to the next API replica on 127.0.0.1, skipping replicas that refuse. Bodies stream both
ways, so uploads and server-sent events pass unbuffered.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from aiohttp import ClientConnectorError, ClientResponse, ClientSession, ClientTimeout, web

from linkprobe.ui import STATIC

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def ui_routes(static: Path) -> list[web.AbstractRouteDef]:
    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(static / "index.html", headers=HEADERS)

    return [web.get("/", index), web.static("/ui", static)]


def proxy(app: web.Application, upstreams: list[int]) -> web.RouteDef:
    turn = itertools.cycle(upstreams)
    session: list[ClientSession] = []

    async def close(_: web.Application) -> None:
        for open_session in session:
            await open_session.close()

    app.on_cleanup.append(close)

    async def forward(request: web.Request) -> web.StreamResponse:
        if not session:  # created inside the running loop; auto_decompress off: bytes pass unchanged
            session.append(ClientSession(auto_decompress=False, timeout=ClientTimeout(total=None)))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = request.content if request.body_exists else None
        for _ in upstreams:
            url = f"http://127.0.0.1:{next(turn)}{request.rel_url}"
            try:
                upstream = await session[0].request(
                    request.method, url, headers=headers, data=body, allow_redirects=False
                )
                break
            except ClientConnectorError:
                continue  # this replica is down: try the next one
        else:
            return web.json_response({"detail": "no API replica is reachable"}, status=502)
        return await relay(request, upstream)

    return web.route("*", "/{path:.*}", forward)


async def relay(request: web.Request, upstream: ClientResponse) -> web.StreamResponse:
    async with upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in upstream.headers.items():
            if name.lower() not in HOP_BY_HOP:
                response.headers.add(name, value)
        await response.prepare(request)
        async for data in upstream.content.iter_any():
            await response.write(data)
        await response.write_eof()
    return response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("upstreams", type=int, nargs="+")
    parser.add_argument("--static", type=Path, default=STATIC, help="the built UI (default: the package's)")
    args = parser.parse_args()
    app = web.Application(client_max_size=0)
    app.add_routes([*ui_routes(args.static), proxy(app, args.upstreams)])
    print(f"front on 127.0.0.1:{args.port} -> {args.upstreams}", flush=True)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
