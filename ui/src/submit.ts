// Submitting a task: pasted URLs (sent as text/plain, the service's URL-list rule), an uploaded URL list or
// document (multipart, with its format and base URL), or a site to crawl (JSON). Or a schedule of the
// same (JSON: pasted URLs or a crawl, on a period); either with a webhook.
import { ApiError, BASE, type Bounds, json, schemaBounds, service } from "./api";
import type { CrawlCreate, paths, ProbeOptions, ScheduleCreate, ScheduleCreated, SchedulePeriod, Service, Task,
  TaskCreate, WebhookSpec } from "./openapi";
import { keepRefusal, keepSecret, setTaskWebhook, WebhookFields } from "./webhooks";

/** A crawl as the form sends it: the start page, and what differs from the API's defaults. */
type CrawlSpec = Pick<CrawlCreate, "start"> & Partial<CrawlCreate>;
import { h, type Child } from "./dom";
import { attempt, clearNotice, setTitle, showError } from "./ui";

/** A probe option's input, named as the API's option (tsc checks the name against ProbeOptions). */
interface Field { name: keyof ProbeOptions; label: string; hint?: string; input: HTMLInputElement | HTMLSelectElement }

function field(name: keyof ProbeOptions, label: string, input: HTMLInputElement | HTMLSelectElement, hint?: string): Field {
  input.id = `opt-${name}`;
  input.name = name;
  if (hint) input.setAttribute("aria-describedby", `opt-${name}-hint`);
  return { name, label, hint, input };
}

/** A number input whose default and bounds are the service's (its caps): none are written here. */
function number(name: keyof ProbeOptions, label: string, bounds: Bounds | undefined, step = 1, hint?: string): Field {
  const input = h("input", { type: "number", step, inputmode: "decimal" });
  applyBounds(input, bounds, step);
  return field(name, label, input, hint);
}

function applyBounds(input: HTMLInputElement, bounds: Bounds | undefined, step: number): void {
  if (!bounds) return;
  const min = bounds.minimum ?? (bounds.exclusiveMinimum === undefined ? undefined : bounds.exclusiveMinimum + step);
  if (min !== undefined) input.min = String(min);
  if (bounds.maximum !== undefined) input.max = String(bounds.maximum);
  if (bounds.default !== undefined) input.defaultValue = input.value = String(bounds.default);
}

function render(f: Field): HTMLElement {
  const isBox = f.input instanceof HTMLInputElement && f.input.type === "checkbox";
  const hint = f.hint ? h("small", { id: `opt-${f.name}-hint`, class: "hint" }, f.hint) : null;
  return h("div", { class: isBox ? "field check" : "field" },
    isBox ? f.input : null, h("label", { for: f.input.id }, f.label), isBox ? null : f.input, hint);
}

const BASIC = (caps: Record<string, Bounds>): Field[] => [
  field("method", "Method", h("select", {}, h("option", { value: "GET" }, "GET"), h("option", { value: "HEAD" }, "HEAD")),
    "HEAD is lighter; it falls back to GET on 405 and 501."),
  field("accept", "Accepted status codes", h("input", { type: "text", value: "200-299", spellcheck: false }),
    "Judged ok after redirects, e.g. 200-299,301,429"),
  number("timeout", "Timeout (s)", caps.timeout, 0.1, "Per URL attempt, redirects included."),
];

const ADVANCED = (caps: Record<string, Bounds>): Field[] => [
  number("retries", "Retries", caps.retries),
  number("max_redirects", "Max redirects", caps.max_redirects),
  number("connect_timeout", "Connect timeout (s)", caps.connect_timeout, 0.1),
  number("max_body_bytes", "Max body bytes", caps.max_body_bytes),
  number("concurrency", "Concurrency", caps.concurrency),
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

type Upload = paths["/api/v1/tasks"]["post"]["requestBody"]["content"]["multipart/form-data"];
/** A word for each format the API reads uploads as (a format it adds without one fails tsc). */
const FORMATS: Record<NonNullable<Upload["input_format"]>, string> = { urls: "URL list, one a line", html: "HTML",
  markdown: "Markdown", sitemap: "Sitemap (XML, gzip too)", text: "Text: URLs anywhere in it" };

/** One regular expression a line, blank lines dropped. */
function lines(text: string): string[] {
  return text.split("\n").map((line) => line.trim()).filter(Boolean);
}

function labelled(id: string, label: string, input: HTMLElement, hint?: string): HTMLElement {
  if (hint) input.setAttribute("aria-describedby", `${id}-hint`);
  return h("div", { class: "field" }, h("label", { for: id }, label), input,
    hint ? h("small", { id: `${id}-hint`, class: "hint" }, hint) : null);
}

function checkbox(id: string, label: string): [HTMLInputElement, HTMLElement] {
  const box = h("input", { id, type: "checkbox" });
  return [box, h("div", { class: "field check" }, box, h("label", { for: id }, label))];
}

/** The crawl part of the form: the start page, its limits, and the patterns under "Crawl options". */
class CrawlFields {
  readonly start = h("input", { id: "crawl-start", name: "start", type: "url", spellcheck: false,
    placeholder: "https://docs.example.com/" });
  private readonly depth = h("input", { id: "crawl-depth", type: "number", step: 1, inputmode: "numeric" });
  private readonly pages = h("input", { id: "crawl-pages", type: "number", step: 1, inputmode: "numeric" });
  private readonly scopeAll = h("input", { id: "crawl-scope-all", type: "radio", name: "scope", value: "all", checked: true });
  private readonly scopeSite = h("input", { id: "crawl-scope-site", type: "radio", name: "scope", value: "site" });

  constructor(limits: Record<string, Bounds>) {
    for (const [input, name] of [[this.depth, "max_depth"], [this.pages, "max_pages"]] as const) {
      const bounds = limits[name];
      if (bounds?.minimum !== undefined) input.min = String(bounds.minimum);
      if (bounds?.maximum !== undefined) input.max = String(bounds.maximum);
    }
  }
  private readonly include = h("textarea", { id: "crawl-include", rows: 2, spellcheck: false });
  private readonly exclude = h("textarea", { id: "crawl-exclude", rows: 2, spellcheck: false });
  private readonly robots = checkbox("crawl-robots", "Ignore robots.txt");
  private readonly fragments = checkbox("crawl-fragments", "Check #fragments of the site's pages");

  render(): HTMLElement {
    return h("fieldset", { id: "crawl-fields" }, h("legend", {}, "Site to crawl"),
      labelled("crawl-start", "Start URL", this.start,
        "Pages of this site (same scheme, host and port) are fetched and followed; every link found is checked."),
      h("fieldset", { class: "modes scope" }, h("legend", {}, "Links to check"),
        h("div", { class: "field check" }, this.scopeAll, h("label", { for: "crawl-scope-all" },
          "Every link on the site's pages, other sites' too (the default; those are checked, never followed)")),
        h("div", { class: "field check" }, this.scopeSite, h("label", { for: "crawl-scope-site" },
          "Only the site's own pages and links"))),
      h("div", { class: "grid" },
        labelled("crawl-depth", "Max depth", this.depth, "The start page is depth 0. Empty: the service's limit."),
        labelled("crawl-pages", "Max pages", this.pages, "Pages fetched at most. Empty: the service's limit.")),
      h("details", {}, h("summary", {}, "Crawl options"),
        h("div", { class: "grid" },
          labelled("crawl-include", "Include (one regular expression a line)", this.include,
            "Matching URLs are followed too (widen the site)."),
          labelled("crawl-exclude", "Exclude (one regular expression a line)", this.exclude,
            "Matching URLs are skipped; an include wins."),
          this.robots[1], this.fragments[1])));
  }

  spec(): CrawlSpec {
    const spec: CrawlSpec = { start: this.start.value.trim() };
    if (this.depth.value) spec.max_depth = Number(this.depth.value);
    if (this.pages.value) spec.max_pages = Number(this.pages.value);
    if (lines(this.include.value).length) spec.include = lines(this.include.value);
    if (lines(this.exclude.value).length) spec.exclude = lines(this.exclude.value);
    if (this.robots[0].checked) spec.ignore_robots = true;
    if (this.fragments[0].checked) spec.check_fragments = true;
    if (this.scopeSite.checked) spec.scope = "site";
    return spec;
  }
}

/** The schedule part of the form: off, a task; on, a schedule of it on a period, keeping `keep` runs. */
class ScheduleFields {
  readonly on = h("input", { id: "schedule-on", type: "checkbox" });
  readonly every = h("input", { id: "schedule-every", type: "text", spellcheck: false, placeholder: "e.g. 1h or 1d" });
  readonly cron = h("input", { id: "schedule-cron", type: "text", spellcheck: false, placeholder: "e.g. 0 3 * * *" });
  private readonly keep = h("input", { id: "schedule-keep", type: "number", step: 1, inputmode: "numeric" });
  private readonly rest = h("div", { id: "schedule-rule", class: "grid" },
    labelled("schedule-every", "Every (interval)", this.every, "A number and a unit: s, m, h, d, w (90s, 30m, 1h30m)."),
    labelled("schedule-cron", "…or a cron expression (UTC)", this.cron, "Five fields: minute hour day month weekday."),
    labelled("schedule-keep", "Runs to keep", this.keep, "The newest runs are kept. Empty: the service's default."));

  /** The API's bounds of `keep` (its schema's): min and max, its default as the placeholder (empty sends none). */
  bound(keep: Bounds | undefined): void {
    if (keep?.minimum !== undefined) this.keep.min = String(keep.minimum);
    if (keep?.maximum !== undefined) this.keep.max = String(keep.maximum);
    if (keep?.default !== undefined) this.keep.placeholder = String(keep.default);
  }

  render(onChange: () => void): HTMLElement {
    this.rest.hidden = true;
    this.on.addEventListener("change", () => {
      this.rest.hidden = !this.on.checked;
      onChange();
    });
    return h("fieldset", { id: "schedule-fields" }, h("legend", {}, "Repeat"),
      h("div", { class: "field check" }, this.on, h("label", { for: "schedule-on" },
        "Run on a schedule (pasted URLs or a crawl), and compare each run with the one before")),
      this.rest);
  }

  period(): SchedulePeriod {
    const every = this.every.value.trim();
    const cron = this.cron.value.trim();
    if (!every && !cron) return missing(this.every, "Give an interval (such as 1h) or a cron expression.");
    if (every && cron) return missing(this.cron, "Give an interval or a cron expression, not both.");
    return every ? { every } : { cron };
  }

  keepRuns(): number | undefined {
    return this.keep.value ? Number(this.keep.value) : undefined;
  }
}

interface Input { urls: string; file?: File; format: string; baseUrl: string; crawl?: CrawlSpec }

export async function submitView(main: HTMLElement, signal: AbortSignal, query = new URLSearchParams()): Promise<void> {
  setTitle("New task");
  let described: Service | null = null;
  try {
    described = await service();
  } catch (error) {
    showError(error);  // the form still works; the service checks every bound itself
  }
  if (signal.aborted) return;
  const caps = described?.options ?? {};
  const name = h("input", { id: "task-name", name: "name", type: "text", maxlength: 200, autocomplete: "off" });
  const description = h("textarea", { id: "task-description", name: "description", rows: 2, maxlength: 2000 });
  const urls = h("textarea", { id: "task-urls", name: "urls", rows: 10, spellcheck: false,
    placeholder: "https://example.com/\nhttps://example.org/about", "aria-describedby": "urls-hint" });
  const file = h("input", { id: "task-file", name: "file", type: "file", "aria-describedby": "file-hint" });
  const format = h("select", { id: "task-format", name: "input_format" },
    h("option", { value: "" }, "Detect from the file name"),
    ...Object.entries(FORMATS).map(([value, label]) => h("option", { value }, label)));
  const baseUrl = h("input", { id: "task-base-url", name: "base_url", type: "url", spellcheck: false,
    placeholder: "https://example.com/docs/" });
  const crawl = new CrawlFields(described?.crawl ?? {});
  const basic = BASIC(caps);
  const advanced = ADVANCED(caps);
  const baseWarning = h("p", { id: "base-url-warning", class: "warning", role: "status", hidden: true },
    "Without a base URL, this document's relative links (guide.html, /about, #top) cannot be checked: each is reported "
    + "as invalid_url, saying it needs a base URL. Give the URL where the document is published.");
  baseUrl.setAttribute("aria-describedby", "task-base-url-hint base-url-warning");
  const status = h("p", { class: "muted", role: "status" });
  const go = h("button", { type: "submit" }, "Start checking");
  const schedule = new ScheduleFields();
  // Not awaited: the form works without the bounds (the service checks them itself).
  void schemaBounds("ScheduleCreate", "keep").then((keep) => schedule.bound(keep), () => undefined);
  const webhook = new WebhookFields();
  const repeat = schedule.render(() => { go.textContent = schedule.on.checked ? "Create schedule" : "Start checking"; });
  const listMode = h("input", { id: "mode-list", type: "radio", name: "mode", value: "list", checked: true });
  const crawlMode = h("input", { id: "mode-crawl", type: "radio", name: "mode", value: "crawl" });
  const links = h("fieldset", { id: "list-fields" }, h("legend", {}, "Links to check"),
    h("div", { class: "field" }, h("label", { for: "task-urls" }, "Paste URLs"), urls,
      h("small", { id: "urls-hint", class: "hint" }, "One URL a line; lines starting with # are ignored.")),
    h("div", { class: "field" }, h("label", { for: "task-file" }, "…or upload a file"), file,
      h("small", { id: "file-hint", class: "hint" }, "A URL list, or a document whose links are checked: HTML, Markdown, a sitemap.")),
    h("div", { class: "grid" },
      labelled("task-format", "File format", format),
      labelled("task-base-url", "Base URL (optional)", baseUrl,
        "Where the document is published: its relative links resolve against it.")), baseWarning);
  const warnOfRelative = (): void => {
    const chosen = file.files?.[0];
    baseWarning.hidden = !chosen || !!baseUrl.value.trim() || !isDocument(chosen.name, format.value);
  };
  for (const input of [file, format, baseUrl]) input.addEventListener("input", warnOfRelative);
  file.addEventListener("change", warnOfRelative);
  const crawlPart = crawl.render();
  crawlPart.hidden = true;
  const switchMode = (): void => {
    links.hidden = crawlMode.checked;
    crawlPart.hidden = !crawlMode.checked;
  };
  listMode.addEventListener("change", switchMode);
  crawlMode.addEventListener("change", switchMode);
  const form = h("form", { class: "card submit", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "task-name" }, "Name ", h("span", { class: "muted" }, "(optional)")), name),
    h("div", { class: "field" }, h("label", { for: "task-description" }, "Description ", h("span", { class: "muted" }, "(optional)")), description),
    h("fieldset", { class: "modes" }, h("legend", {}, "What to check"),
      h("div", { class: "field check" }, listMode, h("label", { for: "mode-list" }, "A list of URLs or a document")),
      h("div", { class: "field check" }, crawlMode, h("label", { for: "mode-crawl" }, "Crawl a site"))),
    links, crawlPart,
    h("fieldset", {}, h("legend", {}, "Options"), h("div", { class: "grid" }, ...basic.map(render)),
      h("details", {}, h("summary", {}, "Advanced options"), h("div", { class: "grid" }, ...advanced.map(render)))),
    repeat, webhook.render(),
    h("div", { class: "actions" }, go as Child, status));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    void attempt(async () => {
      const input: Input = { urls: urls.value, file: file.files?.[0], format: format.value, baseUrl: baseUrl.value.trim() };
      if (crawlMode.checked) {
        input.crawl = crawl.spec();
        if (!input.crawl.start) return missing(crawl.start, "Give the start URL of the site to crawl.");
      } else if (!input.file && !urls.value.trim()) {
        return missing(urls, "Paste at least one URL or choose a file.");
      }
      const repeated = schedule.on.checked ? schedule.period() : null;
      if (repeated && input.file) return missing(file, "A schedule runs pasted URLs or a crawl, not an uploaded file.");
      go.disabled = true;
      status.textContent = "Submitting…";
      const opts = options([...basic, ...advanced]);
      try {
        if (repeated) {
          const made = await postSchedule(name.value, description.value, input, opts, repeated, schedule.keepRuns(),
            webhook.spec(), signal);
          if (made.webhook_secret) keepSecret(made.id, made.webhook_secret);
          location.hash = `#/schedules/${encodeURIComponent(made.id)}`;
          return;
        }
        const task = await post(name.value, description.value, input, opts, signal);
        await withWebhook(task.id, webhook.spec(), signal);
        location.hash = `#/tasks/${encodeURIComponent(task.id)}`;
      } catch (error) {
        if (!(error instanceof ApiError) || !markFields(form, error.message)) throw error;
      } finally {
        go.disabled = false;
        status.textContent = "";
      }
    });
  });
  main.append(h("h1", {}, "New task"), form);
  if (query.has("schedule")) {
    schedule.on.checked = true;
    schedule.on.dispatchEvent(new Event("change"));
  }
  urls.focus();
}

const DOCUMENT_NAME = /\.(html?|xhtml|shtml|md|markdown|xml|xml\.gz|gz)$/i;

/** Whether an upload is read as a document (whose relative links need a base), not a URL list. */
function isDocument(name: string, format: string): boolean {
  if (format) return format !== "urls";
  return DOCUMENT_NAME.test(name);
}

// Where the API's 422 detail points ("options.timeout 100 is above the cap...", "crawl.start: ..."):
// the form's input for it, by the API's names (tsc checks them).
// A schedule's are the same under `task.`, and its own: period.every, period.cron, keep, webhook.url.
type Named = `crawl.${keyof CrawlCreate}` | keyof TaskCreate | keyof Upload | `period.${keyof SchedulePeriod}`
  | Exclude<keyof ScheduleCreate, "task"> | `webhook.${keyof WebhookSpec}`;
const FIELD_IDS: Partial<Record<Named, string>> = {
  "crawl.start": "crawl-start", "crawl.max_depth": "crawl-depth", "crawl.max_pages": "crawl-pages",
  "crawl.include": "crawl-include", "crawl.exclude": "crawl-exclude", base_url: "task-base-url", urls: "task-urls",
  name: "task-name", description: "task-description", input_format: "task-format",
  period: "schedule-every", "period.every": "schedule-every", "period.cron": "schedule-cron", keep: "schedule-keep",
  webhook: "webhook-url", "webhook.url": "webhook-url",
};

function fieldOf(form: HTMLFormElement, detail: string): HTMLElement | null {
  const where = /^(?:task\.)?(options\.\w+|crawl\.\w+|period\.\w+|webhook\.\w+|base_url|urls|name|description|input_format|period|keep|webhook)\b/
    .exec(detail)?.[1];
  if (!where) return null;
  const id = where.startsWith("options.") ? `opt-${where.slice(8)}` : FIELD_IDS[where as Named];
  return id ? form.querySelector<HTMLElement>(`#${id}`) : null;
}

/** The API's refusals shown next to the fields they name: marked, described, announced, the first
 * focused. False when no field of the form is named (the notice banner shows the whole detail then). */
function markFields(form: HTMLFormElement, detail: string): boolean {
  // describe() joins pydantic's errors with "; " each "where: what": one a field.
  const parts = detail.split(/; (?=[\w.]+: )/).map((part) => [fieldOf(form, part), part] as const);
  const marked = parts.filter(([input]) => input !== null) as (readonly [HTMLElement, string])[];
  if (!marked.length) return false;
  clearNotice();
  const rest = parts.filter(([input]) => input === null).map(([, part]) => part);
  if (rest.length) showError(rest.join("; "));
  marked.forEach(([input, part], i) => markField(input, part, i === 0));
  return true;
}

/** The refusal as a sentence: without its field's name (said by the label) nor pydantic's "Value error,". */
function plain(detail: string): string {
  const text = detail.replace(/^[\w.]+: /, "").replace(/^Value error, /, "");
  const bound = /^Input should be (greater|less) than or equal to (\S+)$/.exec(text);
  if (bound) return `Must be at ${bound[1] === "greater" ? "least" : "most"} ${bound[2]}.`;
  return text;
}

function markField(input: HTMLElement, detail: string, focus: boolean): void {
  const errorId = `${input.id}-error`;
  const message = h("p", { id: errorId, class: "field-error", role: "alert" }, plain(detail));
  const before = document.getElementById(errorId);
  if (before) {
    before.append(` ${message.textContent ?? ""}`);  // a second refusal of the same field
    return;
  }
  input.insertAdjacentElement("afterend", message);
  input.setAttribute("aria-invalid", "true");
  input.setAttribute("aria-describedby", [errorId, input.getAttribute("aria-describedby")].filter(Boolean).join(" "));
  for (let parent = input.parentElement; parent; parent = parent.parentElement) {
    if (parent instanceof HTMLDetailsElement) parent.open = true;
  }
  if (!focus) return;
  input.scrollIntoView({ block: "center" });
  input.focus({ preventScroll: true });
}

function clearFieldErrors(form: HTMLFormElement): void {
  for (const message of form.querySelectorAll(".field-error")) {
    const input = message.previousElementSibling;
    input?.removeAttribute("aria-invalid");
    const rest = (input?.getAttribute("aria-describedby") ?? "").split(" ").filter((id) => id && id !== message.id);
    if (rest.length) input?.setAttribute("aria-describedby", rest.join(" "));
    else input?.removeAttribute("aria-describedby");
    message.remove();
  }
}

function missing(input: HTMLElement, message: string): never {
  input.setAttribute("aria-invalid", "true");
  input.focus();
  throw new Error(message);
}

function post(name: string, description: string, input: Input, opts: Record<string, unknown>,
  signal: AbortSignal): Promise<Task> {
  const named: Record<string, string> = {};
  if (name.trim()) named.name = name.trim();
  if (description.trim()) named.description = description.trim();
  if (input.crawl) {
    return json<Task>(`${BASE}/tasks`, { method: "POST", signal, headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ crawl: input.crawl, ...named, options: opts }) });
  }
  if (input.file) {
    const body = new FormData();
    body.set("file", input.file);
    for (const [key, value] of Object.entries(named)) body.set(key, value);
    if (input.format) body.set("input_format", input.format);
    if (input.baseUrl) body.set("base_url", input.baseUrl);
    body.set("options", JSON.stringify(opts));
    return json<Task>(`${BASE}/tasks`, { method: "POST", body, signal });
  }
  const query = new URLSearchParams({ options: JSON.stringify(opts), ...named });
  return json<Task>(`${BASE}/tasks?${query}`, {
    method: "POST", body: input.urls, signal, headers: { "Content-Type": "text/plain; charset=utf-8" },
  });
}

/** The pasted URLs as the schedule's JSON list: one a line, blank lines and # comments dropped
 * (what the hint under the field says of the text/plain list). */
function pasted(text: string): string[] {
  return lines(text).filter((line) => !line.startsWith("#"));
}

function postSchedule(name: string, description: string, input: Input, opts: Record<string, unknown>,
  period: SchedulePeriod, keep: number | undefined, webhook: WebhookSpec | null, signal: AbortSignal): Promise<ScheduleCreated> {
  const task: Record<string, unknown> = input.crawl ? { crawl: input.crawl } : { urls: pasted(input.urls) };
  if (name.trim()) task.name = name.trim();
  if (description.trim()) task.description = description.trim();
  task.options = opts;
  const body: Record<string, unknown> = { task, period, ...(keep === undefined ? {} : { keep }) };
  if (name.trim()) body.name = name.trim();
  if (webhook) body.webhook = webhook;
  return json<ScheduleCreated>(`${BASE}/schedules`, { method: "POST", signal,
    headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

/** The new task's webhook: its secret kept for the task page to show once; a refusal (the egress
 * policy) kept for it too, as the task runs anyway. */
async function withWebhook(taskId: string, spec: WebhookSpec | null, signal: AbortSignal): Promise<void> {
  if (!spec) return;
  try {
    keepSecret(taskId, (await setTaskWebhook(taskId, spec, signal)).secret);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    keepRefusal(taskId, error.message);
  }
}
