"""The front for the local topology (nginx's role in compose): a round-robin TCP proxy.

`python deploy/front.py PORT UPSTREAM_PORT...` listens on 127.0.0.1:PORT and hands each
connection to the next upstream on 127.0.0.1, skipping upstreams that refuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(ConnectionError, OSError):
        writer.close()


async def serve(port: int, upstreams: list[int]) -> None:
    turn = itertools.cycle(upstreams)

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        for _ in upstreams:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", next(turn))
                break
            except OSError:
                continue
        else:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, up_writer), pipe(up_reader, client_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print(f"front on 127.0.0.1:{port} -> {upstreams}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), [int(p) for p in sys.argv[2:]]))
