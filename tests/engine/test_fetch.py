"""Engine.fetch(): a probe that also hands back the page body, bounded by max_body_bytes."""

from __future__ import annotations

from linkprobe.engine import Engine, EngineConfig, ProbeOptions
from tests.conftest import Site


async def test_fetch_returns_the_body_of_the_final_response(site: Site) -> None:
    async with Engine(EngineConfig(allow_private=True)) as engine:
        result, body = await engine.fetch(site.url("/b.html"), 3, ProbeOptions(retries=0))
    assert result.ok and result.index == 3
    assert body == b'<h2 id="intro">Intro</h2>\n<a href="/index.html">home</a>\n'


async def test_fetch_cuts_the_body_at_the_cap_without_failing(site: Site) -> None:
    async with Engine(EngineConfig(allow_private=True)) as engine:
        result, body = await engine.fetch(site.url("/index.html"), 0, ProbeOptions(max_body_bytes=20))
        probed = await engine.probe(site.url("/index.html"))
    assert result.ok and body == b"<html><body>\n<a href"
    assert probed.ok  # a plain probe keeps no body and is unchanged
