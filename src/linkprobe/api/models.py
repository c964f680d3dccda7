"""Request and response models of the public API (/api/v1)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
    create_model,
    model_validator,
)

from linkprobe.api.caps import CRAWL_CAPPED
from linkprobe.api.options import ProbeOptionsModel, ProbeOptionsShown, model_of
from linkprobe.engine import ProbeOptions
from linkprobe.engine.outcome import RESULT_FIELDS, ErrorKind, Hop, Outcome, ProbeError, classify
from linkprobe.frontier import CLIENT_SET, CrawlSpec
from linkprobe.outcomes import Redirect, redirect_rule
from linkprobe.store import TaskRecord, TaskStatus

# What the API adds to the crawl's declaration: the operator's caps (api/caps.py) on its limits.
_CAP_NOTES = {
    limit: f"At most LINKPROBE_{field.upper()} (also when omitted)." for limit, field in CRAWL_CAPPED.items()
}

if TYPE_CHECKING:  # what the models are to the type checker; their fields are CrawlSpec's

    class CrawlCreate(BaseModel): ...

    class Crawl(BaseModel): ...

else:
    CrawlCreate = model_of(CrawlSpec, "CrawlCreate", CLIENT_SET, _CAP_NOTES)
    Crawl = model_of(CrawlSpec, "Crawl", notes=_CAP_NOTES)


class TaskCreate(BaseModel):
    """Exactly one of `urls` (a list to probe) and `crawl` (a site to crawl)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"urls": ["https://example.com/", "https://example.org/missing"], "name": "docs links"},
                {"crawl": {"start": "https://docs.example.com/", "scope": "site"}, "name": "docs site"},
            ]
        },
    )

    urls: list[str] | None = Field(
        None, min_length=1, description="URLs to probe; invalid ones become invalid_url results."
    )
    crawl: CrawlCreate | None = None
    name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=2000)
    options: ProbeOptionsModel = Field(default_factory=ProbeOptionsModel)

    @model_validator(mode="after")
    def _one_input(self) -> TaskCreate:
        if (self.urls is None) == (self.crawl is None):
            raise ValueError("give exactly one of urls or crawl")
        return self


class Submit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(..., min_length=1)


class Submitted(BaseModel):
    task_id: str


class Progress(BaseModel):
    total: int
    done: int
    ok: int
    broken: int = Field(description="Done and neither ok, unsupported nor cancelled.")
    unsupported: int = Field(
        description="A scheme that is not http(s) (mailto:...), or a redirect to one: neither ok nor broken."
    )
    cancelled: int = Field(
        0, description="Not finished: the task was cancelled first; neither ok nor broken."
    )
    pages: int | None = Field(
        None, description="Crawl tasks: pages fetched so far (total counts every URL discovered)."
    )


class ChangeCounts(BaseModel):
    """How many URLs changed against the previous run (linkprobe.changes), by change."""

    since: str = Field(description="The previous run: the task compared with.")
    broke: int
    fixed: int
    changed: int
    new: int
    gone: int


class Task(BaseModel):
    id: str
    name: str | None
    description: str | None
    status: TaskStatus
    progress: Progress
    by_status: dict[str, int] = Field(description="Results counted by HTTP status code (URLs with no error).")
    by_error: dict[str, int] = Field(description="Results counted by error kind.")
    latency: dict[str, int] = Field(
        description="Probed results counted by elapsed_ms: bucket upper bound in ms -> count, every bucket in"
        ' order, "+Inf" last. URLs never attempted (invalid, cancelled) have no timing and are not counted.'
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    options: ProbeOptionsShown = Field(
        description="The task's probe options that differ from their defaults; header values are redacted."
    )
    crawl: Crawl | None = Field(None, description="A crawl task's site and limits; null for URL lists.")
    rerun_of: str | None = Field(None, description="The task this one runs again (POST .../rerun).")
    schedule: str | None = Field(None, description="The schedule this task is a run of.")
    changes: ChangeCounts | None = Field(
        None, description="A re-run's changes against the task it re-runs, counted once it has ended."
    )

    @classmethod
    def of(cls, record: TaskRecord) -> Task:
        crawl = None if record.crawl is None else _crawl_view(record.crawl)
        return cls(
            id=record.id, name=record.name, description=record.description, status=record.status,
            progress=progress(record),
            by_status=record.by_status, by_error=record.by_error, latency=record.latency,
            created_at=record.created_at, started_at=record.started_at, finished_at=record.finished_at,
            options=ProbeOptionsShown.model_validate(shown_options(record.options)),
            crawl=crawl, rerun_of=record.rerun_of, schedule=record.schedule,
            changes=None if record.changes is None else ChangeCounts.model_validate(record.changes),
        )  # fmt: skip


def shown_options(options: ProbeOptions) -> dict[str, Any]:
    """Options as shown to anyone: header names stay, their values do not (the stores keep them
    redacted already; a Redis task stored before secrets were kept apart may not be)."""
    return options.redacted().changed()


def progress(record: TaskRecord) -> Progress:
    """The stores count each result by its outcome word (ProbeResult.outcome), as `?outcome=` filters."""
    return Progress(
        total=record.total, done=record.done, ok=record.ok, broken=record.broken,
        unsupported=record.unsupported, cancelled=record.cancelled,
        pages=None if record.crawl is None else record.pages,
    )  # fmt: skip


class TaskPage(BaseModel):
    items: list[Task]
    next_cursor: str | None


class Place(BaseModel):
    document: str = Field(description="The uploaded file's name, or the URL of the crawled page.")
    line: int = Field(description="1-based line of the element, Markdown block or sitemap <loc>.")


class Sources(BaseModel):
    """Where a URL of a document upload or a crawl was found (extract.Sources)."""

    total: int = Field(description="How many places hold the URL, all counted.")
    places: list[Place] = Field(description="The first places, at most 10.")


class _Shown(BaseModel):
    """What a JSON page of results adds to each result, derived by linkprobe.outcomes (the rules
    the CLI shows too): its outcome word and its redirect, so clients never re-derive them."""

    @computed_field(description="ok, broken, unsupported or cancelled (neither of the first two).")
    def outcome(self) -> Outcome:
        error: ProbeError | None = getattr(self, "error")  # noqa: B009  # the fields are RESULT_FIELDS'
        return classify(getattr(self, "ok"), None if error is None else error.kind)  # noqa: B009

    @computed_field(description="permanent (the link's own answer is 301 or 308), temporary, or null.")
    def redirect(self) -> Redirect | None:
        hops: tuple[Hop, ...] = getattr(self, "redirects")  # noqa: B009
        error: ProbeError | None = getattr(self, "error")  # noqa: B009
        return redirect_rule(hops[0].status_code if hops else None, None if error is None else error.kind)


CACHED_FROM = (
    "Only on a result reused under options.max_age: the task that probed it (checked_at is that probe's)."
)


def _result_model() -> type[BaseModel]:
    """The API's result, derived from the engine's one declaration (engine/outcome.py): every
    field the NDJSON and CSV forms carry, with its description, and the error kinds as an enum;
    then `sources`, only on results that have them (document uploads, crawls)."""
    fields: dict[str, Any] = {
        f.name: (f.type, Field(... if f.required else f.default, description=f.doc)) for f in RESULT_FIELDS
    }
    fields["sources"] = (
        Sources | None,
        Field(None, exclude_if=lambda value: value is None, description=Sources.__doc__),
    )
    fields["cached_from"] = (
        str | None,
        Field(None, exclude_if=lambda value: value is None, description=CACHED_FROM),
    )
    return create_model("Result", __doc__="One probed URL.", __base__=_Shown, **fields)


Result = _result_model()
ResultPage = create_model(
    "ResultPage",
    items=(list[Result], ...),  # type: ignore[valid-type]  # built above from RESULT_FIELDS
    next_cursor=(str | None, ...),
)


class Egress(BaseModel):
    allow_private: bool = Field(description="Loopback, private and link-local destinations are allowed.")
    allow_cidrs: list[str] = Field(description="Networks allowed despite the policy.")
    policy: str = Field(description="The policy in force, and how the operator allows a blocked target.")
    to_allow: str = Field(description="How to allow a blocked destination: the service's settings.")


class Service(BaseModel):
    """What this service allows and how it judges: a client derives its forms and words from it."""

    options: dict[str, dict[str, float]] = Field(
        description="Numeric task options: minimum (or exclusiveMinimum), maximum (the operator's "
        "cap) and default."
    )
    crawl: dict[str, dict[str, int]] = Field(description="A crawl's limits: minimum, maximum (cap), default.")
    outcomes: list[Outcome] = Field(
        description="Each result's outcome word: ok, broken, unsupported, cancelled."
    )
    error_kinds: list[ErrorKind] = Field(description="The error kinds results get (retired ones left out).")
    permanent_redirects: list[int] = Field(
        description="A result whose first hop has one of these statuses is a permanent redirect."
    )
    egress: Egress


class Problem(BaseModel):
    detail: Any


def _crawl_view(spec: CrawlSpec) -> Crawl:
    """The stored crawl as shown, unvalidated (it was on the way in)."""
    return Crawl.model_construct(**spec.to_dict())
