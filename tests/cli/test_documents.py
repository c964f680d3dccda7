"""`linkprobe check` on documents, folders and globs: links extracted, probed once, sources listed."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path

from tests.cli.test_check import check
from tests.conftest import Target


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def site(root: Path, target: Target) -> None:
    ok, gone = target.url("/status/200"), target.url("/status/404")
    write(
        root / "index.html",
        f'<a href="{ok}">ok</a>\n<a href="{gone}#frag">gone</a>\n<a href="guide.md">g</a>\n',
    )
    write(root / "guide.md", f"# Guide\n\nSee [ok]({ok}) and [gone]({gone}).\n[mail](mailto:a@b.example)\n")
    write(root / "sub" / "page.htm", '<a href="../index.html">up</a> <a href="../nowhere.html">x</a>\n')
    write(root / ".hidden" / "secret.html", f'<a href="{target.url("/status/500")}">hidden</a>\n')
    write(root / "notes.txt", "not a document: skipped in folders\n")


def by_url(out: str) -> dict[str, dict[str, object]]:
    return {item["url"]: item for item in json.loads(out)}


async def test_a_folder_is_checked_once_per_url_with_every_place_it_was_found(
    tmp_path: Path, target: Target
) -> None:
    site(tmp_path, target)
    run = await check("--format", "json", str(tmp_path))
    assert run.code == 2, run.err
    results = by_url(run.out)
    gone = results[target.url("/status/404")]  # the #frag copy is the same probe
    assert gone["status_code"] == 404
    assert gone["sources"] == {
        "total": 2,
        "places": [
            {"document": str(tmp_path / "guide.md"), "line": 3},
            {"document": str(tmp_path / "index.html"), "line": 2},
        ],
    }
    assert results[target.url("/status/200")]["ok"] is True
    assert target.url("/status/500") not in results  # hidden folder skipped
    assert len(results) == 6


async def test_local_links_are_checked_on_disk(tmp_path: Path, target: Target) -> None:
    site(tmp_path, target)
    results = by_url((await check("--format", "json", str(tmp_path / "sub" / "page.htm"))).out)
    assert results[(tmp_path / "index.html").as_uri()]["ok"] is True
    missing = results[(tmp_path / "nowhere.html").as_uri()]
    assert missing["error"]["kind"] == "missing_file"  # type: ignore[index]


async def test_unsupported_links_are_neither_ok_nor_broken(tmp_path: Path, target: Target) -> None:
    doc = write(tmp_path / "a.md", f"[ok]({target.url('/status/200')}) [m](mailto:x@y.example) [t](tel:+1)\n")
    run = await check(str(doc))
    assert run.code == 0, run.out
    assert "3 URLs: 1 ok, 0 broken, 2 unsupported" in run.out


async def test_table_says_where_a_broken_link_is(tmp_path: Path, target: Target) -> None:
    doc = write(tmp_path / "a.html", f'\n\n<a href="{target.url("/status/404")}">x</a>\n')
    run = await check(str(doc))
    assert f"found in {doc}:3" in run.out


async def test_globs_and_git_ignored_files(tmp_path: Path, target: Target) -> None:
    site(tmp_path, target)
    write(tmp_path / "build" / "out.html", f'<a href="{target.url("/status/503")}">x</a>')
    write(tmp_path / ".gitignore", "build/\n")
    git = await asyncio.create_subprocess_exec("git", "init", "-q", str(tmp_path))
    assert await git.wait() == 0
    folder = by_url((await check("--format", "json", str(tmp_path))).out)
    assert target.url("/status/503") not in folder
    globbed = by_url((await check("--format", "json", f"{tmp_path}/**/*.htm*")).out)
    assert target.url("/status/503") not in globbed
    assert (tmp_path / "index.html").as_uri() in globbed  # from sub/page.htm
    assert (tmp_path / "guide.md").as_uri() in globbed  # a link in index.html, not a globbed file


async def test_base_url_resolves_local_documents(tmp_path: Path, target: Target) -> None:
    write(tmp_path / "docs" / "a.html", '<a href="/status/200">root</a> <a href="../status/404">rel</a>')
    run = await check("--format", "json", "--base-url", target.url("/x/"), str(tmp_path))
    results = by_url(run.out)
    assert results[target.url("/status/200")]["ok"] is True
    assert results[target.url("/x/status/404")]["status_code"] == 404


async def test_fragments_of_local_documents(tmp_path: Path) -> None:
    write(tmp_path / "a.md", "# Install it\n\n[ok](b.html#there) [bad](b.html#nowhere) [h](#install-it)\n")
    write(tmp_path / "b.html", '<h1 id="there">T</h1>')
    run = await check("--format", "json", "--check-fragments", str(tmp_path / "a.md"))
    results = by_url(run.out)
    assert results[(tmp_path / "b.html").as_uri() + "#there"]["ok"] is True
    assert results[(tmp_path / "b.html").as_uri() + "#nowhere"]["error"]["kind"] == "missing_fragment"  # type: ignore[index]
    assert results[(tmp_path / "a.md").as_uri() + "#install-it"]["ok"] is True
    assert run.code == 2


async def test_include_exclude_and_forced_format(tmp_path: Path, target: Target) -> None:
    notes = write(
        tmp_path / "notes.log", f"see {target.url('/status/200')} and {target.url('/status/404')}\n"
    )
    run = await check("--format", "json", "--input-format", "text", "--exclude", "404", str(notes))
    assert list(by_url(run.out)) == [target.url("/status/200")]
    assert run.code == 0


async def test_gzip_sitemap(tmp_path: Path, target: Target) -> None:
    locs = "".join(f"<url><loc>{target.url(path)}</loc></url>" for path in ("/status/200", "/status/410"))
    body = f"<urlset>{locs}</urlset>"
    sitemap = tmp_path / "sitemap.xml.gz"
    sitemap.write_bytes(gzip.compress(body.encode()))
    results = by_url((await check("--format", "json", str(sitemap))).out)
    assert results[target.url("/status/410")]["status_code"] == 410
    assert results[target.url("/status/410")]["sources"]["places"][0]["line"] == 1  # type: ignore[index]


async def test_a_url_list_file_still_works(tmp_path: Path, target: Target) -> None:
    urls = write(tmp_path / "urls.txt", f"# list\n{target.url('/status/200')}\nnot-a-url\n")
    run = await check("--format", "json", str(urls))
    results = by_url(run.out)
    assert results["not-a-url"]["error"]["kind"] == "invalid_url"  # type: ignore[index]
    assert "sources" not in results["not-a-url"]


async def test_csv_and_markdown_show_sources(tmp_path: Path, target: Target) -> None:
    doc = write(tmp_path / "a.md", f"[x]({target.url('/status/404')})\n")
    csv_out = (await check("--format", "csv", str(doc))).out
    assert csv_out.splitlines()[0].endswith(",sources")
    assert f"{doc}:1" in csv_out
    markdown = (await check("--format", "markdown", str(doc))).out
    assert "| Found in |" in markdown and f"{doc}:1" in markdown
