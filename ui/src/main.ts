// The single-page app: hash routes (#/, #/new, #/tasks/<id>, #/tasks/<id>/changes?change=<word>,
// #/schedules, #/schedules/<id>) so any static server can host it.
import { onKeyNeeded } from "./api";
import { askForKey, clearNotice } from "./ui";
import { changesView } from "./changes";
import { scheduleView, schedulesView } from "./schedules";
import { submitView } from "./submit";
import { taskView } from "./task";
import { tasksView } from "./tasks";

export type View = (main: HTMLElement, signal: AbortSignal) => void | Promise<void>;

let current: AbortController | null = null;

function route(): View {
  const [path, search = ""] = (location.hash.replace(/^#/, "") || "/").split("?", 2);
  const query = new URLSearchParams(search);
  const task = /^\/tasks\/([^/]+)$/.exec(path);
  if (task) return (main, signal) => taskView(main, signal, decodeURIComponent(task[1]));
  const changes = /^\/tasks\/([^/]+)\/changes$/.exec(path);
  if (changes) return (main, signal) => changesView(main, signal, decodeURIComponent(changes[1]), query);
  const schedule = /^\/schedules\/([^/]+)$/.exec(path);
  if (schedule) return (main, signal) => scheduleView(main, signal, decodeURIComponent(schedule[1]));
  if (path === "/schedules") return schedulesView;
  if (path === "/new") return (main, signal) => submitView(main, signal, query);
  return tasksView;
}

function render(): void {
  current?.abort();
  current = new AbortController();
  clearNotice();
  const main = document.getElementById("main") as HTMLElement;
  main.replaceChildren();
  for (const link of document.querySelectorAll<HTMLAnchorElement>("nav a[data-route]")) {
    const active = link.getAttribute("href") === (location.hash || "#/");
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  void route()(main, current.signal);
  // Screen readers start at the new content, unless the view put the focus somewhere useful.
  if (!main.contains(document.activeElement)) main.focus({ preventScroll: true });
}

onKeyNeeded(askForKey);
window.addEventListener("hashchange", render);
render();
