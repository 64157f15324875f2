/**
 * Abuse limits the fleet object enforces on its sockets (the Worker's limits on requests are in
 * edge/worker/limits.ts):
 * - concurrent dashboard sockets per token subject per fleet (env MAX_DASHBOARD_SOCKETS_PER_TOKEN);
 * - a message rate limit per dashboard socket: a token bucket answered with `rate_limited` error
 *   frames, and a close (1008) when a client keeps sending into an empty bucket;
 * - per relay token subject: concurrent relay sockets (env MAX_RELAY_SOCKETS_PER_TOKEN) and new
 *   drones per minute (env MAX_NEW_DRONES_PER_MINUTE, a token bucket, RELAY_LIMITS);
 * - per dashboard socket, the flow-control window (FLOW_LIMITS, flow.ts);
 * - the lifetime of a socket: its token's exp plus the Worker's clock-skew leeway.
 */

/** Default for MAX_DASHBOARD_SOCKETS_PER_TOKEN. Generous so that a benchmark's many viewers on one
 * token still fit; deployments with real operators should set it lower (e.g. 16). */
export const DEFAULT_DASHBOARD_SOCKETS_PER_TOKEN = 256;

/** Parse MAX_DASHBOARD_SOCKETS_PER_TOKEN (a positive integer), else the default. */
export function socketsPerToken(raw: string | undefined): number {
  return positiveInt(raw, DEFAULT_DASHBOARD_SOCKETS_PER_TOKEN);
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

/** Positive integer from an env var, else `fallback`. */
export function positiveInt(raw: string | undefined, fallback: number): number {
  const n = Number(raw);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

/** Limits per relay token subject. */
export const RELAY_LIMITS = {
  /** Default for MAX_RELAY_SOCKETS_PER_TOKEN: open relay sockets per subject in one fleet. A site
   * runs one relay per ≤1,000 drones; 16 covers a large site and a reconnect overlapping its old
   * socket, and refuses a token opening hundreds. */
  socketsPerSubject: 16,
  /** Default for MAX_NEW_DRONES_PER_MINUTE: drones the fleet has never seen that one subject may
   * add per minute, after the burst. */
  newDronesPerMinute: 1_000,
  /** New drones one subject may add at once (a site relay starting with all its drones): half the
   * fleet's capacity, so one token cannot fill the fleet in one go. */
  newDronesBurst: 5_000,
} as const;

/**
 * The Worker accepts a token until `exp` + 30 s (clock skew between signer and edge,
 * edge/worker/auth.ts); a socket opened with it lives exactly as long.
 */
export const TOKEN_LEEWAY_MS = 30_000;

/**
 * Flow control per dashboard socket (flow.ts). workerd exposes no `bufferedAmount` on server-side
 * WebSockets (workerd#988), so the edge counts what it sent against what the page confirmed with
 * `flow_ack`.
 */
export type FlowLimits = {
  /** Unconfirmed bytes beyond which a socket is lagging: telemetry becomes latest-wins per drone
   * and fleet_status is skipped. Also the most a slow socket makes workerd buffer for it, roughly. */
  windowBytes: number;
  /** A `flow` marker goes out after this many bytes since the last one (one in flight at a time). */
  markEveryBytes: number;
  /** A marker unanswered this long makes the socket lagging, whatever the bytes (a page that reads
   * answers in a round trip). */
  markTimeoutMs: number;
  /** A socket lagging this long is closed with 4002. */
  lagCloseMs: number;
  /** Unconfirmed bytes at which a socket is closed with 4002 at once (frames that are always sent,
   * like command answers and alerts, still pile up behind a page that does not read). */
  hardCapBytes: number;
};
export const FLOW_LIMITS: FlowLimits = {
  windowBytes: 4 * 1024 * 1024,
  markEveryBytes: 256 * 1024,
  markTimeoutMs: 3_000,
  lagCloseMs: 30_000,
  hardCapBytes: 16 * 1024 * 1024,
};

type Bucket = { tokens: number; strikes: number; at: number };

/** The verdict for one message: handle it, answer `rate_limited`, or close the socket (1008). */
export type RateVerdict = "ok" | "limited" | "close";

/**
 * Token buckets per socket, in memory. A Map, not a WeakMap, so that what it holds can be counted
 * (the leak check after closing thousands of sockets): the socket's close calls `forget`. After
 * the fleet object is evicted the buckets start full again, which errs on the side of the client.
 */
export class MessageLimiter<K extends object> {
  private readonly buckets = new Map<K, Bucket>();
  constructor(private readonly l: { burst: number; perSecond: number; strikes: number; strikesPerSecond: number } = DASHBOARD_MESSAGES) {}

  /** Buckets held (one per socket that sent something and is not closed). */
  get size(): number {
    return this.buckets.size;
  }

  forget(key: K): void {
    this.buckets.delete(key);
  }

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
