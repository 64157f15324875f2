/**
 * Abuse limits at the edge, as small pure pieces the routes and the fleet object call:
 * - the Origin allowlist for browser sockets (env ALLOWED_ORIGINS);
 * - request bodies read with a cap, so a missing or lying Content-Length cannot make the Worker
 *   buffer an unbounded upload;
 * - concurrent dashboard sockets per token subject per fleet (env MAX_DASHBOARD_SOCKETS_PER_TOKEN);
 * - a message rate limit per dashboard socket: a token bucket answered with `rate_limited` error
 *   frames, and a close (1008) when a client keeps sending into an empty bucket.
 */

/** Largest body any REST route accepts (the biggest is PUT /config). */
export const MAX_BODY_BYTES = 256 * 1024;
/** Default for MAX_DASHBOARD_SOCKETS_PER_TOKEN. Generous so that a benchmark's many viewers on one
 * token still fit; deployments with real operators should set it lower (e.g. 16). */
export const DEFAULT_DASHBOARD_SOCKETS_PER_TOKEN = 256;

/**
 * May a browser page from `origin` open a socket? `allowed` is "*" (or unset: any origin), or a
 * comma-separated list of origins ("https://ops.example.com, http://localhost:5173"). Requests
 * without an Origin header come from non-browser clients (relays, scripts) and are not subject to
 * it: Origin protects browser sessions, it is not authentication. The edge's own origin (the
 * bundled dashboard, served from the same host) is always allowed.
 */
export function originAllowed(origin: string | null, requestUrl: string, allowed: string | undefined): boolean {
  if (origin === null) return true;
  const list = (allowed ?? "*").split(",").map((s) => s.trim()).filter(Boolean);
  if (list.length === 0 || list.includes("*")) return true;
  const o = origin.toLowerCase().replace(/\/+$/, "");
  if (o === new URL(requestUrl).origin.toLowerCase()) return true;
  return list.some((a) => a.toLowerCase().replace(/\/+$/, "") === o);
}

/** Parse MAX_DASHBOARD_SOCKETS_PER_TOKEN (a positive integer), else the default. */
export function socketsPerToken(raw: string | undefined): number {
  const n = Number(raw);
  return Number.isInteger(n) && n > 0 ? n : DEFAULT_DASHBOARD_SOCKETS_PER_TOKEN;
}

/**
 * Read a request body, at most `max` bytes. "too_large" as soon as the declared Content-Length or
 * the bytes actually received exceed it (the stream is cancelled; nothing more is read).
 */
export async function readBodyCapped(req: Request, max: number): Promise<Uint8Array | "too_large"> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > max) return "too_large";
  if (!req.body) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel("body too large").catch(() => {
        // The peer may already be gone; the answer is 413 either way.
      });
      return "too_large";
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** Per-socket message limits of dashboard sockets. */
export const DASHBOARD_MESSAGES = {
  /** Messages a socket may send in a burst. */
  burst: 500,
  /** Sustained messages per second. */
  perSecond: 50,
  /** Messages sent into an empty bucket (each answered `rate_limited`) before the socket is closed;
   * refills at `strikesPerSecond`. */
  strikes: 100,
  strikesPerSecond: 10,
} as const;

type Bucket = { tokens: number; strikes: number; at: number };

/** The verdict for one message: handle it, answer `rate_limited`, or close the socket (1008). */
export type RateVerdict = "ok" | "limited" | "close";

/**
 * Token buckets per socket, in memory (a WeakMap, so closed sockets are forgotten). After the fleet
 * object is evicted the buckets start full again, which errs on the side of the client.
 */
export class MessageLimiter<K extends object> {
  private readonly buckets = new WeakMap<K, Bucket>();
  constructor(private readonly l: { burst: number; perSecond: number; strikes: number; strikesPerSecond: number } = DASHBOARD_MESSAGES) {}

  take(key: K, now: number): RateVerdict {
    const b = this.buckets.get(key) ?? { tokens: this.l.burst, strikes: this.l.strikes, at: now };
    const dt = Math.max(0, now - b.at) / 1000;
    b.tokens = Math.min(this.l.burst, b.tokens + dt * this.l.perSecond);
    b.strikes = Math.min(this.l.strikes, b.strikes + dt * this.l.strikesPerSecond);
    b.at = now;
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return "ok";
    }
    if (b.strikes >= 1) {
      b.strikes -= 1;
      return "limited";
    }
    return "close";
  }
}
