// The task list: newest first, paged by the API's cursor, refreshed while any shown task is live.
import { BASE, json, send, TERMINAL } from "./api";
import type { Task, TaskPage } from "./openapi";
import { h, replace } from "./dom";
import { count, percent, when } from "./format";
import { attempt, badge, confirmAction, setTitle } from "./ui";

const PAGE_SIZE = 20;
const REFRESH_MS = 2000;  // while a shown task is live
const IDLE_REFRESH_MS = 5000;  // otherwise: tasks created elsewhere (another tab, the API) appear

export function tasksView(main: HTMLElement, signal: AbortSignal): void {
  setTitle("Tasks");
  const cursors: (string | null)[] = [null];
  const body = h("div", { class: "table-wrap" });
  const pager = h("nav", { class: "pager", "aria-label": "Task pages" });
  main.append(
    h("div", { class: "heading" }, h("h1", {}, "Tasks"), h("a", { href: "#/new", class: "button" }, "New task")),
    body, pager,
  );
  let timer = 0;
  signal.addEventListener("abort", () => clearTimeout(timer));

  const load = async (): Promise<void> => {
    clearTimeout(timer);
    const cursor = cursors[cursors.length - 1];
    const query = new URLSearchParams({ limit: String(PAGE_SIZE), ...(cursor ? { cursor } : {}) });
    const page = await json<TaskPage>(`${BASE}/tasks?${query}`, { signal });
    replace(body, page.items.length ? table(page.items, load) : empty(cursors.length > 1));
    pager.hidden = !page.items.length && cursors.length === 1;  // one empty page: nothing to page through
    replace(pager,
      h("button", { type: "button", class: "secondary", disabled: cursors.length < 2,
        onclick: () => { cursors.pop(); void attempt(load); } }, "← Newer"),
      h("span", { class: "muted" }, `Page ${cursors.length}`),
      h("button", { type: "button", class: "secondary", disabled: !page.next_cursor,
        onclick: () => { cursors.push(page.next_cursor); void attempt(load); } }, "Older →"));
    const live = page.items.some((task) => !TERMINAL.has(task.status));
    if (live || cursors.length === 1) timer = window.setTimeout(() => void attempt(load), live ? REFRESH_MS : IDLE_REFRESH_MS);
  };
  void attempt(load);
}

function empty(paged: boolean): HTMLElement {
  return h("div", { class: "empty" },
    h("p", {}, paged ? "No older tasks." : "No tasks yet."),
    paged ? null : h("a", { href: "#/new", class: "button" }, "Check your first links"));
}

function table(tasks: Task[], reload: () => Promise<void>): HTMLElement {
  return h("table", { class: "tasks" },
    h("caption", { class: "visually-hidden" }, "Tasks, newest first"),
    h("thead", {}, h("tr", {}, ...["Task", "Status", "Progress", "OK", "Broken", "Created", "Actions"]
      .map((name) => h("th", { scope: "col", class: name === "OK" || name === "Broken" ? "num" : "" }, name)))),
    h("tbody", {}, ...tasks.map((task) => row(task, reload))));
}

function row(task: Task, reload: () => Promise<void>): HTMLElement {
  const { done, total, ok, broken, cancelled } = task.progress;
  const checked = done - cancelled;  // a cancelled task's bar shows how far it got, not its cancelled rest
  const label = task.name || `Task ${task.id.slice(0, 8)}`;
  return h("tr", { "data-task": task.id },
    h("th", { scope: "row" }, h("a", { href: `#/tasks/${encodeURIComponent(task.id)}` }, label), origin(task)),
    h("td", { "data-label": "Status" }, badge(task.status)),
    h("td", { "data-label": "Progress" },
      h("progress", { max: total || 1, value: checked, "aria-label": `${label} progress` }),
      h("span", { class: "muted" }, task.status === "cancelled"
        ? ` ${count(checked)} / ${count(total)} checked, ${count(cancelled)} cancelled`
        : ` ${count(done)} / ${count(total)} (${percent(done, total)})`)),
    h("td", { "data-label": "OK", class: "num" }, count(ok)),
    h("td", { "data-label": "Broken", class: "num" }, count(broken)),
    h("td", { "data-label": "Created" }, when(task.created_at)),
    h("td", {}, h("div", { class: "row-actions" }, ...actions(task, label, reload))));
}

/** What made the task, when not a submission: a schedule (a link to it; its runs re-run each other
 * too) or Run again (a link to the task it re-runs). */
function origin(task: Task): HTMLElement | null {
  if (task.schedule) {
    return h("span", { class: "origin" }, h("a", { href: `#/schedules/${encodeURIComponent(task.schedule)}`,
      class: "tag" }, "schedule run"));
  }
  if (task.rerun_of) {
    return h("span", { class: "origin" }, h("a", { href: `#/tasks/${encodeURIComponent(task.rerun_of)}`, class: "tag",
      "aria-label": `re-run of task ${task.rerun_of.slice(0, 8)}` }, "re-run"));
  }
  return null;
}

/** Cancel (only while the task runs: a finished one has nothing to stop) and delete. */
export function actions(task: Task, label: string, after: (deleted: boolean) => Promise<void>): HTMLElement[] {
  const cancel = h("button", { type: "button", class: "secondary", "aria-label": `Cancel ${label}` }, "Cancel");
  const remove = h("button", { type: "button", class: "danger", "aria-label": `Delete ${label}` }, "Delete");
  cancel.addEventListener("click", () => void attempt(async () => {
    if (!(await confirmAction(`Cancel “${label}”? URLs not probed yet get a cancelled result.`, "Cancel task"))) return;
    await send(`${BASE}/tasks/${encodeURIComponent(task.id)}/cancel`, { method: "POST" });
    await after(false);
  }));
  remove.addEventListener("click", () => void attempt(async () => {
    if (!(await confirmAction(`Delete “${label}” and all its results? This cannot be undone.`, "Delete task"))) return;
    await send(`${BASE}/tasks/${encodeURIComponent(task.id)}`, { method: "DELETE" });
    await after(true);
  }));
  return TERMINAL.has(task.status) ? [remove] : [cancel, remove];
}
