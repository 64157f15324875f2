/**
 * Abuse limits the fleet object enforces on its sockets (the Worker's limits on requests are in
 * edge/worker/limits.ts):
 * - concurrent dashboard sockets per token subject per fleet (env MAX_DASHBOARD_SOCKETS_PER_TOKEN);
 * - a message rate limit per dashboard socket: a token bucket answered with `rate_limited` error
 *   frames, and a close (1008) when a client keeps sending into an empty bucket.
 */

/** Default for MAX_DASHBOARD_SOCKETS_PER_TOKEN. Generous so that a benchmark's many viewers on one
 * token still fit; deployments with real operators should set it lower (e.g. 16). */
export const DEFAULT_DASHBOARD_SOCKETS_PER_TOKEN = 256;

/** Parse MAX_DASHBOARD_SOCKETS_PER_TOKEN (a positive integer), else the default. */
export function socketsPerToken(raw: string | undefined): number {
  const n = Number(raw);
  return Number.isInteger(n) && n > 0 ? n : DEFAULT_DASHBOARD_SOCKETS_PER_TOKEN;
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
