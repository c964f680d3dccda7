// Webhooks: the settings a task or a schedule takes (a URL, and whether only runs that changed are
// told), the signing secret the API answers once, and the log of deliveries with their attempts.
import { BASE, json } from "./api";
import type { Delivery, DeliveryPage, WebhookCreated, WebhookOn, WebhookSpec } from "./openapi";
import { h, replace } from "./dom";
import { moment, ms } from "./format";
import { attempt } from "./ui";

/** Words for the API's webhook events (an event it adds without a word here fails tsc). */
export const WEBHOOK_ON: Record<WebhookOn, string> = {
  end: "every run that ends", changes: "only runs where something changed",
};

/** A webhook's fields (the submit form's, a task page's: `prefix` keeps their ids apart); an
 * empty URL is no webhook. */
export class WebhookFields {
  readonly url: HTMLInputElement;
  private readonly changes: HTMLInputElement;

  constructor(private readonly prefix = "webhook") {
    this.url = h("input", { id: `${prefix}-url`, name: "webhook_url", type: "url", spellcheck: false,
      placeholder: "https://ci.example.com/hooks/linkprobe", "aria-describedby": `${prefix}-url-hint` });
    this.changes = h("input", { id: `${prefix}-changes`, type: "checkbox" });
  }

  render(legend = "Webhook"): HTMLElement {
    return h("fieldset", { id: `${this.prefix}-fields` }, h("legend", {}, legend),
      h("div", { class: "field" }, h("label", { for: this.url.id }, "Notify URL ", h("span", { class: "muted" }, "(optional)")),
        this.url, h("small", { id: `${this.prefix}-url-hint`, class: "hint" },
          "POSTed a signed summary (Standard Webhooks) when a run ends. The service's egress policy applies.")),
      h("div", { class: "field check" }, this.changes,
        h("label", { for: this.changes.id }, "Only when something changed since the previous run")));
  }

  spec(): WebhookSpec | null {
    const url = this.url.value.trim();
    return url ? { url, on: this.changes.checked ? "changes" : "end" } : null;
  }

  clear(): void {
    this.url.value = "";
    this.changes.checked = false;
  }
}

/** Sets a task's webhook; the answer holds its secret, to be shown once. */
export function setTaskWebhook(taskId: string, spec: WebhookSpec, signal?: AbortSignal): Promise<WebhookCreated> {
  return json<WebhookCreated>(`${BASE}/tasks/${encodeURIComponent(taskId)}/webhook`, {
    method: "POST", signal, headers: { "Content-Type": "application/json" }, body: JSON.stringify(spec),
  });
}

// What the submit form learnt of a webhook it set (its secret, or why it was refused), kept for the
// page shown next (the hash route changes meanwhile), once.
interface Kept { subject: string; secret?: string; refusal?: string }
let pending: Kept | null = null;

export function keepSecret(subject: string, secret: string): void {
  pending = { subject, secret };
}

export function keepRefusal(subject: string, refusal: string): void {
  pending = { subject, refusal };
}

/** What was kept for this task or schedule, once: a later visit has nothing. */
export function takeKept(subject: string): Omit<Kept, "subject"> {
  const found = pending?.subject === subject ? pending : null;
  if (found) pending = null;
  return { secret: found?.secret, refusal: found?.refusal };
}

/** The signing secret as the API answered it, said to be shown only now. */
export function secretCard(secret: string): HTMLElement {
  const code = h("code", { id: "webhook-secret" }, secret);
  const copied = h("span", { class: "muted", role: "status" });
  const copy = h("button", { type: "button", class: "secondary", onclick: () => void attempt(async () => {
    await navigator.clipboard.writeText(secret);
    copied.textContent = "Copied.";
  }) }, "Copy secret");
  return h("section", { class: "card secret", role: "status", "aria-labelledby": "secret-title" },
    h("h2", { id: "secret-title" }, "Webhook signing secret"),
    h("p", {}, "Verify each delivery's webhook-signature with it. Keep it now: it is not shown again."),
    h("p", { class: "secret-line" }, code, " ", copy, " ", copied));
}

const FOLLOW_MS = 3000;
const FOLLOW_LOOKS = 200;  // ten minutes of looks at most: a dead receiver is retried far longer

/** The deliveries of a task's or a schedule's webhook, newest first, read again by `refresh`. */
export class DeliveryLog {
  readonly element = h("div", { class: "table-wrap deliveries", "aria-live": "polite" });
  private shown = "";
  private timer = 0;
  private looks = 0;

  constructor(private readonly subject: "tasks" | "schedules", private readonly id: string,
    private readonly signal: AbortSignal) {
    signal.addEventListener("abort", () => clearTimeout(this.timer));
  }

  /** Reads the log; redrawn only when it changed (a live region says only what is new). */
  async refresh(): Promise<Delivery[]> {
    const path = `${BASE}/${this.subject}/${encodeURIComponent(this.id)}/webhook/deliveries`;
    const page = await json<DeliveryPage>(path, { signal: this.signal });
    const seen = JSON.stringify(page.items);
    if (seen !== this.shown) {
      replace(this.element, page.items.length ? deliveriesTable([...page.items].reverse())
        : h("p", { class: "empty" }, "No deliveries yet: one is made when a run ends."));
    }
    this.shown = seen;
    return page.items;
  }

  /** Reads the log again every few seconds while the page is open, until a delivery has been
   * made and none is still being retried (a task's webhook tells of its one run). */
  follow(): void {
    clearTimeout(this.timer);
    void attempt(async () => {
      const items = await this.refresh();
      const settled = items.length > 0 && !items.some(retrying);
      if (!settled && !this.signal.aborted && this.looks++ < FOLLOW_LOOKS) this.timer = window.setTimeout(() => this.follow(), FOLLOW_MS);
    });
  }
}

/** Not delivered yet: the service retries it, with backoff, for a bounded time. */
function retrying(delivery: Delivery): boolean {
  return !delivery.delivered;
}

function deliveriesTable(items: Delivery[]): HTMLElement {
  return h("table", { class: "deliveries-table" },
    h("caption", { class: "visually-hidden" }, "Webhook deliveries, newest first"),
    h("thead", {}, h("tr", {}, ...["Run", "Delivered", "Last attempt", "Attempts", "URL"]
      .map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, ...items.map(deliveryRow)));
}

function deliveryRow(delivery: Delivery): HTMLElement {
  const last = delivery.attempts[delivery.attempts.length - 1];
  const answer = !last ? "not tried yet"
    : last.status !== null ? `HTTP ${last.status}` : `${last.error?.kind ?? "error"}: ${last.error?.message ?? ""}`;
  return h("tr", { class: "delivery", "data-delivery": delivery.id, "data-delivered": String(delivery.delivered) },
    h("td", { "data-label": "Run" }, h("a", { href: `#/tasks/${encodeURIComponent(delivery.task_id)}` },
      `Task ${delivery.task_id.slice(0, 8)}`)),
    h("td", { "data-label": "Delivered" },
      h("span", { class: `pill ${delivery.delivered ? "ok" : "broken"}` }, delivery.delivered ? "delivered" : "not delivered")),
    h("td", { "data-label": "Last attempt" }, last ? `${answer} · ${moment(last.at)} · ${ms(last.elapsed_ms)}` : answer),
    h("td", { "data-label": "Attempts", class: "num" }, delivery.attempts.length),
    h("td", { "data-label": "URL", class: "url" }, h("span", { class: "link-url" }, delivery.url)));
}

/** A task page's webhook card: set one (its secret shown once), and the log of its deliveries. */
export function taskWebhookCard(taskId: string, signal: AbortSignal): HTMLElement {
  const { secret, refusal } = takeKept(taskId);
  const log = new DeliveryLog("tasks", taskId, signal);
  const shown = h("div", {}, secret ? secretCard(secret) : null,
    refusal ? h("p", { class: "field-error", role: "alert" }, `The webhook was not set: ${refusal}`) : null);
  const fields = new WebhookFields("task-webhook");
  const form = h("form", { class: "webhook-form", "aria-label": "Set this task's webhook" },
    fields.render("Notify when this task ends"),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "secondary" }, "Set webhook")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void attempt(async () => {
      const spec = fields.spec();
      if (!spec) throw new Error("Give the URL to notify.");
      const made = await setTaskWebhook(taskId, spec, signal);
      replace(shown, secretCard(made.secret));
      fields.clear();
      log.follow();
    });
  });
  const refresh = h("button", { type: "button", class: "secondary", onclick: () => void attempt(async () => { await log.refresh(); }) },
    "Refresh deliveries");
  if (secret) log.follow();  // set as the task was submitted: its delivery is awaited here
  else void attempt(async () => { if ((await log.refresh()).some(retrying)) log.follow(); });
  return h("section", { class: "card webhook", "aria-labelledby": "webhook-title" },
    h("h2", { id: "webhook-title" }, "Webhook"), shown, form,
    h("h3", {}, "Deliveries"), log.element, h("div", { class: "actions" }, refresh));
}
