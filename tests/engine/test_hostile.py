"""No server can bully the probe: floods of interim responses and headers are refused early, and
the probing process's peak memory stays near that of probing a well-behaved server.

The probe runs in a child process so that its peak memory is its own, not the test runner's; the
hostile servers run in the test's event loop. The child reports VmHWM (peak RSS of its own address
space): ru_maxrss from wait4 would not do, Linux carries the forking parent's peak across exec.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import Handler, Target

URLS_PER_RUN = 8
PROBE = """
import asyncio, json, sys
from linkprobe.engine import Engine, EngineConfig, ProbeOptions

async def main() -> None:
    options = ProbeOptions(retries=0, timeout=20)
    async with Engine(EngineConfig(allow_private=True)) as engine:
        results = [r async for r in engine.run(sys.argv[1:], options)]
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"results": [r.to_dict() for r in results], "peak_kib": peak}))

asyncio.run(main())
"""


def _run_probe(urls: list[str]) -> tuple[list[dict[str, Any]], float]:
    """Probe `urls` in a child; its results and its peak RSS in MiB."""
    child = subprocess.run([sys.executable, "-c", PROBE, *urls], capture_output=True, text=True, check=True)
    report = json.loads(child.stdout)
    return report["results"], report["peak_kib"] / 1024


async def probe_in_child(urls: list[str]) -> tuple[list[dict[str, Any]], float]:
    return await asyncio.to_thread(_run_probe, urls)


async def _request_head(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")


async def interim_flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _request_head(reader)
    burst = b"HTTP/1.1 100 Continue\r\n\r\n" * 4096
    for _ in range(20_000):  # ~2 GB if nobody stops reading
        writer.write(burst)
        await writer.drain()


async def header_flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _request_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\n")
    line = b"X-Pad: " + b"a" * 100 + b"\r\n"
    for _ in range(20_000):
        writer.write(line * 1000)
        await writer.drain()


async def endless_header_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _request_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nX-Big: ")
    for _ in range(20_000):
        writer.write(b"a" * 100_000)
        await writer.drain()


async def _hostile_run(
    raw_server: Callable[[Handler], Awaitable[int]], handler: Handler
) -> tuple[list[dict[str, Any]], float]:
    ports = [await raw_server(handler) for _ in range(URLS_PER_RUN)]
    return await probe_in_child([f"http://127.0.0.1:{port}/" for port in ports])


async def _baseline_rss(target: Target) -> float:
    _, peak = await probe_in_child([target.url(f"/status/200?n={i}") for i in range(URLS_PER_RUN)])
    return peak


BOUND_MIB = 20  # over the peak of probing as many well-behaved URLs


async def test_interim_response_flood_is_refused_within_bounded_memory(
    raw_server: Callable[[Handler], Awaitable[int]], target: Target
) -> None:
    results, peak = await _hostile_run(raw_server, interim_flood)
    assert [r["error"]["kind"] for r in results] == ["protocol"] * URLS_PER_RUN
    assert all("interim" in r["error"]["message"] or "head" in r["error"]["message"] for r in results)
    assert peak < await _baseline_rss(target) + BOUND_MIB


async def test_header_flood_is_refused_within_bounded_memory(
    raw_server: Callable[[Handler], Awaitable[int]], target: Target
) -> None:
    results, peak = await _hostile_run(raw_server, header_flood)
    assert [r["error"]["kind"] for r in results] == ["protocol"] * URLS_PER_RUN
    assert peak < await _baseline_rss(target) + BOUND_MIB


async def test_endless_header_line_is_refused_within_bounded_memory(
    raw_server: Callable[[Handler], Awaitable[int]], target: Target
) -> None:
    results, peak = await _hostile_run(raw_server, endless_header_line)
    assert [r["error"]["kind"] for r in results] == ["protocol"] * URLS_PER_RUN
    assert peak < await _baseline_rss(target) + BOUND_MIB


async def _reset_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _request_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"a" * 1000)
    await writer.drain()
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
    writer.transport.abort()


def _corrupt(coding: str) -> Handler:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_head(reader)
        body = b"\x1f\x8b\x08\x00not a stream in any encoding at all" * 10
        head = b"HTTP/1.1 404 Not Found\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n"
        writer.write(head % (coding.encode(), len(body)) + body)
        await writer.drain()

    return answer


async def test_a_reset_during_the_body_keeps_the_status_verdict(
    raw_server: Callable[[Handler], Awaitable[int]],
) -> None:
    port = await raw_server(_reset_mid_body)
    results, _ = await probe_in_child([f"http://127.0.0.1:{port}/"])
    (result,) = results
    assert (result["ok"], result["status_code"], result["error"]) == (True, 200, None)
    assert result["body"] == "reset"


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
async def test_a_corrupt_encoding_keeps_the_status_verdict(
    raw_server: Callable[[Handler], Awaitable[int]], coding: str
) -> None:
    port = await raw_server(_corrupt(coding))
    results, _ = await probe_in_child([f"http://127.0.0.1:{port}/"])
    (result,) = results
    assert (result["ok"], result["status_code"], result["error"]) == (False, 404, None)
    assert result["body"] == "undecodable"
