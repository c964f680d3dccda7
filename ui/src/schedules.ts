// Schedules: the list (#/schedules) with each one's last and next run and its broken links over its
// runs, and one schedule (#/schedules/<id>) with its runs, their counts and changes, and its
// webhook's deliveries. Made from the submit form; paused, resumed and deleted here.
import { BASE, json, send, TERMINAL } from "./api";
import type { Run, Schedule, SchedulePage, SchedulePeriod, TaskCreate } from "./openapi";
import { overRuns } from "./charts";
import { changeCounts } from "./changes";
import { h, replace, replaceKeepingFocus } from "./dom";
import { count, moment } from "./format";
import { attempt, badge, confirmAction, isGone, setTitle, showError } from "./ui";
import { DeliveryLog, secretCard, takeKept, WEBHOOK_ON } from "./webhooks";

const SAMPLE = 3;  // URLs of a list shown on a schedule's page
const REFRESH_MS = 3000;  // runs start and end on their own: both views look again this often

export function periodText(period: SchedulePeriod): string {
  return period.cron ? `cron ${period.cron} (UTC)` : `every ${period.every ?? "–"}`;
}

function label(schedule: Schedule): string {
  return schedule.name || `Schedule ${schedule.id.slice(0, 8)}`;
}

function brokenOverRuns(schedule: Schedule): Element {
  const points = schedule.runs.filter((run) => run.progress && run.status && TERMINAL.has(run.status))  // ended runs
    .map((run) => ({ label: moment(run.due), value: run.progress?.broken ?? 0 }));
  return overRuns(`Broken links of ${label(schedule)} over its runs`, points, "No run has ended yet.");
}

/** Pause or resume, and delete (confirmed); `after` shows the outcome. */
function actions(schedule: Schedule, after: (deleted: boolean) => Promise<void>): HTMLElement[] {
  const name = label(schedule);
  const path = `${BASE}/schedules/${encodeURIComponent(schedule.id)}`;
  // data-focus: the same key whichever its word, so a redraw gives the focus back (replaceKeepingFocus)
  const toggle = h("button", { type: "button", class: "secondary", "data-focus": `toggle ${schedule.id}`,
    "aria-label": `${schedule.paused ? "Resume" : "Pause"} ${name}`,
    onclick: () => void attempt(async () => {
      await send(`${path}/${schedule.paused ? "resume" : "pause"}`, { method: "POST" });
      await after(false);
    }) }, schedule.paused ? "Resume" : "Pause");
  const remove = h("button", { type: "button", class: "danger", "data-focus": `delete ${schedule.id}`,
    "aria-label": `Delete ${name}`,
    onclick: () => void attempt(async () => {
      if (!(await confirmAction(`Delete “${name}”? No run starts after this; its runs stay as tasks.`,
        "Delete schedule"))) return;
      await send(path, { method: "DELETE" });
      await after(true);
    }) }, "Delete");
  return [toggle, remove];
}

function state(schedule: Schedule): HTMLElement {
  return badge(schedule.paused ? "paused" : "active");
}

export function schedulesView(main: HTMLElement, signal: AbortSignal): void {
  setTitle("Schedules");
  const body = h("div", { class: "table-wrap" });
  const said = h("p", { class: "visually-hidden", role: "status" });
  main.append(h("div", { class: "heading" }, h("h1", {}, "Schedules"),
    h("a", { href: "#/new?schedule=1", class: "button" }, "New schedule")), said, body);
  let timer = 0;
  let shown = "";
  signal.addEventListener("abort", () => clearTimeout(timer));
  const load = async (): Promise<void> => {
    clearTimeout(timer);
    const page = await json<SchedulePage>(`${BASE}/schedules`, { signal });
    const seen = JSON.stringify(page);
    timer = window.setTimeout(() => void attempt(load), REFRESH_MS);
    if (seen === shown) return;  // unchanged: nothing redrawn, the focus stays where it is
    shown = seen;
    replaceKeepingFocus(body, page.items.length ? table(page.items, async (deleted) => {
      said.textContent = deleted ? "Schedule deleted." : "Schedule updated.";
      await load();
    }) : h("div", { class: "empty" }, h("p", {}, "No schedules yet."),
      h("a", { href: "#/new?schedule=1", class: "button" }, "Schedule a check")));
  };
  void attempt(load);
}

function table(items: Schedule[], after: (deleted: boolean) => Promise<void>): HTMLElement {
  return h("table", { class: "schedules" },
    h("caption", { class: "visually-hidden" }, "Schedules, oldest first"),
    h("thead", {}, h("tr", {}, ...["Schedule", "State", "Period", "Last run", "Next run", "Broken over runs", "Actions"]
      .map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, ...items.map((schedule) => h("tr", { "data-schedule": schedule.id },
      h("th", { scope: "row" }, h("a", { href: `#/schedules/${encodeURIComponent(schedule.id)}`,
        "data-focus": `open ${schedule.id}` }, label(schedule))),
      h("td", { "data-label": "State" }, state(schedule)),
      h("td", { "data-label": "Period" }, periodText(schedule.period)),
      h("td", { "data-label": "Last run" }, lastRun(schedule)),
      h("td", { "data-label": "Next run" }, schedule.paused ? "paused" : moment(schedule.next_run)),
      h("td", { "data-label": "Broken over runs", class: "spark-cell" }, brokenOverRuns(schedule)),
      h("td", {}, h("div", { class: "row-actions" }, ...actions(schedule, after)))))));
}

function lastRun(schedule: Schedule): Node | string {
  const run = schedule.runs[schedule.runs.length - 1];
  if (!run) return schedule.last_run ? moment(schedule.last_run) : "none yet";
  const text = `${moment(run.due)}${run.progress ? `: ${count(run.progress.broken)} broken` : ""}`;
  return h("span", {}, h("a", { href: `#/tasks/${encodeURIComponent(run.task_id)}`, "data-focus": `last ${schedule.id}` },
    text), " ",
    run.status ? badge(run.status) : h("span", { class: "muted" }, "gone"));
}

export async function scheduleView(main: HTMLElement, signal: AbortSignal, id: string): Promise<void> {
  setTitle("Schedule");
  const path = `${BASE}/schedules/${encodeURIComponent(id)}`;
  const head = h("div", { class: "task-head" });
  const chart = h("div", { class: "over-runs" });
  const checks = h("section", { class: "card", "aria-labelledby": "checks-title" });
  const runs = h("div", { class: "table-wrap" });
  const said = h("p", { class: "visually-hidden", role: "status" });
  const { secret } = takeKept(id);
  const log = new DeliveryLog("schedules", id, signal);
  const webhook = h("section", { class: "card webhook", "aria-labelledby": "webhook-title", hidden: true });
  let timer = 0;
  signal.addEventListener("abort", () => clearTimeout(timer));
  const gone = (): void => {
    setTitle("Schedule not found");
    replace(main, h("div", { class: "empty" }, h("h1", {}, "This schedule no longer exists"),
      h("p", {}, `Schedule ${id} was deleted, or never existed on this service.`),
      h("a", { href: "#/schedules", class: "button" }, "Back to schedules")));
  };
  const load = async (): Promise<void> => {
    clearTimeout(timer);
    let schedule: Schedule;
    try {
      schedule = await json<Schedule>(path, { signal });
    } catch (error) {
      if (isGone(error)) return gone();
      throw error;
    }
    const seen = JSON.stringify(schedule);
    if (seen !== shown) render(schedule);  // unchanged: nothing redrawn, the focus stays where it is
    shown = seen;
    if (schedule.webhook) {
      webhook.hidden = false;
      if (!webhook.childElementCount) {
        webhook.append(h("h2", { id: "webhook-title" }, "Webhook"),
          h("p", {}, "Notifies ", h("code", {}, schedule.webhook.url), ` of ${WEBHOOK_ON[schedule.webhook.on]}.`),
          h("h3", {}, "Deliveries"), log.element);
      }
      await log.refresh();
    }
    timer = window.setTimeout(() => void attempt(load), REFRESH_MS);
  };
  let shown = "";
  const render = (schedule: Schedule): void => {
    setTitle(label(schedule));
    replaceKeepingFocus(head, h("div", {},
      h("p", { class: "crumbs" }, h("a", { href: "#/schedules" }, "Schedules"), " / "),
      h("h1", {}, label(schedule), " ", state(schedule)),
      h("p", { class: "muted" }, `Runs ${periodText(schedule.period)}, keeps the last ${schedule.keep} · next run `,
        h("span", { class: "next-run" }, schedule.paused ? "paused" : moment(schedule.next_run)), " · id ", h("code", {}, schedule.id))),
    h("div", { class: "row-actions" }, ...actions(schedule, async (deleted) => {
      if (deleted) {
        location.hash = "#/schedules";
        return;
      }
      said.textContent = "Schedule updated.";
      await load();
    })));
    replace(checks, h("h2", { id: "checks-title" }, "What each run checks"), ...checked(schedule.task));
    replace(chart, brokenOverRuns(schedule));
    replaceKeepingFocus(runs, schedule.runs.length ? runsTable(schedule) : h("p", { class: "empty" },
      schedule.paused ? "No runs yet, and none start while paused." : `No runs yet: the first is due ${moment(schedule.next_run)}.`));
  };
  main.append(head, said, ...(secret ? [secretCard(secret)] : []), checks,
    h("section", { class: "card", "aria-labelledby": "runs-title" }, h("h2", { id: "runs-title" }, "Runs"),
      h("figure", { class: "chart" }, h("figcaption", {}, "Broken links over the runs"), chart), runs),
    webhook);
  try {
    await load();
  } catch (error) {
    if ((error as Error).name !== "AbortError") showError(error);
  }
}

/** The schedule's task body (as POST /tasks takes it): its URLs or crawl, and its options that differ
 * from the defaults (the API gives only those), headers by name (the API redacts their values). */
function checked(body: Schedule["task"]): HTMLElement[] {
  const task = body as Partial<TaskCreate>;
  const what: HTMLElement[] = [];
  if (task.crawl) {
    const { start, max_depth, max_pages, scope } = task.crawl;
    const limits = [max_depth == null ? "" : `depth ≤ ${max_depth}`, max_pages == null ? "" : `at most ${count(max_pages)} pages`,
      scope === "site" ? "the site's own links only" : ""].filter(Boolean);
    what.push(h("p", { class: "crawl-line" }, "A crawl of ", h("code", {}, start), limits.length ? ` (${limits.join(", ")})` : ""));
  } else {
    const urls = task.urls ?? [];
    what.push(h("p", {}, `${count(urls.length)} URL${urls.length === 1 ? "" : "s"}${urls.length > SAMPLE ? `, the first ${SAMPLE}` : ""}:`),
      h("ul", { class: "url-sample" }, ...urls.slice(0, SAMPLE).map((url) => h("li", {}, h("code", {}, url)))));
    if (urls.length > SAMPLE) what.push(h("p", { class: "muted" }, `and ${count(urls.length - SAMPLE)} more.`));
  }
  const options = Object.entries(task.options ?? {}).map(([name, value]) => name === "headers"
    ? `headers ${Object.keys(value as Record<string, string>).join(", ")}` : `${name} ${String(value)}`);
  what.push(h("p", { class: "options-line" }, options.length ? `Options: ${options.join(" · ")}` : "Default options."));
  return what;
}

function runsTable(schedule: Schedule): HTMLElement {
  return h("table", { class: "runs" },
    h("caption", { class: "visually-hidden" }, "The runs kept, newest first"),
    h("thead", {}, h("tr", {}, ...["Run", "Status", "Checked", "OK", "Broken", "Changes since the run before"]
      .map((name) => h("th", { scope: "col", class: name === "OK" || name === "Broken" ? "num" : "" }, name)))),
    h("tbody", {}, ...[...schedule.runs].reverse().map(runRow)));
}

function runRow(run: Run): HTMLElement {
  const progress = run.progress;
  const changes = run.changes ? changeCounts(run.task_id, run.changes, `Changes of the run due ${moment(run.due)}`)
    : h("span", { class: "muted" }, !run.status ? "–" : run.status === "ready" || run.status === "cancelled"
      ? "first run, or being counted" : "counted when it ends");
  return h("tr", { "data-run": run.task_id },
    h("th", { scope: "row" }, run.status ? h("a", { href: `#/tasks/${encodeURIComponent(run.task_id)}`,
      "data-focus": `run ${run.task_id}` }, moment(run.due))
      : h("span", {}, moment(run.due))),
    h("td", { "data-label": "Status" }, run.status ? badge(run.status) : h("span", { class: "muted" }, "deleted or expired")),
    h("td", { "data-label": "Checked" }, progress ? `${count(progress.done)} / ${count(progress.total)}` : "–"),
    h("td", { "data-label": "OK", class: "num" }, progress ? count(progress.ok) : "–"),
    h("td", { "data-label": "Broken", class: "num" }, progress ? count(progress.broken) : "–"),
    h("td", { "data-label": "Changes", class: "run-changes" }, changes));
}
