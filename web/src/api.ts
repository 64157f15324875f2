/**
 * REST calls under /v1/fleets/{fleet}/…, with the token as a Bearer header. Every call is bounded
 * by a timeout and returns a result instead of throwing, because several routes are optional
 * (analytics may not be deployed: 404, or its database may be down: 503) and the page shows that
 * in place rather than failing as a whole. Every body is checked against its schema from
 * edge/protocol (rest.ts) before the page sees it: a body of the wrong shape is a failed call
 * (`bad_body`), never a cast.
 */
import type { z } from "zod";
import { ErrorBody, parseRestBody } from "../../edge/protocol";

export type ApiResult<T> =
  | { ok: true; status: number; data: T }
  | { ok: false; status: number; code: string; message: string };

export class Api {
  constructor(
    private token: string,
    private readonly fleet: string,
    private readonly base = "",
  ) {}

  /** A renewed token (the old one expired): every later call and socket uses it. */
  setToken(token: string): void {
    this.token = token;
  }

  fleetPath(path: string): string {
    return `${this.base}/v1/fleets/${encodeURIComponent(this.fleet)}${path}`;
  }

  /** ws:// or wss:// URL of the dashboard socket (browsers cannot set headers on a WebSocket). */
  socketUrl(): string {
    const u = new URL(this.fleetPath("/ws"), location.href);
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    // No token: signed in through the identity provider, whose cookie the browser sends itself.
    if (this.token) u.searchParams.set("access_token", this.token);
    return u.toString();
  }

  async get<S extends z.ZodType>(path: string, schema: S, timeoutMs = 10_000): Promise<ApiResult<z.infer<S>>> {
    let res: Response;
    try {
      res = await fetch(this.fleetPath(path), {
        headers: { ...(this.token ? { authorization: `Bearer ${this.token}` } : {}), accept: "application/json" },
        signal: AbortSignal.timeout(timeoutMs),
        cache: "no-store",
      });
    } catch (err) {
      const e = err as Error;
      return { ok: false, status: 0, code: e.name === "TimeoutError" ? "timeout" : "network", message: e.message };
    }
    let body: unknown = null;
    try {
      body = await res.json();
    } catch {
      // Not JSON (a proxy's HTML error page): the status says enough.
    }
    if (res.ok) {
      const r = parseRestBody(schema, body);
      if (r.ok) return { ok: true, status: res.status, data: r.value };
      console.warn(`GET ${path}: unexpected body: ${r.message}`);
      return { ok: false, status: res.status, code: "bad_body", message: `unexpected response body (${r.message})` };
    }
    const err = ErrorBody.safeParse(body);
    return {
      ok: false,
      status: res.status,
      code: err.success ? err.data.error.code : `http_${res.status}`,
      message: err.success ? err.data.error.message : `HTTP ${res.status}`,
    };
  }
}

/** A short human phrase for a failed optional route. */
export function unavailable(r: { status: number; code: string; message: string }): string {
  if (r.status === 404) return "not available on this edge";
  if (r.status === 503) return `temporarily unavailable (${r.message})`;
  if (r.status === 0) return `unreachable (${r.message})`;
  return `${r.code}: ${r.message}`;
}
