// The only way the UI talks to linkprobe: the public API under /api/v1, with the key when one is needed.
// The API's types are generated from its OpenAPI document (src/openapi.ts, by `make ui`): none are
// written here, so code that uses a field the API lacks fails tsc.
import type { Service, TaskStatus } from "./openapi";

export const BASE = "/api/v1";
const KEY = "linkprobe.apiKey";

export const TERMINAL: ReadonlySet<TaskStatus> = new Set<TaskStatus>(["ready", "cancelled"]);

/** A numeric option's or crawl limit's entry in the service's description, in JSON Schema's words. */
export type Bounds = Partial<Record<"minimum" | "exclusiveMinimum" | "maximum" | "default", number>>;

let described: Promise<Service> | null = null;

type Schema = { components?: { schemas?: Record<string, { properties?: Record<string, Bounds> }> } };
let schema: Promise<Schema> | null = null;

/** A property's bounds in the API's own schema (/openapi.json, asked once per page load): the types
 * generated from it leave bounds out, and the API declares them once, there. */
export async function schemaBounds(model: string, property: string): Promise<Bounds | undefined> {
  schema ??= json<Schema>("/openapi.json").catch((error: unknown) => {
    schema = null;
    throw error;
  });
  return (await schema).components?.schemas?.[model]?.properties?.[property];
}

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
