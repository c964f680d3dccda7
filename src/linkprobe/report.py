"""Render results: table, json, ndjson, csv, junit, markdown. Shared by the CLI and the API."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from linkprobe.engine import ErrorKind, ProbeResult
from linkprobe.engine.outcome import RESULT_FIELDS, BodyState, Outcome
from linkprobe.outcomes import OUTCOMES, Redirect, redirect_of

FORMATS = ("table", "json", "ndjson", "csv", "junit", "markdown", "redirects")
# --only: the outcomes (outcomes.OUTCOMES) and the redirect views a report may be limited to.
ONLY = (*OUTCOMES, "redirected", "permanent")
REDIRECT_COLUMNS = ("found_in", "url", "final_url", "status_code", "redirect")
# Derived from the one result declaration: `error` becomes two columns, `redirects` a hop count.
_FLAT = {"error": ("error_kind", "error_message")}
_APART = (ErrorKind.UNSUPPORTED, ErrorKind.CANCELLED)  # counted apart: neither ok nor broken
_BLOCKED_ADDRESS = re.compile(r": ([0-9a-fA-F.:]+) is ")
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


def wanted(only: frozenset[str]) -> Callable[[ProbeResult], bool]:
    """The rows `--only` keeps: results of those outcomes, or that redirected (permanently)."""

    def keep(result: ProbeResult) -> bool:
        if not only or result.outcome in only:
            return True
        redirect = redirect_of(result)
        if redirect is None:
            return False
        return "redirected" in only or (redirect is Redirect.PERMANENT and "permanent" in only)

    return keep


def redirect_note(result: ProbeResult) -> str | None:
    """`permanent redirect (301) to URL`: the link to update; None when it did not redirect."""
    redirect = redirect_of(result)
    if redirect is None:
        return None
    final = result.final_url or result.redirects[-1].url
    return f"{redirect.value} redirect ({result.redirects[0].status_code}) to {final}"


def body_note(result: ProbeResult) -> str | None:
    """What went wrong with the body of an answer that was judged by its status (never the verdict)."""
    body = result.body
    if body is None or body is BodyState.COMPLETE:
        return None
    return {
        BodyState.TRUNCATED: "body cut at the size limit",
        BodyState.TIMEOUT: "body timed out (the status arrived, the rest of the body did not in time)",
        BodyState.RESET: "connection reset while the body was arriving",
        BodyState.UNDECODABLE: "body in an encoding that could not be decoded",
    }[body]


def csv_row(data: dict[str, Any]) -> list[Any]:
    """One CSV row from a result's to_dict() form; redirects become the hop count."""
    error = data.get("error") or {}
    flat = {**data, "error_kind": error.get("kind"), "error_message": error.get("message")}
    flat["redirects"] = len(data.get("redirects") or [])
    return ["" if flat.get(column) is None else flat[column] for column in CSV_COLUMNS]


def sources_cell(sources: Mapping[str, Any] | None) -> str:
    """The CSV `sources` cell: `document:line` places separated by '; ', then `(+N more)`."""
    if not sources:
        return ""
    places = sources["places"]
    shown = "; ".join(f"{place['document']}:{place['line']}" for place in places)
    more = sources["total"] - len(places)
    return f"{shown} (+{more} more)" if more > 0 else shown


def csv_text(rows: Iterable[dict[str, Any]], header: bool = True, sources: bool = False) -> str:
    """CSV of results in their to_dict() form; `sources` adds that column (documents, crawls)."""
    buffer = io.StringIO()
    import csv

    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow((*CSV_COLUMNS, "sources") if sources else CSV_COLUMNS)
    if sources:
        writer.writerows([*csv_row(row), sources_cell(row.get("sources"))] for row in rows)
    else:
        writer.writerows(csv_row(row) for row in rows)
    return buffer.getvalue()


def result_dict(result: ProbeResult, sources: SourceMap | None) -> dict[str, Any]:
    data = result.to_dict()
    places = None if sources is None else sources.get(result.url)
    if places is not None and places.total:
        data["sources"] = places.to_dict()
    return data


def ndjson_line(result: ProbeResult, places: Places | None = None) -> str:
    """One compact JSON line (orjson, as ProbeResult.to_json(): a crawl writes one per URL)."""
    if places is None or not places.total:
        return result.to_json() + "\n"
    import orjson

    return orjson.dumps({**result.to_dict(), "sources": places.to_dict()}).decode() + "\n"


def _found_in(result: ProbeResult, sources: SourceMap | None) -> str:
    places = None if sources is None else sources.get(result.url)
    return places.text() if places is not None and places.total else ""


def summary(results: list[ProbeResult], interrupted: bool = False) -> str:
    """`N URLs: X ok, Y broken`, then the outcomes counted apart and the redirects when there are
    any; an interrupted run says so first."""
    outcomes = [r.outcome for r in results]
    ok, broken, unsupported, cancelled = (outcomes.count(o) for o in Outcome)
    text = f"{len(results)} URLs: {ok} ok, {broken} broken"
    text += f", {unsupported} unsupported" if unsupported else ""
    text += f", {cancelled} cancelled" if cancelled else ""
    redirects = [redirect_of(r) for r in results]
    if moved := len(redirects) - redirects.count(None):
        text += f"; {moved} redirected ({redirects.count(Redirect.PERMANENT)} permanent)"
    return f"Interrupted (Ctrl-C) before the end: {text}" if interrupted else text


def explain(result: ProbeResult) -> str | None:
    """Why a URL has an error, with how to allow it when the egress policy blocked it."""
    error = result.error
    if error is None:
        return None
    if error.kind is not ErrorKind.BLOCKED:
        return error.message
    address = _BLOCKED_ADDRESS.search(error.message)
    cidr = f" or --allow-cidr {address.group(1)}/{32 if '.' in address.group(1) else 128}" if address else ""
    return f"{error.message}; to allow it: --allow-private{cidr}"


def _table(results: list[ProbeResult], sources: SourceMap | None, interrupted: bool) -> str:
    rows = [
        (str(r.index), str(r.status_code or "-"), verdict(r), f"{r.elapsed_ms:.0f}", r.url) for r in results
    ]
    header = ("#", "STATUS", "RESULT", "MS", "URL")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(header))]
    for row, r in zip(rows, results, strict=True):
        lines.append("  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row)))
        for why in (explain(r), redirect_note(r), body_note(r)):
            if why is not None:
                lines.append(" " * (sum(widths) + 8) + f"-> {why}")  # under the URL column
        if sources is not None and not r.ok and (found := _found_in(r, sources)):
            lines.append(f"    found in {found}")  # where each broken link was found, under its row
    return "\n".join([*lines, summary(results, interrupted)]) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown(results: list[ProbeResult], sources: SourceMap | None, interrupted: bool) -> str:
    lines = ["| # | URL | Status | Result | ms | Why |", "|---|---|---|---|---|---|"]
    if sources is not None:
        lines = ["| # | URL | Status | Result | ms | Why | Found in |", "|---|---|---|---|---|---|---|"]
    for r in results:
        cells = (r.index, _cell(r.url), r.status_code or "-", verdict(r), f"{r.elapsed_ms:.0f}")
        why = "; ".join(note for note in (explain(r), redirect_note(r), body_note(r)) if note)
        row = "| " + " | ".join(map(str, cells)) + f" | {_cell(why)} |"
        if sources is not None:
            row += f" {_cell(_found_in(r, sources))} |"
        lines.append(row)
    return "\n".join([*lines, "", summary(results, interrupted)]) + "\n"


def _apart(result: ProbeResult) -> bool:
    return result.error is not None and result.error.kind in _APART


def _junit(results: list[ProbeResult], sources: SourceMap | None) -> str:
    from xml.etree import ElementTree as ET  # junit only: half a MiB the other formats skip

    failures = sum(not r.ok and not _apart(r) for r in results)
    total_s = sum(r.elapsed_ms for r in results) / 1000
    suite = ET.Element("testsuite", name="linkprobe", tests=str(len(results)), failures=str(failures))
    suite.set("skipped", str(sum(map(_apart, results))))
    suite.set("time", f"{total_s:.3f}")
    for r in results:
        case = ET.SubElement(
            suite, "testcase", classname="linkprobe", name=r.url, time=f"{r.elapsed_ms / 1000:.3f}"
        )
        if not r.ok:
            message = explain(r) or f"HTTP {r.status_code}"
            failure = ET.SubElement(
                case, "skipped" if _apart(r) else "failure", message=message, type=verdict(r)
            )
            failure.text = dumps(result_dict(r, sources), indent=2)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _redirects(results: list[ProbeResult], sources: SourceMap | None) -> str:
    """The links to update, as CSV: where each was found, the URL, where it ends, and how."""
    buffer = io.StringIO()
    import csv

    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(REDIRECT_COLUMNS)
    for r in results:
        if (redirect := redirect_of(r)) is not None:
            row = (_found_in(r, sources), r.url, r.final_url or "", r.status_code or "", redirect.value)
            writer.writerow(row)
    return buffer.getvalue()


def render(
    results: list[ProbeResult], fmt: str, sources: SourceMap | None = None, *,
    interrupted: bool = False, only: frozenset[str] = frozenset(),
) -> str:  # fmt: skip
    """Render results in input order (for every format but ndjson, which streams).

    `sources` (URL -> where it was found) adds that to every format when links came from documents.
    `only` keeps the rows of those outcomes or redirects (the summary still counts every URL);
    `interrupted` says in the summary that the run was stopped.
    """
    ordered = sorted(results, key=lambda r: r.index)
    if fmt == "redirects":
        return _redirects(ordered, sources)
    if only and fmt in ("table", "markdown"):
        keep = wanted(only)
        return _rows_then_summary(fmt, [r for r in ordered if keep(r)], ordered, sources, interrupted)
    ordered = [r for r in ordered if wanted(only)(r)]
    if fmt == "json":
        return dumps([result_dict(r, sources) for r in ordered], indent=2) + "\n"
    if fmt == "ndjson":
        return "".join(ndjson_line(r, None if sources is None else sources.get(r.url)) for r in ordered)
    if fmt == "csv":
        return csv_text((result_dict(r, sources) for r in ordered), sources=sources is not None)
    if fmt == "junit":
        return _junit(ordered, sources)
    if fmt == "markdown":
        return _markdown(ordered, sources, interrupted)
    return _table(ordered, sources, interrupted)


def _rows_then_summary(
    fmt: str, kept: list[ProbeResult], every: list[ProbeResult], sources: SourceMap | None, interrupted: bool
) -> str:
    """A table or Markdown of the rows kept by --only, with the summary of every URL."""
    body = (_markdown if fmt == "markdown" else _table)(kept, sources, interrupted).rstrip("\n")
    return body[: body.rfind("\n")] + "\n" + summary(every, interrupted) + "\n"


def dumps(value: Any, indent: int = 2) -> str:
    """Indented JSON (the json module, loaded only by the formats that write it)."""
    import json

    return json.dumps(value, indent=indent)
