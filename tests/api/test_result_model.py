"""The result as the API shows it: derived from the engine's one declaration, the same fields on
every page and stream, the closed error set as an enum, unsupported results counted apart."""

from __future__ import annotations

import asyncio
import csv
import io
import json

import httpx

from linkprobe.engine.outcome import RESULT_FIELDS, ErrorKind
from linkprobe.report import CSV_COLUMNS
from tests.api.test_tasks import submit, wait_status
from tests.conftest import Target

NAMES = [f.name for f in RESULT_FIELDS]


async def test_json_pages_ndjson_and_csv_carry_every_declared_field(
    api: httpx.AsyncClient, target: Target
) -> None:
    task = await submit(api, [target.url("/status/200"), target.url("/redirect/1")])
    await wait_status(api, task["id"])
    base = f"/api/v1/tasks/{task['id']}/results"
    page = (await api.get(base)).json()["items"]
    lines = [
        json.loads(line) for line in (await api.get(base, params={"format": "ndjson"})).text.splitlines()
    ]
    # in declaration order, none dropped; a JSON page adds what linkprobe.outcomes derives
    assert [list(item) for item in page] == [[*NAMES, "outcome", "redirect"]] * 2
    assert [(item["outcome"], item["redirect"]) for item in page] == [("ok", None), ("ok", "temporary")]
    assert [list(line) for line in lines] == [NAMES, NAMES]
    assert page[0]["body"] == lines[0]["body"] == "complete" and page[1]["queue_ms"] == lines[1]["queue_ms"]
    header = next(csv.reader(io.StringIO((await api.get(base, params={"format": "csv"})).text)))
    assert tuple(header) == CSV_COLUMNS and {"body", "queue_ms", "error_kind"} <= set(header)


async def test_unsupported_is_counted_apart_and_filtered(api: httpx.AsyncClient, target: Target) -> None:
    urls = [
        target.url("/status/200"),
        target.url("/status/404"),
        target.url("/redirect-to?url=mailto:x@y.example"),
    ]
    task = await submit(api, urls)
    done = await wait_status(api, task["id"])
    assert done["progress"] == {
        "total": 3,
        "done": 3,
        "ok": 1,
        "broken": 1,
        "unsupported": 1,
        "cancelled": 0,
        "pages": None,
    }
    assert done["by_error"] == {"unsupported": 1}
    base = f"/api/v1/tasks/{task['id']}/results"
    only = (await api.get(base, params={"outcome": "unsupported"})).json()["items"]
    assert [r["index"] for r in only] == [2] and only[0]["error"]["kind"] == "unsupported"
    same = (await api.get(base, params={"error_kind": "unsupported"})).json()["items"]
    assert [r["index"] for r in same] == [2]
    for outcome, kind in [("unsupported", "dns"), ("ok", "dns"), ("broken", "unsupported")]:
        clash = await api.get(base, params={"outcome": outcome, "error_kind": kind})
        assert clash.status_code == 422 and "select nothing" in clash.json()["detail"], (outcome, kind)


async def test_a_redirect_loop_is_no_redirect_on_a_page_as_in_the_filter(
    api: httpx.AsyncClient, target: Target
) -> None:
    """A result that ended in a loop is broken, not a redirect to update: its page shows no
    redirect, and ?redirect=any leaves it out (one rule, outcomes.redirect_rule)."""
    task = await submit(api, [target.url("/loop/a"), target.url("/redirect/1")])
    await wait_status(api, task["id"])
    base = f"/api/v1/tasks/{task['id']}/results"
    page = (await api.get(base)).json()["items"]
    assert [(r["error"] or {}).get("kind") for r in page] == ["redirect_loop", None]
    assert [r["redirect"] for r in page] == [None, "temporary"]
    redirected = (await api.get(base, params={"redirect": "any"})).json()["items"]
    assert [r["index"] for r in redirected] == [1]


async def test_each_outcome_count_is_what_its_filter_returns(api: httpx.AsyncClient, target: Target) -> None:
    """progress counts ok, broken, unsupported and cancelled as `?outcome=` selects them."""
    quick = [target.url("/status/200"), target.url("/status/404"), "not a url"]
    urls = [*quick, target.url("/redirect-to?url=mailto:x@y.example"), *[target.url("/slow?s=30")] * 2]
    task = await submit(api, urls, options={"timeout": 60})
    for _ in range(300):  # the four quick ones done, the slow ones held: then cancel
        if (await api.get(f"/api/v1/tasks/{task['id']}")).json()["progress"]["done"] == 4:
            break
        await asyncio.sleep(0.05)
    cancelled = (await api.post(f"/api/v1/tasks/{task['id']}/cancel")).json()
    progress = cancelled["progress"]
    assert (progress["ok"], progress["broken"], progress["unsupported"], progress["cancelled"]) == (
        1,
        2,
        1,
        2,
    )
    base = f"/api/v1/tasks/{task['id']}/results"
    for outcome in ("ok", "broken", "unsupported", "cancelled"):
        items = (await api.get(base, params={"outcome": outcome})).json()["items"]
        assert len(items) == progress[outcome] and {r["outcome"] for r in items} == {outcome}


async def test_error_kinds_are_an_enum_in_the_schema_and_the_query(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    kinds = [k.value for k in ErrorKind]
    assert schema["components"]["schemas"]["ErrorKind"]["enum"] == kinds
    params = schema["paths"]["/api/v1/tasks/{task_id}/results"]["get"]["parameters"]
    error_kind = next(p for p in params if p["name"] == "error_kind")
    assert "ErrorKind" in json.dumps(error_kind["schema"])
    response = await api.get("/api/v1/tasks/nope/results", params={"error_kind": "no_such_kind"})
    assert response.status_code == 422


async def test_control_characters_in_options_are_a_422(api: httpx.AsyncClient) -> None:
    for options in ({"user_agent": "a\r\nX-Evil: 1"}, {"headers": {"X-A": "b\nc"}}):
        response = await api.post("/api/v1/tasks", json={"urls": ["http://a.example/"], "options": options})
        assert response.status_code == 422 and "control characters" in response.text
