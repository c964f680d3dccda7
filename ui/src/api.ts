// The only way the UI talks to linkprobe: the public API under /api/v1, with the key when one is needed.
export const BASE = "/api/v1";
const KEY = "linkprobe.apiKey";

export interface Progress {
  total: number;
  done: number;
  ok: number;
  broken: number;
  unsupported?: number;
  cancelled?: number;
  pages?: number | null;
}
export interface Crawl {
  start: string;
  max_depth: number | null;
  max_pages: number | null;
  include: string[];
  exclude: string[];
  ignore_robots: boolean;
  check_fragments: boolean;
  scope?: "all" | "site";
}
export interface Task {
  id: string;
  name: string | null;
  description: string | null;
  status: "pending" | "running" | "ready" | "cancelled" | "error";
  progress: Progress;
  by_status: Record<string, number>;
  by_error: Record<string, number>;
  latency?: Record<string, number>;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  options: Record<string, unknown>;
  crawl?: Crawl | null;
}
export interface Hop { status_code: number; url: string }
export interface Place { document: string; line: number }
/** Where a URL of a document or a crawl was found: the first places, and how many there are in all. */
export interface Sources { total: number; places: Place[] }
export interface Result {
  url: string;
  index: number;
  ok: boolean;
  final_url: string | null;
  status_code: number | null;
  error: { kind: string; message: string } | null;
  redirects: Hop[];
  body?: string | null;
  elapsed_ms: number;
  dns_ms: number | null;
  connect_ms: number | null;
  tls_ms: number | null;
  ttfb_ms: number | null;
  content_type: string | null;
  content_length: number | null;
  checked_at: string;
  attempts: number;
  sources?: Sources;
  /** Derived by the API (linkprobe.outcomes): ok, broken, unsupported or cancelled. */
  outcome: string;
  /** By the link's own answer (the first hop): permanent (301, 308), temporary, or null. */
  redirect: "permanent" | "temporary" | null;
  [key: string]: unknown;
}
export interface Page<T> { items: T[]; next_cursor: string | null }

export const TERMINAL = new Set(["ready", "cancelled", "error"]);

export interface Bounds { minimum?: number; exclusiveMinimum?: number; maximum?: number; default?: number }
/** What the service allows and how it judges (GET /api/v1/service): forms and words derive from it. */
export interface Service {
  options: Record<string, Bounds>;
  crawl: Record<string, Bounds>;
  outcomes: string[];
  error_kinds: string[];
  permanent_redirects: number[];
  egress: { allow_private: boolean; allow_cidrs: string[]; policy: string; to_allow: string };
}

let described: Promise<Service> | null = null;

/** The service's description, asked once per page load (a failed ask is asked again next time). */
export function service(): Promise<Service> {
  const asked = described ?? json<Service>(`${BASE}/service`).catch((error: unknown) => {
    described = null;
    throw error;
  });
  described = asked;
  return asked;
}

/** An answer the person should read: the API's `detail`, or why the API could not be reached. */
export class ApiError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

let askForKey: (reason: string) => Promise<string | null> = async () => null;

export function onKeyNeeded(ask: (reason: string) => Promise<string | null>): void {
  askForKey = ask;
}

export function apiKey(): string | null {
  return sessionStorage.getItem(KEY);
}

export function forgetKey(): void {
  sessionStorage.removeItem(KEY);
}

export function authHeaders(): Record<string, string> {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** fetch() with the key; on 401 asks for a key once and retries. Network failures become ApiError(0). */
export async function send(path: string, init: RequestInit = {}): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    const headers = { ...authHeaders(), ...(init.headers as Record<string, string> | undefined) };
    let response: Response;
    try {
      response = await fetch(path, { ...init, headers });
    } catch (error) {
      if ((error as Error).name === "AbortError") throw error;
      throw new ApiError("The linkprobe API cannot be reached. Check that the service is running, then retry.", 0);
    }
    if (response.ok) return response;
    const detail = await detailOf(response);  // the body can be read only once
    if (response.status === 401 && attempt === 0) {
      const key = await askForKey(detail);
      if (key) {
        sessionStorage.setItem(KEY, key);
        continue;
      }
    }
    throw new ApiError(detail, response.status);
  }
}

export async function json<T>(path: string, init: RequestInit = {}): Promise<T> {
  return (await (await send(path, init)).json()) as T;
}

async function detailOf(response: Response): Promise<string> {
  const fallback = `${response.status} ${response.statusText || "error"}`;
  try {
    const body = (await response.json()) as { detail?: unknown };
    return describe(body.detail) || fallback;
  } catch {
    if (response.status >= 502 && response.status <= 504) {
      return "The linkprobe API is not answering behind the front. Retry in a moment.";
    }
    return fallback;
  }
}

/** FastAPI details are a string, or a list of {loc, msg} for invalid input: make them one sentence. */
export function describe(detail: unknown): string {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((d: { loc?: unknown[]; msg?: string }) => {
        const where = (d.loc ?? []).filter((part) => part !== "body" && part !== "query").join(".");
        return where ? `${where}: ${d.msg ?? ""}` : d.msg ?? "";
      })
      .join("; ");
  }
  return detail === undefined || detail === null ? "" : JSON.stringify(detail);
}

export function resultsQuery(filter: Record<string, string>, extra: Record<string, string> = {}): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries({ ...filter, ...extra })) if (value) params.set(name, value);
  return params.toString();
}
