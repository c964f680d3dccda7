"""Bounds on connections that uvicorn leaves open: a deadline for request headers, and for body bytes.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`) and answers 503 beyond
`limit_concurrency`, but a connection that never finishes its request headers (slowloris), or
that opens and sends nothing, stays open for ever: `HeaderDeadline` closes it. `BodyDeadline`
answers 408 when a request body stops arriving.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from linkprobe.api.security import ASGIApp, Message, Receive, Scope, Send


class BodyTimeout(Exception):
    """The client stopped sending its request body (answered 408)."""


def header_deadline(seconds: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing connections that take over `seconds` to send request headers."""

    class HeaderDeadline(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._between_requests():
                if self._deadline is None:  # the first bytes of the next request start its clock
                    self._arm()
            else:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _between_requests(self) -> bool:
            cycle: Any = self.cycle
            return cycle is None or bool(cycle.response_complete)

        def _arm(self) -> None:
            self._deadline = self.loop.call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if self._between_requests() and not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadline


class BodyDeadline:
    """Each read of the request body waits at most `seconds` for the client (then BodyTimeout)."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        complete = False

        async def bounded() -> Message:
            nonlocal complete
            if complete:  # later reads wait for the disconnect (event streams): no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.seconds)
            except TimeoutError:
                raise BodyTimeout(f"no request body bytes for {self.seconds:g}s") from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, bounded, send)
