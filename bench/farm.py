"""The benchmark's target farm: a minimal keep-alive HTTP/1.1 responder on every loopback address.

Deliberately tiny (no framework) so that the client, not the farm, is the bottleneck.
Run as `python bench/farm.py PORT`; prints "ready" when listening.

Every path answers 200 "ok" at once, except:
- `/slow/...`: answered after SLOW_DELAY_S (100 ms, `loop.call_later`), the latency-bound workload
  of bench/probe.py. The requests of one read are answered together, so a pipelining client
  would see a fast request that follows a slow one on its connection wait as long (no client of
  the benches pipelines);
- `/stats`: "REQUESTS CONNECTIONS", the requests answered (this one included, as nginx's
  stub_status counts) and the connections accepted so far: what the server saw of a contender
  (bench/probe.py).
"""

from __future__ import annotations

import asyncio
import sys
from typing import cast

import uvloop

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
SLOW_PREFIX = b"/slow/"
SLOW_DELAY_S = 0.1
STATS = b"/stats"
counts = {"requests": 0, "connections": 0}


def stats_response() -> bytes:
    body = f"{counts['requests']} {counts['connections']}".encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


class Responder(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.buffer = b""
        counts["connections"] += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer:
            return
        *heads, self.buffer = self.buffer.split(b"\r\n\r\n")  # GET/HEAD only: no request bodies
        answers, slow = [], False
        for head in heads:
            path = head.split(b" ", 2)[1]  # the request line: METHOD PATH VERSION
            counts["requests"] += 1
            if path == STATS:
                answers.append(stats_response())
                continue
            slow = slow or path.startswith(SLOW_PREFIX)
            answers.append(RESPONSE)
        if slow:
            asyncio.get_running_loop().call_later(SLOW_DELAY_S, self.write, b"".join(answers))
        else:
            self.transport.write(b"".join(answers))

    def write(self, data: bytes) -> None:
        if not self.transport.is_closing():  # the client may have gone meanwhile
            self.transport.write(data)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Responder, "0.0.0.0", port, backlog=4096, reuse_port=True)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
