"""Document uploads through the API: links extracted from HTML, Markdown, sitemaps (an index, a
gzip one) and text, probed against the loopback target, one result per unique URL with where it
was found; on SQLite (`linkprobe serve`) and on Redis (`linkprobe api` + `linkprobe worker`)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from linkprobe.report import CSV_COLUMNS
from tests.api.test_tasks import wait_status
from tests.conftest import (
    Service,
    Target,
    start_service,
    vm_hwm_kib,
)


def page_html(t: Target) -> str:
    return f"""<!doctype html>
<html><head>
<link rel="stylesheet" href="{t.url("/status/200?css")}">
<link rel="preconnect" href="{t.url("/status/500?preconnect")}">
<script src="{t.url("/status/201?js")}"></script>
</head><body>
<a href="{t.url("/status/200")}">home</a>
<a href="{t.url("/status/404#gone")}">gone</a> <a href="{t.url("/status/404#again")}">again</a>
<img src="{t.url("/status/200")}" alt="">
<picture><source srcset="{t.url("/status/202?1x")} 1x,
  {t.url("/status/203?2x")} 2x"></picture>
<iframe src="{t.url("/status/204?frame")}"></iframe>
<a href="mailto:team@example.org">mail</a> <a href="tel:+15551234">call</a>
<a href="javascript:void(0)">js</a>
<a href="guide/next.html">relative</a> <a href="#top">top</a>
</body></html>
"""


def based_html(t: Target) -> str:
    return f'<html><head><base href="{t.url("/status/")}"></head>\n<body><a href="205">based</a>\n'


def guide_md(t: Target) -> str:
    return f"""# Guide

See [home]({t.url("/status/200")}) and ![logo]({t.url("/status/206?logo")}).
An autolink <{t.url("/status/207?auto")}>, a [reference][ref] and a [broken one][gone].

Inline `[code span]({t.url("/status/500?code-span")})` is not a link.

    [indented code]({t.url("/status/500?indented")})

[ref]: {t.url("/status/208?ref")}
[gone]: {t.url("/status/410?ref")}
[unused]: {t.url("/status/209?unused")}
"""


def sitemap_index(t: Target) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>{t.url("/status/200")}</loc></sitemap>
  <sitemap><loc>{t.url("/status/404?sitemap")}</loc></sitemap>
</sitemapindex>
"""


def urlset(t: Target) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>{t.url("/status/200")}</loc></url>
  <url><loc>{t.url("/status/211?gz")}</loc></url>
</urlset>
"""


def line(text: str, needle: str, nth: int = 1) -> int:
    """The 1-based line of the nth occurrence of `needle` in a fixture document."""
    at = -1
    for _ in range(nth):
        at = text.index(needle, at + 1)
    return text.count("\n", 0, at) + 1


@pytest.fixture
async def client(api: httpx.AsyncClient) -> httpx.AsyncClient:
    """The API on each store (conftest's `service`: SQLite serve, or api and worker on Redis)."""
    return api


async def upload(client: httpx.AsyncClient, files: list[tuple[str, bytes]], **data: Any) -> httpx.Response:
    parts = [("file", (name, body)) for name, body in files]
    return await client.post("/api/v1/tasks", files=parts, data=data)


async def finished(client: httpx.AsyncClient, response: httpx.Response) -> tuple[dict[str, Any], list[Any]]:
    assert response.status_code == 202, response.text
    task = await wait_status(client, response.json()["id"])
    lines = (await client.get(f"/api/v1/tasks/{task['id']}/results", params={"format": "ndjson"})).text
    return task, [json.loads(row) for row in lines.splitlines()]


def places(result: dict[str, Any]) -> list[tuple[str, int]]:
    return [(place["document"], place["line"]) for place in result["sources"]["places"]]


async def test_every_kind_of_document_one_result_per_unique_url(
    client: httpx.AsyncClient, target: Target
) -> None:
    html, md, index, plain = page_html(target), guide_md(target), sitemap_index(target), urlset(target)
    files = [
        ("page.html", html.encode()),
        ("guide.md", md.encode()),
        ("sitemap-index.xml", index.encode()),
        ("sitemap.xml.gz", gzip.compress(plain.encode())),
    ]
    task, results = await finished(client, await upload(client, files, name="docs"))
    by_url = {result["url"]: result for result in results}
    assert [result["index"] for result in results] == list(range(len(results)))
    assert len(by_url) == len(results) == task["progress"]["total"]  # each unique URL once

    home = by_url[target.url("/status/200")]
    assert home["status_code"] == 200 and home["sources"]["total"] == 5
    assert places(home) == [
        ("page.html", line(html, 'href="' + target.url("/status/200") + '"')),
        ("page.html", line(html, "<img")),
        ("guide.md", 3),
        ("sitemap-index.xml", line(index, target.url("/status/200"))),
        ("sitemap.xml.gz", line(plain, target.url("/status/200"))),
    ]
    gone = by_url[target.url("/status/404")]  # page#gone and page#again: one probe, two places
    assert gone["status_code"] == 404 and places(gone) == [("page.html", line(html, "#gone"))] * 2
    expected = {
        "/status/200?css": 200, "/status/201?js": 201, "/status/202?1x": 202, "/status/203?2x": 203,
        "/status/204?frame": 204, "/status/206?logo": 206, "/status/207?auto": 207,
        "/status/208?ref": 208, "/status/410?ref": 410, "/status/209?unused": 209,
        "/status/404?sitemap": 404, "/status/211?gz": 211,
    }  # fmt: skip
    assert {path: by_url[target.url(path)]["status_code"] for path in expected} == expected
    assert places(by_url[target.url("/status/203?2x")]) == [("page.html", line(html, "2x"))]
    assert places(by_url[target.url("/status/410?ref")]) == [("guide.md", line(md, "[broken one]"))]
    assert places(by_url[target.url("/status/209?unused")]) == [("guide.md", line(md, "[unused]:"))]
    assert not any("preconnect" in url or "code-span" in url or "indented" in url for url in by_url)

    for url in ("mailto:team@example.org", "tel:+15551234", "javascript:void(0)"):
        assert by_url[url]["error"]["kind"] == "unsupported", by_url[url]
    for relative in ("guide/next.html", "#top"):  # no base_url: kept as written, invalid_url
        assert by_url[relative]["error"]["kind"] == "invalid_url"
        assert "a relative link needs a base URL" in by_url[relative]["error"]["message"]
        assert places(by_url[relative]) == [("page.html", line(html, relative))]
    progress = task["progress"]
    assert progress == {
        "total": 19,
        "done": 19,
        "ok": 11,
        "broken": 5,
        "unsupported": 3,
        "cancelled": 0,
        "pages": None,
    }


async def test_base_url_resolves_relative_links(client: httpx.AsyncClient, target: Target) -> None:
    doc = b'<a href="../status/201">up</a> <a href="/status/202">root</a> <a href="../status/203#x">x</a>\n'
    files = [("page.html", doc), ("based.html", based_html(target).encode())]
    _task, results = await finished(client, await upload(client, files, base_url=target.url("/docs")))
    assert [(r["url"], r["status_code"]) for r in results] == [
        (target.url("/status/201"), 201),
        (target.url("/status/202"), 202),
        (target.url("/status/203"), 203),
        (target.url("/status/205"), 205),  # <base href> wins over base_url (/docs/205)
    ]
    assert places(results[3]) == [("based.html", 2)]


async def test_text_and_forced_formats_filters_and_url_lists(
    client: httpx.AsyncClient, target: Target
) -> None:
    notes = f"Deploy notes: see {target.url('/status/200')}, and ({target.url('/status/404?x')}).\n"
    listing = f"# a URL list\n{target.url('/status/200')}\n{target.url('/status/202?list')}\n"
    files = [("notes.txt", notes.encode()), ("urls.lst", listing.encode())]
    _task, results = await finished(client, await upload(client, files, input_format="text"))
    assert [(r["url"], places(r)) for r in results] == [
        (target.url("/status/200"), [("notes.txt", 1), ("urls.lst", 2)]),
        (target.url("/status/404?x"), [("notes.txt", 1)]),
        (target.url("/status/202?list"), [("urls.lst", 3)]),
    ]
    mixed = [("links.html", page_html(target).encode()), ("urls.txt", listing.encode())]
    response = await upload(client, mixed, include=["/status/2", "tel:"], exclude=["."])
    _task, results = await finished(client, response)
    kept = [target.url(p) for p in ("/status/200?css", "/status/201?js", "/status/200", "/status/202?1x",
                                    "/status/203?2x", "/status/204?frame")]  # fmt: skip
    assert [r["url"] for r in results] == [*kept, "tel:+15551234", target.url("/status/202?list")]
    assert places(results[-1]) == [("urls.txt", 3)]  # a URL list's lines are all kept, filters or not
    html = page_html(target)
    home = [line(html, f'href="{target.url("/status/200")}"'), line(html, "<img")]
    assert places(results[2]) == [("links.html", home[0]), ("links.html", home[1]), ("urls.txt", 2)]


async def test_a_document_as_the_whole_body(client: httpx.AsyncClient, target: Target) -> None:
    """text/html, text/markdown, or text/plain with ?input_format: the fields in the query string."""
    html = b'<p>\n<a href="../status/201">up</a> <a href="mailto:a@b.example">m</a></p>\n'
    query = {"document": "index.html", "base_url": target.url("/docs/"), "name": "body"}
    response = await client.post("/api/v1/tasks", params=query, content=html,
                                 headers={"content-type": "text/html; charset=utf-8"})  # fmt: skip
    task, results = await finished(client, response)
    assert task["name"] == "body"
    assert [(r["url"], places(r)) for r in results] == [
        (target.url("/status/201"), [("index.html", 2)]),
        ("mailto:a@b.example", [("index.html", 2)]),
    ]
    assert results[0]["status_code"] == 201 and results[1]["error"]["kind"] == "unsupported"
    markdown = f"# Notes\n\n<{target.url('/status/202')}>\n".encode()
    response = await client.post("/api/v1/tasks", content=markdown, headers={"content-type": "text/markdown"})
    _task, results = await finished(client, response)
    assert [(r["url"], places(r)) for r in results] == [(target.url("/status/202"), [("body", 3)])]
    text = f"deployed at {target.url('/status/203')} today\n".encode()
    response = await client.post("/api/v1/tasks", params={"input_format": "text"}, content=text,
                                 headers={"content-type": "text/plain"})  # fmt: skip
    _task, results = await finished(client, response)
    assert [(r["url"], r["status_code"], places(r)) for r in results] == [
        (target.url("/status/203"), 203, [("body", 1)])
    ]


async def test_sources_are_capped_and_counted(client: httpx.AsyncClient, target: Target) -> None:
    doc = "".join(f"[{n}]({target.url('/status/200')})\n\n" for n in range(25))
    _task, results = await finished(client, await upload(client, [("many.md", doc.encode())]))
    assert len(results) == 1 and results[0]["sources"]["total"] == 25
    assert places(results[0]) == [("many.md", 1 + 2 * n) for n in range(10)]


async def test_json_pages_csv_and_url_lists(client: httpx.AsyncClient, target: Target) -> None:
    ok, missing = target.url("/status/200"), target.url("/status/404")
    doc = f"[a]({ok}) [b]({missing})\n[a]({ok})\n"
    response = await upload(client, [("a.md", doc.encode())])
    task, results = await finished(client, response)
    base = f"/api/v1/tasks/{task['id']}/results"
    page = (await client.get(base)).json()["items"]
    assert [item["sources"] for item in page] == [result["sources"] for result in results]
    assert page[0]["sources"] == {
        "total": 2,
        "places": [{"document": "a.md", "line": 1}, {"document": "a.md", "line": 2}],
    }
    rows = list(csv.DictReader(io.StringIO((await client.get(base, params={"format": "csv"})).text)))
    assert [row["sources"] for row in rows] == ["a.md:1; a.md:2", "a.md:1"]
    broken = list(
        csv.reader(io.StringIO((await client.get(base, params={"format": "csv", "outcome": "broken"})).text))
    )
    assert broken[0] == [*CSV_COLUMNS, "sources"] and broken[1][-1] == "a.md:1"

    plain = await upload(client, [("urls.txt", f"{target.url('/status/200')}\n".encode())])
    task, results = await finished(client, plain)  # a URL list alone: as before, no sources
    assert "sources" not in results[0]
    base = f"/api/v1/tasks/{task['id']}/results"
    assert "sources" not in (await client.get(base)).json()["items"][0]
    header = next(csv.reader(io.StringIO((await client.get(base, params={"format": "csv"})).text)))
    assert tuple(header) == CSV_COLUMNS


@pytest.mark.parametrize(
    ("files", "data", "detail"),
    [
        ([("page.html", b"<p>no links here</p>")], {}, "no links found in page.html"),
        ([("empty.md", b"")], {}, "no links found in empty.md"),
        ([("a.txt", b"http://x.example/")], {"input_format": "pdf"}, "input_format 'pdf' is not one of"),
        ([("a.md", b"<http://x.example/>")], {"base_url": "docs/"}, "base_url 'docs/' is not an absolute"),
        ([("a.md", b"<http://x.example/>")], {"include": "("}, "include '(' is not a regular expression"),
        ([("a.md", b"<http://x.example/>")], {"include": "(?=x)y"}, "include '(?=x)y' is not supported"),
        (
            [("a.md", b"<http://x.example/>")],
            {"exclude": ["a", "(?<!a)b"]},
            "exclude '(?<!a)b' is not supported",
        ),
        ([("a.md", b"<http://x.example/>")], {"exclude": "x"}, "include/exclude left none"),
        ([("a.md", b"<http://x.example/>")], {"base_url": ["http://a/", "http://b/"]}, "base_url is given 2"),
        ([("a.xml", b"<urlset><url><loc>  </loc></url></urlset>")], {}, "no links found in a.xml"),
    ],
)
async def test_refused_uploads_say_why(
    api: httpx.AsyncClient, files: list[tuple[str, bytes]], data: dict[str, Any], detail: str
) -> None:
    response = await upload(api, files, **data)
    assert response.status_code == 422 and detail in response.json()["detail"], response.text


async def test_catastrophic_patterns_do_not_hold_the_extraction(
    client: httpx.AsyncClient, target: Target
) -> None:
    """Exponential in the length of the link on a backtracking engine, which would hold the one
    extraction thread (and every upload after this one); linear on RE2."""
    long_link = target.url("/status/200?q=" + "a" * 5000 + "!x")
    document = f"see {long_link}\nand {target.url('/status/404')}\n".encode()
    exclude = ["(a+)+$", "(.+)+!$", "([^#]+)+#", "404"]
    _, results = await finished(client, await upload(client, [("notes.txt", document)], exclude=exclude,
                                                     input_format="text"))  # fmt: skip
    assert [(result["url"], result["ok"]) for result in results] == [(long_link, True)]


async def test_idempotency_covers_files_and_fields(api: httpx.AsyncClient) -> None:
    files = [("a.md", b"<http://127.0.0.1:9/a>")]
    key = {"Idempotency-Key": "documents-1"}
    first = await api.post("/api/v1/tasks", files=[("file", f) for f in files], headers=key)
    again = await api.post("/api/v1/tasks", files=[("file", f) for f in files], headers=key)
    assert first.status_code == again.status_code == 202 and first.json()["id"] == again.json()["id"]
    parts = [("file", f) for f in files]
    base = {"base_url": "http://x.example/"}
    other_base = await api.post("/api/v1/tasks", files=parts, data=base, headers=key)
    renamed = await api.post("/api/v1/tasks", files=[("file", ("b.md", files[0][1]))], headers=key)
    assert other_base.status_code == renamed.status_code == 409


async def test_too_many_files_urls_and_document_bytes(api: httpx.AsyncClient) -> None:
    doc = "".join(f"<http://x.example/{n}>\n" for n in range(5001)).encode()  # SERVICE_LIMITS: 5000 URLs
    over = await upload(api, [("big.md", doc)])
    assert over.status_code == 413 and "5000" in over.json()["detail"]
    many = await upload(api, [(f"{n}.md", b"<http://x.example/>") for n in range(101)])
    assert many.status_code == 422 and "Too many files" in many.json()["detail"]
    padded = b"<http://x.example/>\n" + b" " * 150_000  # SERVICE_LIMITS: 300,000 document bytes
    large = await upload(api, [("a.md", padded), ("b.md", padded)])
    assert large.status_code == 413 and "LINKPROBE_MAX_DOCUMENT_BYTES" in large.json()["detail"]
    as_lists = await upload(api, [("a.txt", padded), ("b.txt", padded)])  # URL lists: no such limit
    assert as_lists.status_code == 202, as_lists.text


async def test_openapi_shows_sources_and_the_upload_fields(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    schemas = schema["components"]["schemas"]
    assert schemas["Result"]["properties"]["sources"]["anyOf"][0] == {"$ref": "#/components/schemas/Sources"}
    assert set(schemas["Sources"]["properties"]) == {"total", "places"}
    assert set(schemas["Place"]["properties"]) == {"document", "line"}
    body = schema["paths"]["/api/v1/tasks"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["properties"]["input_format"]["enum"] == ["urls", "html", "markdown", "sitemap", "text"]
    assert {"file", "base_url", "include", "exclude"} <= set(body["properties"])


# -- memory ---------------------------------------------------------------------------------------

# Peak memory an upload may add to the server, per byte of document parsed (a gzip sitemap's
# inflated bytes): README, "Document uploads". The bytes held, the links and places kept, the
# sources written with the task.
MEMORY_PER_BYTE = 8


def many_links_html(links: int) -> bytes:
    rows = (b'<p><a href="https://example.com/page/%07d">link %d</a></p>\n' % (i, i) for i in range(links))
    return b"<html><body>\n" + b"".join(rows) + b"</body></html>\n"


def many_locs_sitemap(locs: int) -> bytes:
    rows = (b"<url><loc>https://example.com/p/%d</loc></url>\n" % i for i in range(locs))
    return b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n' + b"".join(rows) + b"</urlset>\n"


@pytest.fixture
async def roomy(tmp_path: Path) -> AsyncIterator[Service]:
    """The API alone (tasks stay pending), taking documents of 64 MiB and a million URLs; one per
    test, since its peak memory is the measure."""
    tmp = tmp_path
    env = {"LINKPROBE_MAX_DOCUMENT_BYTES": str(64 << 20), "LINKPROBE_MAX_URLS_PER_TASK": "1000000"}
    service = await start_service(tmp, "api", "--db", str(tmp / "roomy.db"), env=env, name="api")
    yield service
    await service.stop()


# A large HTML page and a gzip sitemap: the text parsed, and the body sent.
LARGE_DOCUMENTS = pytest.mark.parametrize(
    ("content_type", "parsed", "body"),
    [
        ("text/html", *(2 * [many_links_html(250_000)])),
        ("application/gzip", many_locs_sitemap(250_000), gzip.compress(many_locs_sitemap(250_000))),
    ],
    ids=["html", "gzip-sitemap"],
)


async def warm_up(client: httpx.AsyncClient) -> None:
    """One small document first: what every parse needs loaded is in the baseline."""
    warm = await client.post(
        "/api/v1/tasks", content=b"<a href='http://a.example/'>", headers={"Content-Type": "text/html"}
    )
    assert warm.status_code == 202, warm.text


@LARGE_DOCUMENTS
async def test_a_document_is_parsed_within_its_memory_bound(
    roomy: Service, content_type: str, parsed: bytes, body: bytes
) -> None:
    async with httpx.AsyncClient(base_url=roomy.url, timeout=300) as client:
        await warm_up(client)
        idle = vm_hwm_kib(roomy.process.pid)
        answer = await client.post("/api/v1/tasks", content=body, headers={"Content-Type": content_type})
    grown = (vm_hwm_kib(roomy.process.pid) - idle) * 1024
    assert answer.status_code == 202, answer.text
    assert answer.json()["progress"]["total"] == 250_000
    print(f"{content_type}: {len(parsed)} bytes parsed: +{grown >> 20} MiB, {grown / len(parsed):.1f} x")
    assert grown <= MEMORY_PER_BYTE * len(parsed)


def intake_processes(api_pid: int) -> tuple[int, list[int]]:
    """The API's fork server and the intake processes forked from it (api/offload.py)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    [server] = [pid for pid in children.get(api_pid, []) if children.get(pid)]
    return server, children[server]


@LARGE_DOCUMENTS
async def test_the_intake_process_parses_a_document_within_its_memory_bound(
    roomy: Service, content_type: str, parsed: bytes, body: bytes
) -> None:
    """The parse runs in an intake process: its peak over the fork server it started from."""
    async with httpx.AsyncClient(base_url=roomy.url, timeout=300) as client:
        await warm_up(client)
        server, _ = intake_processes(roomy.process.pid)
        idle = vm_hwm_kib(server, "VmRSS")
        answer = await client.post("/api/v1/tasks", content=body, headers={"Content-Type": content_type})
    assert answer.status_code == 202, answer.text
    assert answer.json()["progress"]["total"] == 250_000
    _, workers = intake_processes(roomy.process.pid)
    grown = (max(vm_hwm_kib(pid) for pid in workers) - idle) * 1024
    print(f"{content_type}, intake process: +{grown >> 20} MiB, {grown / len(parsed):.1f} x")
    assert grown <= MEMORY_PER_BYTE * len(parsed)
