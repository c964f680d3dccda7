"""Sitemaps: url sets, sitemap indexes, gzip, and XML that tries to expand entities."""

from __future__ import annotations

import gzip

from linkprobe.extract import Kind, Link, extract, kind_for_content_type, kind_for_name

URLSET = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>https://site.example/</loc><lastmod>2024-01-01</lastmod></url>
  <url>
    <loc>
      https://site.example/about
    </loc>
  </url>
  <url><loc>https://site.example/a?x=1&amp;y=2</loc></url>
</urlset>
"""

INDEX = b"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>https://site.example/sitemap-pages.xml</loc></sitemap>
  <sitemap><loc>https://site.example/sitemap-posts.xml.gz</loc></sitemap>
</sitemapindex>
"""


def test_url_set_locs_with_lines() -> None:
    found = extract(URLSET, Kind.SITEMAP)
    assert found.links == [
        Link("https://site.example/", 3),
        Link("https://site.example/about", 5),
        Link("https://site.example/a?x=1&y=2", 9),
    ]
    assert found.sitemaps == []


def test_an_index_names_its_child_sitemaps() -> None:
    found = extract(INDEX, Kind.SITEMAP)
    assert found.sitemaps == [
        "https://site.example/sitemap-pages.xml",
        "https://site.example/sitemap-posts.xml.gz",
    ]
    assert [link.url for link in found.links] == found.sitemaps


def test_gzip_sitemap_is_inflated() -> None:
    assert extract(gzip.compress(URLSET), Kind.SITEMAP).links == extract(URLSET, Kind.SITEMAP).links


def test_entities_are_not_expanded_and_nothing_is_fetched() -> None:
    hostile = b"""<?xml version="1.0"?>
<!DOCTYPE urlset [
  <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
  <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
  <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
  <!ENTITY local SYSTEM "file:///etc/passwd">
]>
<urlset><url><loc>https://x.example/&c;</loc></url><url><loc>https://y.example/&local;</loc></url></urlset>
"""
    urls = [link.url for link in extract(hostile, Kind.SITEMAP).links]
    assert not any("aaaa" in url or "root:" in url for url in urls)


def test_garbage_and_a_gzip_bomb_give_no_error() -> None:
    assert extract(b"not xml at all <<<", Kind.SITEMAP).links == []
    bomb = gzip.compress(b"<urlset>" + b" " * (200 << 20) + b"</urlset>")
    assert extract(bomb, Kind.SITEMAP).links == []


def test_kind_from_name_and_content_type() -> None:
    assert kind_for_name("docs/sitemap.xml.gz") is Kind.SITEMAP
    assert kind_for_name("https://s.example/Page.HTML?x=1") is Kind.HTML
    assert kind_for_name("README.md") is Kind.MARKDOWN
    assert kind_for_name("urls.txt") is None
    assert kind_for_content_type("text/html; charset=utf-8") is Kind.HTML
    assert kind_for_content_type("application/octet-stream") is None
