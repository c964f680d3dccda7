"""Render results: table, json, ndjson, csv, junit, markdown. Shared by the CLI and the API."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any
from xml.etree import ElementTree as ET

from linkprobe.engine import ProbeResult
from linkprobe.engine.outcome import RESULT_FIELDS

FORMATS = ("table", "json", "ndjson", "csv", "junit", "markdown")
# Derived from the one result declaration: `error` becomes two columns, `redirects` a hop count.
_FLAT = {"error": ("error_kind", "error_message")}
CSV_COLUMNS = tuple(column for f in RESULT_FIELDS for column in _FLAT.get(f.name, (f.name,)))


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


def ndjson_line(result: ProbeResult) -> str:
    return result.to_json() + "\n"


def _summary(results: list[ProbeResult]) -> str:
    ok = sum(r.ok for r in results)
    return f"{len(results)} URLs: {ok} ok, {len(results) - ok} broken"


def _table(results: list[ProbeResult]) -> str:
    rows = [
        (str(r.index), str(r.status_code or "-"), verdict(r), f"{r.elapsed_ms:.0f}", r.url) for r in results
    ]
    header = ("#", "STATUS", "RESULT", "MS", "URL")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row))
        for row in [header, *rows]
    ]
    return "\n".join([*lines, _summary(results)]) + "\n"


def _markdown(results: list[ProbeResult]) -> str:
    lines = ["| # | URL | Status | Result | ms |", "|---|---|---|---|---|"]
    for r in results:
        url = r.url.replace("|", "\\|")
        lines.append(f"| {r.index} | {url} | {r.status_code or '-'} | {verdict(r)} | {r.elapsed_ms:.0f} |")
    return "\n".join([*lines, "", _summary(results)]) + "\n"


def _junit(results: list[ProbeResult]) -> str:
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
            failure.text = json.dumps(r.to_dict(), indent=2)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def render(results: list[ProbeResult], fmt: str) -> str:
    """Render results in input order (for every format but ndjson, which streams)."""
    ordered = sorted(results, key=lambda r: r.index)
    if fmt == "json":
        return json.dumps([r.to_dict() for r in ordered], indent=2) + "\n"
    if fmt == "ndjson":
        return "".join(ndjson_line(r) for r in ordered)
    if fmt == "csv":
        return csv_text(r.to_dict() for r in ordered)
    if fmt == "junit":
        return _junit(ordered)
    if fmt == "markdown":
        return _markdown(ordered)
    return _table(ordered)
