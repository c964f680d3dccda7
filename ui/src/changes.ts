// What changed since the previous run: a re-run's (or a schedule run's) counts on its task page,
// and the changes URL by URL (#/tasks/<id>/changes?change=<word>), paged and filtered by change.
import { BASE, json, resultsQuery, TERMINAL } from "./api";
import { type Change, changeValues, type ChangeCounts, type ChangeItem, type ChangePage, type SeenView,
  type Task } from "./openapi";
import { h, replace } from "./dom";
import { count } from "./format";
import { attempt, download, isGone, setTitle, showError } from "./ui";

const PAGE_SIZE = 50;
/** Words for the API's change words (a change it adds without a word here fails tsc). */
export const CHANGES: Record<Change, string> = {
  broke: "Broke", fixed: "Fixed", changed: "Changed", new: "New", gone: "Gone",
};
const MEANING: Record<Change, string> = {
  broke: "was ok, now broken", fixed: "was broken, now ok", changed: "status, final URL or error differs",
  new: "not in the previous run", gone: "not in this run",
};

export function changesHref(taskId: string, change?: Change): string {
  return `#/tasks/${encodeURIComponent(taskId)}/changes${change ? `?change=${change}` : ""}`;
}

/** The counts of a run's changes, each a link to those changes; `id` ties a list to its heading. */
export function changeCounts(taskId: string, counts: ChangeCounts, label: string): HTMLElement {
  return h("dl", { class: "stats changes", "aria-label": label },
    ...changeValues.map((change) => h("div", { class: `stat change-${change}${counts[change] ? "" : " zero"}` },
      h("dt", {}, CHANGES[change]),
      h("dd", {}, counts[change] ? h("a", { href: changesHref(taskId, change),
        "aria-label": `${count(counts[change])} ${CHANGES[change].toLowerCase()}: show them` }, count(counts[change]))
        : "0"))));
}

/** The task page's card: the counts once the run has ended and they are counted, else why not yet. */
export function changesCard(task: Task): HTMLElement | null {
  if (!task.rerun_of && !task.schedule) return null;
  const previous = task.changes?.since ?? task.rerun_of;
  const body = !task.rerun_of ? h("p", { class: "muted" }, "The schedule's first run: nothing to compare with yet.")
    : task.changes ? changeCounts(task.id, task.changes, "Changes by kind")
    : h("p", { class: "muted" }, task.status === "ready" || task.status === "cancelled"
      ? "Counting the changes…" : "Counted when this run ends. The changes so far can be listed already.");
  return h("section", { class: "card", id: "changes-card", "aria-labelledby": "changes-title" },
    h("h2", { id: "changes-title" }, "Changes since the previous run"),
    body,
    h("p", { class: "links" }, ...[
      previous ? h("a", { href: `#/tasks/${encodeURIComponent(previous)}` }, "Previous run") : null,
      task.rerun_of ? h("a", { href: changesHref(task.id) }, "List the changes") : null,
      task.schedule ? h("a", { href: `#/schedules/${encodeURIComponent(task.schedule)}` }, "Its schedule") : null,
    ].filter((link) => link !== null).flatMap((link, i) => (i ? [" · ", link] : [link]))));
}

export async function changesView(main: HTMLElement, signal: AbortSignal, id: string, query: URLSearchParams): Promise<void> {
  setTitle("Changes");
  const path = `${BASE}/tasks/${encodeURIComponent(id)}`;
  let task: Task;
  try {
    task = await json<Task>(path, { signal });
  } catch (error) {
    if (isGone(error)) {
      replace(main, h("div", { class: "empty" }, h("h1", {}, "This task no longer exists"),
        h("p", {}, `Task ${id} was deleted, or never existed on this service: it has no changes to list.`),
        h("a", { href: "#/", class: "button" }, "Back to tasks")));
    } else if ((error as Error).name !== "AbortError") showError(error);
    return;
  }
  const wanted = query.get("change");
  new ChangesPage(main, signal, path, task, changeValues.includes(wanted as Change) ? wanted as Change : "").start();
}

class ChangesPage {
  private readonly rows = h("div", { class: "table-wrap" });
  private readonly pager = h("nav", { class: "pager", "aria-label": "Change pages" });
  private readonly since = h("p", { class: "muted" });
  private readonly cursors: (string | null)[] = [null];

  constructor(private readonly main: HTMLElement, private readonly signal: AbortSignal, private readonly path: string,
    private readonly task: Task, private change: Change | "") {}

  start(): void {
    const label = this.task.name || `Task ${this.task.id.slice(0, 8)}`;
    setTitle(`Changes of ${label}`);
    const taskHref = `#/tasks/${encodeURIComponent(this.task.id)}`;
    this.main.append(...[
      h("div", { class: "task-head" }, h("div", {},
        h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Tasks"), " / ", h("a", { href: taskHref }, label), " / "),
        h("h1", {}, "Changes since the previous run"), this.since)),
      TERMINAL.has(this.task.status) ? null : h("p", { class: "warning", role: "status" },
        "This run is still going: its URLs not checked yet are left out, and none shows as gone until it has ended."),
      this.task.changes ? changeCounts(this.task.id, this.task.changes, "Changes by kind") : null,
      h("section", { class: "card results", "aria-labelledby": "list-title" },
        h("h2", { id: "list-title" }, "Changed URLs"), this.filterForm(), this.downloads(), this.rows, this.pager),
    ].filter((part) => part !== null));
    void attempt(() => this.load());
  }

  private filterForm(): HTMLElement {
    const select = h("select", { id: "f-change", name: "change" }, h("option", { value: "" }, "Every change"),
      ...changeValues.map((c) => h("option", { value: c, selected: c === this.change }, `${CHANGES[c]}: ${MEANING[c]}`)));
    select.addEventListener("change", () => {
      this.change = select.value as Change | "";
      // The address says the filter: a reload or a shared link shows the same list (no new history entry).
      history.replaceState(null, "", changesHref(this.task.id, this.change || undefined));
      this.cursors.splice(1);
      void attempt(() => this.load());
    });
    return h("form", { class: "filters", role: "search", "aria-label": "Filter changes" },
      h("div", { class: "field" }, h("label", { for: "f-change" }, "Change"), select));
  }

  private downloads(): HTMLElement {
    const button = (format: "csv" | "ndjson", label: string): HTMLElement => h("button", { type: "button",
      class: "secondary", onclick: () => void attempt(() => download(this.url({ format }),
        `linkprobe-${this.task.id}-changes${this.change ? `-${this.change}` : ""}.${format}`, this.signal)) }, label);
    return h("div", { class: "downloads" }, h("span", {}, "Download these changes"), button("csv", "CSV"),
      button("ndjson", "NDJSON"));
  }

  private url(extra: Record<string, string>): string {
    return `${this.path}/changes?${resultsQuery({ change: this.change }, extra)}`;
  }

  private async load(): Promise<void> {
    const cursor = this.cursors[this.cursors.length - 1];
    let page: ChangePage;
    try {
      page = await json<ChangePage>(this.url({ limit: String(PAGE_SIZE), ...(cursor ? { cursor } : {}) }),
        { signal: this.signal });
    } catch (error) {
      replace(this.rows, h("p", { class: "empty" }, (error as Error).message));
      throw error;
    }
    replace(this.since, "Compared with ", h("a", { href: `#/tasks/${encodeURIComponent(page.since)}` },
      `task ${page.since.slice(0, 8)}`), ". Unchanged URLs are left out.");
    replace(this.rows, page.items.length ? changesTable(page.items) : h("p", { class: "empty" },
      this.change ? `Nothing ${CHANGES[this.change].toLowerCase()} since the previous run.`
        : this.task.progress.done ? "Nothing changed since the previous run." : "No changes yet: they appear as URLs are checked."));
    replace(this.pager,
      h("button", { type: "button", class: "secondary", disabled: this.cursors.length < 2,
        onclick: () => { this.cursors.pop(); void attempt(() => this.load()); } }, "← Previous"),
      h("span", { class: "muted" }, `Page ${this.cursors.length}`),
      h("button", { type: "button", class: "secondary", disabled: !page.next_cursor,
        onclick: () => { this.cursors.push(page.next_cursor); void attempt(() => this.load()); } }, "Next →"));
  }
}

function changesTable(items: ChangeItem[]): HTMLElement {
  return h("table", { class: "changes-table" },
    h("caption", { class: "visually-hidden" }, "Changed URLs in URL order"),
    h("thead", {}, h("tr", {}, ...["URL", "Change", "Before", "Now"].map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, ...items.map((item) => h("tr", { class: "change", "data-change": item.change },
      h("td", { class: "url", "data-label": "URL" }, h("span", { class: "link-url" }, item.url)),
      h("td", { "data-label": "Change" }, h("span", { class: `pill change-${item.change}` }, item.change)),
      h("td", { "data-label": "Before" }, seen(item.previous, item.url)),
      h("td", { "data-label": "Now" }, seen(item.current, item.url))))));
}

/** What one run saw of the URL: its outcome, status or error kind, and where a redirect ended. */
function seen(side: SeenView | null, url: string): HTMLElement {
  if (!side) return h("span", { class: "muted" }, "not checked");
  return h("span", { class: "seen" }, h("span", { class: `pill ${side.outcome}` }, side.outcome), " ",
    side.status_code ?? side.error_kind ?? "",
    side.final_url && side.final_url !== url ? h("span", { class: "note" }, " → ", h("span", { class: "final" }, side.final_url)) : null);
}
