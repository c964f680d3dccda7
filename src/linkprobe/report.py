"""Render results: table, json, ndjson, csv, junit, markdown. Shared by the CLI and the API."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from typing import Any, Protocol
from xml.etree import ElementTree as ET

from linkprobe.engine import ProbeResult
from linkprobe.engine.outcome import RESULT_FIELDS, Outcome

FORMATS = ("table", "json", "ndjson", "csv", "junit", "markdown")
# Derived from the one result declaration: `error` becomes two columns, `redirects` a hop count.
_FLAT = {"error": ("error_kind", "error_message")}
CSV_COLUMNS = tuple(column for f in RESULT_FIELDS for column in _FLAT.get(f.name, (f.name,)))


class Places(Protocol):
    """Where a URL was found in documents (cli.documents.Sources): shown beside its result."""

    total: int

    def to_dict(self) -> dict[str, object]: ...

    def text(self) -> str: ...


SourceMap = Mapping[str, Places]


def verdict(result: ProbeResult) -> str:
    if result.ok:
        return "ok"
    if result.error is not None:
        return result.error.kind.value
    return "broken"


def csv_row(data: dict[str, Any]) -> list[Any]:
    """One CSV row from a result's to_dict() form; redirects become the hop count."""
    error = data.get("error") or {}
    flat = {**data, "error_kind": error.get("kind"), "error_message": error.get("message")}
    flat["redirects"] = len(data.get("redirects") or [])
    return ["" if flat.get(column) is None else flat[column] for column in CSV_COLUMNS]


def csv_text(rows: Iterable[dict[str, Any]], header: bool = True) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_row(row) for row in rows)
    return buffer.getvalue()


def result_dict(result: ProbeResult, sources: SourceMap | None) -> dict[str, Any]:
    data = result.to_dict()
    places = None if sources is None else sources.get(result.url)
    if places is not None and places.total:
        data["sources"] = places.to_dict()
    return data


def ndjson_line(result: ProbeResult, places: Places | None = None) -> str:
    if places is None or not places.total:
        return result.to_json() + "\n"
    return json.dumps({**result.to_dict(), "sources": places.to_dict()}) + "\n"


def _found_in(result: ProbeResult, sources: SourceMap | None) -> str:
    places = None if sources is None else sources.get(result.url)
    return places.text() if places is not None and places.total else ""


def _summary(results: list[ProbeResult]) -> str:
    ok = sum(r.ok for r in results)
    unsupported = sum(r.outcome is Outcome.UNSUPPORTED for r in results)
    text = f"{len(results)} URLs: {ok} ok, {len(results) - ok - unsupported} broken"
    return f"{text}, {unsupported} unsupported" if unsupported else text


def _table(results: list[ProbeResult], sources: SourceMap | None) -> str:
    rows = [
        (str(r.index), str(r.status_code or "-"), verdict(r), f"{r.elapsed_ms:.0f}", r.url) for r in results
    ]
    header = ("#", "STATUS", "RESULT", "MS", "URL")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row))
        for row in [header, *rows]
    ]
    if sources is not None:  # where each broken link was found, under its row
        for position, r in reversed(list(enumerate(results, 1))):
            if not r.ok and (found := _found_in(r, sources)):
                lines.insert(position + 1, f"    found in {found}")
    return "\n".join([*lines, _summary(results)]) + "\n"


def _markdown(results: list[ProbeResult], sources: SourceMap | None) -> str:
    lines = ["| # | URL | Status | Result | ms |", "|---|---|---|---|---|"]
    if sources is not None:
        lines = ["| # | URL | Status | Result | ms | Found in |", "|---|---|---|---|---|---|"]
    for r in results:
        url = r.url.replace("|", "\\|")
        row = f"| {r.index} | {url} | {r.status_code or '-'} | {verdict(r)} | {r.elapsed_ms:.0f} |"
        if sources is not None:
            row += f" {_found_in(r, sources).replace('|', chr(92) + '|')} |"
        lines.append(row)
    return "\n".join([*lines, "", _summary(results)]) + "\n"


def _junit(results: list[ProbeResult], sources: SourceMap | None) -> str:
    failures = sum(not r.ok for r in results)
    total_s = sum(r.elapsed_ms for r in results) / 1000
    suite = ET.Element("testsuite", name="linkprobe", tests=str(len(results)), failures=str(failures))
    suite.set("time", f"{total_s:.3f}")
    for r in results:
        case = ET.SubElement(
            suite, "testcase", classname="linkprobe", name=r.url, time=f"{r.elapsed_ms / 1000:.3f}"
        )
        if not r.ok:
            message = r.error.message if r.error else f"HTTP {r.status_code}"
            failure = ET.SubElement(case, "failure", message=message, type=verdict(r))
            failure.text = json.dumps(result_dict(r, sources), indent=2)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _csv_with_sources(results: list[ProbeResult], sources: SourceMap) -> str:
    """CSV with one more column, `sources`: document:line places separated by '; '."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow((*CSV_COLUMNS, "sources"))
    writer.writerows([*csv_row(r.to_dict()), _found_in(r, sources).replace(", ", "; ")] for r in results)
    return buffer.getvalue()


def render(results: list[ProbeResult], fmt: str, sources: SourceMap | None = None) -> str:
    """Render results in input order (for every format but ndjson, which streams).

    `sources` (URL -> where it was found) adds that to every format when links came from documents.
    """
    ordered = sorted(results, key=lambda r: r.index)
    if fmt == "json":
        return json.dumps([result_dict(r, sources) for r in ordered], indent=2) + "\n"
    if fmt == "ndjson":
        return "".join(ndjson_line(r, None if sources is None else sources.get(r.url)) for r in ordered)
    if fmt == "csv":
        return (
            csv_text(r.to_dict() for r in ordered) if sources is None else _csv_with_sources(ordered, sources)
        )
    if fmt == "junit":
        return _junit(ordered, sources)
    if fmt == "markdown":
        return _markdown(ordered, sources)
    return _table(ordered, sources)
