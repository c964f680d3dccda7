// Submitting a task: pasted URLs (sent as text/plain, the service's URL-list rule), an uploaded URL list or
// document (multipart, with its format and base URL), or a site to crawl (JSON).
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

const FORMATS: [string, string][] = [["", "Detect from the file name"], ["urls", "URL list, one a line"],
  ["html", "HTML"], ["markdown", "Markdown"], ["sitemap", "Sitemap (XML, gzip too)"], ["text", "Text: URLs anywhere in it"]];

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
  private readonly depth = h("input", { id: "crawl-depth", type: "number", min: 0, step: 1, inputmode: "numeric" });
  private readonly pages = h("input", { id: "crawl-pages", type: "number", min: 1, step: 1, inputmode: "numeric" });
  private readonly include = h("textarea", { id: "crawl-include", rows: 2, spellcheck: false });
  private readonly exclude = h("textarea", { id: "crawl-exclude", rows: 2, spellcheck: false });
  private readonly robots = checkbox("crawl-robots", "Ignore robots.txt");
  private readonly fragments = checkbox("crawl-fragments", "Check #fragments of the site's pages");

  render(): HTMLElement {
    return h("fieldset", { id: "crawl-fields" }, h("legend", {}, "Site to crawl"),
      labelled("crawl-start", "Start URL", this.start,
        "Pages of this site (same scheme, host and port) are fetched and followed; every link found is checked."),
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

  spec(): Record<string, unknown> {
    const spec: Record<string, unknown> = { start: this.start.value.trim() };
    if (this.depth.value) spec.max_depth = Number(this.depth.value);
    if (this.pages.value) spec.max_pages = Number(this.pages.value);
    if (lines(this.include.value).length) spec.include = lines(this.include.value);
    if (lines(this.exclude.value).length) spec.exclude = lines(this.exclude.value);
    if (this.robots[0].checked) spec.ignore_robots = true;
    if (this.fragments[0].checked) spec.check_fragments = true;
    return spec;
  }
}

interface Input { urls: string; file?: File; format: string; baseUrl: string; crawl?: Record<string, unknown> }

export function submitView(main: HTMLElement, signal: AbortSignal): void {
  setTitle("New task");
  const name = h("input", { id: "task-name", name: "name", type: "text", maxlength: 200, autocomplete: "off" });
  const description = h("textarea", { id: "task-description", name: "description", rows: 2, maxlength: 2000 });
  const urls = h("textarea", { id: "task-urls", name: "urls", rows: 10, spellcheck: false,
    placeholder: "https://example.com/\nhttps://example.org/about", "aria-describedby": "urls-hint" });
  const file = h("input", { id: "task-file", name: "file", type: "file", "aria-describedby": "file-hint" });
  const format = h("select", { id: "task-format", name: "input_format" },
    ...FORMATS.map(([value, label]) => h("option", { value }, label)));
  const baseUrl = h("input", { id: "task-base-url", name: "base_url", type: "url", spellcheck: false,
    placeholder: "https://example.com/docs/" });
  const crawl = new CrawlFields();
  const basic = BASIC();
  const advanced = ADVANCED();
  const status = h("p", { class: "muted", role: "status" });
  const go = h("button", { type: "submit" }, "Start checking");
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
        "Where the document is published: its relative links resolve against it.")));
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
    h("div", { class: "actions" }, go as Child, status));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void attempt(async () => {
      const input: Input = { urls: urls.value, file: file.files?.[0], format: format.value, baseUrl: baseUrl.value.trim() };
      if (crawlMode.checked) {
        input.crawl = crawl.spec();
        if (!input.crawl.start) return missing(crawl.start, "Give the start URL of the site to crawl.");
      } else if (!input.file && !urls.value.trim()) {
        return missing(urls, "Paste at least one URL or choose a file.");
      }
      go.disabled = true;
      status.textContent = "Submitting…";
      try {
        const task = await post(name.value, description.value, input, options([...basic, ...advanced]), signal);
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
