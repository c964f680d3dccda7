// Submitting a task: pasted URLs (sent as text/plain, the service's URL-list rule) or an uploaded file.
import { BASE, json, type Task } from "./api";
import { h, type Child } from "./dom";
import { attempt, setTitle } from "./ui";

interface Field { name: string; label: string; hint?: string; input: HTMLInputElement | HTMLSelectElement }

function field(name: string, label: string, input: HTMLInputElement | HTMLSelectElement, hint?: string): Field {
  input.id = `opt-${name}`;
  input.name = name;
  if (hint) input.setAttribute("aria-describedby", `opt-${name}-hint`);
  return { name, label, hint, input };
}

function number(name: string, label: string, value: number, min: number, max: number, step = 1, hint?: string): Field {
  return field(name, label, h("input", { type: "number", value, min, max, step, inputmode: "decimal" }), hint);
}

function render(f: Field): HTMLElement {
  const isBox = f.input instanceof HTMLInputElement && f.input.type === "checkbox";
  const hint = f.hint ? h("small", { id: `opt-${f.name}-hint`, class: "hint" }, f.hint) : null;
  return h("div", { class: isBox ? "field check" : "field" },
    isBox ? f.input : null, h("label", { for: f.input.id }, f.label), isBox ? null : f.input, hint);
}

const BASIC = (): Field[] => [
  field("method", "Method", h("select", {}, h("option", { value: "GET" }, "GET"), h("option", { value: "HEAD" }, "HEAD")),
    "HEAD is lighter; it falls back to GET on 405 and 501."),
  field("accept", "Accepted status codes", h("input", { type: "text", value: "200-299", spellcheck: false }),
    "Judged ok after redirects, e.g. 200-299,301,429"),
  number("timeout", "Timeout (s)", 10, 0.1, 600, 0.1, "Per URL attempt, redirects included."),
];

const ADVANCED = (): Field[] => [
  number("retries", "Retries", 2, 0, 10),
  number("max_redirects", "Max redirects", 10, 0, 50),
  number("connect_timeout", "Connect timeout (s)", 5, 0.1, 600, 0.1),
  number("max_body_bytes", "Max body bytes", 1048576, 0, 1073741824),
  number("concurrency", "Concurrency", 256, 1, 10000),
  field("user_agent", "User-Agent", h("input", { type: "text", placeholder: "linkprobe default" })),
  field("headers", "Extra headers", h("input", { type: "text", placeholder: "Name: value; Other: value" }),
    "Separate headers with ;"),
  field("verify_tls", "Verify TLS certificates", h("input", { type: "checkbox", checked: true })),
];

function options(fields: Field[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { name, input } of fields) {
    if (input instanceof HTMLInputElement && input.type === "checkbox") {
      if (!input.checked) out[name] = false;
    } else if (input instanceof HTMLInputElement && input.type === "number") {
      if (input.value !== input.defaultValue) out[name] = Number(input.value);
    } else if (name === "headers") {
      const pairs = input.value.split(";").map((p) => p.split(":")).filter((p) => p.length > 1 && p[0].trim());
      if (pairs.length) out.headers = Object.fromEntries(pairs.map(([k, ...v]) => [k.trim(), v.join(":").trim()]));
    } else if (input.value.trim() && input.value !== (input as HTMLInputElement).defaultValue) {
      out[name] = input.value.trim();
    } else if (input instanceof HTMLSelectElement && input.value !== "GET") {
      out[name] = input.value;
    }
  }
  return out;
}

export function submitView(main: HTMLElement, signal: AbortSignal): void {
  setTitle("New task");
  const name = h("input", { id: "task-name", name: "name", type: "text", maxlength: 200, autocomplete: "off" });
  const description = h("textarea", { id: "task-description", name: "description", rows: 2, maxlength: 2000 });
  const urls = h("textarea", { id: "task-urls", name: "urls", rows: 10, spellcheck: false,
    placeholder: "https://example.com/\nhttps://example.org/about", "aria-describedby": "urls-hint" });
  const file = h("input", { id: "task-file", name: "file", type: "file", "aria-describedby": "file-hint" });
  const basic = BASIC();
  const advanced = ADVANCED();
  const status = h("p", { class: "muted", role: "status" });
  const go = h("button", { type: "submit" }, "Start checking");
  const form = h("form", { class: "card submit", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "task-name" }, "Name ", h("span", { class: "muted" }, "(optional)")), name),
    h("div", { class: "field" }, h("label", { for: "task-description" }, "Description ", h("span", { class: "muted" }, "(optional)")), description),
    h("fieldset", {}, h("legend", {}, "Links to check"),
      h("div", { class: "field" }, h("label", { for: "task-urls" }, "Paste URLs"), urls,
        h("small", { id: "urls-hint", class: "hint" }, "One URL a line; lines starting with # are ignored.")),
      h("div", { class: "field" }, h("label", { for: "task-file" }, "…or upload a file"), file,
        h("small", { id: "file-hint", class: "hint" }, "A URL list, one a line."))),
    h("fieldset", {}, h("legend", {}, "Options"), h("div", { class: "grid" }, ...basic.map(render)),
      h("details", {}, h("summary", {}, "Advanced options"), h("div", { class: "grid" }, ...advanced.map(render)))),
    h("div", { class: "actions" }, go as Child, status));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void attempt(async () => {
      const chosen = file.files?.[0];
      if (!chosen && !urls.value.trim()) {
        urls.setAttribute("aria-invalid", "true");
        urls.focus();
        throw new Error("Paste at least one URL or choose a file.");
      }
      go.disabled = true;
      status.textContent = "Submitting…";
      try {
        const task = await post(name.value, description.value, urls.value, chosen, options([...basic, ...advanced]), signal);
        location.hash = `#/tasks/${encodeURIComponent(task.id)}`;
      } finally {
        go.disabled = false;
        status.textContent = "";
      }
    });
  });
  main.append(h("h1", {}, "New task"), form);
  urls.focus();
}

function post(name: string, description: string, urls: string, file: File | undefined,
  opts: Record<string, unknown>, signal: AbortSignal): Promise<Task> {
  if (file) {
    const body = new FormData();
    body.set("file", file);
    if (name.trim()) body.set("name", name.trim());
    if (description.trim()) body.set("description", description.trim());
    body.set("options", JSON.stringify(opts));
    return json<Task>(`${BASE}/tasks`, { method: "POST", body, signal });
  }
  const query = new URLSearchParams({ options: JSON.stringify(opts) });
  if (name.trim()) query.set("name", name.trim());
  if (description.trim()) query.set("description", description.trim());
  return json<Task>(`${BASE}/tasks?${query}`, {
    method: "POST", body: urls, signal, headers: { "Content-Type": "text/plain; charset=utf-8" },
  });
}
