"""Render results: table, json, ndjson, csv, junit, markdown. Shared by the CLI and the API."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from linkprobe.changes import Change, Compared, counts
from linkprobe.engine import ErrorKind, ProbeResult
from linkprobe.engine.outcome import RESULT_FIELDS, BodyState, Outcome
from linkprobe.outcomes import OUTCOMES, Redirect, redirect_of

FORMATS = ("table", "json", "ndjson", "csv", "junit", "markdown", "redirects")
# --only: the outcomes (outcomes.OUTCOMES) and the redirect views a report may be limited to.
ONLY = (*OUTCOMES, "redirected", "permanent")
REDIRECT_COLUMNS = ("found_in", "url", "final_url", "status_code", "redirect")
# Derived from the one result declaration: `error` becomes two columns, `redirects` a hop count.
_FLAT = {"error": ("error_kind", "error_message")}
_BLOCKED_ADDRESS = re.compile(r": ([0-9a-fA-F.:]+) is ")
CSV_COLUMNS = tuple(column for f in RESULT_FIELDS for column in _FLAT.get(f.name, (f.name,)))


class Places(Protocol):
    """Where a URL was found in documents (cli.documents.Sources): shown beside its result."""

    total: int

    def to_dict(self) -> dict[str, object]: ...

    def text(self) -> str: ...


SourceMap = Mapping[str, Places]
CHANGE_COLUMNS = ("change", "was")  # csv and redirects, with --baseline


@dataclass(frozen=True)
class Notes:
    """What a run adds to its results: each URL's change since a baseline (`changes`, every URL
    of either run, None without a baseline) and the results reused from a cache file (`cached`:
    URL -> the file)."""

    changes: Mapping[str, Compared] | None = None
    cached: Mapping[str, str] = field(default_factory=dict)

    def of(self, url: str) -> Compared | None:
        return None if self.changes is None else self.changes.get(url)

    def fields(self, url: str) -> dict[str, Any]:
        """The keys they add to a result's JSON: change, previous, cached_from."""
        extra: dict[str, Any] = {}
        if (compared := self.of(url)) is not None:
            extra.update(change_fields(compared))
        if url in self.cached:
            extra["cached_from"] = self.cached[url]
        return extra

    def gone(self) -> list[Compared]:
        """The baseline's URLs this run did not have, in the baseline's order."""
        every = () if self.changes is None else self.changes.values()
        return [c for c in every if c.change is Change.GONE]

    def without_gone(self) -> Notes:
        if self.changes is None:
            return self
        kept = {url: c for url, c in self.changes.items() if c.change is not Change.GONE}
        return Notes(kept, self.cached)

    def columns(self, url: str) -> list[str]:
        """The `change` and `was` cells of a CSV row."""
        compared = self.of(url)
        if compared is None:
            return ["", ""]
        was = "" if compared.previous is None else compared.previous.text()
        return ["" if compared.change is None else compared.change.value, was]


NO_NOTES = Notes()


def change_fields(compared: Compared) -> dict[str, Any]:
    """`change` (null: unchanged) and `previous` (what the baseline saw; null: new)."""
    previous = None if compared.previous is None else compared.previous.to_dict()
    return {"change": None if compared.change is None else compared.change.value, "previous": previous}


def gone_dict(compared: Compared) -> dict[str, Any]:
    """A URL of the baseline this run did not have: its URL, `change: gone` and `previous`."""
    return {"url": compared.url, **change_fields(compared)}


def change_note(compared: Compared | None) -> str | None:
    """`broke since the baseline (was ok 200)`; None when unchanged or without a baseline."""
    if compared is None or compared.change is None:
        return None
    if compared.change is Change.NEW:
        return "new since the baseline"
    assert compared.previous is not None
    return f"{compared.change.value} since the baseline (was {compared.previous.text()})"


def changes_summary(notes: Notes) -> str:
    """`since the baseline: 1 broke, 2 fixed, 0 changed, 3 new, 0 gone` ('' without a baseline)."""
    if notes.changes is None:
        return ""
    tally = counts(c.change for c in notes.changes.values())
    return "since the baseline: " + ", ".join(f"{n} {word}" for word, n in tally.items())


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


def csv_text(
    rows: Iterable[dict[str, Any]],
    header: bool = True,
    sources: bool = False,
    notes: Notes = NO_NOTES,
    cached: bool = False,
) -> str:
    """CSV of results in their to_dict() form; `sources` adds that column (documents, crawls), a
    baseline in `notes` the `change` and `was` columns, a cache in `notes` (or `cached`: results
    that may carry their own, a task with max_age) `cached_from`."""
    buffer = io.StringIO()
    import csv

    writer = csv.writer(buffer, lineterminator="\n")
    changes = notes.changes is not None
    cached = cached or bool(notes.cached)
    if header:
        extra = (*(("sources",) if sources else ()), *(CHANGE_COLUMNS if changes else ()))
        writer.writerow((*CSV_COLUMNS, *extra, *(("cached_from",) if cached else ())))
    for row in rows:
        cells = csv_row(row)
        cells += [sources_cell(row.get("sources"))] if sources else []
        cells += notes.columns(row["url"]) if changes else []
        cells += [notes.cached.get(row["url"]) or row.get("cached_from") or ""] if cached else []
        writer.writerow(cells)
    return buffer.getvalue()


def result_dict(result: ProbeResult, sources: SourceMap | None, notes: Notes = NO_NOTES) -> dict[str, Any]:
    data = result.to_dict()
    places = None if sources is None else sources.get(result.url)
    if places is not None and places.total:
        data["sources"] = places.to_dict()
    return {**data, **notes.fields(result.url)}


def ndjson_line(
    result: ProbeResult, places: Places | None = None, extra: Mapping[str, Any] | None = None
) -> str:
    """One compact JSON line (orjson, as ProbeResult.to_json(): a crawl writes one per URL);
    `extra` adds keys (Notes.fields: change, previous, cached_from)."""
    extra = extra or {}
    if (places is None or not places.total) and not extra:
        return result.to_json() + "\n"
    import orjson

    data = result.to_dict()
    if places is not None and places.total:
        data["sources"] = places.to_dict()
    return orjson.dumps({**data, **extra}).decode() + "\n"


def gone_line(compared: Compared) -> str:
    """The NDJSON line of a URL gone since the baseline."""
    import orjson

    return orjson.dumps(gone_dict(compared)).decode() + "\n"


def _found_in(result: ProbeResult, sources: SourceMap | None) -> str:
    places = None if sources is None else sources.get(result.url)
    return places.text() if places is not None and places.total else ""


def summary(results: list[ProbeResult], interrupted: bool = False, notes: Notes = NO_NOTES) -> str:
    """`N URLs: X ok, Y broken`, then the outcomes counted apart and the redirects when there are
    any, the results from a cache, the changes since a baseline; an interrupted run says so first."""
    outcomes = [r.outcome for r in results]
    ok, broken, unsupported, cancelled = (outcomes.count(o) for o in Outcome)
    text = f"{len(results)} URLs: {ok} ok, {broken} broken"
    text += f", {unsupported} unsupported" if unsupported else ""
    text += f", {cancelled} cancelled" if cancelled else ""
    redirects = [redirect_of(r) for r in results]
    if moved := len(redirects) - redirects.count(None):
        text += f"; {moved} redirected ({redirects.count(Redirect.PERMANENT)} permanent)"
    if cached := sum(r.url in notes.cached for r in results):
        text += f"; {cached} from the cache"
    if changes := changes_summary(notes):
        text += f"; {changes}"
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


def _table(
    results: list[ProbeResult], sources: SourceMap | None, interrupted: bool, notes: Notes = NO_NOTES
) -> str:
    rows = [
        (str(r.index), str(r.status_code or "-"), verdict(r), f"{r.elapsed_ms:.0f}", r.url) for r in results
    ]
    # Under each row: why, where it redirects, its body, its change; where a broken link was found.
    under = [(_notes(r, notes), "" if sources is None or r.ok else _found_in(r, sources)) for r in results]
    for gone in notes.gone():
        rows.append(("-", "-", "gone", "-", gone.url))
        under.append(((change_note(gone),), ""))
    header = ("#", "STATUS", "RESULT", "MS", "URL")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(header))]
    for row, (whys, found) in zip(rows, under, strict=True):
        lines.append("  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row)))
        lines.extend(" " * (sum(widths) + 8) + f"-> {why}" for why in whys if why is not None)
        if found:
            lines.append(f"    found in {found}")
    return "\n".join([*lines, summary(results, interrupted, notes)]) + "\n"


def _notes(result: ProbeResult, notes: Notes) -> tuple[str | None, ...]:
    """What is said under a row: why it failed, where it redirects, its body, its change."""
    return (explain(result), redirect_note(result), body_note(result), change_note(notes.of(result.url)))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown(
    results: list[ProbeResult], sources: SourceMap | None, interrupted: bool, notes: Notes = NO_NOTES
) -> str:
    columns = ["#", "URL", "Status", "Result", "ms", "Why"]
    columns += ["Found in"] if sources is not None else []
    columns += ["Change"] if notes.changes is not None else []
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in results:
        cells = (r.index, _cell(r.url), r.status_code or "-", verdict(r), f"{r.elapsed_ms:.0f}")
        why = "; ".join(note for note in (explain(r), redirect_note(r), body_note(r)) if note)
        row = "| " + " | ".join(map(str, cells)) + f" | {_cell(why)} |"
        if sources is not None:
            row += f" {_cell(_found_in(r, sources))} |"
        if notes.changes is not None:
            row += f" {_cell(_change_cell(notes.of(r.url)))} |"
        lines.append(row)
    for gone in notes.gone():
        row = f"| - | {_cell(gone.url)} | - | gone | - | |" + (" |" if sources is not None else "")
        lines.append(row + f" {_cell(_change_cell(gone))} |")
    return "\n".join([*lines, "", summary(results, interrupted, notes)]) + "\n"


def _change_cell(compared: Compared | None) -> str:
    """`broke (was ok 200)`, `new`, or '' when unchanged."""
    if compared is None or compared.change is None:
        return ""
    was = "" if compared.previous is None else f" (was {compared.previous.text()})"
    return compared.change.value + was


def _apart(result: ProbeResult) -> bool:
    """Neither ok nor broken (the one classifier): a skipped case, not a failure."""
    return result.outcome in (Outcome.UNSUPPORTED, Outcome.CANCELLED)


def _junit(results: list[ProbeResult], sources: SourceMap | None, notes: Notes = NO_NOTES) -> str:
    from xml.etree import ElementTree as ET  # junit only: half a MiB the other formats skip

    failures = sum(not r.ok and not _apart(r) for r in results)
    total_s = sum(r.elapsed_ms for r in results) / 1000
    gone = notes.gone()
    tests = str(len(results) + len(gone))
    suite = ET.Element("testsuite", name="linkprobe", tests=tests, failures=str(failures))
    suite.set("skipped", str(sum(map(_apart, results)) + len(gone)))
    suite.set("time", f"{total_s:.3f}")
    for r in results:
        case = ET.SubElement(
            suite, "testcase", classname="linkprobe", name=r.url, time=f"{r.elapsed_ms / 1000:.3f}"
        )
        if (compared := notes.of(r.url)) is not None and compared.change is not None:
            _change_property(case, compared)
        if not r.ok:
            message = explain(r) or f"HTTP {r.status_code}"
            failure = ET.SubElement(
                case, "skipped" if _apart(r) else "failure", message=message, type=verdict(r)
            )
            failure.text = dumps(result_dict(r, sources, notes), indent=2)
    for compared in gone:  # skipped: there is nothing to check any more
        case = ET.SubElement(suite, "testcase", classname="linkprobe", name=compared.url, time="0.000")
        _change_property(case, compared)
        ET.SubElement(case, "skipped", message=change_note(compared) or "", type="gone")
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _change_property(case: Any, compared: Compared) -> None:
    """A test case's change since the baseline, as a JUnit property."""
    from xml.etree import ElementTree as ET

    assert compared.change is not None
    properties = ET.SubElement(case, "properties")
    ET.SubElement(properties, "property", name="change", value=compared.change.value)


def _redirects(results: list[ProbeResult], sources: SourceMap | None, notes: Notes = NO_NOTES) -> str:
    """The links to update, as CSV: where each was found, the URL, where it ends, and how (and
    with a baseline, its change and what it was)."""
    buffer = io.StringIO()
    import csv

    writer = csv.writer(buffer, lineterminator="\n")
    changes = notes.changes is not None
    writer.writerow((*REDIRECT_COLUMNS, *(CHANGE_COLUMNS if changes else ())))
    for r in results:
        if (redirect := redirect_of(r)) is not None:
            row = [_found_in(r, sources), r.url, r.final_url or "", r.status_code or "", redirect.value]
            writer.writerow(row + (notes.columns(r.url) if changes else []))
    return buffer.getvalue()


def render(
    results: list[ProbeResult], fmt: str, sources: SourceMap | None = None, *,
    interrupted: bool = False, only: frozenset[str] = frozenset(), notes: Notes = NO_NOTES,
) -> str:  # fmt: skip
    """Render results in input order (for every format but ndjson, which streams).

    `sources` (URL -> where it was found) adds that to every format when links came from documents.
    `only` keeps the rows of those outcomes or redirects (the summary still counts every URL);
    `interrupted` says in the summary that the run was stopped. `notes` adds each URL's change
    since a baseline (and the baseline's URLs gone from this run, as rows after the results,
    left out with `only`) and which results came from a cache.
    """
    ordered = sorted(results, key=lambda r: r.index)
    if fmt == "redirects":
        return _redirects(ordered, sources, notes)
    if only and fmt in ("table", "markdown"):
        keep = wanted(only)
        return _rows_then_summary(fmt, [r for r in ordered if keep(r)], ordered, sources, interrupted, notes)
    ordered = [r for r in ordered if wanted(only)(r)]
    gone = [] if only else notes.gone()
    if fmt == "json":
        rows = [*(result_dict(r, sources, notes) for r in ordered), *map(gone_dict, gone)]
        return dumps(rows, indent=2) + "\n"
    if fmt == "ndjson":
        lines = (
            ndjson_line(r, None if sources is None else sources.get(r.url), notes.fields(r.url))
            for r in ordered
        )
        return "".join(lines) + "".join(map(gone_line, gone))
    if fmt == "csv":
        rows = [*(result_dict(r, sources) for r in ordered), *({"url": c.url} for c in gone)]
        return csv_text(rows, sources=sources is not None, notes=notes)
    if fmt == "junit":
        return _junit(ordered, sources, notes.without_gone() if only else notes)
    if fmt == "markdown":
        return _markdown(ordered, sources, interrupted, notes)
    return _table(ordered, sources, interrupted, notes)


def _rows_then_summary(
    fmt: str, kept: list[ProbeResult], every: list[ProbeResult], sources: SourceMap | None,
    interrupted: bool, notes: Notes,
) -> str:  # fmt: skip
    """A table or Markdown of the rows kept by --only (no gone rows), with the summary of every URL."""
    kept_notes = notes.without_gone()
    body = (_markdown if fmt == "markdown" else _table)(kept, sources, interrupted, kept_notes).rstrip("\n")
    return body[: body.rfind("\n")] + "\n" + summary(every, interrupted, notes) + "\n"


def dumps(value: Any, indent: int = 2) -> str:
    """Indented JSON (the json module, loaded only by the formats that write it)."""
    import json

    return json.dumps(value, indent=indent)
