// Shared page pieces: the notice area, confirmation and key dialogs, status badges.
import { ApiError, apiKey, send } from "./api";
import { h, replace } from "./dom";

export function notice(): HTMLElement {
  return document.getElementById("notice") as HTMLElement;
}

export function showError(error: unknown): void {
  const text = error instanceof Error ? error.message : String(error);
  replace(notice(), h("div", { class: "banner error" }, h("span", {}, text),
    h("button", { type: "button", class: "link", onclick: clearNotice }, "Dismiss")));
  notice().scrollIntoView({ block: "nearest" });  // said where it is seen, not above the viewport
}

export function clearNotice(): void {
  replace(notice());
}

/** Runs an action for a button, reporting failures instead of throwing them away. */
export async function attempt(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (error) {
    if ((error as Error).name !== "AbortError") showError(error);
  }
}

export function isGone(error: unknown): boolean {
  return error instanceof ApiError && error.status === 404;
}

export function badge(status: string): HTMLElement {
  return h("span", { class: `badge badge-${status}` }, status);
}

export function modal(content: HTMLElement): HTMLDialogElement {
  const dialog = h("dialog", { class: "modal" }, content);
  document.body.append(dialog);
  dialog.addEventListener("close", () => dialog.remove());
  dialog.showModal();
  return dialog;
}

export function confirmAction(question: string, action: string): Promise<boolean> {
  return new Promise((resolve) => {
    const form = h("form", { method: "dialog" },
      h("p", { id: "confirm-text" }, question),
      h("div", { class: "actions" },
        h("button", { value: "cancel", class: "secondary", autofocus: true }, "Keep it"),
        h("button", { value: "confirm", class: "danger" }, action)));
    const dialog = modal(form);
    dialog.setAttribute("aria-labelledby", "confirm-text");
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"));
  });
}

export function askForKey(reason: string): Promise<string | null> {
  return new Promise((resolve) => {
    const input = h("input", { id: "api-key", type: "password", autocomplete: "current-password", required: true });
    const form = h("form", { method: "dialog" },
      h("h2", { id: "key-title" }, "API key needed"),
      h("p", {}, reason || "This linkprobe service needs an API key."),
      h("label", { for: "api-key" }, "API key"), input,
      h("p", { class: "muted" }, "Kept in this browser tab only (session storage)."),
      h("div", { class: "actions" },
        h("button", { value: "cancel", class: "secondary", formnovalidate: true }, "Cancel"),
        h("button", { value: "ok" }, "Use key")));
    const dialog = modal(form);
    dialog.setAttribute("aria-labelledby", "key-title");
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok" ? input.value.trim() || null : null));
  });
}

export function setTitle(text: string): void {
  document.title = `${text} · linkprobe`;
}

/** Saves an API answer as a file named `name`: without a key the browser streams it to disk from
 * a plain link; with one (a link cannot carry it) it is fetched, then saved. */
export async function download(url: string, name: string, signal: AbortSignal,
  convert?: (response: Response) => Promise<Blob>): Promise<void> {
  if (!convert && !apiKey()) return save(url, name);
  const response = await send(url, { signal });
  const blob = convert ? await convert(response) : await response.blob();
  const objectUrl = URL.createObjectURL(blob);
  save(objectUrl, name);
  setTimeout(() => URL.revokeObjectURL(objectUrl), 60_000);
}

function save(href: string, name: string): void {
  const link = h("a", { href, download: name, class: "visually-hidden" });
  document.body.append(link);
  link.click();
  link.remove();
}
