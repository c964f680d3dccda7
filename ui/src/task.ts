// One task: live progress over SSE, outcome charts, and the results table paged from the API.
import { BASE, json, resultsQuery, service, TERMINAL } from "./api";
import { type BodyState, type Crawl, type Outcome, outcomeValues, type paths, type Result, type ResultPage,
  type Service, type Sources, type Task } from "./openapi";
import { acceptRule, barChart, errorBars, latencyBars, statusBars } from "./charts";
import { h, replace } from "./dom";
import { changesCard } from "./changes";
import { count, duration, ms, percent, when } from "./format";
import { runAgainButton } from "./rerun";
import { EventStream } from "./sse";
import { actions } from "./tasks";
import { attempt, badge, download, isGone, setTitle, showError } from "./ui";
import { taskWebhookCard } from "./webhooks";

const PAGE_SIZE = 50;
const REFRESH_MS = 2000;
const TICK_MS = 1000;  // the live numbers are recomputed this often, events or not
const RATE_WINDOW_MS = 10_000;  // the rate is over this recent window, not since the start
const STALLED_MS = 3000;  // nothing finished for this long: no time left is estimated, the wait is said
const COUNTING_LOOKS = 30;  // an ended re-run's changes are looked for this many times, REFRESH_MS apart
// Words for the API's enums: a value the API adds without a word here fails tsc.
const OUTCOMES: Record<Outcome, string> = { ok: "OK", broken: "Broken", unsupported: "Unsupported", cancelled: "Cancelled" };
const BODY: Record<BodyState, string | null> = {
  complete: null,
  truncated: "body cut at the size limit", timeout: "body timed out", reset: "connection reset during the body",
  undecodable: "body could not be decoded",
};

type ResultsQuery = NonNullable<paths["/api/v1/tasks/{task_id}/results"]["get"]["parameters"]["query"]>;
/** The results' filters as the form holds them, named as the API's query parameters (Pick checks the names). */
type Filter = Record<keyof Pick<ResultsQuery, "outcome" | "redirect" | "error_kind" | "status_code" | "q">, string>;
const REDIRECTS: Record<NonNullable<ResultsQuery["redirect"]>, string> = {
  any: "Redirected", permanent: "Permanent redirect", temporary: "Temporary redirect",
};

export async function taskView(main: HTMLElement, signal: AbortSignal, id: string): Promise<void> {
  setTitle("Task");
  const path = `${BASE}/tasks/${encodeURIComponent(id)}`;
  let task: Task;
  try {
    task = await json<Task>(path, { signal });
  } catch (error) {
    if (isGone(error)) return gone(main, id);
    if ((error as Error).name !== "AbortError") showError(error);
    return;
  }
  let described: Service | null = null;
  try {
    described = await service();
  } catch (error) {
    if ((error as Error).name !== "AbortError") showError(error);
  }
  new TaskPage(main, signal, path, task, described).start();
}

function gone(main: HTMLElement, id: string): void {
  setTitle("Task not found");
  replace(main, h("div", { class: "empty" }, h("h1", {}, "This task no longer exists"),
    h("p", {}, `Task ${id} was deleted, or never existed on this service.`),
    h("a", { href: "#/", class: "button" }, "Back to tasks")));
}

class TaskPage {
  private readonly head = h("div", { class: "task-head" });
  private readonly live = h("section", { class: "card live", "aria-labelledby": "live-title" });
  private readonly changes = h("div", { class: "changes-part", "aria-live": "polite" });
  private changesShown = "";
  private countingLooks = 0;
  private readonly charts = h("div", { class: "charts" });
  private readonly rows = h("div", { class: "table-wrap" });
  private readonly pager = h("nav", { class: "pager", "aria-label": "Result pages" });
  private readonly connection = h("span", { class: "connection", role: "status" });
  private readonly cursors: (string | null)[] = [null];
  private filter: Filter = { outcome: "", redirect: "", error_kind: "", status_code: "", q: "" };
  private samples: { at: number; done: number }[] = [];
  private shown = 0;
  private shownDone = -1;
  private changed = { at: Date.now(), done: -1 };  // when `done` last moved
  private lastRows = 0;
  private stream: EventStream | null = null;
  private ticker = 0;

  constructor(private readonly main: HTMLElement, private readonly signal: AbortSignal,
    private readonly path: string, private task: Task, private readonly service: Service | null) {}

  start(): void {
    this.main.append(this.head, this.live, this.changes,
      h("section", { class: "card", "aria-labelledby": "charts-title" }, h("h2", { id: "charts-title" }, "Breakdown"), this.charts),
      h("section", { class: "card results", "aria-labelledby": "results-title" },
        h("h2", { id: "results-title" }, "Results"), this.filterForm(), this.downloads(), this.rows, this.pager),
      taskWebhookCard(this.task.id, this.signal));
    this.update(this.task);
    void attempt(() => this.loadResults());
    if (!TERMINAL.has(this.task.status)) this.follow();
    this.ticker = window.setInterval(() => this.tick(), TICK_MS);
    this.signal.addEventListener("abort", () => {
      this.stream?.stop();
      clearInterval(this.ticker);
    });
  }

  /** Every second: the numbers as they are now (a rate decays while URLs hang), and the shown
   * page of results refreshed while it is not full and results were stored since. */
  private tick(): void {
    if (TERMINAL.has(this.task.status)) return clearInterval(this.ticker);
    this.renderLive(this.task);
    this.refreshRows();
  }

  private refreshRows(): void {
    const stale = this.task.progress.done !== this.shownDone;
    if (stale && this.lastRows < PAGE_SIZE && Date.now() - this.shown >= REFRESH_MS) {
      void attempt(() => this.loadResults());
    }
  }

  private follow(): void {
    this.stream = new EventStream(`${this.path}/events`, {
      state: (text) => { this.connection.textContent = text; },
      event: (name, data) => this.onEvent(name, data),
    });
  }

  private onEvent(name: string, data: unknown): void {
    if (name === "deleted") return this.deleted();
    if (name === "error") return this.failed(data);
    if (name !== "progress" && name !== "done") return;
    this.update(data as Task);
    if (name === "done") {
      this.connection.textContent = ended(this.task);
      void attempt(() => this.loadResults());
    } else {
      this.refreshRows();  // the shown page is still filling up
    }
  }

  private failed(error: unknown): void {
    if (isGone(error)) return this.deleted();
    showError(error);
  }

  private deleted(): void {
    this.stream?.stop();
    gone(this.main, this.task.id);
  }

  private update(task: Task): void {
    this.task = task;
    const label = task.name || `Task ${task.id.slice(0, 8)}`;
    setTitle(label);
    replace(this.head,
      h("div", {}, h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Tasks"), " / "),
        h("h1", {}, label, " ", badge(task.status)),
        task.description ? h("p", { class: "description" }, task.description) : null,
        task.crawl ? crawlLine(task.crawl) : null,
        h("p", { class: "muted" }, `Created ${when(task.created_at)} · id `, h("code", {}, task.id))),
      h("div", { class: "row-actions" }, runAgainButton(task, label, this.signal),
        ...actions(task, label, (deleted) => this.afterAction(deleted))));
    this.renderLive(task);
    this.renderCharts(task);
    this.renderChanges(task);
  }

  /** The changes' counts; an ended re-run's are counted by the service after it ends: looked for
   * again a bounded number of times until they are there. */
  private renderChanges(task: Task): void {
    const shown = JSON.stringify([task.changes, TERMINAL.has(task.status)]);
    if (shown !== this.changesShown) replace(this.changes, changesCard(task));  // said once, not each event
    this.changesShown = shown;
    const counting = TERMINAL.has(task.status) && task.rerun_of && !task.changes;
    if (counting && this.countingLooks++ < COUNTING_LOOKS) {
      window.setTimeout(() => void attempt(async () => {
        if (!this.signal.aborted) this.update(await json<Task>(this.path, { signal: this.signal }));
      }), REFRESH_MS);
    }
  }

  private async afterAction(deleted: boolean): Promise<void> {
    if (deleted) {
      this.stream?.stop();
      location.hash = "#/";
      return;
    }
    this.update(await json<Task>(this.path, { signal: this.signal }));
    await this.loadResults();
  }

  /** URLs a second over the last RATE_WINDOW_MS: 0 while nothing finishes, whatever came before. */
  private rate(done: number): number {
    const now = Date.now();
    this.samples = [...this.samples.filter((s) => now - s.at < RATE_WINDOW_MS), { at: now, done }];
    const first = this.samples[0];
    return now - first.at >= TICK_MS ? ((done - first.done) * 1000) / (now - first.at) : NaN;
  }

  private renderLive(task: Task): void {
    const { total, done, ok, broken, pages, unsupported, cancelled } = task.progress;
    const rate = this.rate(done);
    const now = Date.now();
    if (done !== this.changed.done) this.changed = { at: now, done };
    const stalled = now - this.changed.at >= STALLED_MS;
    const running = !TERMINAL.has(task.status);
    const checked = done - cancelled;
    const stat = (name: string, value: string, cls = ""): HTMLElement =>
      h("div", { class: `stat ${cls}` }, h("dt", {}, name), h("dd", {}, value));
    replace(this.live,
      h("h2", { id: "live-title", class: "visually-hidden" }, "Progress"),
      h("div", { class: "progress-line" },
        h("progress", { id: "task-progress", max: total || 1, value: checked, "aria-label": "Task progress" }),
        h("span", { class: "percent" }, task.status === "cancelled" ? `${percent(checked, total)} checked` : percent(done, total))),
      h("dl", { class: "stats" },
        stat(task.status === "cancelled" ? "Checked" : "Done", `${count(checked)} / ${count(total)}`),
        stat("OK", count(ok), "ok"), stat("Broken", count(broken), "broken"),
        unsupported ? stat("Unsupported", count(unsupported), "apart unsupported") : null,
        cancelled || task.status === "cancelled" ? stat("Cancelled", count(cancelled), "apart cancelled") : null,
        typeof pages === "number" ? stat("Pages fetched", count(pages), "pages") : null,
        running ? stat("Rate", rateText(rate), "rate") : null,
        running ? stat("Time left", timeLeft(stalled ? 0 : rate, total - done), "left") : null),
      this.connection);
    if (!running) this.connection.textContent = ended(task);
  }

  private renderCharts(task: Task): void {
    const accepted = acceptRule(task.options.accept);
    replace(this.charts,
      barChart("Status codes", statusBars(task.by_status, accepted),
        TERMINAL.has(task.status) ? "No HTTP answers." : "No HTTP answers yet."),
      barChart("Errors", errorBars(task.by_error), "No errors."),
      task.latency ? barChart("Latency", latencyBars(task.latency), "No timings yet.") : null);
  }

  private filterForm(): HTMLElement {
    const kinds = [...new Set([...(this.service?.error_kinds ?? []), ...Object.keys(this.task.by_error)])];
    const outcome = h("select", { id: "f-outcome", name: "outcome" }, h("option", { value: "" }, "All"),
      ...(this.service?.outcomes ?? outcomeValues).map((o) => h("option", { value: o }, OUTCOMES[o])));
    const redirect = h("select", { id: "f-redirect", name: "redirect" }, h("option", { value: "" }, "Any"),
      ...Object.entries(REDIRECTS).map(([value, label]) => h("option", { value }, label)));
    const kind = h("select", { id: "f-error", name: "error_kind" }, h("option", { value: "" }, "Any"),
      ...kinds.map((k) => h("option", { value: k }, k)));
    const status = h("input", { id: "f-status", name: "status_code", type: "number", min: 100, max: 599,
      inputmode: "numeric", placeholder: "e.g. 404" });
    const q = h("input", { id: "f-q", name: "q", type: "search", placeholder: "part of the URL", spellcheck: false });
    const form = h("form", { class: "filters", role: "search", "aria-label": "Filter results" },
      h("div", { class: "field" }, h("label", { for: "f-outcome" }, "Outcome"), outcome),
      h("div", { class: "field" }, h("label", { for: "f-redirect" }, "Redirects"), redirect),
      h("div", { class: "field" }, h("label", { for: "f-error" }, "Error kind"), kind),
      h("div", { class: "field" }, h("label", { for: "f-status" }, "Status code"), status),
      h("div", { class: "field grow" }, h("label", { for: "f-q" }, "URL contains"), q),
      h("div", { class: "field" }, h("button", { type: "submit" }, "Apply")));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.filter = { outcome: outcome.value, redirect: redirect.value, error_kind: kind.value,
        status_code: status.value, q: q.value.trim() };
      this.cursors.splice(1);
      void attempt(() => this.loadResults());
    });
    for (const select of [outcome, redirect, kind]) select.addEventListener("change", () => form.requestSubmit());
    return form;
  }

  private downloads(): HTMLElement {
    const scope = h("select", { id: "d-scope" },
      h("option", { value: "filter" }, "current filter"), h("option", { value: "all" }, "whole task"));
    const button = (format: string, label: string): HTMLElement => h("button", { type: "button", class: "secondary",
      onclick: () => void attempt(() => this.download(format, scope.value === "all")) }, label);
    return h("div", { class: "downloads" }, h("label", { for: "d-scope" }, "Download"), scope,
      button("csv", "CSV"), button("ndjson", "NDJSON"), button("json", "JSON"));
  }

  private download(format: string, whole: boolean): Promise<void> {
    const filter = whole ? {} : this.filter;
    const wire = format === "json" ? "ndjson" : format;
    const url = `${this.path}/results?${resultsQuery(filter, { format: wire })}`;
    const name = `linkprobe-${this.task.id}${whole ? "" : "-filtered"}.${format}`;
    return download(url, name, this.signal, format === "json" ? ndjsonToJson : undefined);
  }

  private async loadResults(): Promise<void> {
    this.shown = Date.now();
    this.shownDone = this.task.progress.done;
    const cursor = this.cursors[this.cursors.length - 1];
    const query = resultsQuery(this.filter, { limit: String(PAGE_SIZE), ...(cursor ? { cursor } : {}) });
    let page: ResultPage;
    try {
      page = await json<ResultPage>(`${this.path}/results?${query}`, { signal: this.signal });
    } catch (error) {
      if (isGone(error)) return this.deleted();
      throw error;
    }
    this.lastRows = page.items.length;
    replace(this.rows, page.items.length ? resultsTable(page.items, this.service) : h("p", { class: "empty" },
      this.task.progress.done ? "No results match this filter." : "No results yet: they appear as URLs are checked."));
    replace(this.pager,
      h("button", { type: "button", class: "secondary", disabled: this.cursors.length < 2,
        onclick: () => { this.cursors.pop(); void attempt(() => this.loadResults()); } }, "← Previous"),
      h("span", { class: "muted" }, `Page ${this.cursors.length}`),
      h("button", { type: "button", class: "secondary", disabled: !page.next_cursor,
        onclick: () => { this.cursors.push(page.next_cursor); void attempt(() => this.loadResults()); } }, "Next →"));
  }
}

function crawlLine(crawl: Crawl): HTMLElement {
  const limits = [crawl.max_depth == null ? "" : `depth ≤ ${crawl.max_depth}`,
    crawl.max_pages == null ? "" : `at most ${count(crawl.max_pages)} pages`].filter(Boolean);
  return h("p", { class: "crawl-line" }, "Crawl of ", h("a", { href: crawl.start, rel: "noreferrer" }, crawl.start),
    limits.length ? ` (${limits.join(", ")})` : "");
}

async function ndjsonToJson(response: Response): Promise<Blob> {
  const text = (await response.text()).trim();
  return new Blob([`[${text ? text.split("\n").join(",\n") : ""}]\n`], { type: "application/json" });
}

function ended(task: Task): string {
  if (task.status === "cancelled") return `Cancelled ${when(task.finished_at)}: URLs not checked by then are counted as cancelled`;
  return `Finished ${when(task.finished_at)}`;
}

function rateText(rate: number): string {
  if (Number.isNaN(rate)) return "measuring…";
  return `${count(Math.round(rate))} URLs/s`;
}

/** Time left only when the recent rate says it; while nothing finishes, what is waited on. */
function timeLeft(rate: number, left: number): string {
  if (Number.isNaN(rate)) return "estimating…";
  if (rate <= 0) return `waiting on ${count(left)} URL${left === 1 ? "" : "s"}`;
  return duration(left / rate);
}

function resultsTable(items: Result[], described: Service | null): HTMLElement {
  return h("table", { class: "results-table" },
    h("caption", { class: "visually-hidden" }, "Results in input order; each row expands to its details"),
    h("thead", {}, h("tr", {}, ...["#", "URL", "Status", "Outcome", "Time", ""]
      .map((name, i) => h("th", { scope: "col", class: i === 2 || i === 4 ? "num" : "" }, name || "Details")))),
    ...items.map((item) => resultRows(item, described)));
}

/** The notes under a result's URL: where a redirect ends, why it failed, what happened to the body. */
function notes(result: Result, described: Service | null): HTMLElement | null {
  const lines: HTMLElement[] = [];
  if (result.redirect) {
    lines.push(h("span", { class: `note redirect ${result.redirect}` },
      h("span", { class: `pill ${result.redirect}` }, `${result.redirect} ${result.redirects[0].status_code}`), " → ",
      h("span", { class: "final" }, result.final_url ?? result.redirects[result.redirects.length - 1].url)));
  }
  const hint = advice(result, described);
  if (hint) lines.push(h("span", { class: "note why" }, hint));
  const body = bodyNote(result);
  if (body) lines.push(h("span", { class: "note body" }, body));
  return lines.length ? h("span", { class: "notes" }, ...lines) : null;
}

/** What happened to the body, when it is worth saying (not when it was read whole). */
function bodyNote(result: Result): string | null {
  return result.body ? BODY[result.body] : null;
}

/** How to fix what the service cannot do as asked: allow a blocked target, give a base URL. */
function advice(result: Result, described: Service | null): string | null {
  const kind = result.error?.kind;
  if (kind === "blocked") return `Blocked by the service's egress policy: ${described?.egress.to_allow ?? "ask its operator"}.`;
  if (kind === "invalid_url" && !/^[a-z][a-z0-9+.-]*:/i.test(result.url)) {
    return "Relative link: it needs a base URL (where the document is published). Upload it again with a base URL.";
  }
  return null;
}

function resultRows(result: Result, described: Service | null): HTMLElement {
  const detailsId = `details-${result.index}`;
  const toggle = h("button", { type: "button", class: "link expand", "aria-expanded": "false", "aria-controls": detailsId,
    "aria-label": `Details of ${result.url}` }, "Details");
  const details = h("tr", { id: detailsId, class: "details", hidden: true },
    h("td", { colspan: 6 }, detailsOf(result, described)));
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    details.hidden = !open;
  });
  const kind = result.error && result.error.kind !== result.outcome ? result.error.kind : null;
  const outcome = h("span", { class: "outcome" }, h("span", { class: `pill ${result.outcome}` }, result.outcome),
    kind ? h("span", { class: "kind" }, kind) : null);
  return h("tbody", { class: "result", "data-index": result.index, "data-outcome": result.outcome },
    h("tr", {},
      h("td", { class: "num muted", "data-label": "#" }, result.index),
      h("td", { class: "url", "data-label": "URL" }, h("span", { class: "link-url" }, result.url), notes(result, described)),
      h("td", { class: "num", "data-label": "Status" }, result.status_code ?? "–"),
      h("td", { "data-label": "Outcome" }, outcome),
      h("td", { class: "num", "data-label": "Time" }, ms(result.elapsed_ms)),
      h("td", {}, toggle)),
    details);
}

function detailsOf(result: Result, described: Service | null): HTMLElement {
  const item = (name: string, value: Node | string | null): HTMLElement | null =>
    value === null || value === "" ? null : h("div", {}, h("dt", {}, name), h("dd", {}, value));
  // Each hop records the status received and where it pointed: pair every URL with its answer.
  const visited = [result.url, ...result.redirects.map((hop) => hop.url)];
  const answers = [...result.redirects.map((hop) => hop.status_code), result.status_code ?? "–"];
  const chain = result.redirects.length
    ? h("ol", { class: "chain" }, ...visited.map((url, i) => h("li", {}, h("span", { class: "pill" }, answers[i]), " ", url)))
    : null;
  const sources = result.sources ? foundIn(result.sources) : null;
  return h("dl", { class: "detail-grid" },
    item("Error", result.error ? `${result.error.kind}: ${result.error.message}` : null),
    item("How to fix", advice(result, described)),
    item("Redirect", result.redirect ? `${result.redirect}: update the link to its final URL${result.redirect === "temporary" ? " only if the move is meant to last" : ""}` : null),
    item("Final URL", result.final_url !== result.url ? result.final_url ?? null : null),
    item("Body", bodyNote(result) ? `${result.body}: ${bodyNote(result)}` : null),
    item("Redirect chain", chain),
    item("Timings", `total ${ms(result.elapsed_ms)} · DNS ${ms(result.dns_ms)} · connect ${ms(result.connect_ms)}`
      + ` · TLS ${ms(result.tls_ms)} · first byte ${ms(result.ttfb_ms)}`),
    item("Attempts", String(result.attempts)),
    item("Content", [result.content_type, result.content_length == null ? "" : `${count(result.content_length)} bytes`]
      .filter(Boolean).join(", ")),
    item("Checked at", when(result.checked_at)),
    item("Found in", sources));
}


/** Where a URL was found: each document once (a link when it is a page of the web), with its lines. */
function foundIn(sources: Sources): HTMLElement {
  const { total, places } = sources;
  const more = total - places.length;
  const lines = new Map<string, number[]>();
  for (const place of places) lines.set(place.document, [...(lines.get(place.document) ?? []), place.line]);
  const documentOf = (name: string): Node => /^https?:\/\//i.test(name)
    ? h("a", { href: name, rel: "noreferrer", target: "_blank" }, name) : h("span", {}, name);
  return h("div", { class: "sources" },
    h("p", { class: "sources-total" }, total === 1 ? "1 place" : `${count(total)} places`),
    h("ul", {}, ...[...lines].map(([name, at]) =>
      h("li", {}, documentOf(name), `, line${at.length > 1 ? "s" : ""} ${at.join(", ")}`)),
    more > 0 ? h("li", { class: "muted" }, `…and ${count(more)} more`) : null));
}
