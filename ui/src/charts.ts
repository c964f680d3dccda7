// Outcome charts drawn as SVG from the task's counters: no chart library, no inline styles.
import { h, svg } from "./dom";
import { count } from "./format";
import { type ErrorKind, errorKindValues } from "./openapi";

/** A bar is coloured by its tone (a class of app.css), or by its own `colour` (an error kind's). */
export interface Bar { label: string; value: number; tone: "ok" | "broken" | "neutral"; colour?: string }

const ROW = 26;
const LABEL = 120;
const WIDTH = 360;

export function barChart(title: string, bars: Bar[], empty: string): HTMLElement {
  const figure = h("figure", { class: "chart" }, h("figcaption", {}, title));
  if (!bars.length) {
    figure.append(h("p", { class: "muted" }, empty));
    return figure;
  }
  const max = Math.max(...bars.map((bar) => bar.value), 1);
  const summary = bars.map((bar) => `${bar.label}: ${bar.value}`).join(", ");
  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${bars.length * ROW}`,
    role: "img",
    "aria-label": `${title}. ${summary}`,
    preserveAspectRatio: "xMinYMin meet",
  });
  bars.forEach((bar, i) => chart.append(...row(bar, i, max)));
  figure.append(chart);
  return figure;
}

function row(bar: Bar, i: number, max: number): SVGElement[] {
  const y = i * ROW;
  const room = WIDTH - LABEL - 70;
  const width = Math.max(2, (bar.value / max) * room);
  return [
    svg("text", { x: LABEL - 8, y: y + 17, class: "chart-label", "text-anchor": "end" }, bar.label),
    svg("rect", { x: LABEL, y: y + 4, width, height: ROW - 8, rx: 3,
      ...(bar.colour ? { class: "bar", fill: bar.colour } : { class: `bar bar-${bar.tone}` }) }),
    svg("text", { x: LABEL + width + 6, y: y + 17, class: "chart-value" }, count(bar.value)),
  ];
}

export function statusBars(byStatus: Record<string, number>, ok: (code: number) => boolean): Bar[] {
  return Object.entries(byStatus)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([code, value]) => ({ label: code, value, tone: ok(Number(code)) ? "ok" : "broken" }));
}

export function errorBars(byError: Record<string, number>): Bar[] {
  return Object.entries(byError)
    .sort(([, a], [, b]) => b - a)
    .map(([kind, value]) => ({ label: kind, value, tone: "broken", colour: kindColour(kind) }));
}

// Error kinds' colours: half the kinds a hue each, evenly spread, at one lightness; the other half the
// same hues lighter. OKLCH keeps equal lightness equally bright on the light and the dark scheme. Set
// as the SVG `fill` attribute: a presentation attribute, not an inline style, so the CSP holds.
const HUES = Math.ceil(errorKindValues.length / 2);
const LIGHTNESS = [0.56, 0.76];

/** The same colour for a kind in every chart (its place in the API's enum), a different one for each kind. */
function kindColour(kind: string): string | undefined {
  const place = errorKindValues.indexOf(kind as ErrorKind);
  if (place < 0) return undefined;  // a kind this build does not know: the broken tone
  const hue = 25 + (place % HUES) * (360 / HUES);
  return `oklch(${LIGHTNESS[Math.floor(place / HUES)]} 0.14 ${hue.toFixed(1)})`;
}

/** Latency buckets keyed by their upper bound in ms ("+Inf" last), as the API reports them. */
export function latencyBars(latency: Record<string, number> | undefined): Bar[] {
  if (!latency) return [];
  const buckets = Object.entries(latency);
  // From the first bucket with results to the last: empty buckets between them keep the shape.
  const first = buckets.findIndex(([, value]) => value > 0);
  const last = buckets.length - 1 - [...buckets].reverse().findIndex(([, value]) => value > 0);
  if (first < 0) return [];
  const label = (bound: string, i: number): string =>
    bound === "+Inf" ? `> ${buckets[i - 1]?.[0] ?? 0} ms` : `≤ ${bound} ms`;
  return buckets.slice(first, last + 1)
    .map(([bound, value], i) => ({ label: label(bound, first + i), value, tone: "neutral" }));
}

/** The task's accept rule ("200-299,301") as a predicate, to colour status bars. */
export function acceptRule(rule: unknown): (code: number) => boolean {
  const text = typeof rule === "string" ? rule : "200-299";
  const ranges = text.split(",").map((part) => {
    const [low, high] = part.trim().split("-").map(Number);
    return [low, high ?? low] as const;
  });
  return (code) => ranges.some(([low, high]) => code >= low && code <= high);
}

/** A run of a schedule as a column: its label (when it was due) and its value (broken links). */
export interface Point { label: string; value: number }

const COLUMN = 12;
const HEIGHT = 40;

/** A small column chart of a value over runs, oldest first (a schedule's broken links), with its
 * largest value written beside it: the scale, readable without hovering (phones cannot). */
export function overRuns(title: string, points: Point[], empty: string): Element {
  if (!points.length) return h("p", { class: "muted spark-empty" }, empty);
  const largest = Math.max(...points.map((point) => point.value));
  // aria-hidden: the chart's label says every value already
  return h("div", { class: "spark-wrap" }, sparkChart(title, points),
    h("span", { class: "spark-max", "aria-hidden": "true" }, `max ${count(largest)}`));
}

function sparkChart(title: string, points: Point[]): Element {
  const max = Math.max(...points.map((point) => point.value), 1);
  const summary = points.map((point) => `${point.label}: ${point.value}`).join(", ");
  const chart = svg("svg", {
    class: "spark", viewBox: `0 0 ${points.length * COLUMN} ${HEIGHT}`, role: "img",
    "aria-label": `${title}, oldest first. ${summary}`, preserveAspectRatio: "xMinYMax meet",
  });
  points.forEach((point, i) => {
    const height = point.value ? Math.max(2, (point.value / max) * (HEIGHT - 2)) : 1;
    chart.append(svg("rect", { x: i * COLUMN + 1, y: HEIGHT - height, width: COLUMN - 3, height, rx: 1,
      class: `bar ${point.value ? "bar-broken" : "bar-ok"}`, "data-value": point.value },
    svg("title", {}, `${point.label}: ${count(point.value)}`)));
  });
  return chart;
}
