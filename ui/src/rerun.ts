// Run again: a new task with the same inputs and options (POST .../rerun). Header values were dropped
// when the task ended, so a task that had headers is run again only with them given anew: the API's
// 422 says which, and a dialog asks for them.
import { ApiError, BASE, json } from "./api";
import type { Rerun, Task } from "./openapi";
import { h, replace } from "./dom";
import { attempt, modal } from "./ui";

export function runAgainButton(task: Task, label: string, signal: AbortSignal): HTMLElement {
  return h("button", { type: "button", class: "secondary", "aria-label": `Run again: ${label}`,
    onclick: () => void attempt(async () => {
      const made = await runAgain(task, signal);
      if (made) location.hash = `#/tasks/${encodeURIComponent(made.id)}`;
    }) }, "Run again");
}

function post(task: Task, body: Rerun | null, signal: AbortSignal): Promise<Task> {
  return json<Task>(`${BASE}/tasks/${encodeURIComponent(task.id)}/rerun`, {
    method: "POST", signal, headers: { "Content-Type": "application/json" },
    body: body === null ? undefined : JSON.stringify(body),
  });
}

/** The new task, or null when the person gave up supplying the header values. */
async function runAgain(task: Task, signal: AbortSignal): Promise<Task | null> {
  const names = Object.keys(task.options.headers ?? {});
  try {
    return await post(task, null, signal);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 422 || !names.length) throw error;
    return askForHeaders(task, names, error.message, signal);
  }
}

/** Asks for each header's value, the API's reason shown; sends them, asking again while refused. */
function askForHeaders(task: Task, names: string[], reason: string, signal: AbortSignal): Promise<Task | null> {
  return new Promise((resolve) => {
    const why = h("p", { id: "rerun-reason", role: "alert" }, reason);
    const inputs = names.map((name, i) => h("input", { id: `rerun-header-${i}`, type: "password", autocomplete: "off",
      required: true, "data-header": name }));
    const go = h("button", { type: "submit" }, "Run again with these");
    const form = h("form", { class: "rerun-headers" },
      h("h2", { id: "rerun-title" }, "Header values needed"), why,
      h("p", { class: "muted" }, "They are used for this run only, and dropped when it ends."),
      ...names.map((name, i) => h("div", { class: "field" }, h("label", { for: inputs[i].id }, name), inputs[i])),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", onclick: () => dialog.close() }, "Cancel"), go));
    const dialog = modal(form);
    dialog.setAttribute("aria-labelledby", "rerun-title");
    dialog.setAttribute("aria-describedby", "rerun-reason");
    let made: Task | null = null;
    dialog.addEventListener("close", () => resolve(made));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const headers = Object.fromEntries(inputs.map((input) => [input.dataset.header ?? "", input.value]));
      go.disabled = true;
      void post(task, { headers }, signal).then((task) => {
        made = task;
        dialog.close();
      }, (error: unknown) => {
        replace(why, error instanceof Error ? error.message : String(error));  // refused again: said where asked
        go.disabled = false;
      });
    });
    inputs[0]?.focus();
  });
}
