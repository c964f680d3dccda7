"""A handle's request method: a POST with a body (webhooks), then GET again on the same handle."""

from __future__ import annotations

from linkprobe.engine import EgressPolicy
from linkprobe.engine.handle import Limits
from linkprobe.engine.transport import Transport
from tests.conftest import Target


async def test_a_post_on_a_reused_handle_leaves_the_next_request_a_get(target: Target) -> None:
    transport = Transport(EgressPolicy(allow_private=True), Limits(1, 1))
    handle = transport.handle()
    url = target.url("/count/post-then-get")  # a GET-only route: a POST is answered 405
    try:
        handle.start(url, False, [], 5, 5, True, 1024, None)
        handle.post(b'{"a": 1}')
        assert await transport.send(handle) == (0, "") and handle.status == 405
        handle.start(url, False, [], 5, 5, True, 1024, None)
        assert await transport.send(handle) == (0, "") and handle.status == 200
        assert target.hits["/count/post-then-get"] == 1  # only the GET reached the route
    finally:
        transport.release(handle)
        transport.close()
